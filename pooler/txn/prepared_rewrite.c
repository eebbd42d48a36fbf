/*
 * prepared_rewrite.c: the client side of named prepared statements in
 * transaction mode (what is prepared where is prepared.c; matching the
 * server's replies is prepared_replies.c).
 *
 * A named Parse is recorded under the client's name and sent as
 * PERFOPT_<id> only if the server lacks that statement; Bind, Describe and
 * Close naming a client statement are rewritten, and a Parse of ours goes
 * first when the client's transaction landed on a server that lacks it.
 * Close of a client statement and a Parse the server already has are
 * answered by the pooler; so are the errors for names the client never
 * prepared or prepares twice, after which the client's messages are dropped
 * until Sync as PostgreSQL would.  SQL DEALLOCATE of a client statement is
 * translated too.  Every message sent that gets a reply gets a slot in the
 * reply FIFO, in order.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "config.h"
#include "proto.h"
#include "net/net.h"
#include "txn/txn.h"
#include "prepared.h"

bool
prepared_tracking(client *c)
{
	return cfg.max_prepared_statements > 0 && c->pool && c->pool_mode == MODE_TRANSACTION;
}

/* ---- messages we write ---- */

static void
put_parse(struct evbuffer *out, pstmt *st)
{
	size_t		n = strlen(st->server_name) + 1;

	put_msg_start(out, 'P', n + st->len);
	evbuffer_add(out, st->server_name, n);
	evbuffer_add(out, st->body, st->len);
}

static void
put_named(struct evbuffer *out, char type, char what, const char *name)
{
	size_t		n = strlen(name) + 1;

	put_msg_start(out, type, 1 + n);
	evbuffer_add(out, &what, 1);
	evbuffer_add(out, name, n);
}

/* Parse of a query without parameters */
static void
put_parse_sql(struct evbuffer *out, const char *name, const char *sql)
{
	size_t		n = strlen(name) + 1,
				q = strlen(sql) + 1;

	put_msg_start(out, 'P', n + q + 2);
	evbuffer_add(out, name, n);
	evbuffer_add(out, sql, q);
	evbuffer_add(out, "\0", 2);
}

/* Our Close of a statement s has; its reply swallowed. */
static void
close_on_server(server *s, pstmt *victim)
{
	pslot	   *sl = expect(s, 'C', SLOT_SWALLOW);

	put_named(s->c.out, 'C', 'S', victim->server_name);
	sl->st = stmt_ref(victim);
	sl->set_undo = UNDO_REMOVED;
	server_remove(s->prep, victim);
}

/*
 * Close least recently used statements until one more fits, and the stale
 * statement st replaces (stmt_retire) when s still has it.
 */
static void
make_room(server *s, pstmt *st)
{
	server_prep *sp = s->prep;
	pstmt	   *victim;

	if (!sp->server_skipping && st->predecessor && server_has(sp, st->predecessor))
		close_on_server(s, st->predecessor);
	while (!sp->server_skipping && sp->count >= cfg.max_prepared_statements &&
		   (victim = server_lru(sp)) != NULL)
		close_on_server(s, victim);
}

/* Our Parse for st goes ahead of the client's message when the server lacks st. */
static bool
ensure_prepared(server *s, pstmt *st)
{
	server_prep *sp = s->prep;
	pslot	   *sl;

	if (server_touch(sp, st) || sp->server_skipping)
		return true;
	make_room(s, st);
	if (!server_add(sp, st))
		return false;
	put_parse(s->c.out, st);
	sl = expect(s, 'P', SLOT_SWALLOW);
	sl->st = stmt_ref(st);
	sl->set_undo = UNDO_ADDED;
	return true;
}

/* ---- client to server ---- */

/* A batch that may re-run keeps a copy of what the client sent (RETRY_MAX at most). */
static void
retry_record(server *s, client *c, size_t n)
{
	if (!s->retry)
		return;
	if (buflen(s->retry) + n > RETRY_MAX)
		retry_stop(s);
	else
		evbuffer_add(s->retry, evbuffer_pullup(c->c.in, n), n);
}

/*
 * The first n bytes of the client's input, the messages before the one
 * handled here, go to its server as they are (kept for replay behind an
 * unconfirmed pre-ping).
 */
static void
pass_on(client *c, size_t n)
{
	server	   *s = c->server;

	if (!n)
		return;
	if (s->replay)
		evbuffer_add(s->replay, evbuffer_pullup(c->c.in, n), n);
	retry_record(s, c, n);
	c->pool->st.bytes_in += n;
	evbuffer_remove_buffer(c->c.in, s->c.out, n);
}

/*
 * The first n bytes of the client's input, an extended-protocol message,
 * were handled here: count, keep for replay, drop.
 */
static void
consume(client *c, size_t n)
{
	server	   *s = c->server;

	c->in_batch = true;
	if (s->replay)
		evbuffer_add(s->replay, evbuffer_pullup(c->c.in, n), n);
	retry_record(s, c, n);
	c->pool->st.bytes_in += n;
	evbuffer_drain(c->c.in, n);
}

static void
answer_error(client *c, const char *sqlstate, const char *fmt, const char *name)
{
	server	   *s = c->server;
	pslot	   *sl = expect(s, 'E', SLOT_SYNTH);
	char		msg[512];

	snprintf(msg, sizeof(msg), fmt, name);
	sl->sqlstate = sqlstate;
	sl->text = strdup(msg);
	settle(s);
	client_set_skipping(c, true);
}


static enum prep_verdict
parse_named(client *c, const unsigned char *body, uint32_t blen)
{
	server	   *s = c->server;
	const char *name = (const char *) body;
	size_t		nl = strnlen(name, blen),
				ql;
	const unsigned char *rest = body + nl + 1;
	uint32_t	rlen;
	pstmt	   *st;
	pslot	   *sl;

	if (nl == blen)
		return PREP_MALFORMED;
	rlen = blen - nl - 1;
	ql = strnlen((const char *) rest, rlen);
	if (ql + 3 > rlen || rlen != ql + 3 + 4 * (size_t) ((rest[ql + 1] << 8) | rest[ql + 2]))
		return PREP_MALFORMED;
	if (client_stmt_find(c, name))
		answer_error(c, "42P05", "prepared statement \"%s\" already exists", name);
	else
	{
		if (!(st = stmt_get(rest, rlen)))
			return PREP_NO_MEMORY;
		if (!client_stmt_add(c, name, st))
		{
			stmt_unref(st);
			return PREP_NO_MEMORY;
		}
		if (server_touch(s->prep, st))
			sl = expect(s, '1', SLOT_SYNTH);
		else
		{
			make_room(s, st);
			if (!server_add(s->prep, st))
				abort();		/* the name is taken: no clean way back */
			put_parse(s->c.out, st);
			sl = expect(s, 'P', SLOT_FORWARD);
			sl->set_undo = UNDO_ADDED;
		}
		sl->st = st;			/* our reference from stmt_get */
		sl->text = strdup(name);
		sl->name_undo = UNDO_ADDED;
		if (!sl->text)
			abort();
		settle(s);
	}
	consume(c, 5 + blen);
	return PREP_DONE;
}

/* Describe or Close of a named statement: body is 'S', name. */
static enum prep_verdict
statement_named(client *c, char type, const unsigned char *body, uint32_t blen)
{
	server	   *s = c->server;
	const char *name = (const char *) body + 1;
	pstmt	   *st;
	pslot	   *sl;

	if (strnlen(name, blen - 1) != blen - 2)
		return PREP_MALFORMED;
	if (type == 'C')
	{
		/* the server keeps its copy for whoever prepares the statement next */
		st = client_stmt_take(c, name);
		sl = expect(s, '3', SLOT_SYNTH);
		sl->st = st;
		if (st)
		{
			sl->text = strdup(name);
			sl->name_undo = UNDO_REMOVED;
			if (!sl->text)
				abort();
		}
		settle(s);
	}
	else if (!(st = client_stmt_current(c, name)))
		answer_error(c, "26000", "prepared statement \"%s\" does not exist", name);
	else
	{
		bool		fresh = s->prep->n == 0;

		if (!ensure_prepared(s, st))
			return PREP_NO_MEMORY;
		put_named(s->c.out, 'D', 'S', st->server_name);
		sl = expect(s, 'D', SLOT_FORWARD);
		sl->st = stmt_ref(st);	/* its plan may turn out stale */
		if (fresh)
			retry_start(s, c, sl);
		settle(s);
	}
	consume(c, 5 + blen);
	return PREP_DONE;
}

static uint16_t
get_u16(const unsigned char *p)
{
	return (uint16_t) ((p[0] << 8) | p[1]);
}

/*
 * Whether a Bind (msg, its length len, avail bytes there) of a retired
 * statement may run on its successor, whose rows may have other columns:
 * only when the client learns them from a Describe of the portal right
 * behind it, and asks one result format for all columns (per-column
 * formats were counted for the old columns).  Otherwise it must get the
 * stale plan's error, as from PostgreSQL, so it prepares again itself.
 * -1: the next message's start is not here yet.
 */
int
bind_follows_successor(const unsigned char *msg, size_t avail, uint32_t len)
{
	const unsigned char *end = msg + len + 1,
			   *p = msg + 5;

	if (len + 1 > RETRY_MAX)
		return 0;
	if (avail < (size_t) len + 1 + 6)
		return -1;
	for (int i = 0; i < 2; i++)
		if (!(p = memchr(p, 0, end - p)) || ++p > end)
			return 0;
	if (end - p < 2 || (p += 2 + 2 * get_u16(p)) > end - 2)
		return 0;
	for (int n = get_u16(p), i = (p += 2, 0); i < n; i++)
	{
		int32_t		l;

		if (end - p < 4)
			return 0;
		l = (int32_t) get_u32(p);
		p += 4 + (l > 0 ? l : 0);
		if (p > end)
			return 0;
	}
	if (end - p < 2)
		return 0;
	return get_u16(p) <= 1 && end[0] == 'D' && end[5] == 'P';
}

/*
 * A Bind of a client statement whose plan went stale (st retired): on the
 * successor when bind_follows_successor allows, else on st where the
 * server still has it (and says 0A000 itself), else 0A000 from here.
 * PREP_PASS: go on with *st; PREP_DONE: answered; PREP_WAIT.
 */
static enum prep_verdict
stale_bind(client *c, const char *name, uint32_t len, pstmt **st)
{
	size_t		avail = buflen(c->c.in);
	size_t		need = (size_t) len + 1 + 6;
	int			follows;

	if (avail < (size_t) len + 1 || (avail < need && len + 1 <= RETRY_MAX))
		return PREP_WAIT;
	follows = bind_follows_successor(evbuffer_pullup(c->c.in, avail < need ? len + 1 : need), avail, len);
	if (follows > 0)
		*st = client_stmt_current(c, name);
	if (*st && (follows > 0 || server_has(c->server->prep, *st)))
		return PREP_PASS;
	answer_error(c, STALE_SQLSTATE, STALE_MESSAGE, name);
	consume(c, len + 1);
	return PREP_DONE;
}

/*
 * A Bind naming a statement: only its start (portal and statement names)
 * has to be here; the parameters stream through afterwards.
 */
static enum prep_verdict
bind_named(client *c, uint32_t len)
{
	server	   *s = c->server;
	size_t		have = buflen(c->c.in) < len + 1 ? buflen(c->c.in) : len + 1;
	const unsigned char *msg = evbuffer_pullup(c->c.in, have);
	const unsigned char *body = msg + 5;
	const unsigned char *end = msg + have;
	const unsigned char *pe = memchr(body, 0, end - body);
	const unsigned char *ne = pe ? memchr(pe + 1, 0, end - pe - 1) : NULL;
	const char *name;
	size_t		prefix;
	pstmt	   *st;
	pslot	   *sl;
	bool		fresh;

	if (!ne)
		return have == len + 1 ? PREP_MALFORMED : PREP_WAIT;
	name = (const char *) pe + 1;
	if (!*name)
		return PREP_PASS;		/* a long portal name, unnamed statement */
	prefix = ne + 1 - msg;
	if ((st = client_stmt_find(c, name)) != NULL && st->retired)
	{
		char	   *copy = strdup(name);	/* a pullup may move the message */
		enum prep_verdict v = copy ? stale_bind(c, copy, len, &st) : PREP_NO_MEMORY;

		free(copy);
		if (v != PREP_PASS)
			return v;
		msg = evbuffer_pullup(c->c.in, prefix);
		body = msg + 5;
		pe = memchr(body, 0, prefix - 5);
		name = (const char *) pe + 1;
	}
	if (!st)
	{
		/* the whole message is dropped, so all of it must be here */
		if (have < len + 1)
			return PREP_WAIT;
		answer_error(c, "26000", "prepared statement \"%s\" does not exist", name);
		consume(c, len + 1);
		return PREP_DONE;
	}
	fresh = s->prep->n == 0 && len + 1 <= RETRY_MAX;
	if (!ensure_prepared(s, st))
		return PREP_NO_MEMORY;
	put_msg_start(s->c.out, 'B', len - 4 - strlen(name) + strlen(st->server_name));
	evbuffer_add(s->c.out, body, pe + 1 - body);
	evbuffer_add(s->c.out, st->server_name, strlen(st->server_name) + 1);
	sl = expect(s, 'B', SLOT_FORWARD);
	sl->st = stmt_ref(st);		/* its plan may turn out stale */
	if (fresh)
		retry_start(s, c, sl);
	settle(s);
	consume(c, prefix);
	c->pass_remaining = len + 1 - prefix;
	return PREP_DONE;
}

/* Whether a Bind names a statement, from its first bytes: 1 yes, 0 no, -1 can't tell yet. */
static int
bind_is_named(struct evbuffer *in, size_t off, uint32_t len)
{
	unsigned char buf[128];
	size_t		n = buflen(in) - off - 5;
	const unsigned char *pe;

	if (n > len - 4)
		n = len - 4;
	if (n > sizeof(buf))
		n = sizeof(buf);
	if (!conn_peek(in, off + 5, buf, n))
		return -1;
	pe = memchr(buf, 0, n);
	if (pe && pe + 1 < buf + n)
		return pe[1] != 0;
	if (n == len - 4)
		return 0;				/* malformed: PostgreSQL will say so */
	return -1;
}

/* Case-insensitive keyword at *p followed by a space or the end; advances past it. */
static bool
keyword(const char **p, const char *word)
{
	size_t		n = strlen(word);

	if (strncasecmp(*p, word, n) != 0 || (*p)[n] == '_' || isalnum((unsigned char) (*p)[n]))
		return false;
	*p += n;
	while (isspace((unsigned char) **p))
		(*p)++;
	return true;
}

/*
 * The statement name of "DEALLOCATE [PREPARE] name [;]" (an identifier,
 * folded to lower case unless quoted) into out; false for anything else,
 * DEALLOCATE ALL included.
 */
static bool
deallocate_target(const char *sql, char *out, size_t room)
{
	const char *p = sql;
	size_t		n = 0;

	while (isspace((unsigned char) *p))
		p++;
	if (!keyword(&p, "deallocate"))
		return false;
	keyword(&p, "prepare");
	if (*p == '"')
	{
		for (p++; *p && n + 1 < room; p++)
		{
			if (*p == '"' && p[1] != '"')
				break;
			if (*p == '"')
				p++;
			out[n++] = *p;
		}
		if (*p++ != '"' || n == 0)
			return false;
	}
	else
	{
		if (keyword(&p, "all"))
			return false;
		while ((*p == '_' || *p == '$' || isalnum((unsigned char) *p) || (*p & 0x80)) && n + 1 < room)
			out[n++] = tolower((unsigned char) *p++);
		if (n == 0)
			return false;
	}
	out[n] = '\0';
	while (isspace((unsigned char) *p) || *p == ';')
		p++;
	return *p == '\0';
}

/*
 * SQL "DEALLOCATE name" of a client statement (psycopg 3 evicting one from
 * its cache): the name is forgotten and the server runs a stand-in that
 * answers as DEALLOCATE would (errors included); its first CommandComplete
 * is swallowed.  The server keeps its copy, as for Close.
 */
static enum prep_verdict
deallocate_named(client *c, const char *sql, uint32_t len)
{
	static const char stand_in[] =
		"PREPARE perfopt_deallocate_q AS SELECT; DEALLOCATE perfopt_deallocate_q";
	server	   *s = c->server;
	char		name[256];
	pstmt	   *st;
	pslot	   *sl;

	if (!deallocate_target(sql, name, sizeof(name)) || !(st = client_stmt_take(c, name)))
		return PREP_PASS;
	sl = expect(s, 'q', SLOT_SWALLOW);
	sl->st = st;
	sl->text = strdup(name);
	sl->name_undo = UNDO_REMOVED;
	if (!sl->text)
		abort();
	settle(s);
	send_query(s->c.out, stand_in);
	consume(c, len + 1);
	c->in_batch = false;
	s->expect_rfq++;			/* before settle, which takes it back if the server skips */
	expect(s, 'Q', SLOT_FORWARD);
	settle(s);
	return PREP_DONE;
}

/*
 * The same through the extended protocol (psycopg 3 sends its DEALLOCATE
 * as an unnamed Parse): the client's Parse becomes DEALLOCATE of a dummy
 * we prepare just before it, closing any dummy a skipped run left behind.
 */
static enum prep_verdict
deallocate_unnamed(client *c, const unsigned char *body, uint32_t blen)
{
	server	   *s = c->server;
	const char *sql = (const char *) body + 1;
	size_t		ql = strnlen(sql, blen - 1);
	char		name[256];
	pstmt	   *st;
	pslot	   *sl;

	if (ql + 4 != blen || body[blen - 2] || body[blen - 1] ||
		!deallocate_target(sql, name, sizeof(name)) || !(st = client_stmt_take(c, name)))
		return PREP_PASS;
	put_named(s->c.out, 'C', 'S', "perfopt_deallocate");
	expect(s, 'C', SLOT_SWALLOW);
	settle(s);
	put_parse_sql(s->c.out, "perfopt_deallocate", "SELECT");
	expect(s, 'P', SLOT_SWALLOW);
	settle(s);
	put_parse_sql(s->c.out, "", "DEALLOCATE perfopt_deallocate");
	sl = expect(s, 'P', SLOT_FORWARD);
	sl->st = st;
	sl->text = strdup(name);
	sl->name_undo = UNDO_REMOVED;
	if (!sl->text)
		abort();
	settle(s);
	consume(c, 5 + blen);
	return PREP_DONE;
}

/*
 * One client message at *off (its header already checked).  PREP_PASS: an
 * ordinary message, forward it as it is (the input buffer is untouched,
 * so client_forward's view of it stays valid); PREP_DONE: handled here (what came
 * before it was passed on first, *off is 0); PREP_WAIT: more bytes needed;
 * PREP_NO_MEMORY, PREP_MALFORMED: the client is to be closed (client.c
 * does it, naming the message).
 */
enum prep_verdict
prepared_client_msg(client *c, const unsigned char *hdr, uint32_t len, size_t *off)
{
	struct evbuffer *in = c->c.in;
	size_t		avail = buflen(in) - *off;
	unsigned char peek[2];
	const unsigned char *body;
	char		t = hdr[0];
	int			named;

	if (!sprep(c->server))
		return PREP_NO_MEMORY;
	if (client_skipping(c))
	{
		if (t == 'S')
			client_set_skipping(c, false);
		if (t == 'S' || t == 'X')
			return PREP_PASS;
		if (avail < len + 1)
			return PREP_WAIT;
		pass_on(c, *off);
		*off = 0;
		consume(c, len + 1);
		return PREP_DONE;
	}
	switch (t)
	{
		case 'B':
			if ((named = bind_is_named(in, *off, len)) == 0)
				return PREP_PASS;
			if (named < 0 && avail < 5 + 128)
				return PREP_WAIT;
			pass_on(c, *off);
			*off = 0;
			return bind_named(c, len);
		case 'P':
			if (len < 6)
				return PREP_PASS;	/* no room for a name: PostgreSQL will say so */
			if (!conn_peek(in, *off + 5, peek, 2))
				return PREP_WAIT;
			if (peek[0] == 0 && (len > 4 + 300 || !strchr(" \t\r\ndD", peek[1]) || !client_stmt_count(c)))
				return PREP_PASS;
			break;
		case 'Q':
			/* "DEALLOCATE x": 10 letters, a space, a name, the terminator */
			if (len < 4 + 13 || len > 4 + 300)
				return PREP_PASS;
			if (!conn_peek(in, *off + 5, peek, 2))
				return PREP_WAIT;
			if (!strchr(" \t\r\ndD", peek[0]) || !client_stmt_count(c))
				return PREP_PASS;
			if (avail < len + 1)
				return PREP_WAIT;
			/* its last byte, peeked: PREP_PASS leaves the buffer as it was */
			if (!conn_peek(in, *off + len, peek, 1) || peek[0] != '\0')
				return PREP_PASS;
			pass_on(c, *off);
			*off = 0;
			body = evbuffer_pullup(in, len + 1) + 5;
			return deallocate_named(c, (const char *) body, len);
		case 'D':
		case 'C':
			if (len < 6)
				return PREP_PASS;
			if (!conn_peek(in, *off + 5, peek, 2))
				return PREP_WAIT;
			if (peek[0] != 'S' || peek[1] == 0)
				return PREP_PASS;
			break;
		default:
			return PREP_PASS;
	}
	if (avail < len + 1)
		return PREP_WAIT;
	pass_on(c, *off);
	*off = 0;
	body = evbuffer_pullup(in, len + 1) + 5;
	if (t == 'P' && body[0] == 0)
		return deallocate_unnamed(c, body, len - 4);
	return t == 'P' ? parse_named(c, body, len - 4) : statement_named(c, t, body, len - 4);
}

/* An ordinary message went to the server: note the reply it will get. */
void
prepared_client_sent(server *s, char type)
{
	switch (type)
	{
		case 'P': case 'B': case 'C': case 'D': case 'E': case 'S': case 'Q': case 'F':
			break;
		default:
			return;
	}
	if (!sprep(s))
		return;
	if (s->retry && buflen(s->retry) > RETRY_MAX)
		retry_stop(s);			/* a batch this long is not kept to run again */
	expect(s, type, SLOT_FORWARD);
	settle(s);
}
