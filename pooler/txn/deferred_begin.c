/*
 * deferred_begin.c: transaction mode's deferred BEGIN (setting
 * defer_begin).  Owns recognising a plain transaction start or end, the
 * answers given here instead of by a server, writing the saved BEGIN ahead
 * of the client's first statement, and absorbing the server's answer to it.
 *
 * Why: a pooled round trip costs the machine two kernel wakeups more than
 * a direct one.  A client with no server that starts a transaction with a
 * plain BEGIN needs no server to be told "BEGIN": it is answered here, and
 * the BEGIN travels to the server in the same write as the client's next
 * statement.  An empty transaction (BEGIN, then COMMIT or ROLLBACK) never
 * takes a server at all.
 *
 * The BEGIN goes to the server as an unsynced Parse/Bind/Execute rather
 * than a Query: should it fail, PostgreSQL skips everything up to the next
 * Sync, so the client's statement behind it never runs outside the
 * transaction the client was promised.  The server is then closed and the
 * client told (its transaction is gone), never left believing it is in one.
 *
 * A statement of a deferred transaction that was canceled while queued
 * (client.c answers 57014 itself) leaves the transaction failed, as
 * PostgreSQL would: until COMMIT or ROLLBACK everything gets 25P02 here.
 */
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "config.h"
#include "proto.h"
#include "net/net.h"
#include "txn/txn.h"

/* longer messages are never plain: they go to a server as they would without this */
#define PLAIN_QUERY_MAX 256
#define PLAIN_BATCH_MAX 1024

enum { PLAIN_NONE, PLAIN_BEGIN, PLAIN_COMMIT, PLAIN_ROLLBACK };

static bool
is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* The next word (letters only) of s[*i..n), after white space; its length. */
static size_t
next_word(const char *s, size_t n, size_t *i, const char **w)
{
	size_t		start;

	while (*i < n && is_space(s[*i]))
		(*i)++;
	start = *i;
	*w = s + start;
	while (*i < n && ((s[*i] | 0x20) >= 'a' && (s[*i] | 0x20) <= 'z'))
		(*i)++;
	return *i - start;
}

static bool
word_is(const char *w, size_t len, const char *kw)
{
	return len == strlen(kw) && strncasecmp(w, kw, len) == 0;
}

/* Can a plain statement start with this word?  Its first letter and length say no to the rest. */
static bool
first_word_plain(const char *w, size_t len)
{
	switch (w[0] | 0x20)
	{
		case 'b':
			return len == 5;	/* begin */
		case 's':
			return len == 5;	/* start */
		case 'c':
			return len == 6;	/* commit */
		case 'e':
			return len == 3;	/* end */
		case 'r':
			return len == 8;	/* rollback */
		case 'a':
			return len == 5;	/* abort */
		default:
			return false;
	}
}

/*
 * BEGIN [WORK | TRANSACTION], START TRANSACTION, COMMIT / END / ROLLBACK /
 * ABORT [WORK | TRANSACTION], any case, surrounding white space and one
 * trailing ';'.  Anything else (isolation levels, AND CHAIN, comments, a
 * second statement) is PLAIN_NONE and goes to a server.
 */
static int
plain_kind(const char *sql, size_t n, bool modes)
{
	size_t		i = 0,
				l1,
				l2;
	const char *w1,
			   *w2;
	bool		opt;
	begin_modes m;

	l1 = next_word(sql, n, &i, &w1);
	if (!first_word_plain(w1, l1))
		return PLAIN_NONE;		/* nearly every statement: no further look */
	/* read-only routing must see a BEGIN's modes before a server is chosen */
	if (modes && begin_statement_modes(sql, n, &m))
		return PLAIN_BEGIN;
	l2 = next_word(sql, n, &i, &w2);
	while (i < n && is_space(sql[i]))
		i++;
	if (i < n && sql[i] == ';')
		i++;
	while (i < n && is_space(sql[i]))
		i++;
	if (i != n)
		return PLAIN_NONE;
	opt = l2 == 0 || word_is(w2, l2, "work") || word_is(w2, l2, "transaction");
	if (word_is(w1, l1, "start"))
		return word_is(w2, l2, "transaction") ? PLAIN_BEGIN : PLAIN_NONE;
	if (!opt)
		return PLAIN_NONE;
	if (word_is(w1, l1, "begin"))
		return PLAIN_BEGIN;
	if (word_is(w1, l1, "commit") || word_is(w1, l1, "end"))
		return PLAIN_COMMIT;
	if (word_is(w1, l1, "rollback") || word_is(w1, l1, "abort"))
		return PLAIN_ROLLBACK;
	return PLAIN_NONE;
}

/* A NUL-terminated SQL text filling body[0..len) exactly: its plain kind. */
static int
sql_kind(const unsigned char *body, size_t len, bool modes)
{
	const unsigned char *nul = len ? memchr(body, '\0', len) : NULL;

	if (!nul || nul != body + len - 1)
		return PLAIN_NONE;
	return plain_kind((const char *) body, len - 1, modes);
}

/*
 * Could SQL text whose first `n` bytes have arrived still be plain?  Only
 * then is the rest of its message awaited here: any other statement asks
 * for a server as soon as its first bytes are in, as it would without this
 * (and a cancel finds it queued).
 */
static bool
could_be_plain(const unsigned char *sql, size_t n)
{
	static const char *const first[] = {"begin", "start", "commit", "end", "rollback", "abort"};
	size_t		i = 0,
				start;

	while (i < n && is_space((char) sql[i]))
		i++;
	start = i;
	while (i < n && ((sql[i] | 0x20) >= 'a' && (sql[i] | 0x20) <= 'z'))
		i++;
	if (i == start)
		return i == n;			/* only white space so far */
	for (size_t k = 0; k < sizeof(first) / sizeof(first[0]); k++)
	{
		size_t		kl = strlen(first[k]);

		/* the word so far: a keyword's beginning, or all of it when more follows */
		if ((i == n ? i - start <= kl : i - start == kl) &&
			strncasecmp((const char *) sql + start, first[k], i - start) == 0)
			return true;
	}
	return false;
}

/* The first bytes of the input are a message of `len` that may be plain: wait for it. */
static bool
await_plain(struct evbuffer *in, uint32_t len, size_t text_at)
{
	size_t		have = buflen(in);

	if (have >= (size_t) len + 1)
		return false;
	if (have <= text_at)
		return true;
	return could_be_plain(evbuffer_pullup(in, have) + text_at, have - text_at);
}

/* Read-only routing needs it: the BEGIN is seen before a server is chosen. */
bool
defer_begin_on(const client *c)
{
	return !c->admin && c->pool_mode == MODE_TRANSACTION &&
		(cfg.defer_begin || c->pool->db->read_only_routing);
}

/*
 * One message of a plain extended-protocol batch, as libpq's
 * PQsendQueryParams sends it: Parse, Bind and Execute of the unnamed
 * statement and portal without parameters, optionally a Describe of the
 * portal before the Execute, then Sync.  `step` is the message's place.
 */
static bool
plain_batch_msg(int step, char type, const unsigned char *b, uint32_t n)
{
	uint16_t	k;
	size_t		at;

	switch (step)
	{
		case 0:					/* Parse "" text, no parameter types */
			return type == 'P' && n >= 4 && b[0] == '\0' && b[n - 2] == 0 && b[n - 1] == 0;
		case 1:					/* Bind "" "", formats, no parameters, result formats */
			if (type != 'B' || n < 8 || b[0] || b[1])
				return false;
			k = (uint16_t) (b[2] << 8 | b[3]);
			at = 4 + 2 * (size_t) k;
			if (at + 4 > n || b[at] || b[at + 1])
				return false;
			k = (uint16_t) (b[at + 2] << 8 | b[at + 3]);
			return at + 4 + 2 * (size_t) k == n;
		case 2:					/* Describe of the unnamed portal */
			return type == 'D' && n == 2 && b[0] == 'P' && b[1] == '\0';
		case 3:					/* Execute "" */
			return type == 'E' && n == 5 && b[0] == '\0';
		case 4:
			return type == 'S' && n == 0;
	}
	return false;
}

/*
 * Does the input start with a complete plain batch?  Its kind and length;
 * -1 while a plain prefix waits for the rest, PLAIN_NONE when it is not one.
 */
static int
plain_batch(struct evbuffer *in, size_t *total, bool *described, bool modes)
{
	size_t		have = buflen(in),
				off = 0;
	int			kind = PLAIN_NONE;
	const unsigned char *all;

	*described = false;
	if (have > PLAIN_BATCH_MAX)
		have = PLAIN_BATCH_MAX;
	all = evbuffer_pullup(in, have);
	for (int step = 0; step < 5; step++)
	{
		uint32_t	len;

		if (off + 5 > PLAIN_BATCH_MAX)
			return PLAIN_NONE;
		if (off + 5 > have)
			return -1;
		len = get_u32(all + off + 1);
		if (len < 4 || off + 1 + len > PLAIN_BATCH_MAX)
			return PLAIN_NONE;
		if (off + 1 + len > have)
			return -1;
		if (step == 2 && all[off] != 'D')
			step = 3;			/* no Describe */
		if (!plain_batch_msg(step, all[off], all + off + 5, len - 4))
			return PLAIN_NONE;
		if (step == 2)
			*described = true;
		/* Parse's text: after its empty name, before its two-byte type count */
		if (step == 0 && (kind = sql_kind(all + off + 6, len - 4 - 3, modes)) == PLAIN_NONE)
			return PLAIN_NONE;
		off += 1 + len;
	}
	*total = off;
	return kind;
}

/* Answer a plain statement here: what a server would have said. */
static void
answer(client *c, bool batch, bool described, const char *tag, char status, size_t consumed)
{
	struct evbuffer *out = conn_out(&c->c);
	size_t		before = buflen(out),
				n = strlen(tag) + 1;

	if (batch)
	{
		put_msg_start(out, '1', 0);
		put_msg_start(out, '2', 0);
		if (described)
			put_msg_start(out, 'n', 0);
	}
	put_msg_start(out, 'C', n);
	evbuffer_add(out, tag, n);
	send_rfq(out, status);
	evbuffer_drain(c->c.in, consumed);
	c->pool->st.queries++;
	if (status == 'I')
		c->pool->st.xacts++;
	c->pool->st.bytes_in += consumed;
	c->pool->st.bytes_out += buflen(out) - before;
	conn_flush_later(&c->c);
}

static void
end_deferred(client *c)
{
	pstr_unref(c->begin_text);
	c->begin_text = NULL;
	c->begin_failed = false;
}

/*
 * A logged-in client with no server has a message: answer it here when it
 * is plain (DEFER_LOCAL), wait for the rest of a plain-looking batch
 * (DEFER_WAIT), else it needs a server (DEFER_SERVER).  A failed deferred
 * transaction refuses it (DEFER_REFUSED: 25P02 is sent, and client.c
 * drops the client's messages up to its sync point).
 */
enum defer_verdict
defer_idle(client *c, char type, uint32_t len)
{
	struct evbuffer *in = c->c.in;
	unsigned char name0;
	size_t		consumed = 0;
	bool		batch = false,
				described = false,
				modes = c->pool->db->read_only_routing;
	int			kind = PLAIN_NONE;

	if (type == 'Q' && len <= PLAIN_QUERY_MAX)
	{
		if (await_plain(in, len, 5))
			return DEFER_WAIT;
		if (buflen(in) >= (size_t) len + 1)
			kind = sql_kind(evbuffer_pullup(in, len + 1) + 5, len - 4, modes);
		consumed = len + 1;
	}
	else if (type == 'P' && len < PLAIN_BATCH_MAX && !(conn_peek(in, 5, &name0, 1) && name0))
	{
		/* the unnamed statement's Parse opens a plain batch */
		if (await_plain(in, len, 6))
			return DEFER_WAIT;
		/*
		 * Its own text first: most Parses are not plain, and need no more
		 * look.  Name, text and type count take 4 bytes at least: a shorter
		 * (malformed) Parse is not plain, and the server will say why.
		 */
		if (len >= 8 && buflen(in) >= (size_t) len + 1 &&
			sql_kind(evbuffer_pullup(in, len + 1) + 6, len - 4 - 3, modes) != PLAIN_NONE &&
			(kind = plain_batch(in, &consumed, &described, modes)) < 0)
			return DEFER_WAIT;
		batch = true;
	}
	if (!c->begin_text)
	{
		if (kind != PLAIN_BEGIN)
			return DEFER_SERVER;
		/* the client's own text is what the server will run */
		c->begin_text = pstr_get((const char *) evbuffer_pullup(in, consumed) + (batch ? 6 : 5));
		answer(c, batch, described, "BEGIN", 'T', consumed);
		return DEFER_LOCAL;
	}
	if (kind == PLAIN_COMMIT || kind == PLAIN_ROLLBACK)
	{
		/* PostgreSQL answers COMMIT of a failed transaction with ROLLBACK too */
		bool		commit = kind == PLAIN_COMMIT && !c->begin_failed;

		end_deferred(c);
		answer(c, batch, described, commit ? "COMMIT" : "ROLLBACK", 'I', consumed);
		return DEFER_LOCAL;
	}
	if (!c->begin_failed)
		return DEFER_SERVER;
	send_error(conn_out(&c->c), "ERROR", "25P02",
			   "current transaction is aborted, commands ignored until end of transaction block");
	return DEFER_REFUSED;
}

/*
 * The client's transaction is now really starting on s: the saved BEGIN
 * goes first, unsynced (see the top of this file), and its answer
 * (ParseComplete, BindComplete, CommandComplete) will be absorbed.
 */
void
defer_send_begin(server *s, client *c)
{
	struct evbuffer *out = s->c.out;
	const char *sql = c->begin_text->s;
	size_t		n = strlen(sql) + 1;
	static const unsigned char zeros[8];

	put_msg_start(out, 'P', 1 + n + 2);
	evbuffer_add(out, zeros, 1);
	evbuffer_add(out, sql, n);
	evbuffer_add(out, zeros, 2);
	put_msg_start(out, 'B', 8);
	evbuffer_add(out, zeros, 8);
	put_msg_start(out, 'E', 5);
	evbuffer_add(out, zeros, 5);
	s->begin_absorb = true;
}

/* While the BEGIN's answer is due: messages of it (notices pass on). */
bool
defer_absorbs(const server *s, char type)
{
	return s->begin_absorb && type != 'N' && type != 'S';
}

/*
 * One message of the BEGIN's answer.  False when it is not what a BEGIN
 * answers: *failure says what the server said, and server.c closes the
 * server (skipping to a Sync that may never come, and not in the
 * transaction the client was told of) and tells the client.
 */
bool
defer_absorb(server *s, char type, const char *body, size_t len, begin_failure *failure)
{
	client	   *c = s->client;

	if (type == '1' || type == '2')
		return true;
	if (type == 'C')
	{
		s->begin_absorb = false;
		if (c)
			end_deferred(c);
		return true;
	}
	snprintf(failure->sqlstate, sizeof(failure->sqlstate), "%s", type == 'E' ? error_field(body, len, 'C') : "");
	snprintf(failure->msg, sizeof(failure->msg), "%s",
			 type == 'E' ? error_field(body, len, 'M') : "unexpected answer");
	if (strlen(failure->sqlstate) != 5)
		snprintf(failure->sqlstate, sizeof(failure->sqlstate), "08P01");
	log_warn("%s: deferred BEGIN failed: %s (%s)", server_tag(s), failure->msg, failure->sqlstate);
	return false;
}
