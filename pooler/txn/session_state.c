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
#define _GNU_SOURCE
#include <ctype.h>
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

/* the kinds, in the order perfopt.session_state lists them */
enum { K_TEMP = 1, K_ADVISORY = 2, K_LISTEN = 4, K_PREPARED = 8, K_CURSOR = 16, NKINDS = 5 };
#define K_DISCARD_ALL 0x80		/* not a kind: the statement that drops them all */

static const char *const kind_names[NKINDS] = {"temp", "advisory", "listen", "prepared", "cursor"};
static const char *const kind_what[NKINDS] = {
	"a temp table", "a session advisory lock", "LISTEN", "SQL PREPARE", "a WITH HOLD cursor"
};

/* the text looked at in one message: statements that make state start short */
#define SCAN_MAX 8192

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

/* Past white space and comments. */
static const char *
skip_space(const char *p)
{
	for (;;)
	{
		while (isspace((unsigned char) *p))
			p++;
		if (p[0] == '-' && p[1] == '-')
			p += strcspn(p, "\n");
		else if (p[0] == '/' && p[1] == '*')
		{
			const char *e = strstr(p + 2, "*/");

			p = e ? e + 2 : p + strlen(p);
		}
		else
			return p;
	}
}

/* If the text at p is the keyword w, the text after it; else NULL. */
static const char *
keyword(const char *p, const char *w)
{
	size_t		n = strlen(w);

	if (strncasecmp(p, w, n) != 0 || isalnum((unsigned char) p[n]) || p[n] == '_')
		return NULL;
	return skip_space(p + n);
}

/* The kind of state one statement (at its first keyword) makes. */
static unsigned
statement_kind(const char *p)
{
	const char *q;

	if (keyword(p, "LISTEN"))
		return K_LISTEN;
	if ((q = keyword(p, "PREPARE")) != NULL)
		return keyword(q, "TRANSACTION") ? 0 : K_PREPARED;
	if (keyword(p, "DECLARE"))
		return strcasestr(p, "WITH HOLD") ? K_CURSOR : 0;
	if ((q = keyword(p, "DISCARD")) != NULL)
		return keyword(q, "ALL") ? K_DISCARD_ALL : 0;
	if ((q = keyword(p, "CREATE")) == NULL)
		return 0;
	if (keyword(q, "OR"))
		q = keyword(keyword(q, "OR"), "REPLACE");
	if (q && (keyword(q, "GLOBAL") || keyword(q, "LOCAL")))
		q = keyword(q, "GLOBAL") ? keyword(q, "GLOBAL") : keyword(q, "LOCAL");
	return q && (keyword(q, "TEMP") || keyword(q, "TEMPORARY")) ? K_TEMP : 0;
}

/*
 * Every statement of the text, naively split at semicolons (a semicolon
 * in a literal only makes a needless pin), and the advisory lock functions
 * anywhere in it.
 */
static unsigned
scan_kinds(const char *text)
{
	unsigned	kinds = 0;

	if (strcasestr(text, "pg_advisory_lock") || strcasestr(text, "pg_try_advisory_lock"))
		kinds |= K_ADVISORY;
	for (const char *p = text; p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL)
		kinds |= statement_kind(skip_space(p));
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
	evbuffer_remove_buffer(in, head, off);
	evbuffer_drain(in, 1);
	if (conn_peek(in, 0, &len, 4))
		evbuffer_drain(in, ntohl(len));
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
	evbuffer_prepend_buffer(in, msg);
	evbuffer_prepend_buffer(in, head);
	evbuffer_free(msg);
	evbuffer_free(head);
	log_verbose("%s: %s refused (transaction_mode_session_state = error)", client_tag(c), kind_what[k]);
}

/*
 * A Query or Parse a transaction-mode client sends: note or refuse the
 * session state it makes.  With the extension's report and pin, nothing
 * needs reading.
 */
enum sstate_verdict
session_state_client_msg(client *c, const bufview *in, size_t off, const unsigned char *hdr, uint32_t len)
{
	server	   *s = c->server;
	size_t		body = len - 4,
				n = body < SCAN_MAX ? body : SCAN_MAX;
	char		text[SCAN_MAX + 1];
	const char *query = text;
	unsigned	kinds;

	if (c->pool_mode != MODE_TRANSACTION || (s->sreport && cfg.session_state_mode == SESSION_STATE_PIN))
		return SSTATE_PASS;
	/*
	 * A refusal replaces the whole message: wait for it.  A pin needs only
	 * the text that has arrived (nearly always all of it); the rest streams
	 * through as before.
	 */
	if (in->len - off < 5 + n)
	{
		if (cfg.session_state_mode == SESSION_STATE_ERROR)
			return SSTATE_WAIT;
		n = in->len - off - 5;
	}
	bufview_peek(in, off + 5, text, n);
	text[n] = '\0';
	if (hdr[0] == 'P')
	{
		query = text + strnlen(text, n) + 1;	/* past the statement name */
		if (query > text + n)
			return SSTATE_PASS;
	}
	kinds = scan_kinds(query);
	if (kinds & K_DISCARD_ALL)
		s->sstate_text = 0;
	kinds &= ~K_DISCARD_ALL;
	if (!kinds)
		return SSTATE_PASS;
	if (cfg.session_state_mode == SESSION_STATE_ERROR && n == body)
	{
		refuse(c, off, (char) hdr[0], text, kinds);
		return SSTATE_REWRITTEN;
	}
	if (!s->sreport)
		s->sstate_text |= kinds;
	return SSTATE_PASS;
}
