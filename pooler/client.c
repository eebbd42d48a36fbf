/*
 * client.c: one application connection, from its startup packet to its
 * Terminate: its state and timeouts, reading its input (the login itself
 * is client_login.c), then forwarding its messages whole (by
 * their length header) to whatever server pool.c links it to, counting the
 * sync points so the server is released only when the client is truly
 * between transactions.  Bad input gets an 08P01 ErrorResponse and closes
 * this client only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "config.h"
#include "proto.h"
#include "auth.h"
#include "client.h"
#include "server.h"
#include "pool.h"
#include "net/net.h"
#include "txn/txn.h"
#include "txn/session_state.h"
#include "txn/query_text.h"
#include "replica/replica.h"

#define CLOSE_GRACE 5.0

int			client_count;
struct client_list all_clients = TAILQ_HEAD_INITIALIZER(all_clients);
struct client_list routing_queue = TAILQ_HEAD_INITIALIZER(routing_queue);
const console_ops *client_console;
static uint32_t next_client_id;

static void client_read_cb(evutil_socket_t fd, short ev, void *arg);
static void client_write_cb(evutil_socket_t fd, short ev, void *arg);
static struct client_list startup_list = TAILQ_HEAD_INITIALIZER(startup_list);
static struct client_list closing_list = TAILQ_HEAD_INITIALIZER(closing_list);
static struct event tick_ev;

/*
 * Timeouts without a timer per client (an event costs 128 bytes of every
 * idle client): startup and closing deadlines are constant offsets from
 * the moment a client enters its list, so each list is ordered by deadline
 * and a 100 ms tick only looks at the heads.  Pool waits work the same way
 * on each pool's FIFO queue.
 */
void
client_tlist_set(client *c, char which, double secs)
{
	if (c->tlist == 1)
		TAILQ_REMOVE(&startup_list, c, tlink);
	else if (c->tlist == 2)
		TAILQ_REMOVE(&closing_list, c, tlink);
	c->tlist = which;
	c->deadline = now_mono() + secs;
	if (which == 1)
		TAILQ_INSERT_TAIL(&startup_list, c, tlink);
	else if (which == 2)
		TAILQ_INSERT_TAIL(&closing_list, c, tlink);
}

void
client_accept(int fd, bool tcp)
{
	client	   *c = calloc(1, sizeof(*c));

	if (!c)
	{
		close(fd);
		return;
	}
	if (tcp)
		set_nodelay(fd);
	conn_init(&c->c, fd, client_read_cb, client_write_cb, c, true);
	c->tcp = tcp;
	c->state = C_STARTUP;		/* its first state: calloc's zero, said aloud */
	c->id = ++next_client_id;
	c->connected = now_mono();
	TAILQ_INSERT_TAIL(&all_clients, c, link);
	client_count++;
	client_tlist_set(c, 1, cfg.startup_timeout);
	conn_read_on(&c->c);
}

/* Leave the pool's queues (C_CLOSING) and the server: shared by freeing and closing. */
static void
client_detach(client *c)
{
	client_set_state(c, C_CLOSING);
	if (c->server)
	{
		server	   *s = c->server;

		c->server = NULL;
		server_client_left(s, c->in_batch || c->pass_remaining > 0, c->pool_mode == MODE_SESSION);
	}
}

static void
client_free(client *c)
{
	if (c->state >= C_IDLE && c->state != C_CLOSING)
		log_verbose("%s: disconnected (connection closed)", client_tag(c));
	if (c->admin && client_console)
		client_console->gone(c);
	client_detach(c);
	auth_free(c);
	for (int i = 0; i < NPARAMS; i++)
	{
		pstr_unref(c->params[i]);
		pstr_unref(c->startup_params[i]);
	}
	pstr_unref(c->begin_text);
	prepared_client_free(c);
	settings_client_free(c);
	client_tlist_set(c, 0, 0);
	conn_destroy(&c->c);
	TAILQ_REMOVE(&all_clients, c, link);
	client_count--;
	if (!c->pool)
	{
		free(c->user);
		free(c->dbname);
	}
	free(c);
}

/*
 * Closing is always deferred to the write callback, so no caller ever
 * finds its client freed under it: callers check for C_CLOSING instead.
 */
static void
close_soon(client *c)
{
	client_detach(c);
	conn_read_off(&c->c);
	client_tlist_set(c, 2, CLOSE_GRACE);
	conn_kick_write(&c->c);
}

/* The client said Terminate (logged now: once our side is shut too, its address is gone). */
void
client_close_soon(client *c)
{
	if (c->state >= C_IDLE && c->state != C_CLOSING)
		log_verbose("%s: disconnected", client_tag(c));
	close_soon(c);
}

void
client_fail(client *c, const char *sqlstate, const char *fmt, ...)
{
	char		msg[512];
	va_list		ap;

	if (c->state == C_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_verbose("%s: closing with %s: %s", client_tag(c), sqlstate, msg);
	send_error(conn_out(&c->c), "FATAL", sqlstate, "%s", msg);
	close_soon(c);
}

void
client_server_gone(client *c, const char *sqlstate, const char *msg)
{
	c->server = NULL;
	client_fail(c, sqlstate, "%s", msg);
}

client *
client_find_cancel(uint32_t pid, uint32_t key)
{
	client	   *c;

	TAILQ_FOREACH(c, &all_clients, link)
		if (c->cancel_pid == pid && c->cancel_key == key && c->state >= C_IDLE)
		return c;
	return NULL;
}

static bool
valid_frontend_type(unsigned char t)
{
	switch (t)
	{
		case 'Q': case 'P': case 'B': case 'E': case 'D': case 'C': case 'H':
		case 'S': case 'F': case 'X': case 'd': case 'c': case 'f': case 'p':
			return true;
		default:
			return false;
	}
}

/*
 * Idle client with input: it needs a server (or says goodbye), unless
 * txn/deferred_begin.c answers its messages here.
 */
static void
process_idle(client *c)
{
	unsigned char hdr[5];
	uint32_t	len;

	for (;;)
	{
		if (!conn_peek(c->c.in, 0, hdr, 5))
			return;
		len = get_u32(hdr + 1);
		if (!valid_frontend_type(hdr[0]) || len < 4 || len > (uint32_t) cfg.max_packet_size)
		{
			client_fail(c, "08P01", !valid_frontend_type(hdr[0]) ? "invalid frontend message type %d" :
						"invalid message length %u (max_packet_size %d)",
						!valid_frontend_type(hdr[0]) ? hdr[0] : len, cfg.max_packet_size);
			return;
		}
		if (hdr[0] == 'X')
		{
			client_close_soon(c);
			return;
		}
		if (!c->begin_text && !defer_begin_on(c))
			break;
		switch (defer_idle(c, (char) hdr[0], len))
		{
			case DEFER_LOCAL:
				continue;		/* answered here: the next message may be too */
			case DEFER_SERVER:
				break;
			case DEFER_REFUSED:
				client_discard_request(c);
				return;
			case DEFER_WAIT:
				return;
		}
		break;
	}
	/* reading goes on while it waits: an EOF is seen, and it costs no epoll_ctl */
	c->wait_start = now_mono();
	if (c->pool->db->routed)
		route_request(c);		/* the host its transaction asks for (replica/route.c) */
	else
		pool_request(c->pool, c);
}

/* Drop the client's messages up to its sync point, then ReadyForQuery. */
void
client_discard_request(client *c)
{
	client_set_state(c, C_DISCARDING);
	c->pass_remaining = 0;
	c->dropping_sync = false;
}

/*
 * A CancelRequest for a client still queued: nothing reached a server, so
 * the request is answered here as PostgreSQL would answer it (57014, and
 * ReadyForQuery at its sync point) and its messages are dropped.  Inside a
 * deferred transaction, that transaction is failed now, as it would be.
 */
void
client_cancel_waiting(client *c)
{
	client_discard_request(c);	/* leaves the queue */
	if (c->begin_text)
		c->begin_failed = true;
	send_error(conn_out(&c->c), "ERROR", "57014", "canceling statement due to user request");
	conn_read_on(&c->c);
	client_process(c);
	if (c->state != C_CLOSING)
		conn_flush(&c->c);
}

/*
 * Drop the canceled request: every message up to its sync point (a Query,
 * Sync or FunctionCall), streaming through long ones.  False while that
 * point has not arrived yet, or when the client is being closed.
 */
static bool
discard_canceled(client *c)
{
	struct evbuffer *in = conn_in(&c->c);
	unsigned char hdr[5];
	uint32_t	len;

	for (;;)
	{
		if (c->pass_remaining > 0)
		{
			size_t		n = buflen(in) < c->pass_remaining ? buflen(in) : c->pass_remaining;

			evbuffer_drain(in, n);
			c->pass_remaining -= n;
			if (c->pass_remaining > 0)
				return false;
		}
		if (c->dropping_sync)
		{
			c->dropping_sync = false;
			client_set_state(c, C_IDLE);
			send_rfq(conn_out(&c->c), c->begin_text ? 'E' : 'I');
			return true;
		}
		if (!conn_peek(in, 0, hdr, 5))
			return false;
		len = get_u32(hdr + 1);
		if (!valid_frontend_type(hdr[0]) || len < 4 || len > (uint32_t) cfg.max_packet_size)
		{
			client_fail(c, "08P01", !valid_frontend_type(hdr[0]) ? "invalid frontend message type %d" :
						"invalid message length %u (max_packet_size %d)",
						!valid_frontend_type(hdr[0]) ? hdr[0] : len, cfg.max_packet_size);
			return false;
		}
		if (hdr[0] == 'X')
		{
			client_close_soon(c);
			return false;
		}
		evbuffer_drain(in, 5);
		c->pass_remaining = len - 4;
		c->dropping_sync = hdr[0] == 'Q' || hdr[0] == 'S' || hdr[0] == 'F';
	}
}

/* The pool gave us a ready server. */
void
client_linked(client *c)
{
	client_set_state(c, C_ACTIVE);	/* leaves the queue */
	c->pass_remaining = 0;
	conn_read_on(&c->c);
	client_process(c);
}

/* txn/prepared_rewrite.c found a named-statement message it cannot carry out */
static void
refuse_prepared(client *c, enum prep_verdict verdict, char type)
{
	if (verdict == PREP_NO_MEMORY)
		client_fail(c, "53200", "out of memory for prepared statements");
	else
		client_fail(c, "08P01", "invalid %s message", type == 'P' ? "Parse" : type == 'B' ? "Bind" :
					type == 'D' ? "Describe" : "Close");
}

/* Forwarding done: the first n bytes go to the server, written at once. */
static void
client_send(client *c, size_t n)
{
	server	   *s = c->server;

	if (s->replay)
		evbuffer_add(s->replay, evbuffer_pullup(c->c.in, n), n);
	if (s->retry)
		evbuffer_add(s->retry, evbuffer_pullup(c->c.in, n), n);
	c->pool->st.bytes_in += n;
	conn_forward(&s->c, c->c.in, n);
}

/*
 * Move every complete message (and the started part of a long one) to the
 * server; with prepared statements tracked, txn/prepared_rewrite.c sees each
 * message first and may rewrite or answer it.
 */
static void
client_forward(client *c)
{
	server	   *s = c->server;
	bufview		in;
	query_text	qt;
	size_t		off = 0;
	unsigned char hdr[5];
	uint32_t	len = 0;
	bool		quit = false,
				bad = false,
				track = prepared_tracking(c);

	bufview_load(&in, conn_in(&c->c));
	while (off < in.len)
	{
		if (c->pass_remaining)
		{
			size_t		n = in.len - off < c->pass_remaining ? in.len - off : c->pass_remaining;

			off += n;
			c->pass_remaining -= n;
			continue;
		}
		if (!bufview_peek(&in, off, hdr, 5))
			break;
		len = get_u32(hdr + 1);
		if (!valid_frontend_type(hdr[0]) || len < 4 || len > (uint32_t) cfg.max_packet_size)
		{
			bad = true;
			break;
		}
		if ((hdr[0] == 'Q' || hdr[0] == 'P') && c->pool_mode == MODE_TRANSACTION)
		{
			enum sstate_verdict v;

			/* one look at its text for all who read it; a Query left as it is keeps it valid */
			query_text_load(&qt, &in, off, hdr, len);
			v = session_state_client_msg(c, &qt, off);

			if (v == SSTATE_WAIT)
				break;
			if (v == SSTATE_REWRITTEN)
			{
				bufview_load(&in, conn_in(&c->c));
				continue;
			}
		}
		if (track)
		{
			enum prep_verdict r = prepared_client_msg(c, hdr, len, &off);

			if (r == PREP_DONE)
				bufview_load(&in, c->c.in);
			if (r == PREP_NO_MEMORY || r == PREP_MALFORMED)
			{
				refuse_prepared(c, r, hdr[0]);
				return;
			}
			if (r == PREP_WAIT)
				break;
			if (r == PREP_DONE)
				continue;		/* in_batch and expect_rfq updated there */
		}
		switch (hdr[0])
		{
			case 'X':
				quit = true;
				break;
			case 'Q':
				/* a simple SET follows the client (txn/startup_settings.c) */
				if (c->pool_mode == MODE_TRANSACTION && len < 1024 && qt.complete)
					settings_note_query(s, c, &qt);
				/* fall through */
			case 'S':
			case 'F':
				s->expect_rfq++;
				c->in_batch = false;
				break;
			case 'd':
			case 'c':
			case 'f':
				break;
			default:
				c->in_batch = true;
		}
		if (quit)
			break;
		if (track)
			prepared_client_sent(s, hdr[0]);
		off += 5;
		c->pass_remaining = len - 4;
	}
	if (off)
		client_send(c, off);
	else if (buflen(s->c.out) && conn_flush(&s->c) < 0)
		evbuffer_drain(s->c.out, evbuffer_get_length(s->c.out));
	if (track)
		prepared_flush_synth(s);
	if (bad)
	{
		client_fail(c, "08P01", !valid_frontend_type(hdr[0]) ? "invalid frontend message type %d" :
					"invalid message length %u (max_packet_size %d)",
					!valid_frontend_type(hdr[0]) ? hdr[0] : len, cfg.max_packet_size);
		return;
	}
	if (quit)
	{
		client_close_soon(c);
		return;
	}
	if (evbuffer_get_length(s->c.out) > BACKLOG_HIGH)
		conn_read_off(&c->c);
}

void
client_process(client *c)
{
	for (;;)
	{
		switch (c->state)
		{
			case C_STARTUP:
				if (!client_startup_input(c))
					return;
				break;
			case C_AUTH:
				if (!client_auth_input(c))
					return;
				break;
			case C_IDLE:
				if (!c->admin)
					process_idle(c);
				else if (client_console->process(c) < 0)
					client_close_soon(c);
				if (c->state != C_DISCARDING)
					return;
				break;
			case C_ACTIVE:
				client_forward(c);
				return;
			case C_DISCARDING:
				if (!discard_canceled(c))
					return;
				if (buflen(c->c.in) == 0)
				{
					conn_flush(&c->c);
					conn_park(&c->c);
					return;
				}
				break;
			case C_CLOSING:
				if (c->c.in)
					evbuffer_drain(c->c.in, buflen(c->c.in));
				return;
			default:
				return;
		}
		if (c->state != C_CLOSING && buflen(c->c.out))
			conn_flush(&c->c);
		if (c->state == C_CLOSING || buflen(c->c.in) == 0)
			return;
	}
}

/* The server side drained our backlog: read from the client again. */
void
client_resume(client *c)
{
	if (c->state == C_ACTIVE && !c->c.reading)
	{
		conn_read_on(&c->c);
		client_forward(c);
	}
}

static void
client_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	client	   *c = arg;
	int			n = conn_fill(&c->c);

	if (n == -2)
		return;
	if (n <= 0)
	{
		/* gone: a linked server is rolled back or closed, never reused dirty */
		client_free(c);
		return;
	}
	if (c->state == C_CLOSING)
	{
		evbuffer_drain(c->c.in, buflen(c->c.in));
		return;
	}
	if (c->state == C_WAITING || c->state == C_ROUTING)
	{
		if (buflen(c->c.in) > BACKLOG_HIGH)
			conn_read_off(&c->c);
		return;
	}
	client_process(c);
}

static void
client_write_cb(evutil_socket_t fd, short ev, void *arg)
{
	client	   *c = arg;

	c->c.writing = false;
	if (conn_flush(&c->c) < 0)
	{
		client_free(c);
		return;
	}
	if (c->state == C_CLOSING)
	{
		/*
		 * Closing with unread input would send a RST that can destroy our
		 * ErrorResponse in flight: shut our side, then wait for the peer's EOF.
		 */
		if (buflen(c->c.out) == 0 && !c->shut)
		{
			conn_shut_write(&c->c);
			c->shut = true;
			conn_read_on(&c->c);
		}
		return;
	}
	if (c->server && !c->server->c.reading && buflen(c->c.out) < BACKLOG_HIGH / 4)
		server_forward(c->server);
	else if (c->state == C_IDLE && buflen(c->c.in) == 0)
		conn_park(&c->c);
}

void
client_wait_timeout(client *c)
{
	pool_settings *ps = c->pool->ps;

	c->pool->st.timeouts++;
	log_info("%s: pool_timeout after %.1f s", client_tag(c), now_mono() - c->wait_start);
	client_fail(c, "53300", "pool_timeout: no server connection available for database \"%s\" user \"%s\" within %g s (pool_size %d, max_overflow %d all busy)",
				c->dbname, c->user, ps->pool_timeout, ps->pool_size, ps->max_overflow);
}

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	double		now = now_mono();
	client	   *c;

	while (cfg.startup_timeout > 0 && (c = TAILQ_FIRST(&startup_list)) != NULL && c->deadline <= now)
		client_fail(c, "08006", "login timeout: startup not completed within startup_timeout (%g s)",
					cfg.startup_timeout);
	while ((c = TAILQ_FIRST(&closing_list)) != NULL && c->deadline <= now)
		client_free(c);
	pool_check_waits(now);
	route_check_waits(now);
}

void
clients_tick_start(void)
{
	struct timeval tv = {0, 100000};

	event_assign(&tick_ev, base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(&tick_ev, &tv);
}

/*
 * Exit: every client is told why (one non-blocking write), then closed;
 * not one in the middle of a server message, which that would garble.
 */
void
client_shutdown_all(void)
{
	client	   *c;

	while ((c = TAILQ_FIRST(&all_clients)) != NULL)
	{
		if (c->state != C_CLOSING && c->c.fd >= 0 && !(c->server && c->server->pass_remaining > 0))
		{
			send_error(conn_out(&c->c), "FATAL", "57P01",
					   "terminating connection: perfopt-pooler is shutting down");
			conn_flush(&c->c);
		}
		client_free(c);
	}
}

/* The server was just released: a pipelined next transaction may be waiting. */
void
client_kick(client *c)
{
	if (c->state == C_IDLE && buflen(c->c.in) > 0)
		client_process(c);
	else if (c->state == C_IDLE)
		conn_park(&c->c);
}
