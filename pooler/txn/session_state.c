/*
 * txn/session_state.c: session state in transaction mode.  Temp objects,
 * session advisory locks, LISTEN, SQL PREPARE and WITH HOLD cursors live
 * on a server connection and cannot be carried to another: handed to the
 * next client they leak (it sees them, or "gets" a lock that is held), and
 * the owner loses them.  transaction_mode_session_state decides:
 *
 *	pin		the client keeps its server connection while the state lasts
 *			(server_releasable asks session_state_pins); LISTEN's
 *			notifications reach it between transactions too
 *	error	a statement recognised as making such state is replaced by one
 *			the server refuses with 0A000 and a hint naming the setting
 *
 * How the state is known:
 *	- with perfopt's extension preloaded, the server reports exactly what
 *	  it holds after each transaction (ParameterStatus perfopt.session_state,
 *	  before ReadyForQuery), so a client is unpinned as soon as its state is
 *	  gone (UNLISTEN, unlock, DISCARD, DROP, DEALLOCATE, CLOSE);
 *	- without it, the statements are recognised in the text of Query and
 *	  Parse messages (LISTEN, PREPARE, DECLARE ... WITH HOLD, CREATE TEMP,
 *	  pg_advisory_lock and pg_try_advisory_lock), conservatively: such a
 *	  client stays pinned until DISCARD ALL or until it disconnects.
 * A pinned client that leaves has its server connection reset with DISCARD
 * ALL before anyone else gets it (server.c), and a server still reporting
 * state after that is closed (pool.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "proto.h"
#include "client.h"
#include "net/net.h"
#include "txn/session_state.h"
#include "txn/query_text.h"

/* the kinds, in the order perfopt.session_state lists them */
enum { K_TEMP = 1, K_ADVISORY = 2, K_LISTEN = 4, K_PREPARED = 8, K_CURSOR = 16, NKINDS = 5 };
#define K_DISCARD_ALL 0x80		/* not a kind: the statement that drops them all */

static const char *const kind_names[NKINDS] = {"temp", "advisory", "listen", "prepared", "cursor"};
static const char *const kind_what[NKINDS] = {
	"a temp table", "a session advisory lock", "LISTEN", "SQL PREPARE", "a WITH HOLD cursor"
};

/* Is `word` one of the comma-separated items of `list`? */
static bool
list_has(const char *list, const char *word)
{
	size_t		n = strlen(word);

	for (const char *p = list; *p; p++)
	{
		if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0') &&
			(p == list || p[-1] == ','))
			return true;
	}
	return false;
}

/* The extension's report (any other parameter is ignored). */
void
session_state_note(server *s, const char *name, const char *value)
{
	unsigned char bits = 0;

	if (strcmp(name, SESSION_STATE_PARAM) != 0)
		return;
	for (int i = 0; i < NKINDS; i++)
		if (list_has(value, kind_names[i]))
			bits |= 1 << i;
	s->sreport = true;
	s->sstate = bits;
	s->sstate_text = 0;			/* the report is exact: guesses give way */
}

bool
session_state_pins(const server *s)
{
	return (s->sstate | s->sstate_text) != 0;
}

/* A full reset (DISCARD ALL) was sent: nothing recognised in the text is left. */
void
session_state_forget(server *s)
{
	s->sstate_text = 0;
}

/* "temp,listen": what keeps the server's client on it, for SHOW CLIENTS. */
const char *
session_state_describe(const server *s, char *buf, size_t len)
{
	unsigned	bits = s ? (unsigned) (s->sstate | s->sstate_text) : 0;
	size_t		n = 0;

	buf[0] = '\0';
	for (int i = 0; i < NKINDS; i++)
		if (bits & (1 << i))
			n += snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "," : "", kind_names[i]);
	return buf;
}

/* Clients of the pool held on their server connection by session state. */
int
session_state_pinned(const pool *p)
{
	server	   *s;
	int			n = 0;

	TAILQ_FOREACH(s, &p->servers, link)
		if (s->state == S_ACTIVE && s->client && session_state_pins(s))
		n++;
	return n;
}

/* Is the text at p the word w, in any case? */
static bool
starts_with(const char *p, const char *end, const char *w)
{
	size_t		n = strlen(w);

	return (size_t) (end - p) >= n && strncasecmp(p, w, n) == 0;
}

/*
 * pg_advisory_lock... or pg_try_advisory_lock... anywhere in the text:
 * only an underscore can start one's tail, and underscores are few.
 */
static bool
advisory_call(const char *text, const char *end)
{
	for (const char *u = text; (u = memchr(u, '_', end - u)) != NULL; u++)
		if (u - text >= 2 && (u[-2] | 0x20) == 'p' && (u[-1] | 0x20) == 'g' &&
			(starts_with(u + 1, end, "advisory_lock") || starts_with(u + 1, end, "try_advisory_lock")))
			return true;
	return false;
}

/* "WITH HOLD" anywhere from p on (a DECLARE's options come after its name). */
static bool
with_hold(const char *p, const char *end)
{
	for (; end - p >= 9; p++)
		if ((*p | 0x20) == 'w' && strncasecmp(p, "with hold", 9) == 0)
			return true;
	return false;
}

/* The kind of state one statement makes, from its first keyword kw at p. */
static unsigned
statement_kind(enum query_keyword kw, const char *p, const char *end)
{
	const char *q;

	switch (kw)
	{
		case QK_LISTEN:
			return K_LISTEN;
		case QK_PREPARE:
			return query_word(query_word(p, end, "prepare"), end, "transaction") ? 0 : K_PREPARED;
		case QK_DECLARE:
			return with_hold(p, end) ? K_CURSOR : 0;
		case QK_DISCARD:
			return query_word(query_word(p, end, "discard"), end, "all") ? K_DISCARD_ALL : 0;
		case QK_CREATE:
			break;
		default:
			return 0;
	}
	q = query_word(p, end, "create");
	if (query_word(q, end, "or"))
		q = query_word(query_word(q, end, "or"), end, "replace");
	if (query_word(q, end, "global"))
		q = query_word(q, end, "global");
	else if (query_word(q, end, "local"))
		q = query_word(q, end, "local");
	return query_word(q, end, "temp") || query_word(q, end, "temporary") ? K_TEMP : 0;
}

/*
 * Every statement of the text, naively split at semicolons (a semicolon
 * in a literal only makes a needless pin), and the advisory lock functions
 * anywhere in it.  The first statement's keyword is already known.
 */
static unsigned
scan_kinds(const query_text *q)
{
	const char *end = q->end;
	unsigned	kinds = statement_kind(q->first, q->start, end);

	if (advisory_call(q->sql, end))
		kinds |= K_ADVISORY;
	for (const char *p = q->sql; (p = memchr(p, ';', end - p)) != NULL;)
	{
		const char *st = query_skip_space(++p, end);

		kinds |= statement_kind(query_keyword_at(st, end), st, end);
	}
	return kinds;
}

/*
 * error mode: the message at `off` is replaced, in the client's input, by
 * one running a DO block that raises 0A000.  The server answers it in the
 * client's order and fails its transaction, as a refusal of its own would.
 */
static void
refuse(client *c, size_t off, char type, const char *name, unsigned kinds)
{
	struct evbuffer *in = conn_in(&c->c);
	struct evbuffer *head = evbuffer_new();
	struct evbuffer *msg = evbuffer_new();
	char		sql[640];
	int			k = 0;
	uint32_t	len;

	while (!(kinds & (1 << k)))
		k++;
	snprintf(sql, sizeof(sql),
			 "DO $perfopt_pooler$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', "
			 "MESSAGE = 'perfopt-pooler: %s cannot be used in transaction mode: its state would outlive "
			 "the transaction and be seen by other clients', HINT = 'Set transaction_mode_session_state "
			 "= pin to keep the client on its server connection while the state lasts, or use session "
			 "mode.'; END$perfopt_pooler$", kind_what[k]);
	/* the replacement first: `name` may point into the input it replaces */
	if (type == 'P')
	{
		put_msg_start(msg, 'P', strlen(name) + 1 + strlen(sql) + 1 + 2);
		evbuffer_add(msg, name, strlen(name) + 1);
		evbuffer_add(msg, sql, strlen(sql) + 1);
		evbuffer_add(msg, "\0\0", 2);
	}
	else
	{
		put_msg_start(msg, 'Q', strlen(sql) + 1);
		evbuffer_add(msg, sql, strlen(sql) + 1);
	}
	evbuffer_remove_buffer(in, head, off);
	evbuffer_drain(in, 1);
	if (conn_peek(in, 0, &len, 4))
		evbuffer_drain(in, ntohl(len));
	evbuffer_prepend_buffer(in, msg);
	evbuffer_prepend_buffer(in, head);
	evbuffer_free(msg);
	evbuffer_free(head);
	log_verbose("%s: %s refused (transaction_mode_session_state = error)", client_tag(c), kind_what[k]);
}

/*
 * A Query or Parse a transaction-mode client sends (its text in q): note
 * or refuse the session state it makes.  With the extension's report and
 * pin, nothing needs reading.
 */
enum sstate_verdict
session_state_client_msg(client *c, const query_text *q, size_t off)
{
	server	   *s = c->server;
	unsigned	kinds;

	if (c->pool_mode != MODE_TRANSACTION || (s->sreport && cfg.session_state_mode == SESSION_STATE_PIN))
		return SSTATE_PASS;
	/*
	 * A refusal replaces the whole message: wait for it.  A pin needs only
	 * the text that has arrived (nearly always all of it); the rest streams
	 * through as before.
	 */
	if (q->seen < q->want && cfg.session_state_mode == SESSION_STATE_ERROR)
		return SSTATE_WAIT;
	if (!q->sql)
		return SSTATE_PASS;
	kinds = scan_kinds(q);
	if (kinds & K_DISCARD_ALL)
		s->sstate_text = 0;
	kinds &= ~K_DISCARD_ALL;
	if (!kinds)
		return SSTATE_PASS;
	if (cfg.session_state_mode == SESSION_STATE_ERROR && q->want == q->body_len)
	{
		refuse(c, off, q->type, q->name ? q->name : "", kinds);
		return SSTATE_REWRITTEN;
	}
	if (!s->sreport)
		s->sstate_text |= kinds;
	return SSTATE_PASS;
}
