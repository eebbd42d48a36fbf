/*
 * begin_options.c: the transaction modes of BEGIN and START TRANSACTION,
 * read as PostgreSQL's grammar has them: ISOLATION LEVEL { SERIALIZABLE |
 * REPEATABLE READ | READ COMMITTED | READ UNCOMMITTED }, READ ONLY, READ
 * WRITE, [NOT] DEFERRABLE, separated by commas or white space.  Owns the
 * one question read-only routing asks of a statement's text: does this
 * transaction say it is read-only, and does it ask for SERIALIZABLE (which
 * a hot standby refuses)?  Only a whole statement in exactly that grammar
 * is recognised: anything else (a comment, a second statement, a typo) is
 * not, and goes on as it would without routing.  The text is the simple
 * Query's, the deferred BEGIN's, or a named prepared statement's: drivers
 * prepare what they run often (psycopg 3 after five runs, pgJDBC,
 * node-postgres named statements), and then send BEGIN READ ONLY as a Bind.
 */
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "pooler.h"
#include "net/net.h"
#include "txn/txn.h"

/* a Parse or Bind longer than this is no BEGIN */
#define BEGIN_MESSAGE_MAX 1024

typedef struct scan
{
	const char *s;
	size_t		n;
	size_t		i;
} scan;

static bool
is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static void
skip_space(scan *sc)
{
	while (sc->i < sc->n && is_space(sc->s[sc->i]))
		sc->i++;
}

/* The next word (letters only) if it is kw, consumed; else nothing moves. */
static bool
take(scan *sc, const char *kw)
{
	size_t		i,
				len = strlen(kw);

	skip_space(sc);
	i = sc->i;
	while (i < sc->n && ((sc->s[i] | 0x20) >= 'a' && (sc->s[i] | 0x20) <= 'z'))
		i++;
	if (i - sc->i != len || strncasecmp(sc->s + sc->i, kw, len) != 0)
		return false;
	sc->i = i;
	return true;
}

/* ISOLATION LEVEL's level, after those two words */
static bool
take_level(scan *sc, begin_modes *m)
{
	if (take(sc, "serializable"))
		m->serializable = 1;
	else if (take(sc, "repeatable") && take(sc, "read"))
		m->serializable = 0;
	else if (take(sc, "read") && (take(sc, "committed") || take(sc, "uncommitted")))
		m->serializable = 0;
	else
		return false;
	return true;
}

/* One transaction mode. */
static bool
take_mode(scan *sc, begin_modes *m)
{
	if (take(sc, "isolation"))
		return take(sc, "level") && take_level(sc, m);
	if (take(sc, "read"))
	{
		if (take(sc, "only"))
			m->read_only = 1;
		else if (take(sc, "write"))
			m->read_only = 0;
		else
			return false;
		return true;
	}
	if (take(sc, "not"))
		return take(sc, "deferrable");
	return take(sc, "deferrable");
}

/* The list of modes up to the end of the text (one ';' may close it). */
static bool
take_modes(scan *sc, begin_modes *m)
{
	bool		first = true;

	for (;;)
	{
		skip_space(sc);
		if (sc->i < sc->n && sc->s[sc->i] == ';')
		{
			sc->i++;
			skip_space(sc);
			return sc->i == sc->n;
		}
		if (sc->i == sc->n)
			return true;
		/* modes are separated by a comma or by white space alone */
		if (!first && sc->s[sc->i] == ',')
			sc->i++;
		if (!take_mode(sc, m))
			return false;
		first = false;
	}
}

/*
 * Is sql[0..n) exactly one BEGIN [WORK | TRANSACTION] or START TRANSACTION
 * with its modes (none is fine)?  *m says what they declare.
 */
bool
begin_statement_modes(const char *sql, size_t n, begin_modes *m)
{
	scan		sc = {sql, n, 0};

	m->read_only = -1;
	m->serializable = -1;
	if (take(&sc, "begin"))
	{
		if (!take(&sc, "work"))
			(void) take(&sc, "transaction");
	}
	else if (!(take(&sc, "start") && take(&sc, "transaction")))
		return false;
	return take_modes(&sc, m);
}

/*
 * An idle client's next request opens a transaction with a BEGIN sent as a
 * named statement: its Parse (the text is in it) or a Bind of a statement
 * it prepared before.  *m says what the BEGIN declares; false when the
 * request starts otherwise.
 */
bool
begin_request_modes(client *c, begin_modes *m)
{
	struct evbuffer *in = c->c.in;
	unsigned char head[5];
	uint32_t	len;
	const char *msg,
			   *end,
			   *name,
			   *text;

	if (!conn_peek(in, 0, head, 5) || (head[0] != 'P' && head[0] != 'B'))
		return false;
	len = ((uint32_t) head[1] << 24) | ((uint32_t) head[2] << 16) | ((uint32_t) head[3] << 8) | head[4];
	if (len < 6 || len > BEGIN_MESSAGE_MAX || buflen(in) < (size_t) len + 1)
		return false;
	msg = (const char *) evbuffer_pullup(in, len + 1) + 5;
	end = msg + len - 4;
	if (head[0] == 'B')
	{
		name = memchr(msg, '\0', end - msg);	/* past the portal's name */
		if (!name || ++name >= end || !memchr(name, '\0', end - name) || !*name)
			return false;
		text = prepared_statement_text(c, name);
	}
	else
	{
		name = msg;
		text = memchr(name, '\0', end - name);
		if (!*name || !text || ++text >= end || !memchr(text, '\0', end - text))
			return false;
	}
	return text && begin_statement_modes(text, strlen(text), m);
}
