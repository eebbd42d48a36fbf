/*
 * conn.c: one non-blocking socket with an input and an output evbuffer.
 * Reads go straight into reserved evbuffer space (no FIONREAD round trip);
 * writes are attempted at once and only fall back to a write event when the
 * kernel is full, so a request/response costs one read and one write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>

#include "pooler.h"

#define READ_CHUNK 16384

double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
set_nodelay(int fd)
{
	int			one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
conn_init(conn *c, int fd, event_callback_fn rcb, event_callback_fn wcb, void *arg)
{
	c->fd = fd;
	c->reading = false;
	c->writing = false;
	event_assign(&c->rev, base, fd, EV_READ | EV_PERSIST, rcb, arg);
	event_assign(&c->wev, base, fd, EV_WRITE, wcb, arg);
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (!c->in || !c->out)
		abort();
}

int
conn_fill(conn *c)
{
	struct evbuffer_iovec v;
	ssize_t		n;

	if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1)
		return -1;
	n = read(c->fd, v.iov_base, v.iov_len);
	if (n < 0)
	{
		v.iov_len = 0;
		evbuffer_commit_space(c->in, &v, 1);
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -2 : -1;
	}
	v.iov_len = n;
	evbuffer_commit_space(c->in, &v, 1);
	return (int) n;
}

int
conn_flush(conn *c)
{
	while (evbuffer_get_length(c->out) > 0)
	{
		int			n = evbuffer_write(c->out, c->fd);

		if (n < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
	}
	if (evbuffer_get_length(c->out) > 0)
	{
		if (!c->writing)
		{
			event_add(&c->wev, NULL);
			c->writing = true;
		}
	}
	else if (c->writing)
	{
		event_del(&c->wev);
		c->writing = false;
	}
	return 0;
}

void
conn_read_on(conn *c)
{
	if (!c->reading)
	{
		event_add(&c->rev, NULL);
		c->reading = true;
	}
}

void
conn_read_off(conn *c)
{
	if (c->reading)
	{
		event_del(&c->rev);
		c->reading = false;
	}
}

void
conn_destroy(conn *c)
{
	if (c->fd < 0)
		return;
	event_del(&c->rev);
	event_del(&c->wev);
	close(c->fd);
	c->fd = -1;
	c->reading = c->writing = false;
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	c->in = c->out = NULL;
}

/* Copy n bytes at offset off without consuming them; false if not there. */
bool
conn_peek(struct evbuffer *b, size_t off, void *dst, size_t n)
{
	struct evbuffer_ptr p;

	if (evbuffer_get_length(b) < off + n)
		return false;
	if (off == 0)
		return evbuffer_copyout(b, dst, n) == (ssize_t) n;
	if (evbuffer_ptr_set(b, &p, off, EVBUFFER_PTR_SET) < 0)
		return false;
	return evbuffer_copyout_from(b, &p, dst, n) == (ssize_t) n;
}
