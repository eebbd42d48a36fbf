/*
 * conn.c: one non-blocking socket with an input and an output evbuffer.
 * Reads take what is there in one recv() (no FIONREAD round trip);
 * writes are attempted at once, or at the end of the event loop's batch
 * (write_batch.c), and only fall back to a write event when the kernel is
 * full, so a request/response costs one read and one write.
 * A connection that negotiated TLS (c->ssl) reads and writes through tls.c
 * instead, with the same buffers and return conventions.  The buffers and
 * the read and write events themselves are conn_buf.c's.
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
#include "net/net.h"

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
conn_init(conn *c, int fd, event_callback_fn rcb, event_callback_fn wcb, void *arg, bool lazy)
{
	c->fd = fd;
	c->reading = false;
	c->writing = false;
	c->bulk = false;
	c->flush_pending = false;
	c->tls_read_wants_write = c->tls_write_wants_read = false;
	c->ssl = NULL;
	c->wev = NULL;
	c->wcb = wcb;
	c->arg = arg;
	event_assign(&c->rev, base, fd, EV_READ | EV_PERSIST, rcb, arg);
	c->in = lazy ? NULL : conn_buf_get();
	c->out = lazy ? NULL : conn_buf_get();
}

/*
 * Most reads are one message or one reply of a few hundred bytes: they
 * land in a static scratch area and are copied into a chain sized to them
 * (1 kB, which malloc serves from its per-thread cache), rather than into a
 * freshly reserved 32 kB chain per read, whose malloc and free cost more
 * than the copy.  A read that fills the scratch marks the connection bulky
 * (COPY, large results): its next reads go straight into reserved evbuffer
 * space, with no copy, until one comes back short.
 */
int
conn_fill(conn *c)
{
	static unsigned char scratch[READ_CHUNK];
	struct evbuffer_iovec v;
	ssize_t		n;

	if (c->ssl)
		return tls_fill(c);
	if (!c->bulk)
	{
		n = recv(c->fd, scratch, sizeof(scratch), 0);
		if (n > 0 && evbuffer_add(conn_in(c), scratch, n) < 0)
			return -1;
	}
	else
	{
		if (evbuffer_reserve_space(conn_in(c), READ_CHUNK, &v, 1) < 1)
			return -1;
		n = recv(c->fd, v.iov_base, v.iov_len, 0);
		v.iov_len = n > 0 ? n : 0;
		evbuffer_commit_space(c->in, &v, 1);
	}
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -2 : -1;
	c->bulk = n == READ_CHUNK;
	return (int) n;
}

/*
 * One write of what the buffer holds: a single chunk (the usual case, one
 * message or one server reply) goes out with send(), more with writev().
 */
#define WRITE_IOV 16

static ssize_t
write_some(conn *c)
{
	struct evbuffer_iovec v[WRITE_IOV];
	int			nv = evbuffer_peek(c->out, -1, NULL, v, WRITE_IOV);
	ssize_t		n;

	if (nv > WRITE_IOV)
		nv = WRITE_IOV;
	if (nv == 1)
		n = send(c->fd, v[0].iov_base, v[0].iov_len, 0);
	else
		n = writev(c->fd, (struct iovec *) v, nv);
	if (n > 0)
		evbuffer_drain(c->out, n);
	return n;
}

/*
 * Move the first n bytes of src to dst's output and write it.  With writes
 * batched through io_uring (write_batch.c) they join the end-of-batch
 * submission, so that waking the server does not interrupt the batch; a
 * failed write then shows in the write callback.  Otherwise, when nothing
 * waits there and the bytes are in src's first chunk, they go out with one
 * send() and only what the kernel did not take is queued: a message usually
 * never enters dst's buffer (no chain moved, nothing to drain after the
 * write).  -1: the write failed; what was queued is dropped, as conn_flush's
 * callers do (the read side reports the broken connection).
 */
int
conn_forward(conn *dst, struct evbuffer *src, size_t n)
{
	if (!dst->ssl && write_batch_uring())
	{
		evbuffer_remove_buffer(src, conn_out(dst), n);
		conn_flush_later(dst);
		return 0;
	}
	if (!dst->ssl && !dst->writing && buflen(dst->out) == 0 &&
		n <= evbuffer_get_contiguous_space(src))
	{
		ssize_t		w = send(dst->fd, evbuffer_pullup(src, n), n, 0);

		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			evbuffer_drain(src, n);
			evbuffer_drain(dst->out, buflen(dst->out));
			return -1;
		}
		if (w > 0)
		{
			evbuffer_drain(src, w);
			n -= w;
		}
		if (n == 0)
			return 0;
	}
	evbuffer_remove_buffer(src, conn_out(dst), n);
	if (conn_flush(dst) < 0)
	{
		evbuffer_drain(dst->out, buflen(dst->out));
		return -1;
	}
	return 0;
}

int
conn_flush(conn *c)
{
	size_t		left;

	if (c->ssl)
		return tls_flush(c);
	while ((left = buflen(c->out)) > 0)
	{
		ssize_t		n = write_some(c);

		if (n < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0 || (size_t) n == left)
		{
			left -= n;
			break;
		}
	}
	if (left > 0)
		conn_want_write(c);
	else if (c->writing)
	{
		event_del(c->wev);
		c->writing = false;
	}
	return 0;
}

void
conn_destroy(conn *c)
{
	if (c->fd < 0)
		return;
	if (c->flush_pending)
		write_batch_forget(c);
	event_del(&c->rev);
	if (c->wev)
		event_free(c->wev);
	c->wev = NULL;
	if (c->ssl)
		tls_free(c);
	close(c->fd);
	c->fd = -1;
	c->reading = c->writing = false;
	conn_buf_put(c->in);
	conn_buf_put(c->out);
	c->in = c->out = NULL;
}

/* Closing politely: TLS close_notify first (best effort), then the TCP FIN. */
void
conn_shut_write(conn *c)
{
	if (c->ssl)
		tls_close_notify(c);
	shutdown(c->fd, SHUT_WR);
}
