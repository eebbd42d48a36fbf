/*
 * admin.c: the admin console, the virtual database "perfopt".  A client
 * asking for it logs in against auth_file like any other (auth_type), then
 * must be listed in admin_users (every command) or stats_users (SHOW only);
 * anyone else gets 42501 and is disconnected.  It never gets a pool or a
 * server: the pooler answers its simple-protocol queries itself with
 * RowDescription / DataRow / CommandComplete / ReadyForQuery.  Commands are
 * case-insensitive, one per query, with an optional trailing semicolon:
 *
 *   SHOW POOLS | CLIENTS | SERVERS | STATS | TOTALS | DATABASES | CONFIG | VERSION | HELP
 *   RELOAD   PAUSE [db]   RESUME [db]   SHUTDOWN [WAIT_FOR_SERVERS]
 *
 * Column names follow PgBouncer's where the concept is the same.  Unknown
 * commands get 42601, the extended query protocol 0A000; either way the
 * session goes on.  The SHOW commands are admin_show.c; the commands that
 * change the pooler are the table below.  client.c knows the console only
 * through admin_console, the operations it calls for a client of it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "proto.h"
#include "client.h"
#include "net/net.h"
#include "ops/ops.h"

#define MAX_QUERY 1024

static bool
in_list(const char *list, const char *name)
{
	size_t		n = strlen(name);
	const char *p = list;

	while (p && *p)
	{
		const char *e;

		while (*p == ',' || isspace((unsigned char) *p))
			p++;
		for (e = p; *e && *e != ',' && !isspace((unsigned char) *e); e++)
			;
		if ((size_t) (e - p) == n && n > 0 && strncmp(p, name, n) == 0)
			return true;
		p = e;
	}
	return false;
}

/* Authenticated for database "perfopt": may this user use the console? */
static bool
admin_login(client *c)
{
	if (in_list(cfg.admin_users, c->user))
		c->admin = ADMIN_FULL;
	else if (in_list(cfg.stats_users, c->user))
		c->admin = ADMIN_STATS;
	else
	{
		log_info("%s: admin console refused: not in admin_users or stats_users", client_tag(c));
		client_fail(c, "42501", "permission denied: user \"%s\" is not in admin_users or stats_users",
					c->user);
		return false;
	}
	log_info("%s: admin console login (%s)", client_tag(c),
			 c->admin == ADMIN_FULL ? "admin_users" : "stats_users: SHOW only");
	return true;
}

static void
admin_send_params(client *c)
{
	struct evbuffer *b = conn_out(&c->c);
	pstr	   *app = c->startup_params[P_APPNAME];

	/* libpq reads the leading number, 1.0.0; the suffix names what answers */
	send_param_status(b, "server_version", POOLER_VERSION "/perfopt-pooler");
	send_param_status(b, "server_encoding", "UTF8");
	send_param_status(b, "client_encoding", "UTF8");
	send_param_status(b, "DateStyle", "ISO, MDY");
	send_param_status(b, "IntervalStyle", "postgres");
	send_param_status(b, "integer_datetimes", "on");
	send_param_status(b, "standard_conforming_strings", "on");
	send_param_status(b, "application_name", app ? app->s : "");
}

/* ---- commands ---- */

static void
admin_error(client *c, const char *sqlstate, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
admin_error(client *c, const char *sqlstate, const char *fmt, ...)
{
	char		msg[700];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_error(conn_out(&c->c), "ERROR", sqlstate, "%s", msg);
}

/* Split into at most `max` words ("double quoted" ones keep their case and spaces). */
static int
split(char *q, char **words, int max)
{
	int			n = 0;
	char	   *p = q;

	while (*p)
	{
		while (isspace((unsigned char) *p))
			p++;
		if (!*p)
			break;
		if (n == max)
			return max + 1;
		if (*p == '"')
		{
			char	   *o = ++p;

			words[n++] = o;
			while (*p && !(*p == '"' && p[1] != '"'))
			{
				if (*p == '"')
					p++;
				*o++ = *p++;
			}
			if (*p != '"')
				return -1;
			p++;
			*o = '\0';
			if (*p && !isspace((unsigned char) *p))
				return -1;
			continue;
		}
		words[n++] = p;
		while (*p && !isspace((unsigned char) *p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static void admin_done(client *c, const char *tag, const char *sqlstate, const char *msg);

/*
 * The commands that act on the pooler.  Each takes the words of the query
 * (w[0] its own name, n of them) and returns false when they are none of
 * its forms.  `full`: admin_users only (stats_users may only SHOW).
 */
typedef struct admin_command
{
	const char *name;
	bool		full;
	bool		(*run) (client *c, char **w, int n);
} admin_command;

static bool
cmd_show(client *c, char **w, int n)
{
	if (n != 2)
		return false;
	if (!admin_show(c, w[1]))
		admin_error(c, "42601", "unknown SHOW \"%s\": try SHOW HELP", w[1]);
	return true;
}

static bool
cmd_reload(client *c, char **w, int n)
{
	char		err[600];

	if (n != 1)
		return false;
	log_info("%s: RELOAD", client_tag(c));
	if (config_reload(err, sizeof(err)) < 0)
		admin_error(c, "F0000", "RELOAD failed, the running configuration is kept: %s", err);
	else
		send_complete(conn_out(&c->c), "RELOAD");
	return true;
}

static bool
cmd_pause(client *c, char **w, int n)
{
	char		err[600];
	int			rc;

	if (n != 1 && n != 2)
		return false;
	log_info("%s: PAUSE %s", client_tag(c), n == 2 ? w[1] : "");
	rc = lifecycle_pause(n == 2 ? w[1] : NULL, c, admin_done, err, sizeof(err));
	if (rc < 0)
		admin_error(c, rc == -1 ? "3D000" : "55000", "%s", err);
	else if (rc == 0)
		send_complete(conn_out(&c->c), "PAUSE");
	else
		c->admin |= ADMIN_WAITING;	/* admin_done answers */
	return true;
}

static bool
cmd_resume(client *c, char **w, int n)
{
	char		err[600];

	if (n != 1 && n != 2)
		return false;
	log_info("%s: RESUME %s", client_tag(c), n == 2 ? w[1] : "");
	if (lifecycle_resume(n == 2 ? w[1] : NULL, err, sizeof(err)) < 0)
		admin_error(c, "55000", "%s", err);
	else
		send_complete(conn_out(&c->c), "RESUME");
	return true;
}

static bool
cmd_shutdown(client *c, char **w, int n)
{
	if (n != 1 && !(n == 2 && strcasecmp(w[1], "WAIT_FOR_SERVERS") == 0))
		return false;
	log_info("%s: SHUTDOWN %s", client_tag(c), n == 2 ? w[1] : "");
	send_complete(conn_out(&c->c), "SHUTDOWN");
	lifecycle_shutdown(n == 1);
	return true;
}

static const admin_command commands[] = {
	{"SHOW", false, cmd_show},
	{"RELOAD", true, cmd_reload},
	{"PAUSE", true, cmd_pause},
	{"RESUME", true, cmd_resume},
	{"SHUTDOWN", true, cmd_shutdown},
};

static void
run_command(client *c, char *q)
{
	char	   *w[4];
	int			n = split(q, w, 3);
	const admin_command *cmd = NULL;

	if (n < 0)
	{
		admin_error(c, "42601", "unterminated quoted name");
		return;
	}
	if (n == 0)
	{
		put_msg_start(conn_out(&c->c), 'I', 0);	/* EmptyQueryResponse */
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcasecmp(w[0], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
	{
		admin_error(c, "42601", "unknown command \"%s\" (the admin console knows SHOW, RELOAD, PAUSE, RESUME, SHUTDOWN: try SHOW HELP)",
					w[0]);
		return;
	}
	if (cmd->full && (c->admin & ADMIN_LEVEL) != ADMIN_FULL)
	{
		admin_error(c, "42501", "permission denied: %s needs a user in admin_users (stats_users may only SHOW)",
					w[0]);
		return;
	}
	if (!cmd->run(c, w, n))
		admin_error(c, "42601", "syntax error in %s: the forms are SHOW <name>, RELOAD, PAUSE [db], RESUME [db], SHUTDOWN [WAIT_FOR_SERVERS]",
					w[0]);
}

/* One Query message: the text, trimmed and without its trailing semicolons. */
static void
run_query(client *c, const unsigned char *body, size_t len)
{
	char		q[MAX_QUERY];
	size_t		n = strnlen((const char *) body, len);
	char	   *p,
			   *e;

	if (n >= sizeof(q))
	{
		admin_error(c, "42601", "command too long for the admin console");
		return;
	}
	memcpy(q, body, n);
	q[n] = '\0';
	p = q;
	while (isspace((unsigned char) *p))
		p++;
	e = p + strlen(p);
	while (e > p && (isspace((unsigned char) e[-1]) || e[-1] == ';'))
		*--e = '\0';
	if (strchr(p, ';'))
	{
		admin_error(c, "42601", "the admin console takes one command per query");
		return;
	}
	run_command(c, p);
}

/*
 * Complete messages from an admin client.  Simple queries are answered;
 * Parse/Bind/Describe/Execute/Close get one 0A000 and are skipped until
 * Sync, which gets ReadyForQuery, as a server does after an error.
 */
static int
admin_process(client *c)
{
	unsigned char hdr[5];
	struct evbuffer *out = conn_out(&c->c);

	while (!(c->admin & ADMIN_WAITING) && c->state == C_IDLE && conn_peek(c->c.in, 0, hdr, 5))
	{
		uint32_t	len = get_u32(hdr + 1);
		const unsigned char *body;

		if (len < 4 || len > (uint32_t) cfg.max_packet_size)
		{
			client_fail(c, "08P01", "invalid message length %u", len);
			return 0;
		}
		if (buflen(c->c.in) < len + 1)
			break;
		body = evbuffer_pullup(c->c.in, len + 1) + 5;
		switch (hdr[0])
		{
			case 'X':
				return -1;
			case 'Q':
				if (c->admin & ADMIN_SKIP)
					break;
				run_query(c, body, len - 4);
				if (!(c->admin & ADMIN_WAITING))
					send_rfq(out, 'I');
				break;
			case 'S':
				c->admin &= ~ADMIN_SKIP;
				send_rfq(out, 'I');
				break;
			case 'H':
			case 'd':
			case 'c':
			case 'f':
				break;
			case 'F':
				admin_error(c, "0A000", "function calls are not supported by the admin console");
				send_rfq(out, 'I');
				break;
			case 'P':
			case 'B':
			case 'D':
			case 'E':
			case 'C':
				if (!(c->admin & ADMIN_SKIP))
					admin_error(c, "0A000", "the admin console speaks the simple query protocol only (psql; psycopg2 with autocommit)");
				c->admin |= ADMIN_SKIP;
				break;
			default:
				client_fail(c, "08P01", "invalid frontend message type %d", hdr[0]);
				return 0;
		}
		evbuffer_drain(c->c.in, len + 1);
	}
	conn_flush(&c->c);
	if (!(c->admin & ADMIN_WAITING))
		conn_park(&c->c);
	return 0;
}

static void
kick_cb(evutil_socket_t fd, short ev, void *arg)
{
	uint32_t	id = (uint32_t) (uintptr_t) arg;
	client	   *c;

	TAILQ_FOREACH(c, &all_clients, link)
		if (c->id == id)
	{
		client_kick(c);
		break;
	}
}

/* A PAUSE that waited is over: its answer, then whatever the client sent meanwhile. */
static void
admin_done(client *c, const char *tag, const char *sqlstate, const char *msg)
{
	struct timeval now = {0, 0};

	c->admin &= ~ADMIN_WAITING;
	if (c->state == C_CLOSING)
		return;
	if (tag)
		send_complete(conn_out(&c->c), tag);
	else
		send_error(conn_out(&c->c), "ERROR", sqlstate, "%s", msg);
	send_rfq(conn_out(&c->c), 'I');
	conn_flush(&c->c);
	/* later, from the loop: the caller may be walking a list this could change */
	if (buflen(c->c.in) > 0)
		event_base_once(base, -1, EV_TIMEOUT, kick_cb, (void *) (uintptr_t) c->id, &now);
}

/* A console client is freed: a PAUSE it waits for answers nobody. */
static void
admin_gone(client *c)
{
	lifecycle_client_gone(c);
}

const console_ops admin_console = {
	.login = admin_login,
	.send_params = admin_send_params,
	.process = admin_process,
	.gone = admin_gone,
};
