/*
 * net/net.h: the pooler's sockets: a connection's buffers and events
 * (conn_buf.c), buffered non-blocking reads and writes (conn.c), TLS on
 * either side (tls.c), end-of-batch writes (write_batch.c) and the
 * listening sockets (listener.c); also the event loop they run on, which
 * main.c makes.
 */
#ifndef NET_H
#define NET_H

#include "pooler.h"

/* the event loop, made by main.c (or a fuzz harness) */
extern struct event_base *base;

/* a connection's buffers and events (conn_buf.c) */
struct evbuffer *conn_buf_get(void);
void		conn_buf_put(struct evbuffer *b);
void		conn_park(conn *c);
void		conn_want_write(conn *c);
void		conn_kick_write(conn *c);
void		conn_read_on(conn *c);
void		conn_read_off(conn *c);

static inline size_t
buflen(struct evbuffer *b)
{
	return b ? evbuffer_get_length(b) : 0;
}

static inline struct evbuffer *
conn_in(conn *c)
{
	if (!c->in)
		c->in = conn_buf_get();
	return c->in;
}

static inline struct evbuffer *
conn_out(conn *c)
{
	if (!c->out)
		c->out = conn_buf_get();
	return c->out;
}

/* buffered non-blocking connections (conn.c) */
double		now_mono(void);
void		conn_init(conn *c, int fd, event_callback_fn rcb, event_callback_fn wcb, void *arg, bool lazy);
int			conn_fill(conn *c);		/* >0 bytes, 0 EOF, -1 error, -2 nothing yet */
int			conn_flush(conn *c);	/* 0 ok (maybe pending), -1 error */
int			conn_forward(conn *dst, struct evbuffer *src, size_t n);	/* move n bytes and write */
void		conn_destroy(conn *c);
void		conn_shut_write(conn *c);
bool		conn_peek(struct evbuffer *b, size_t off, void *dst, size_t n);
void		bufview_load(bufview *v, struct evbuffer *b);

static inline bool
bufview_peek(const bufview *v, size_t off, void *dst, size_t n)
{
	if (off + n <= v->first_len)
	{
		__builtin_memcpy(dst, v->first + off, n);
		return true;
	}
	return off + n <= v->len && conn_peek(v->b, off, dst, n);
}
void		set_nodelay(int fd);

/* end-of-batch writes (write_batch.c) */
void		conn_flush_later(conn *c);
void		conn_flush_pending(void);
void		write_batch_forget(conn *c);
void		write_batch_start(void);
void		write_batch_stop(void);
bool		write_batch_uring(void);

/* TLS on either side of the pooler (tls.c) */
int			tls_init(void);
void		tls_shutdown(void);
bool		tls_client_offered(void);
bool		tls_server_wanted(const db_host *h);
int			tls_accept(conn *c);
int			tls_connect(conn *c, const db_host *h);
int			tls_fill(conn *c);
int			tls_flush(conn *c);
bool		tls_has_pending(conn *c);
void		tls_close_notify(conn *c);
void		tls_free(conn *c);
const char *tls_last_error(void);

/* the listening sockets (listener.c) */
int			listener_start(void);
void		listener_stop(void);

#endif
