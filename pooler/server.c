/*
 * server.c: one connection from the pooler to PostgreSQL, from its
 * non-blocking connect (the login itself is server_login.c) to its close:
 * forwards the server's messages to the linked client, swallowing the
 * answers to the pooler's own queries (pre-ping, SET, reset) and deciding
 * at each ReadyForQuery whether the connection can go back to the pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "config.h"
#include "proto.h"
#include "scram.h"
#include "client.h"
#include "server.h"
#include "cancel.h"
#include "pool.h"
#include "net/net.h"
#include "txn/txn.h"
#include "txn/session_state.h"
#include "replica/replica.h"

static void server_read_cb(evutil_socket_t fd, short ev, void *arg);
static void server_write_cb(evutil_socket_t fd, short ev, void *arg);
static void server_timer_cb(evutil_socket_t fd, short ev, void *arg);
static uint32_t next_server_id;

void
server_connect(pool *p)
{
	db_host    *h = p->host;
	server	   *s = calloc(1, sizeof(*s));
	int			fd;
	struct timeval tv;

	fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || !s)
	{
		if (fd >= 0)
			close(fd);
		free(s);
		pool_server_failed(p, "08006", strerror(errno));
		return;
	}
	if (h->addr.ss_family != AF_UNIX)
		set_nodelay(fd);
	s->pool = p;
	s->addr = h->addr;
	s->addrlen = h->addrlen;
	s->id = ++next_server_id;
	s->created = s->last_used = now_mono();
	conn_init(&s->c, fd, server_read_cb, server_write_cb, s, false);
	evtimer_assign(&s->timer, base, server_timer_cb, s);
	TAILQ_INSERT_TAIL(&p->servers, s, link);
	p->n_servers++;
	s->state = S_CONNECTING;
	p->n_connecting++;
	tv.tv_sec = (time_t) p->ps->connect_timeout;
	tv.tv_usec = (suseconds_t) ((p->ps->connect_timeout - tv.tv_sec) * 1e6);
	if (p->ps->connect_timeout > 0)
		evtimer_add(&s->timer, &tv);
	/* the write callback looks at the outcome, even when it is immediate */
	if (connect(fd, (struct sockaddr *) &s->addr, s->addrlen) == 0 || errno == EINPROGRESS)
		conn_want_write(&s->c);
	else
	{
		s->be_key = errno;		/* borrowed until the callback reports it */
		conn_kick_write(&s->c);
	}
}

static void
server_free(server *s)
{
	server_set_state(s, S_CLOSED);
	pool_server_closed(s);
	cancel_forget(s);
	evtimer_del(&s->timer);
	conn_destroy(&s->c);
	scram_client_free(s->scram);
	conn_buf_put(s->replay);
	prepared_server_free(s);
	settings_server_free(s);
	for (int i = 0; i < NPARAMS; i++)
		pstr_unref(s->params[i]);
	free(s);
}

void
server_close(server *s, const char *why)
{
	client	   *c = s->client;
	pool	   *p = s->pool;
	struct evbuffer *replay = NULL;

	if (c && c->server == s && !(s->ping_unconfirmed && s->replay))
		log_info("%s: closing under %s: %s", server_tag(s), client_tag(c), why);
	else
		log_verbose("%s: closing: %s", server_tag(s), why);
	if (c)
	{
		s->client = NULL;
		if (c->server == s)
		{
			c->server = NULL;
			/*
			 * Died before answering the pre-ping: nothing of the client's
			 * ran, so its bytes go to another server instead of an error.
			 */
			if (s->ping_unconfirmed && s->replay)
			{
				replay = s->replay;
				s->replay = NULL;
				prepared_rollback(s, c);
				log_info("%s: pre-ping found %s dead (%s); retrying on another", client_tag(c),
						 server_tag(s), why);
			}
			else
				client_server_gone(c, "08006", why);
		}
	}
	server_free(s);
	if (replay)
	{
		p->st.ping_failures++;
		pool_requeue(p, c, replay);
	}
}

/* Connecting or logging in failed: tell the pool, which tells the waiters. */
void
server_login_failed(server *s, const char *sqlstate, const char *msg)
{
	pool	   *p = s->pool;
	char		m[256],
				code[6];

	/* both may point into s's own buffers */
	snprintf(m, sizeof(m), "%s", msg);
	snprintf(code, sizeof(code), "%s", sqlstate ? sqlstate : "");
	server_free(s);
	pool_server_failed(p, code, m);
}

void
server_note_param(server *s, const unsigned char *body, size_t len, bool login)
{
	const char *name = (const char *) body;
	const char *val;
	int			t;
	pool	   *p = s->pool;

	if (len < 2 || body[len - 1] != '\0' || strlen(name) + 1 >= len)
		return;
	val = name + strlen(name) + 1;
	session_state_note(s, name, val);
	if (p->db->routed && strcmp(name, "in_hot_standby") == 0)
		health_reported(p->host, val);	/* a promotion shows here first */
	else if (p->db->routed && strcmp(name, "perfopt.commit_lsn") == 0)
		route_commit_reported(s, val, login);	/* causal_reads (replica/route.c) */
	t = tracked_param_index(name);
	if (t >= 0)
	{
		pstr_set(&s->params[t], pstr_get(val));
		s->params[t]->refs--;
	}
	if (login && !p->have_params)
	{
		int			i;

		for (i = 0; i < p->nparams; i++)
			if (strcmp(p->pnames[i], name) == 0)
				break;
		if (i == p->nparams)
		{
			p->pnames = realloc(p->pnames, sizeof(char *) * (p->nparams + 1));
			p->pvalues = realloc(p->pvalues, sizeof(char *) * (p->nparams + 1));
			p->pnames[i] = strdup(name);
			p->pvalues[i] = NULL;
			p->nparams++;
		}
		free(p->pvalues[i]);
		p->pvalues[i] = strdup(val);
	}
}

/* An idle server speaks: parameter changes are fine, anything else ends it. */
static void
idle_process(server *s)
{
	unsigned char hdr[5];
	uint32_t	len;

	while (conn_peek(s->c.in, 0, hdr, 5))
	{
		len = get_u32(hdr + 1);
		if (len < 4 || evbuffer_get_length(s->c.in) < (size_t) len + 1)
			break;
		if (hdr[0] == 'S')
			server_note_param(s, evbuffer_pullup(s->c.in, len + 1) + 5, len - 4, false);
		else if (hdr[0] != 'N' && hdr[0] != 'A')
		{
			server_close(s, "unexpected message from idle server");
			return;
		}
		evbuffer_drain(s->c.in, len + 1);
	}
}

/*
 * The pre-ping (an empty query) travels in the same write as the client's
 * first bytes, which are kept until its answer: a dead connection costs a
 * retry elsewhere, a live one no round trip.
 */
void
server_link_checked(server *s, client *c)
{
	send_query(s->c.out, ";");
	s->expect_rfq++;
	s->swallow_rfq++;
	s->ping_unconfirmed = true;
	s->replay = conn_buf_get();
	server_link(s, c);
}

/* Quote a value for SET as an E'' literal, whatever standard_conforming_strings says. */
static size_t
quote_into(char *dst, size_t room, const char *v)
{
	size_t		n = 0;

	if (room < 4)
		return 0;
	dst[n++] = 'E';
	dst[n++] = '\'';
	for (; *v && n + 3 < room; v++)
	{
		if (*v == '\'' || *v == '\\')
			dst[n++] = *v;
		dst[n++] = *v;
	}
	dst[n++] = '\'';
	dst[n] = '\0';
	return n;
}

/*
 * Give the server to the client.  The client's session settings that this
 * server does not have yet travel in the same write as the client's first
 * message; their answers are swallowed.
 */
void
server_link(server *s, client *c)
{
	char		sql[2048];
	size_t		n = 0;
	bool		hold;

	s->client = c;
	c->server = s;
	server_set_state(s, S_ACTIVE);
	for (int t = 0; t < NPARAMS; t++)
	{
		if (!c->params[t] || c->params[t] == s->params[t])
			continue;
		if (n + strlen(c->params[t]->s) * 2 + 64 >= sizeof(sql))
			break;
		n += snprintf(sql + n, sizeof(sql) - n, "SET %s = ", tracked_params[t]);
		n += quote_into(sql + n, sizeof(sql) - n, c->params[t]->s);
		sql[n++] = ';';
		sql[n] = '\0';
	}
	if (n)
	{
		send_query(s->c.out, sql);
		s->expect_rfq++;
		s->swallow_rfq++;
	}
	hold = settings_send(s, c);	/* the rest of its startup settings (txn/startup_settings.c) */
	/* after the settings: a SET inside the transaction would be rolled back with it */
	if (c->begin_text)
		defer_send_begin(s, c);
	if (hold)
		server_settings_hold(s, c);
	else
		client_linked(c);
}

static void
start_reset(server *s, bool full)
{
	int			n = 0;
	bool		pinned = session_state_pins(s);
	bool		discards = full && cfg.server_reset_query &&
		strcasecmp(cfg.server_reset_query, "DISCARD ALL") == 0;

	if (s->txstatus != 'I')
	{
		send_query(s->c.out, "ROLLBACK");
		n++;
	}
	if (full && cfg.server_reset_query && *cfg.server_reset_query)
	{
		settings_server_reset(s);
		send_query(s->c.out, cfg.server_reset_query);
		n++;
	}
	/* a pinned client's session state: only DISCARD ALL is sure to drop it all */
	if (pinned)
	{
		if (!discards)
		{
			/* it takes the startup settings applied here back too */
			pstr_set(&s->settings, NULL);
			send_query(s->c.out, "DISCARD ALL");
			n++;
		}
		session_state_forget(s);
		full = true;
	}
	/*
	 * A session client (after a RELOAD changed pool_mode) may have dropped
	 * the statements transaction-mode clients left here, or the reset query
	 * may: start from an empty set that both sides agree on.
	 */
	if (full && prepared_server_reset(s))
	{
		send_query(s->c.out, "DEALLOCATE ALL");
		n++;
	}
	if (n == 0)
	{
		pool_release(s);
		return;
	}
	s->expect_rfq += n;
	s->swallow_rfq += n;
	server_set_state(s, S_RESETTING);
	if (conn_flush(&s->c) < 0)
		server_close(s, "reset write failed");
}

/*
 * The client went away (or was closed).  A server with nothing in flight
 * is rolled back / reset and reused; one in the middle of a message or a
 * query is closed: it is never handed to anyone dirty.  `session`: the
 * client logged in under session mode, so server_reset_query runs.
 */
void
server_client_left(server *s, bool dirty_input, bool session)
{
	s->client = NULL;
	if (s->state != S_ACTIVE)
		return;
	if (dirty_input || s->expect_rfq > 0 || s->pass_remaining > 0 || s->in_copy_out ||
		s->begin_absorb || !prepared_quiet(s))
	{
		/*
		 * A statement may be running: closing alone would leave it running,
		 * with its locks, until it ends.  Canceled, it ends now, and the
		 * backend then finds the connection closed and rolls back.
		 */
		cancel_server(s);
		server_close(s, "client left in the middle of a query");
		return;
	}
	start_reset(s, session);
}

/*
 * A cancel was forwarded for this server's last client: before anyone else
 * gets it, PostgreSQL must have closed the cancel connection (so its signal
 * is sent), then an empty query must have gone through, so a signal that
 * arrived after the client's statement ended is spent on it, not on the
 * next client's.  True when the server is held for that.
 */
bool
server_hold_for_cancel(server *s)
{
	if (!s->cancel_sent)
		return false;
	server_set_state(s, S_CANCELING);
	if (!s->cancels)
		server_cancel_settled(s);
	return true;
}

/* Every cancel sent for s is done: absorb a late one with an empty query. */
void
server_cancel_settled(server *s)
{
	if (s->state != S_CANCELING || s->swallow_rfq > 0)
		return;
	s->cancel_sent = false;
	send_query(s->c.out, ";");
	s->expect_rfq++;
	s->swallow_rfq++;
	if (conn_flush(&s->c) < 0)
		server_close(s, "write to server failed");
}

bool
server_releasable(server *s)
{
	client	   *c = s->client;

	return s->expect_rfq == 0 && s->txstatus == 'I' && c && !c->in_batch &&
		c->pass_remaining == 0 && c->pool_mode == MODE_TRANSACTION &&
		!s->begin_absorb && prepared_quiet(s) && !session_state_pins(s);
}

static void
server_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	server	   *s = arg;
	int			n = conn_fill(&s->c);

	if (n == -2)
		return;
	if (n <= 0)
	{
		if (s->state == S_LOGIN)
			server_login_failed(s, "08006", n < 0 && s->c.ssl ? tls_last_error() :
								"server closed the connection during login");
		else
			server_close(s, "server closed the connection unexpectedly");
		return;
	}
	switch (s->state)
	{
		case S_LOGIN:
			server_login_process(s);
			break;
		case S_IDLE:
			idle_process(s);
			break;
		case S_CANCELING:
			if (s->swallow_rfq == 0)
				idle_process(s);
			else
				server_forward(s);
			break;
		default:
			server_forward(s);
			break;
	}
}

static void
server_write_cb(evutil_socket_t fd, short ev, void *arg)
{
	server	   *s = arg;

	s->c.writing = false;
	if (s->state == S_CONNECTING)
	{
		int			err = s->be_key;
		socklen_t	el = sizeof(err);

		if (!err && getsockopt(s->c.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err)
		{
			char		m[256];

			snprintf(m, sizeof(m), "cannot connect to server %s:%d: %s",
					 s->pool->host->name, s->pool->host->port, strerror(err));
			server_login_failed(s, "08006", m);
			return;
		}
		s->be_key = 0;
		server_set_state(s, S_LOGIN);
		server_send_startup(s);
		conn_read_on(&s->c);
	}
	if (conn_flush(&s->c) < 0)
	{
		if (s->state == S_LOGIN)
			server_login_failed(s, "08006", s->c.ssl ? tls_last_error() : "write to server failed");
		else
			server_close(s, "write to server failed");
		return;
	}
	if (s->client && s->state == S_ACTIVE && evbuffer_get_length(s->c.out) < BACKLOG_HIGH / 4)
		client_resume(s->client);
}

static void
server_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	server	   *s = arg;

	if (s->state == S_CONNECTING || s->state == S_LOGIN)
	{
		char		m[128];

		snprintf(m, sizeof(m), "connect_timeout: no server login within %g s", s->pool->ps->connect_timeout);
		server_login_failed(s, "08006", m);
	}
}
