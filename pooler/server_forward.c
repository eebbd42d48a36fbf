/*
 * server_forward.c: a working server's messages, one at a time, each kind
 * to its step: answers to the pooler's own queries (pre-ping, SET, reset)
 * and to a deferred BEGIN are swallowed, prepared-statement replies go
 * through prepared_replies.c, everything else is passed to the linked
 * client, ReadyForQuery deciding whether the server can go back to the
 * pool.  This is the per-message path from PostgreSQL to the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "proto.h"
#include "client.h"
#include "server.h"
#include "pool.h"
#include "net/net.h"
#include "txn/txn.h"
#include "replica/replica.h"

/*
 * The server refused the deferred BEGIN the client was told had run: the
 * transaction is lost, so the client is closed with the server's error and
 * the server (maybe skipping to a Sync that never comes) with it.
 */
static void
begin_refused(server *s, const begin_failure *failure)
{
	client	   *c = s->client;

	if (c)
	{
		s->client = NULL;
		c->server = NULL;
		client_fail(c, failure->sqlstate,
					"perfopt-pooler: the deferred BEGIN failed on the server, the transaction is lost: %s",
					failure->msg);
	}
	server_close(s, "deferred BEGIN failed");
}

/*
 * server_forward reads the server's input one message at a time and hands
 * each to the step for its kind; a step tells the loop what next.  The
 * steps are static and called once, so the compiler folds them back into
 * the loop: splitting costs nothing per message.
 */
enum forward_step
{
	STEP_ORDINARY,				/* not handled yet: forward it as it is */
	STEP_NEXT,					/* handled: on to the next message */
	STEP_WAIT,					/* the rest of the message has not arrived */
	STEP_RELEASE,				/* the client's transaction ended: release the server */
	STEP_GONE					/* the server was released or closed: stop */
};

/*
 * An answer to the pooler's own query (pre-ping, SET, reset, a cancel's
 * empty query): ReadyForQuery, ParameterStatus or an error, never the
 * client's.  False when it closed the server.
 */
static bool
swallow_answer(server *s, client *c, char type, const unsigned char *body, uint32_t len)
{
	if (s->pool->probe)
		health_answer(s, type, body, len - 4);	/* the health check's own query */
	if (type == 'Z')
	{
		s->txstatus = body[0];
		s->expect_rfq--;
		s->swallow_rfq--;
		settings_rfq(s, c);
		if (s->ping_unconfirmed)
		{
			/* the pre-ping comes first: the connection is alive */
			s->ping_unconfirmed = false;
			conn_buf_put(s->replay);
			s->replay = NULL;
		}
	}
	else if (type == 'S')
	{
		server_note_param(s, body, len - 4, false);
		if (c && s->state == S_ACTIVE)
		{
			int			t = tracked_param_index((const char *) body);

			if (t >= 0)
				pstr_set(&c->params[t], s->params[t]);
		}
	}
	else if (type == 'E' && settings_error_answer(s, c, (const char *) body, len - 4))
		;						/* the client's startup settings: acted on in server_forward */
	else if (type == 'E')
	{
		bool		canceled = strcmp(error_field((const char *) body, len - 4, 'C'), "57014") == 0;

		/* a late cancel spent on our reset: the session may not be clean */
		if (canceled && s->state == S_RESETTING)
		{
			server_close(s, "reset canceled by a late cancel request");
			return false;
		}
		if (!(canceled && s->state == S_CANCELING))
			log_warn("%s: pooler query failed: %s", server_tag(s),
					 error_field((const char *) body, len - 4, 'M'));
		/*
		 * A client setting the server refuses (a bad TimeZone in its
		 * startup packet): take the server's, or every transaction would
		 * try again.
		 */
		if (c && s->state == S_ACTIVE)
			for (int t = 0; t < NPARAMS; t++)
				pstr_set(&c->params[t], s->params[t]);
	}
	return true;
}

/* A message of the pooler's own queries or of the deferred BEGIN's answer. */
static inline enum forward_step
forward_own(server *s, client *c, bufview *v, size_t *off, const unsigned char *hdr, uint32_t len)
{
	struct evbuffer *in = s->c.in;
	const unsigned char *body;
	begin_failure failure;

	/* the client's messages before it go first; the client never sees ours */
	if (*off > 0)
	{
		if (c)
		{
			s->pool->st.bytes_out += *off;
			evbuffer_remove_buffer(in, conn_out(&c->c), *off);
		}
		else
			evbuffer_drain(in, *off);
		*off = 0;
		bufview_load(v, in);
		return STEP_NEXT;
	}
	if (v->len < (size_t) len + 1)
		return STEP_WAIT;
	body = evbuffer_pullup(in, len + 1) + 5;
	if (s->swallow_rfq == 0)
	{
		/* the deferred BEGIN's answer, behind the settings' (deferred_begin.c) */
		if (!defer_absorb(s, hdr[0], (const char *) body, len - 4, &failure))
		{
			begin_refused(s, &failure);
			return STEP_GONE;
		}
		evbuffer_drain(in, len + 1);
		bufview_load(v, in);
		return STEP_NEXT;
	}
	if (!swallow_answer(s, c, hdr[0], body, len))
		return STEP_GONE;
	evbuffer_drain(in, len + 1);
	if (s->swallow_rfq == 0 && (s->state == S_RESETTING || s->state == S_CANCELING))
	{
		if (s->txstatus != 'I')
			server_close(s, "reset left the connection in a transaction");
		else
			pool_release(s);
		return STEP_GONE;
	}
	bufview_load(v, in);
	return STEP_NEXT;
}

/* Replies to prepared-statement traffic: ours swallowed, answers inserted (prepared_replies.c). */
static inline enum forward_step
forward_prepared(server *s, bufview *v, size_t *off, const unsigned char *hdr, uint32_t len)
{
	size_t		was = *off;
	enum prep_verdict r = prepared_server_msg(s, hdr, len, off);

	/* it drains the buffer only after forwarding what precedes (off moves) */
	if (r == PREP_DONE || *off != was)
		bufview_load(v, s->c.in);
	if (r == PREP_WAIT)
		return STEP_WAIT;
	if (r == PREP_MISMATCH)
	{
		server_close(s, "server reply does not match the prepared-statement requests sent");
		return STEP_GONE;
	}
	return r == PREP_DONE ? STEP_NEXT : STEP_ORDINARY;
}

/*
 * ParameterStatus after the client's own SET: remember it for the next
 * server.  True when the client gets it (PostgreSQL reports it to every
 * client); false for those only the pooler asked for.
 */
static bool
note_client_param(server *s, client *c, size_t off, uint32_t len)
{
	unsigned char *body = malloc(len);
	bool		forward = true;

	if (body && conn_peek(s->c.in, off + 5, body, len - 4) && len > 5 && body[len - 5] == '\0')
	{
		const char *name = (const char *) body;
		int			t;

		server_note_param(s, body, len - 4, false);
		t = tracked_param_index(name);
		if (t >= 0)
			pstr_set(&c->params[t], s->params[t]);
		else if (strlen(name) + 1 < len - 4)
			settings_observe(s, name, name + strlen(name) + 1);
		forward = settings_reported_natively(name);
	}
	free(body);
	return forward;
}

/* Drop the message at off: what precedes it goes to the client first. */
static void
drop_message(server *s, client *c, bufview *v, size_t *off, uint32_t len)
{
	if (*off > 0)
	{
		s->pool->st.bytes_out += *off;
		evbuffer_remove_buffer(s->c.in, conn_out(&c->c), *off);
		*off = 0;
	}
	evbuffer_drain(s->c.in, len + 1);
	bufview_load(v, s->c.in);
}

/* A message for the client: passed on, ReadyForQuery and ParameterStatus read on the way. */
static inline enum forward_step
forward_to_client(server *s, client *c, bufview *v, size_t *off, unsigned char *hdr, uint32_t len)
{
	if (hdr[0] == 'Z' || hdr[0] == 'S')
	{
		if (v->len < *off + len + 1)
			return STEP_WAIT;
		if (!bufview_peek(v, *off + 5, hdr + 5, 1))
			return STEP_WAIT;
		if (hdr[0] == 'S')
		{
			if (note_client_param(s, c, *off, len))
				*off += len + 1;
			else
				drop_message(s, c, v, off, len);
			return STEP_NEXT;
		}
		s->txstatus = hdr[5];
		if (s->txstatus == 'I')
			settings_learn(s, c);	/* its SETs follow it (txn/startup_settings.c) */
		s->pool->st.queries++;
		if (s->txstatus == 'I')
			s->pool->st.xacts++;
		if (s->expect_rfq > 0)
			s->expect_rfq--;
		s->in_copy_out = false;
		*off += len + 1;
		return server_releasable(s) ? STEP_RELEASE : STEP_NEXT;
	}
	if (hdr[0] == 'H')
		s->in_copy_out = true;
	else if (hdr[0] == 'E')
		settings_error_seen(s);
	*off += 5;
	s->pass_remaining = len - 4;
	return STEP_NEXT;
}

/* What was read goes to the client; then release the server or pace the reading. */
static inline void
forward_done(server *s, client *c, size_t off, bool release)
{
	if (off && c)
	{
		s->pool->st.bytes_out += off;
		evbuffer_remove_buffer(s->c.in, conn_out(&c->c), off);
	}
	if (c && s->prep)
		prepared_flush_synth(s);
	if (release)
	{
		/*
		 * Hand the server on first: the next waiter's query reaches
		 * PostgreSQL while we write this answer to its client.
		 */
		pool_release(s);
		conn_flush_later(&c->c);
		client_kick(c);
		return;
	}
	if (off && c)
		conn_flush_later(&c->c);
	if (c && buflen(c->c.out) > BACKLOG_HIGH)
		conn_read_off(&s->c);
	else
		conn_read_on(&s->c);
}

/*
 * The client's startup settings were sent ahead of its messages, which
 * wait for the answer (server_settings_hold): the server's ReadyForQuery
 * to them is in.
 */
void
server_settings_hold(server *s, client *c)
{
	client_set_state(c, C_SETTING);
	if (conn_flush(&s->c) < 0)
		server_close(s, "write to server failed");
}

/*
 * The answer to the client's settings, acted on once s is done with: let
 * the waiting client's messages go, or close it with the server's error,
 * which names the parameter (its statements never ran without it).
 */
static void
settings_settled(client *c)
{
	char		code[6];

	c->settings_phase = SETTINGS_NONE;
	if (c->settings_error)
	{
		snprintf(code, sizeof(code), "%s", c->settings_error);
		client_fail(c, code, "perfopt-pooler: the server refused a startup setting of this connection: %s",
					c->settings_error + 6);
		free(c->settings_error);
		c->settings_error = NULL;
		return;
	}
	if (c->state == C_SETTING)
		client_linked(c);
}

/* Messages from a working server: swallow ours, forward the client's. */
void
server_forward(server *s)
{
	client	   *c = s->client;
	size_t		off = 0;
	bufview		v;
	unsigned char hdr[6];
	uint32_t	len;
	enum forward_step step = STEP_NEXT;
	bool		retry;

	bufview_load(&v, s->c.in);
	while (off < v.len)
	{
		if (s->pass_remaining)
		{
			size_t		n = v.len - off < s->pass_remaining ? v.len - off : s->pass_remaining;

			off += n;
			s->pass_remaining -= n;
			continue;
		}
		if (!bufview_peek(&v, off, hdr, 5))
			break;
		len = get_u32(hdr + 1);
		/* ReadyForQuery carries exactly one status byte; its state is read */
		if (len < 4 || (hdr[0] == 'Z' && len != 5))
		{
			server_close(s, "invalid message length from server");
			return;
		}
		if (s->swallow_rfq > 0 || (s->begin_absorb && defer_absorbs(s, hdr[0])))
			step = forward_own(s, c, &v, &off, hdr, len);
		else if (!c)
		{
			server_close(s, "message from server with no client");
			return;
		}
		else
			step = s->prep ? forward_prepared(s, &v, &off, hdr, len) : STEP_ORDINARY;
		if (step == STEP_ORDINARY)
			step = forward_to_client(s, c, &v, &off, hdr, len);
		if (step == STEP_GONE)
			return;
		if (step != STEP_NEXT)
			break;
	}
	retry = s->prep && prepared_retry_due(s);
	forward_done(s, c, off, step == STEP_RELEASE);
	/* last: s may be released, relinked or closed by what they do */
	if (c && c->settings_phase == SETTINGS_ANSWERED)
		settings_settled(c);
	else if (retry && c->state == C_ACTIVE && c->server)
		client_process(c);		/* a batch whose statement went stale runs again */
}
