/*
 * conn_buf.c: what a connection holds between reads and writes, below the
 * I/O itself (conn.c, tls.c, write_batch.c all use it): its input and output
 * evbuffers, lent from a spare stack only while there is something in them,
 * its read and write events, and reading message headers in place from its
 * buffers.  Kept apart from conn.c so that TLS and the
 * end-of-batch writes, which conn.c calls, need nothing back from it.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/ssl.h>

#include "pooler.h"
#include "net/net.h"

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

static bool
empty(struct evbuffer *b)
{
	return b == NULL || evbuffer_get_length(b) == 0;
}

void
conn_park(conn *c)
{
	if (empty(c->in) && empty(c->out) && !c->writing)
	{
		conn_buf_put(c->in);
		conn_buf_put(c->out);
		c->in = c->out = NULL;
	}
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

void
conn_read_on(conn *c)
{
	if (!c->reading)
	{
		event_add(&c->rev, NULL);
		c->reading = true;
		/* bytes TLS already decrypted wake no epoll: run the callback for them */
		if (c->ssl && SSL_has_pending(c->ssl) == 1)
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
