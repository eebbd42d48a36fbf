/*
 * prepared_replies.c: the replies side of named prepared statements in
 * transaction mode.  Every message sent to a server since it was handed to
 * a client that gets a reply has a slot in a FIFO, so each reply the
 * server sends is matched to what asked for it: replies to the pooler's
 * own Parse and Close are swallowed, the pooler's own answers (ParseComplete,
 * CloseComplete, errors for unknown or duplicate names) are emitted when
 * their slot reaches the head, and after an ErrorResponse the slots the
 * server skips until Sync are dropped and what they assumed (a statement
 * prepared or closed on the server, a client name added or removed) is
 * undone.  The client side, which fills the FIFO, is prepared_rewrite.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "log.h"
#include "proto.h"
#include "net/net.h"
#include "txn/txn.h"
#include "prepared.h"

/* ---- the FIFO of expected replies ---- */

static pslot *
slot_at(server_prep *sp, unsigned i)
{
	return &sp->ring[(sp->head + i) & (sp->cap - 1)];
}

/* A new slot at the tail; a failed allocation here would lose the reply order. */
pslot *
expect(server *s, char kind, char how)
{
	server_prep *sp = s->prep;
	pslot	   *sl;

	if (sp->n == sp->cap)
	{
		unsigned	cap = sp->cap ? sp->cap * 2 : 16;
		pslot	   *r = malloc(sizeof(*r) * cap);

		if (!r)
			abort();
		for (unsigned i = 0; i < sp->n; i++)
			r[i] = *slot_at(sp, i);
		free(sp->ring);
		sp->ring = r;
		sp->cap = cap;
		sp->head = 0;
	}
	sl = slot_at(sp, sp->n++);
	memset(sl, 0, sizeof(*sl));
	sl->kind = kind;
	sl->how = how;
	return sl;
}

static void
slot_free(pslot *sl)
{
	stmt_unref(sl->st);
	free(sl->text);
	sl->st = NULL;
	sl->text = NULL;
}

static void
slot_pop(server_prep *sp)
{
	slot_free(slot_at(sp, 0));
	sp->head = (sp->head + 1) & (sp->cap - 1);
	sp->n--;
}

/* The server did not carry out the slot's message: take back what we assumed. */
static void
slot_undo(server *s, client *c, pslot *sl)
{
	if (sl->set_undo == UNDO_ADDED)
		server_remove(s->prep, sl->st);
	else if (sl->set_undo == UNDO_REMOVED)
		server_add(s->prep, sl->st);
	if (c && sl->name_undo == UNDO_ADDED && client_stmt_find(c, sl->text) == sl->st)
		stmt_unref(client_stmt_take(c, sl->text));
	else if (c && sl->name_undo == UNDO_REMOVED && !client_stmt_find(c, sl->text))
		client_stmt_add(c, sl->text, sl->st);
}

/*
 * After an error the server ignores everything until Sync, so a slot added
 * meanwhile gets no reply: undo it at once (a Sync ends the skipping).
 */
void
settle(server *s)
{
	server_prep *sp = s->prep;
	pslot	   *sl;

	if (!sp->server_skipping)
		return;
	sl = slot_at(sp, sp->n - 1);
	if (sl->kind == 'S')
	{
		sp->server_skipping = false;
		return;
	}
	slot_undo(s, s->client, sl);
	if ((sl->kind == 'Q' || sl->kind == 'F') && s->expect_rfq > 0)
		s->expect_rfq--;
	slot_free(sl);
	sp->n--;
}

/* The head failed: it and every slot before the next Sync are skipped. */
static void
fail_head(server *s)
{
	server_prep *sp = s->prep;
	unsigned	k = 0;

	while (k < sp->n && slot_at(sp, k)->kind != 'S')
		k++;
	sp->server_skipping = (k == sp->n);
	for (unsigned i = k; i-- > 0;)
	{
		pslot	   *sl = slot_at(sp, i);

		slot_undo(s, s->client, sl);
		if ((sl->kind == 'Q' || sl->kind == 'F') && s->expect_rfq > 0)
			s->expect_rfq--;
	}
	while (k-- > 0)
		slot_pop(sp);
}

/* Forget every reply s was expected to give (it is reset or gone). */
static void
drop_slots(server *s)
{
	server_prep *sp = s->prep;

	while (sp && sp->n)
		slot_pop(sp);
	if (sp)
		sp->server_skipping = false;
	retry_stop(s);
}

/* Undo everything: the server died before running any of it (pre-ping retry). */
void
prepared_rollback(server *s, client *c)
{
	server_prep *sp = s->prep;

	if (c)
		client_set_skipping(c, false);
	retry_stop(s);
	if (!sp)
		return;
	for (unsigned i = sp->n; i-- > 0;)
		slot_undo(s, c, slot_at(sp, i));
	drop_slots(s);
}

/* The server is gone: its expected replies first, then what it has prepared. */
void
prepared_server_free(server *s)
{
	server_prep *sp = s->prep;

	retry_stop(s);
	if (!sp)
		return;
	drop_slots(s);
	server_clear(sp);
	free(sp->buckets);
	free(sp->ring);
	free(sp);
	s->prep = NULL;
}

bool
prepared_quiet(server *s)
{
	return !s->prep || s->prep->n == 0;
}

/* ---- a batch that may re-run ---- */

static void move_span(server *s, size_t *off);

/*
 * c's batch starts with sl (nothing of it has been answered yet): keep a
 * copy of its bytes, so that if sl's statement turns out stale it can run
 * again on a fresh one.  Not inside a transaction: a failure there aborts
 * it, and running again would not undo that.
 */
void
retry_start(server *s, client *c, pslot *sl)
{
	if (s->retry || s->txstatus != 'I' || s->begin_absorb || c->begin_text)
		return;
	s->retry = conn_buf_get();
	sl->first = s->retry != NULL;
}

void
retry_stop(server *s)
{
	if (s->retry)
		conn_buf_put(s->retry);
	s->retry = NULL;
}

/* Whether the ErrorResponse at off says a prepared plan's result type changed. */
static bool
stale_plan(struct evbuffer *in, size_t off, uint32_t len)
{
	char	   *body = malloc(len - 4);
	bool		stale = false;

	if (body && conn_peek(in, off + 5, body, len - 4))
		stale = strcmp(error_field(body, len - 4, 'C'), "0A000") == 0 &&
			(strcmp(error_field(body, len - 4, 'R'), "RevalidateCachedQuery") == 0 ||
			 strstr(error_field(body, len - 4, 'M'), "cached plan must not change result type"));
	free(body);
	return stale;
}

/*
 * Whether the kept batch, run again, takes the successor statement: it
 * starts with a Describe of the statement, or with a Bind that may move
 * (bind_follows_successor).  Otherwise it would run on the stale one again.
 */
static bool
batch_reruns(struct evbuffer *b)
{
	size_t		n = buflen(b);
	const unsigned char *m = evbuffer_pullup(b, n);
	uint32_t	len;

	if (n < 6)
		return false;
	len = get_u32(m + 1);
	if (m[0] == 'D')
		return true;
	return m[0] == 'B' && bind_follows_successor(m, n, len) > 0;
}

/*
 * The batch failed at its first reply, nothing reached the client: it
 * runs again when the server skipped exactly up to its Sync and the client
 * sent nothing after (no other reply is expected), with the client's whole
 * batch copied.  The error and that Sync's ReadyForQuery are swallowed and
 * the copy goes back to the front of the client's input, to be rewritten
 * anew (now naming the successor statement) by server_forward's caller.
 */
static bool
retry_batch(server *s, size_t *off, uint32_t len)
{
	server_prep *sp = s->prep;
	client	   *c = s->client;

	if (!s->retry || !c || c->pass_remaining || sp->server_skipping || sp->n != 1 ||
		slot_at(sp, 0)->kind != 'S' || !batch_reruns(s->retry))
		return false;
	slot_at(sp, 0)->how = SLOT_SWALLOW;
	move_span(s, off);
	evbuffer_drain(s->c.in, len + 1);
	evbuffer_prepend_buffer(conn_in(&c->c), s->retry);
	retry_stop(s);
	sp->retry_due = true;
	log_info("%s: a prepared statement's plan went stale (the table changed): re-prepared, batch retried",
			 server_tag(s));
	return true;
}

/*
 * The head's message failed.  A stale plan retires its statement first
 * (every server's copy is stale); then the batch runs again if it can,
 * else the client sees the error where its message failed.
 */
static enum prep_verdict
failed_reply(server *s, size_t *off, uint32_t len)
{
	server_prep *sp = s->prep;
	pslot	   *h = slot_at(sp, 0);
	bool		first = h->first,
				stale = false;

	if ((h->kind == 'B' || h->kind == 'D') && h->st)
	{
		if (buflen(s->c.in) < *off + len + 1)
			return PREP_WAIT;
		if ((stale = stale_plan(s->c.in, *off, len)))
			stmt_retire(h->st);
	}
	fail_head(s);
	if (stale && first && retry_batch(s, off, len))
		return PREP_DONE;
	retry_stop(s);
	return PREP_PASS;
}

bool
prepared_retry_due(server *s)
{
	bool		due = s->prep && s->prep->retry_due;

	if (due)
		s->prep->retry_due = false;
	return due;
}

/* ---- server to client ---- */

static void
move_span(server *s, size_t *off)
{
	if (*off)
	{
		s->pool->st.bytes_out += *off;
		evbuffer_remove_buffer(s->c.in, conn_out(&s->client->c), *off);
		*off = 0;
	}
}

static void
emit_synth(server *s)
{
	server_prep *sp = s->prep;
	struct evbuffer *out = conn_out(&s->client->c);
	pslot	   *sl;

	while (sp->n && (sl = slot_at(sp, 0))->how == SLOT_SYNTH)
	{
		if (sl->kind == 'E')
			send_error_routine(out, "ERROR", sl->sqlstate,
							   strcmp(sl->sqlstate, STALE_SQLSTATE) == 0 ? STALE_ROUTINE : NULL,
							   sl->text ? sl->text : "out of memory");
		else
			put_msg_start(out, sl->kind, 0);
		slot_pop(sp);
	}
}

/* At a message boundary with nothing of ours pending: emit answers now due. */
void
prepared_flush_synth(server *s)
{
	server_prep *sp = s->prep;

	if (!sp || !sp->n || slot_at(sp, 0)->how != SLOT_SYNTH || !s->client ||
		s->pass_remaining || s->swallow_rfq)
		return;
	emit_synth(s);
	if (conn_flush(&s->client->c) < 0)
		evbuffer_drain(s->client->c.out, buflen(s->client->c.out));
}

static bool
ends_reply(char kind, char t)
{
	switch (kind)
	{
		case 'S':
		case 'Q':
		case 'F':
			return t == 'Z';
		case 'P':
			return t == '1';
		case 'B':
			return t == '2';
		case 'C':
			return t == '3';
		case 'D':
			return t == 'T' || t == 'n';
		case 'E':
			return t == 'C' || t == 'I' || t == 's';
		case 'q':
			return t == 'C';
	}
	return false;
}

/* The ReadyForQuery (at the front of the input) of a Sync whose batch runs again. */
static void
swallowed_sync(server *s)
{
	unsigned char st;

	if (conn_peek(s->c.in, 5, &st, 1))
		s->txstatus = st;
	if (s->expect_rfq > 0)
		s->expect_rfq--;
}

/* CommandComplete of DISCARD ALL or DEALLOCATE ALL: the server forgot every statement. */
static bool
forgets_all(struct evbuffer *in, size_t off, uint32_t len)
{
	char		tag[16];

	if (!conn_peek(in, off + 5, tag, len - 4))
		return false;
	return memcmp(tag, "DISCARD ALL", 12) == 0 || memcmp(tag, "DEALLOCATE ALL", 15) == 0;
}

/*
 * One server message at *off for the linked client.  PREP_PASS: forward it
 * as it is; PREP_DONE: swallowed here (what came before was forwarded,
 * *off is 0); PREP_WAIT: more bytes needed; PREP_MISMATCH: the reply does not
 * match what was asked, the connection must go.
 */
enum prep_verdict
prepared_server_msg(server *s, const unsigned char *hdr, uint32_t len, size_t *off)
{
	server_prep *sp = s->prep;
	size_t		whole = *off + len + 1;
	char		t = hdr[0];
	pslot	   *h;

	if (!sp || !sp->n)
		return PREP_PASS;
	if (slot_at(sp, 0)->how == SLOT_SYNTH)
	{
		move_span(s, off);
		whole = len + 1;
		emit_synth(s);
		if (!sp->n)
			return PREP_PASS;
	}
	h = slot_at(sp, 0);
	if (t == 'C' && (h->kind == 'Q' || h->kind == 'E') && (len == 16 || len == 19))
	{
		if (buflen(s->c.in) < whole)
			return PREP_WAIT;
		if (forgets_all(s->c.in, *off, len))
		{
			server_clear(sp);
			client_stmt_clear(s->client);
		}
	}
	if (t == 'E' && h->kind == 'q')
	{
		/* the stand-in failed as DEALLOCATE would have: the name stays */
		slot_undo(s, s->client, h);
		slot_pop(sp);
		return PREP_PASS;
	}
	if (t == 'E' && h->kind != 'S' && h->kind != 'Q' && h->kind != 'F')
		return failed_reply(s, off, len);
	if (!ends_reply(h->kind, t))
	{
		if (t == 'Z' || t == '1' || t == '2' || t == '3')
		{
			log_error("backend %u sent '%c' where a reply to '%c' was expected", s->be_pid, t, h->kind);
			return PREP_MISMATCH;
		}
		return PREP_PASS;
	}
	if ((t == 'Z' || h->how == SLOT_SWALLOW) && buflen(s->c.in) < whole)
		return PREP_WAIT;
	if (h->first)
		retry_stop(s);			/* answered: this batch will not run again */
	if (h->how == SLOT_SWALLOW)
	{
		move_span(s, off);
		if (t == 'Z')
			swallowed_sync(s);
		evbuffer_drain(s->c.in, len + 1);
		slot_pop(sp);
		return PREP_DONE;
	}
	slot_pop(sp);
	return PREP_PASS;
}
