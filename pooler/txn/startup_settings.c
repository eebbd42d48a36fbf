/*
 * startup_settings.c: the settings a client asks for at login beyond the
 * six that ParameterStatus tracks (strpool.h): its startup parameters
 * (statement_timeout, search_path, jit, a custom perfopt.* ...) and the
 * -c name=value / --name=value switches in its "options" parameter, the way
 * libpq sends PGOPTIONS.  Owns reading them, their canonical form, and
 * carrying them to whichever server connection the client is linked to.
 *
 * A client's settings are one interned string (names sorted, lower case),
 * so "does this server already have them" is a pointer compare: a client
 * whose server has its settings pays nothing.  Otherwise, the difference
 * travels in one Query ahead of the client's first message: RESET for what
 * the server has and the client lacks, set_config() for the rest (SET would
 * split list values like search_path's differently from a startup packet).
 * The Query runs as one implicit transaction: refused, it changes nothing,
 * so the server's record stays true.
 *
 * The first time a client's settings go to a server, its own messages wait
 * for the answer (the client is C_SETTING): a value the server refuses
 * must not let the client's statement run without it.  The client is then
 * closed with the server's error, which names the parameter; the server
 * goes back to the pool.  Once accepted, later transfers are pipelined.
 *
 * A client's own SETs join its settings the same way.  In transaction mode
 * the pooler opens its server connections with perfopt.report_settings=on:
 * where the perfopt extension is preloaded, PostgreSQL then reports every
 * user-settable setting with ParameterStatus as it changes (a placeholder
 * elsewhere, harmless).  The reports seen during a client's transaction
 * (settings_observe) are the values in force when ReadyForQuery says idle;
 * then (settings_learn) they become the client's settings and the server's
 * record at once, a value equal to the server's login default dropped.
 * SET LOCAL and a rolled-back SET are reported back to their old value
 * before that ReadyForQuery, so they are never carried.  Those extra
 * reports are PostgreSQL's to its pooler, not the client's: only the ones
 * PostgreSQL sends every client reach it.
 */
#define _GNU_SOURCE				/* strcasestr, qsort_r */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "config.h"
#include "proto.h"
#include "net/net.h"
#include "txn/txn.h"
#include "txn/query_text.h"

/* separators of the canonical form; refused inside names and values */
#define SEP_VALUE '\x1f'
#define SEP_ENTRY '\x1e'

/* ---- reading them from the startup packet ---- */

static bool
valid_name(const char *name)
{
	if (!*name || strlen(name) > 63)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			  *p == '_' || *p == '.'))
			return false;
	return true;
}

/* Add or replace name = value; NULL, or why it cannot be carried. */
const char *
setting_list_put(setting_list *l, const char *name, const char *value)
{
	char	   *lower;
	int			i;

	if (!valid_name(name))
		return "invalid configuration parameter name";
	if (strchr(value, SEP_VALUE) || strchr(value, SEP_ENTRY))
		return "control characters in the value";
	lower = strdup(name);
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	for (i = 0; i < l->n; i++)
		if (strcmp(l->names[i], lower) == 0)
			break;
	if (i == l->n)
	{
		if (l->n == l->cap)
		{
			l->cap = l->cap ? l->cap * 2 : 8;
			l->names = realloc(l->names, sizeof(char *) * l->cap);
			l->values = realloc(l->values, sizeof(char *) * l->cap);
		}
		l->names[l->n] = lower;
		l->values[l->n++] = NULL;
	}
	else
		free(lower);
	free(l->values[i]);
	l->values[i] = strdup(value);
	return NULL;
}

/* One white-space separated word of options, backslash escaping the next byte. */
static const char *
next_word(const char *p, char *word)
{
	size_t		n = 0;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
		p++;
	if (!*p)
		return NULL;
	while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v'))
	{
		if (*p == '\\' && p[1])
			p++;
		word[n++] = *p++;
	}
	word[n] = '\0';
	return p;
}

/* name=value of a -c or -- switch, dashes in the name read as underscores (as PostgreSQL does) */
static const char *
put_switch(setting_list *l, char *arg, char *why, size_t whylen)
{
	char	   *eq = strchr(arg, '=');
	const char *bad;

	if (!eq)
	{
		snprintf(why, whylen, "startup parameter \"options\": \"%s\" requires a value (name=value)", arg);
		return "42601";
	}
	*eq = '\0';
	for (char *p = arg; *p; p++)
		if (*p == '-')
			*p = '_';
	if ((bad = setting_list_put(l, arg, eq + 1)) != NULL)
	{
		snprintf(why, whylen, "startup parameter \"options\": %s: \"%s\"", bad, arg);
		return "22023";
	}
	return NULL;
}

/* The "options" parameter's switches into l: NULL, or the SQLSTATE with why set. */
const char *
startup_options_parse(const char *opts, setting_list *l, char *why, size_t whylen)
{
	char	   *word = malloc(strlen(opts) + 1);
	const char *p = opts;
	const char *code = NULL;
	bool		want_arg = false;

	while (!code && (p = next_word(p, word)) != NULL)
	{
		if (want_arg)
			want_arg = false, code = put_switch(l, word, why, whylen);
		else if (strcmp(word, "-c") == 0)
			want_arg = true;
		else if (strncmp(word, "-c", 2) == 0)
			code = put_switch(l, word + 2, why, whylen);
		else if (strncmp(word, "--", 2) == 0 && word[2])
			code = put_switch(l, word + 2, why, whylen);
		else
		{
			snprintf(why, whylen, "startup parameter \"options\": switch \"%s\" is not supported by perfopt-pooler "
					 "(it carries -c name=value and --name=value)", word);
			code = "0A000";
		}
	}
	if (!code && want_arg)
	{
		snprintf(why, whylen, "startup parameter \"options\": -c requires a value (name=value)");
		code = "42601";
	}
	free(word);
	return code;
}

static int
cmp_index(const void *a, const void *b, void *names)
{
	char	  **n = names;

	return strcmp(n[*(const int *) a], n[*(const int *) b]);
}

/* The canonical form, interned (a reference for the caller), or NULL when empty. */
pstr *
setting_list_key(setting_list *l)
{
	int		   *order;
	size_t		len = 1;
	char	   *buf,
			   *w;
	pstr	   *key;

	if (l->n == 0)
		return NULL;
	order = malloc(sizeof(int) * l->n);
	for (int i = 0; i < l->n; i++)
	{
		order[i] = i;
		len += strlen(l->names[i]) + strlen(l->values[i]) + 2;
	}
	qsort_r(order, l->n, sizeof(int), cmp_index, l->names);
	w = buf = malloc(len);
	for (int i = 0; i < l->n; i++)
		w += sprintf(w, "%s%c%s%c", l->names[order[i]], SEP_VALUE, l->values[order[i]], SEP_ENTRY);
	key = pstr_get(buf);
	free(buf);
	free(order);
	return key;
}

void
setting_list_free(setting_list *l)
{
	for (int i = 0; i < l->n; i++)
	{
		free(l->names[i]);
		free(l->values[i]);
	}
	free(l->names);
	free(l->values);
	memset(l, 0, sizeof(*l));
}

/* ---- walking the canonical form ---- */

typedef struct entry
{
	const char *next;
	const char *name;
	size_t		nlen;
	const char *val;
	size_t		vlen;
} entry;

static bool
entry_next(entry *e)
{
	const char *sep;

	if (!e->next || !*e->next)
		return false;
	e->name = e->next;
	sep = strchr(e->name, SEP_VALUE);
	e->nlen = sep - e->name;
	e->val = sep + 1;
	sep = strchr(e->val, SEP_ENTRY);
	e->vlen = sep - e->val;
	e->next = sep + 1;
	return true;
}

static void
entry_start(entry *e, const pstr *key)
{
	memset(e, 0, sizeof(*e));
	e->next = key ? key->s : NULL;
}

static int
entry_cmp(const entry *a, const entry *b)
{
	size_t		n = a->nlen < b->nlen ? a->nlen : b->nlen;
	int			r = memcmp(a->name, b->name, n);

	return r ? r : (a->nlen > b->nlen) - (a->nlen < b->nlen);
}

/* The value the client asked for name (any case), into out; false if none. */
bool
settings_value(const pstr *key, const char *name, char *out, size_t outlen)
{
	entry		e;

	entry_start(&e, key);
	while (entry_next(&e))
		if (e.nlen == strlen(name) && strncasecmp(e.name, name, e.nlen) == 0)
		{
			snprintf(out, outlen, "%.*s", (int) e.vlen, e.val);
			return true;
		}
	return false;
}

static void observed_clear(server *s);

/* ---- carrying them to a server ---- */

/* an E'' literal of n bytes of v */
static void
add_literal(struct evbuffer *q, const char *v, size_t n)
{
	evbuffer_add(q, "E'", 2);
	for (size_t i = 0; i < n; i++)
	{
		if (v[i] == '\'' || v[i] == '\\')
			evbuffer_add(q, v + i, 1);
		evbuffer_add(q, v + i, 1);
	}
	evbuffer_add(q, "'", 1);
}

/* client's entry c differs from what the server has: set it (sets counts them) */
static void
add_set(struct evbuffer *sets, int *nsets, const entry *c)
{
	evbuffer_add(sets, *nsets ? ", " : "SELECT ", *nsets ? 2 : 7);
	evbuffer_add(sets, "pg_catalog.set_config(", 22);
	add_literal(sets, c->name, c->nlen);
	evbuffer_add(sets, ", ", 2);
	add_literal(sets, c->val, c->vlen);
	evbuffer_add(sets, ", false)", 8);
	(*nsets)++;
}

/* The statements that turn the server's settings into the client's, into q. */
static void
build_difference(struct evbuffer *q, const pstr *have, const pstr *want)
{
	struct evbuffer *sets = evbuffer_new();
	entry		h,
				w;
	bool		more_h,
				more_w;
	int			nsets = 0;

	entry_start(&h, have);
	entry_start(&w, want);
	more_h = entry_next(&h);
	more_w = entry_next(&w);
	while (more_h || more_w)
	{
		int			r = !more_h ? 1 : !more_w ? -1 : entry_cmp(&h, &w);

		if (r < 0)
			evbuffer_add_printf(q, "RESET \"%.*s\"; ", (int) h.nlen, h.name);
		else if (r > 0 || h.vlen != w.vlen || memcmp(h.val, w.val, w.vlen) != 0)
			add_set(sets, &nsets, &w);
		if (r <= 0)
			more_h = entry_next(&h);
		if (r >= 0)
			more_w = entry_next(&w);
	}
	evbuffer_add_buffer(q, sets);
	evbuffer_free(sets);
}

/*
 * Linking c to s: send what s lacks of c's settings, answer swallowed.
 * True when c's messages must wait for that answer (its settings never
 * went to a server yet).
 */
bool
settings_send(server *s, client *c)
{
	struct evbuffer *q;
	size_t		n;

	c->settings_phase = SETTINGS_NONE;
	observed_clear(s);
	if (c->settings == s->settings)
		return false;
	q = evbuffer_new();
	build_difference(q, s->settings, c->settings);
	n = evbuffer_get_length(q);
	put_msg_start(s->c.out, 'Q', n + 1);
	evbuffer_add_buffer(s->c.out, q);
	evbuffer_add(s->c.out, "", 1);
	evbuffer_free(q);
	s->expect_rfq++;
	s->swallow_rfq++;
	s->settings_sent = true;
	s->settings_failed = false;
	pstr_set(&s->settings_pending, c->settings);
	free(c->settings_error);
	c->settings_error = NULL;
	if (c->settings && !c->settings_checked)
		c->settings_phase = SETTINGS_HELD;
	return c->settings_phase == SETTINGS_HELD;
}

/*
 * An ErrorResponse among the pooler's own answers: true when it answers
 * the settings Query (the last one the pooler sent ahead of the client's
 * messages), kept on the client for server_forward to act on.
 */
bool
settings_error_answer(server *s, client *c, const char *body, size_t len)
{
	const char *code = error_field(body, len, 'C');
	const char *msg = error_field(body, len, 'M');

	if (!s->settings_sent || s->swallow_rfq != 1 || s->state != S_ACTIVE)
		return false;
	s->settings_failed = true;
	log_warn("%s: startup settings refused by the server: %s", server_tag(s), msg);
	if (c && !c->settings_error)
	{
		c->settings_error = malloc(strlen(msg) + 7);
		if (c->settings_error)
			sprintf(c->settings_error, "%.5s %s", strlen(code) == 5 ? code : "22023", msg);
	}
	return true;
}

/* A ReadyForQuery among the pooler's own answers (swallow_rfq already counted down). */
void
settings_rfq(server *s, client *c)
{
	if (!s->settings_sent || s->swallow_rfq != 0)
		return;
	s->settings_sent = false;
	if (!s->settings_failed)
	{
		pstr_set(&s->settings, s->settings_pending);
		if (c)
			c->settings_checked = true;
	}
	pstr_set(&s->settings_pending, NULL);
	if (c && (c->settings_phase == SETTINGS_HELD || c->settings_error))
		c->settings_phase = SETTINGS_ANSWERED;
}

/* A full reset ran on s: DISCARD ALL or RESET ALL take the pooler's settings back too. */
void
settings_server_reset(server *s)
{
	const char *q = cfg.server_reset_query;

	if (q && (strcasestr(q, "DISCARD ALL") || strcasestr(q, "RESET ALL")))
		pstr_set(&s->settings, NULL);
}

void
settings_server_free(server *s)
{
	pstr_set(&s->settings, NULL);
	pstr_set(&s->settings_pending, NULL);
	if (s->observed)
		setting_list_free(s->observed);
	free(s->observed);
	s->observed = NULL;
}

void
settings_client_free(client *c)
{
	pstr_set(&c->settings, NULL);
	free(c->settings_error);
	c->settings_error = NULL;
}

/* ---- a client's own SETs, learned from ParameterStatus ---- */

/* an observed value meaning "back to the server's default" (never a real value) */
#define RESET_MARK "\x1d"

/*
 * What PostgreSQL 15 reports to every client (GUC_REPORT in its own
 * tables); anything else was reported because the pooler asked for it.
 */
static const char *const native_reports[] = {
	"application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
	"in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser", "server_encoding",
	"server_version", "session_authorization", "standard_conforming_strings", "TimeZone", NULL
};

/* reported, but no SET of the client's: never carried */
static const char *const not_carried[] = {
	"in_hot_standby", "integer_datetimes", "is_superuser", "server_encoding", "server_version",
	"session_authorization", "perfopt.report_settings", "perfopt.session_state",
	"perfopt.report_commit_lsn", "perfopt.commit_lsn", NULL
};

static bool
in_list(const char *const *list, const char *name)
{
	for (int i = 0; list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* A ParameterStatus the client would get from a direct connection too. */
bool
settings_reported_natively(const char *name)
{
	return in_list(native_reports, name);
}

/* The linked client's statement changed name to value (tracked_params aside). */
void
settings_observe(server *s, const char *name, const char *value)
{
	if (in_list(not_carried, name))
		return;
	if (!s->observed)
		s->observed = calloc(1, sizeof(setting_list));
	if (s->observed)
		setting_list_put(s->observed, name, value);
}

/* The server's value of name at its login, or NULL. */
static const char *
login_default(const pool *p, const char *name)
{
	for (int i = 0; i < p->nparams; i++)
		if (strcasecmp(p->pnames[i], name) == 0)
			return p->pvalues[i];
	return NULL;
}

/* key's entries into l */
static void
key_to_list(const pstr *key, setting_list *l)
{
	entry		e;
	char	   *name,
			   *val;

	entry_start(&e, key);
	while (entry_next(&e))
	{
		name = strndup(e.name, e.nlen);
		val = strndup(e.val, e.vlen);
		if (name && val)
			setting_list_put(l, name, val);
		free(name);
		free(val);
	}
}

/*
 * ReadyForQuery idle after the client's transaction: what it changed is
 * now the server's state and the client's settings, one key for both.
 */
void
settings_learn(server *s, client *c)
{
	setting_list all = {0},
				kept = {0};
	setting_list *seen = s->observed;
	pstr	   *key;

	if (!seen || seen->n == 0 || !c)
		return;
	key_to_list(s->settings, &all);
	for (int i = 0; i < seen->n; i++)
		setting_list_put(&all, seen->names[i], seen->values[i]);
	for (int i = 0; i < all.n; i++)
	{
		const char *dflt = login_default(s->pool, all.names[i]);

		if (strcmp(all.values[i], RESET_MARK) == 0)
			continue;
		if (!dflt || strcmp(dflt, all.values[i]) != 0)
			setting_list_put(&kept, all.names[i], all.values[i]);
	}
	key = setting_list_key(&kept);
	pstr_set(&s->settings, key);
	pstr_set(&c->settings, key);
	pstr_unref(key);
	setting_list_free(&all);
	setting_list_free(&kept);
	setting_list_free(seen);
	s->observed_guessed = false;
}

/* A new link starts from the server's record: nothing seen yet. */
static void
observed_clear(server *s)
{
	if (s->observed)
		setting_list_free(s->observed);
	s->observed_guessed = false;
}

/* ---- without the extension: the simplest SET and RESET statements ---- */

/*
 * A server without perfopt reports only its own few settings.  Then the
 * pooler recognises a Query that is exactly one SET or RESET of a session
 * setting, sent when nothing else of the client's is in flight and no
 * transaction is open (so it commits by itself unless it fails, and an
 * error drops it).  Only values whose text means the same to set_config()
 * are taken: plain words and numbers, a comma list of plain words, a
 * quoted word without capitals, spaces or commas.  Anything else (SET
 * LOCAL, SET ROLE, a function, a SET inside BEGIN, the extended protocol)
 * is not carried: see the README.
 */

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* a case-insensitive keyword followed by a non-word byte */
static bool
keyword(const char **p, const char *end, const char *kw)
{
	size_t		n = strlen(kw);

	if ((size_t) (end - *p) < n || strncasecmp(*p, kw, n) != 0)
		return false;
	if (*p + n < end && (isalnum((unsigned char) (*p)[n]) || (*p)[n] == '_'))
		return false;
	*p = skip_space(*p + n, end);
	return true;
}

/*
 * One plain word (letters, digits, _ . + -) into out, lower case as
 * PostgreSQL folds it unless quoted; length or 0.  In a list setting a
 * quoted capital would be folded by set_config(): refused.
 */
static size_t
plain_word(const char **p, const char *end, char *out, size_t room, bool quoted, bool list)
{
	size_t		n = 0;

	while (*p < end && n + 1 < room &&
		   (isalnum((unsigned char) **p) || strchr("_.+-", **p) || (quoted && strchr(":/", **p))))
	{
		if (quoted && list && isupper((unsigned char) **p))
			return 0;
		out[n++] = quoted ? **p : tolower((unsigned char) **p);
		(*p)++;
	}
	out[n] = '\0';
	return n;
}

/* The value list of a SET into out; false when it is not one of the simple forms. */
static bool
simple_value(const char *p, const char *end, char *out, size_t room, bool list)
{
	size_t		n = 0;
	int			items = 0;
	bool		quoted_seen = false;

	while (p < end && *p != ';')
	{
		char		word[128];
		bool		quoted = *p == '\'';

		if (items && (*p != ',' || quoted_seen))
			return false;
		if (items)
			p = skip_space(p + 1, end);
		quoted = p < end && *p == '\'';
		if (quoted)
			p++;
		if (!plain_word(&p, end, word, sizeof(word), quoted, list))
			return false;
		if (quoted && (p >= end || *p++ != '\''))
			return false;
		if (quoted && items)
			return false;
		quoted_seen |= quoted;
		n += snprintf(out + n, room - n, "%s%s", items ? ", " : "", word);
		if (n + 1 >= room)
			return false;
		items++;
		p = skip_space(p, end);
	}
	if (p < end)
		p = skip_space(p + 1, end);
	return items > 0 && p == end;
}

/* "name" then the end, or a ';' and the end */
static bool
statement_end(const char *p, const char *end)
{
	p = skip_space(p, end);
	if (p < end && *p == ';')
		p = skip_space(p + 1, end);
	return p == end;
}

/* RESET name / RESET ALL (of the client's settings, which s has or is being sent), recorded */
static bool
guess_reset(server *s, client *c, const char *p, const char *end, bool reports)
{
	char		name[64];
	entry		e;

	if (keyword(&p, end, "all") && statement_end(p, end))
	{
		entry_start(&e, c->settings);
		while (entry_next(&e))
		{
			snprintf(name, sizeof(name), "%.*s", (int) e.nlen, e.name);
			settings_observe(s, name, RESET_MARK);
		}
		return true;
	}
	if (!plain_word(&p, end, name, sizeof(name), false, false) || !statement_end(p, end) ||
		(reports && !strchr(name, '.')))
		return false;
	settings_observe(s, name, RESET_MARK);
	return true;
}

/* SET [SESSION] name {=|TO} value, recorded; false when not one */
static bool
guess_set(server *s, const char *p, const char *end, bool reports)
{
	char		name[64],
				value[512];
	bool		list;

	if (keyword(&p, end, "local"))
		return false;
	keyword(&p, end, "session");
	if (!plain_word(&p, end, name, sizeof(name), false, false) || tracked_param_index(name) >= 0 ||
		(reports && !strchr(name, '.')))
		return false;
	p = skip_space(p, end);
	if (p < end && *p == '=')
		p = skip_space(p + 1, end);
	else if (!keyword(&p, end, "to"))
		return false;
	if (keyword(&p, end, "default"))
	{
		if (!statement_end(p, end))
			return false;
		settings_observe(s, name, RESET_MARK);
		return true;
	}
	list = strcmp(name, "search_path") == 0 || strcmp(name, "temp_tablespaces") == 0 ||
		strstr(name, "preload_libraries") != NULL;
	if (!simple_value(p, end, value, sizeof(value), list))
		return false;
	settings_observe(s, name, value);
	return true;
}

/*
 * A Query the client sends in transaction mode, whole in the buffer (its
 * text in q): a simple SET or RESET is recorded as if the server had
 * reported it.
 */
void
settings_note_query(server *s, client *c, const query_text *q)
{
	const char *end = q->end;
	const char *p;
	bool		reports;

	if (q->first != QK_SET && q->first != QK_RESET)
		return;					/* the first keyword decides nearly every statement */
	if (s->expect_rfq != s->swallow_rfq || s->txstatus != 'I' || c->in_batch || c->begin_text ||
		s->begin_absorb)
		return;					/* a transaction may be open */
	p = skip_space(q->sql, end);
	if (end - p < 5 || (strncasecmp(p, "set", 3) != 0 && strncasecmp(p, "reset", 5) != 0))
		return;
	/*
	 * With the extension the server reports the SET itself, except for a
	 * custom name first seen after login (a placeholder it never marked).
	 */
	reports = login_default(s->pool, "search_path") != NULL;
	if (keyword(&p, end, "set") ? guess_set(s, p, end, reports) :
		keyword(&p, end, "reset") && guess_reset(s, c, p, end, reports))
		s->observed_guessed = true;
}

/* An error reached the client: a recognised SET did not happen. */
void
settings_error_seen(server *s)
{
	if (s->observed_guessed)
		observed_clear(s);
}
