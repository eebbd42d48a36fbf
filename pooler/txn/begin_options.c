/*
 * begin_options.c: the transaction modes of BEGIN and START TRANSACTION,
 * read as PostgreSQL's grammar has them: ISOLATION LEVEL { SERIALIZABLE |
 * REPEATABLE READ | READ COMMITTED | READ UNCOMMITTED }, READ ONLY, READ
 * WRITE, [NOT] DEFERRABLE, separated by commas or white space.  Owns the
 * one question read-only routing asks of a statement's text: does this
 * transaction say it is read-only, and does it ask for SERIALIZABLE (which
 * a hot standby refuses)?  Only a whole statement in exactly that grammar
 * is recognised: anything else (a comment, a second statement, a typo) is
 * not, and goes on as it would without routing.
 */
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "txn/txn.h"

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
