/*
 * conn.c: one non-blocking socket with an input and an output evbuffer.
 * Reads take what is there in one recv() (no FIONREAD round trip);
 * writes are attempted at once, or at the end of the event loop's batch
 * (write_batch.c), and only fall back to a write event when the kernel is
 * full, so a request/response costs one read and one write.
 * A connection that negotiated TLS (c->ssl) reads and writes through tls.c
 * instead, with the same buffers and return conventions.
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

/*
 * Idle clients hold no buffers: empty evbuffers go back to a spare stack
 * and come out again at the next read, so an idle client costs its struct
 * alone and a busy one no malloc for its buffers.
 */
static struct evbuffer **spare;
static int	nspare,
			spare_cap;

struct evbuffer *
conn_buf_get(void)
{
	struct evbuffer *b = nspare ? spare[--nspare] : evbuffer_new();

	if (!b)
		abort();
	return b;
}

void
conn_buf_put(struct evbuffer *b)
{
	if (!b)
		return;
	evbuffer_drain(b, evbuffer_get_length(b));
	if (nspare == spare_cap && spare_cap < 65536)
	{
		struct evbuffer **n = realloc(spare, sizeof(*spare) * (spare_cap ? spare_cap * 2 : 64));

		if (n)
		{
			spare = n;
			spare_cap = spare_cap ? spare_cap * 2 : 64;
		}
	}
	if (nspare < spare_cap)
		spare[nspare++] = b;
	else
		evbuffer_free(b);
}

size_t
buflen(struct evbuffer *b)
{
	return b ? evbuffer_get_length(b) : 0;
}

struct evbuffer *
conn_in(conn *c)
{
	if (!c->in)
		c->in = conn_buf_get();
	return c->in;
}

struct evbuffer *
conn_out(conn *c)
{
	if (!c->out)
		c->out = conn_buf_get();
	return c->out;
}

void
conn_park(conn *c)
{
	if (buflen(c->in) == 0 && buflen(c->out) == 0 && !c->writing)
	{
		conn_buf_put(c->in);
		conn_buf_put(c->out);
		c->in = c->out = NULL;
	}
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

static struct event *
wev(conn *c)
{
	if (!c->wev)
	{
		c->wev = event_new(base, c->fd, EV_WRITE, c->wcb, c->arg);
		if (!c->wev)
			abort();
	}
	return c->wev;
}

void
conn_want_write(conn *c)
{
	if (!c->writing)
	{
		event_add(wev(c), NULL);
		c->writing = true;
	}
}

/* Run the write callback soon, from the loop (used to close without re-entry). */
void
conn_kick_write(conn *c)
{
	event_active(wev(c), EV_WRITE, 0);
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
conn_read_on(conn *c)
{
	if (!c->reading)
	{
		event_add(&c->rev, NULL);
		c->reading = true;
		/* bytes TLS already decrypted wake no epoll: run the callback for them */
		if (c->ssl && tls_has_pending(c))
			event_active(&c->rev, EV_READ, 0);
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

/*
 * Copy n bytes at offset off without consuming them; false if not there.
 * Message headers are peeked once or twice per message: they are nearly
 * always in the buffer's first chunk, read in place.
 */
bool
conn_peek(struct evbuffer *b, size_t off, void *dst, size_t n)
{
	struct evbuffer_ptr p;

	if (!b)
		return false;
	/* within the first chunk, pullup returns it as it is: no copy, no move */
	if (off + n <= evbuffer_get_contiguous_space(b))
	{
		memcpy(dst, evbuffer_pullup(b, off + n) + off, n);
		return true;
	}
	if (evbuffer_get_length(b) < off + n)
		return false;
	if (off == 0)
		return evbuffer_copyout(b, dst, n) == (ssize_t) n;
	if (evbuffer_ptr_set(b, &p, off, EVBUFFER_PTR_SET) < 0)
		return false;
	return evbuffer_copyout_from(b, &p, dst, n) == (ssize_t) n;
}

void
bufview_load(bufview *v, struct evbuffer *b)
{
	v->b = b;
	v->len = evbuffer_get_length(b);
	v->first_len = v->len ? evbuffer_get_contiguous_space(b) : 0;
	v->first = v->first_len ? evbuffer_pullup(b, v->first_len) : NULL;
}
