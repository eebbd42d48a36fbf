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
 * session goes on.
 */
#define _GNU_SOURCE				/* struct ucred */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "pooler.h"

#define INT8OID 20
#define TEXTOID 25
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
bool
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

void
admin_send_params(client *c)
{
	struct evbuffer *b = conn_out(&c->c);
	pstr	   *app = c->startup_params[P_APPNAME];

	/* libpq reads the version as 1.0.0, as it reads PgBouncer's "1.21.0/bouncer" */
	send_param_status(b, "server_version", POOLER_VERSION "/perfopt-pooler");
	send_param_status(b, "server_encoding", "UTF8");
	send_param_status(b, "client_encoding", "UTF8");
	send_param_status(b, "DateStyle", "ISO, MDY");
	send_param_status(b, "IntervalStyle", "postgres");
	send_param_status(b, "integer_datetimes", "on");
	send_param_status(b, "standard_conforming_strings", "on");
	send_param_status(b, "application_name", app ? app->s : "");
}

/* ---- result sets ---- */

typedef struct result
{
	struct evbuffer *out;
	struct evbuffer *row;
	int			ncols;
	int			nfields;		/* in the row being built */
	int			nrows;
} result;

static void
put16(struct evbuffer *b, int v)
{
	uint16_t	n = htons((uint16_t) v);

	evbuffer_add(b, &n, 2);
}

static void
put32(struct evbuffer *b, int32_t v)
{
	uint32_t	n = htonl((uint32_t) v);

	evbuffer_add(b, &n, 4);
}

/* types: one letter per column, 'i' int8 or 't' text */
static void
rs_begin(result *r, client *c, const char *const *cols, const char *types)
{
	struct evbuffer *d = evbuffer_new();
	int			n = (int) strlen(types);

	r->out = conn_out(&c->c);
	r->row = evbuffer_new();
	r->ncols = n;
	r->nfields = 0;
	r->nrows = 0;
	put16(d, n);
	for (int i = 0; i < n; i++)
	{
		evbuffer_add(d, cols[i], strlen(cols[i]) + 1);
		put32(d, 0);			/* table */
		put16(d, 0);			/* column */
		put32(d, types[i] == 'i' ? INT8OID : TEXTOID);
		put16(d, types[i] == 'i' ? 8 : -1);
		put32(d, -1);			/* typmod */
		put16(d, 0);			/* text format */
	}
	put_msg_start(r->out, 'T', evbuffer_get_length(d));
	evbuffer_add_buffer(r->out, d);
	evbuffer_free(d);
}

static void
rs_text(result *r, const char *v)
{
	if (!v)
		put32(r->row, -1);
	else
	{
		put32(r->row, (int32_t) strlen(v));
		evbuffer_add(r->row, v, strlen(v));
	}
	r->nfields++;
}

static void
rs_int(result *r, long long v)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%lld", v);
	rs_text(r, buf);
}

static void
rs_end_row(result *r)
{
	put_msg_start(r->out, 'D', 2 + evbuffer_get_length(r->row));
	put16(r->out, r->nfields);
	evbuffer_add_buffer(r->out, r->row);
	r->nfields = 0;
	r->nrows++;
}

static void
send_complete(struct evbuffer *b, const char *tag)
{
	put_msg_start(b, 'C', strlen(tag) + 1);
	evbuffer_add(b, tag, strlen(tag) + 1);
}

static void
rs_done(result *r)
{
	send_complete(r->out, "SHOW");
	evbuffer_free(r->row);
}

/* A monotonic instant as local wall-clock time, PgBouncer's format. */
static const char *
wall(double mono, char *buf, size_t len)
{
	struct timeval tv;
	struct tm	tm;
	time_t		t;

	gettimeofday(&tv, NULL);
	t = (time_t) (tv.tv_sec + tv.tv_usec / 1e6 - (now_mono() - mono));
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm);
	return buf;
}

static long long
usec(double seconds)
{
	return (long long) (seconds * 1e6 + 0.5);
}

/* ---- SHOW ---- */

static void
show_pools(client *ac)
{
	static const char *const cols[] = {
		"database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_tested", "sv_login",
		"maxwait", "maxwait_us", "pool_mode", "sv_overflow", "paused", "waits", "wait_p95_us",
		"recycled", "pre_ping_failures"
	};
	result		r;
	double		now = now_mono();

	rs_begin(&r, ac, cols, "ttiiiiiiiitiiiiii");
	for (pool *p = pools; p; p = p->next)
	{
		int			cl_active = 0,
					cl_waiting = 0,
					sv_active = 0,
					sv_idle = 0,
					sv_tested = 0,
					sv_login = 0;
		double		maxwait = 0;
		client	   *c;
		server	   *s;

		TAILQ_FOREACH(c, &all_clients, link)
		{
			if (c->pool != p)
				continue;
			/* a client canceled in the queue drops its request: not waiting any more */
			if (c->state == C_IDLE || c->state == C_ACTIVE || c->state == C_DISCARDING)
				cl_active++;
			else if (c->state == C_WAITING || c->state == C_LOGIN_WAIT)
				cl_waiting++;
		}
		TAILQ_FOREACH(s, &p->servers, link)
		{
			if (s->state == S_ACTIVE)
				sv_active++;
			else if (s->state == S_IDLE)
				sv_idle++;
			else if (s->state == S_RESETTING || s->state == S_CANCELING)
				sv_tested++;
			else if (s->state == S_CONNECTING || s->state == S_LOGIN)
				sv_login++;
		}
		if ((c = TAILQ_FIRST(&p->waiting)) != NULL)
			maxwait = now - c->wait_start;
		if ((c = TAILQ_FIRST(&p->login_wait)) != NULL && now - c->connected > maxwait)
			maxwait = now - c->connected;
		rs_text(&r, p->dbname);
		rs_text(&r, p->user);
		rs_int(&r, cl_active);
		rs_int(&r, cl_waiting);
		rs_int(&r, sv_active);
		rs_int(&r, sv_idle);
		rs_int(&r, sv_tested);
		rs_int(&r, sv_login);
		rs_int(&r, (long long) maxwait);
		rs_int(&r, usec(maxwait) % 1000000);
		rs_text(&r, p->ps->pool_mode == MODE_SESSION ? "session" : "transaction");
		rs_int(&r, p->n_servers > p->ps->pool_size ? p->n_servers - p->ps->pool_size : 0);
		rs_int(&r, p->paused);
		rs_int(&r, (long long) p->st.waits);
		rs_int(&r, usec(stats_wait_percentile(&p->st, 0.95)));
		rs_int(&r, (long long) p->st.recycled);
		rs_int(&r, (long long) p->st.ping_failures);
		rs_end_row(&r);
	}
	rs_done(&r);
}

static const char *const conn_cols[] = {
	"type", "user", "database", "state", "addr", "port", "local_addr", "local_port", "connect_time",
	"request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid", "application_name"
};

static void
addr_cols(result *r, int fd)
{
	char		a[64];
	int			port;

	sock_addr(fd, false, a, sizeof(a), &port);
	rs_text(r, a);
	rs_int(r, port);
}

static void
show_clients(client *ac)
{
	result		r;
	client	   *c;
	double		now = now_mono();
	char		t1[64],
				t2[64],
				id[16],
				link[16],
				a[64];

	rs_begin(&r, ac, conn_cols, "ttttti" "ti" "tt" "iii" "tti" "t");
	TAILQ_FOREACH(c, &all_clients, link)
	{
		const char *state;
		double		w = c->state == C_WAITING ? now - c->wait_start : 0;
		int			port;
		pid_t		pid = 0;
		struct ucred cr;
		socklen_t	crl = sizeof(cr);
		pstr	   *app = c->params[P_APPNAME] ? c->params[P_APPNAME] : c->startup_params[P_APPNAME];

		switch (c->state)
		{
			case C_IDLE:
				state = c->begin_text ? "idle in transaction" : "idle";
				break;
			case C_WAITING:
				state = "waiting";
				break;
			case C_ACTIVE:
				state = "active";
				break;
			case C_CLOSING:
				state = "closing";
				break;
			case C_DISCARDING:
				state = "canceled";
				break;
			default:
				state = "login";
				break;
		}
		sock_addr(c->c.fd, true, a, sizeof(a), &port);
		if (port == 0 && c->c.fd >= 0 &&
			getsockopt(c->c.fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0)
			pid = cr.pid;
		snprintf(id, sizeof(id), "C-%u", c->id);
		if (c->server)
			snprintf(link, sizeof(link), "S-%u", c->server->id);
		rs_text(&r, "C");
		rs_text(&r, c->user);
		rs_text(&r, c->dbname);
		rs_text(&r, state);
		rs_text(&r, a);
		rs_int(&r, port);
		addr_cols(&r, c->c.fd);
		rs_text(&r, wall(c->connected, t1, sizeof(t1)));
		rs_text(&r, wall(c->wait_start > 0 ? c->wait_start : c->connected, t2, sizeof(t2)));
		rs_int(&r, (long long) w);
		rs_int(&r, usec(w) % 1000000);
		rs_int(&r, 0);
		rs_text(&r, id);
		rs_text(&r, c->server ? link : NULL);
		rs_int(&r, pid);
		rs_text(&r, app ? app->s : NULL);
		rs_end_row(&r);
	}
	rs_done(&r);
}

static void
show_servers(client *ac)
{
	result		r;
	char		t1[64],
				t2[64],
				id[16],
				link[16];

	rs_begin(&r, ac, conn_cols, "ttttti" "ti" "tt" "iii" "tti" "t");
	for (pool *p = pools; p; p = p->next)
	{
		server	   *s;

		TAILQ_FOREACH(s, &p->servers, link)
		{
			const char *state = s->state == S_ACTIVE ? "active" : s->state == S_IDLE ? "idle" :
				s->state == S_RESETTING ? "reset" : s->state == S_CANCELING ? "canceling" : "login";

			snprintf(id, sizeof(id), "S-%u", s->id);
			if (s->client)
				snprintf(link, sizeof(link), "C-%u", s->client->id);
			rs_text(&r, "S");
			rs_text(&r, p->server_user);
			rs_text(&r, p->dbname);
			rs_text(&r, state);
			rs_text(&r, p->db->host);
			rs_int(&r, p->db->port);
			addr_cols(&r, s->c.fd);
			rs_text(&r, wall(s->created, t1, sizeof(t1)));
			rs_text(&r, wall(s->last_used, t2, sizeof(t2)));
			rs_int(&r, 0);
			rs_int(&r, 0);
			rs_int(&r, s->close_needed || p->db->removed);
			rs_text(&r, id);
			rs_text(&r, s->client ? link : NULL);
			rs_int(&r, s->be_pid);
			rs_text(&r, s->params[P_APPNAME] ? s->params[P_APPNAME]->s : NULL);
			rs_end_row(&r);
		}
	}
	rs_done(&r);
}

static const char *const stats_cols[] = {
	"total_xact_count", "total_query_count", "total_received", "total_sent", "total_wait_time",
	"waits", "wait_p95_us", "max_wait_us", "pool_timeouts", "recycled", "pre_ping_failures",
	"connect_failures", "servers_opened"
};
#define NSTATS (int) (sizeof(stats_cols) / sizeof(stats_cols[0]))

static void
stats_values(const pool_stats *st, long long v[NSTATS])
{
	v[0] = (long long) st->xacts;
	v[1] = (long long) st->queries;
	v[2] = (long long) st->bytes_in;
	v[3] = (long long) st->bytes_out;
	v[4] = usec(st->wait_time);
	v[5] = (long long) st->waits;
	v[6] = usec(stats_wait_percentile(st, 0.95));
	v[7] = usec(st->max_wait);
	v[8] = (long long) st->timeouts;
	v[9] = (long long) st->recycled;
	v[10] = (long long) st->ping_failures;
	v[11] = (long long) st->connect_failures;
	v[12] = (long long) st->servers_opened;
}

/* PgBouncer's SHOW STATS: one row per database (its pools added up). */
static void
show_stats(client *ac)
{
	const char *cols[NSTATS + 1];
	char		types[NSTATS + 2];
	result		r;
	long long	v[NSTATS];

	cols[0] = "database";
	types[0] = 't';
	for (int i = 0; i < NSTATS; i++)
	{
		cols[i + 1] = stats_cols[i];
		types[i + 1] = 'i';
	}
	types[NSTATS + 1] = '\0';
	rs_begin(&r, ac, cols, types);
	for (pool *p = pools; p; p = p->next)
	{
		pool_stats *sum;
		bool		seen = false;

		for (pool *q = pools; q != p && !seen; q = q->next)
			seen = strcmp(q->dbname, p->dbname) == 0;
		if (seen)
			continue;
		sum = calloc(1, sizeof(*sum));
		for (pool *q = p; q; q = q->next)
			if (strcmp(q->dbname, p->dbname) == 0)
				stats_add(sum, &q->st);
		stats_values(sum, v);
		free(sum);
		rs_text(&r, p->dbname);
		for (int i = 0; i < NSTATS; i++)
			rs_int(&r, v[i]);
		rs_end_row(&r);
	}
	rs_done(&r);
}

/* Every pool ever, removed ones included: name / value rows like PgBouncer's SHOW TOTALS. */
static void
show_totals(client *ac)
{
	static const char *const cols[] = {"name", "value"};
	pool_stats *sum = calloc(1, sizeof(*sum));
	result		r;
	long long	v[NSTATS];

	stats_add(sum, &stats_removed);
	for (pool *p = pools; p; p = p->next)
		stats_add(sum, &p->st);
	stats_values(sum, v);
	free(sum);
	rs_begin(&r, ac, cols, "ti");
	for (int i = 0; i < NSTATS; i++)
	{
		rs_text(&r, stats_cols[i]);
		rs_int(&r, v[i]);
		rs_end_row(&r);
	}
	rs_done(&r);
}

static void
show_databases(client *ac)
{
	static const char *const cols[] = {
		"name", "host", "port", "database", "force_user", "pool_size", "max_overflow", "min_pool_size",
		"pool_mode", "pool_timeout", "current_connections", "paused"
	};
	result		r;

	rs_begin(&r, ac, cols, "ttittiiittii");
	for (database *db = cfg.databases; db; db = db->next)
	{
		int			n = 0;
		char		t[32];

		for (pool *p = pools; p; p = p->next)
			if (p->db == db)
				n += p->n_servers;
		snprintf(t, sizeof(t), "%g", db->ps.pool_timeout);
		rs_text(&r, db->name);
		rs_text(&r, db->host);
		rs_int(&r, db->port);
		rs_text(&r, db->dbname);
		rs_text(&r, db->user);
		rs_int(&r, db->ps.pool_size);
		rs_int(&r, db->ps.max_overflow);
		rs_int(&r, db->ps.min_pool_size);
		rs_text(&r, db->ps.pool_mode == MODE_SESSION ? "session" : "transaction");
		rs_text(&r, t);
		rs_int(&r, n);
		rs_int(&r, lifecycle_db_paused(db->name));
		rs_end_row(&r);
	}
	rs_done(&r);
}

static void
config_row(void *arg, const char *key, const char *value, const char *dflt, bool changeable)
{
	result	   *r = arg;

	rs_text(r, key);
	rs_text(r, value);
	rs_text(r, dflt);
	rs_text(r, changeable ? "yes" : "no");
	rs_end_row(r);
}

static void
show_config(client *ac)
{
	static const char *const cols[] = {"key", "value", "default", "changeable"};
	result		r;

	rs_begin(&r, ac, cols, "tttt");
	config_show(config_row, &r);
	rs_done(&r);
}

static void
show_version(client *ac)
{
	static const char *const cols[] = {"version"};
	result		r;

	rs_begin(&r, ac, cols, "t");
	rs_text(&r, "perfopt-pooler " POOLER_VERSION);
	rs_end_row(&r);
	rs_done(&r);
}

static void
show_help(client *ac)
{
	static const char *const cols[] = {"command", "description"};
	static const char *const rows[][2] = {
		{"SHOW POOLS", "one row per (database, user) pool: clients, servers, waits"},
		{"SHOW CLIENTS", "one row per client connection"},
		{"SHOW SERVERS", "one row per server connection"},
		{"SHOW STATS", "counters per database"},
		{"SHOW TOTALS", "counters of every pool, removed ones included"},
		{"SHOW DATABASES", "the [databases] entries in effect"},
		{"SHOW CONFIG", "every [pooler] setting: value, default, changeable by RELOAD"},
		{"SHOW VERSION", "the pooler's version"},
		{"RELOAD", "read the configuration file and auth_file again"},
		{"PAUSE [db]", "close server connections as they are released; hold new transactions"},
		{"RESUME [db]", "end a PAUSE"},
		{"SHUTDOWN [WAIT_FOR_SERVERS]", "exit now, or once running transactions are done"},
	};
	result		r;

	rs_begin(&r, ac, cols, "tt");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
	{
		rs_text(&r, rows[i][0]);
		rs_text(&r, rows[i][1]);
		rs_end_row(&r);
	}
	rs_done(&r);
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

static void
run_command(client *c, char *q)
{
	struct evbuffer *out = conn_out(&c->c);
	char	   *w[4],
				err[600];
	int			n = split(q, w, 3),
				rc;
	bool		full = (c->admin & ADMIN_LEVEL) == ADMIN_FULL;

	if (n < 0)
	{
		admin_error(c, "42601", "unterminated quoted name");
		return;
	}
	if (n >= 1 && strcasecmp(w[0], "SHOW") == 0 && n == 2)
	{
		static const struct
		{
			const char *name;
			void		(*fn) (client *);
		}			shows[] = {
			{"POOLS", show_pools}, {"CLIENTS", show_clients}, {"SERVERS", show_servers},
			{"STATS", show_stats}, {"TOTALS", show_totals}, {"DATABASES", show_databases},
			{"CONFIG", show_config}, {"VERSION", show_version}, {"HELP", show_help},
		};

		for (size_t i = 0; i < sizeof(shows) / sizeof(shows[0]); i++)
			if (strcasecmp(w[1], shows[i].name) == 0)
			{
				shows[i].fn(c);
				return;
			}
		admin_error(c, "42601", "unknown SHOW \"%s\": try SHOW HELP", w[1]);
		return;
	}
	if (n >= 1 && (strcasecmp(w[0], "RELOAD") == 0 || strcasecmp(w[0], "PAUSE") == 0 ||
				   strcasecmp(w[0], "RESUME") == 0 || strcasecmp(w[0], "SHUTDOWN") == 0) && !full)
	{
		admin_error(c, "42501", "permission denied: %s needs a user in admin_users (stats_users may only SHOW)",
					w[0]);
		return;
	}
	if (n == 1 && strcasecmp(w[0], "RELOAD") == 0)
	{
		log_info("%s: RELOAD", client_tag(c));
		if (config_reload(err, sizeof(err)) < 0)
			admin_error(c, "F0000", "RELOAD failed, the running configuration is kept: %s", err);
		else
			send_complete(out, "RELOAD");
		return;
	}
	if ((n == 1 || n == 2) && strcasecmp(w[0], "PAUSE") == 0)
	{
		log_info("%s: PAUSE %s", client_tag(c), n == 2 ? w[1] : "");
		rc = lifecycle_pause(n == 2 ? w[1] : NULL, c, err, sizeof(err));
		if (rc < 0)
			admin_error(c, rc == -1 ? "3D000" : "55000", "%s", err);
		else if (rc == 0)
			send_complete(out, "PAUSE");
		else
			c->admin |= ADMIN_WAITING;	/* admin_done answers */
		return;
	}
	if ((n == 1 || n == 2) && strcasecmp(w[0], "RESUME") == 0)
	{
		log_info("%s: RESUME %s", client_tag(c), n == 2 ? w[1] : "");
		if (lifecycle_resume(n == 2 ? w[1] : NULL, err, sizeof(err)) < 0)
			admin_error(c, "55000", "%s", err);
		else
			send_complete(out, "RESUME");
		return;
	}
	if (n >= 1 && strcasecmp(w[0], "SHUTDOWN") == 0 &&
		(n == 1 || (n == 2 && strcasecmp(w[1], "WAIT_FOR_SERVERS") == 0)))
	{
		log_info("%s: SHUTDOWN %s", client_tag(c), n == 2 ? w[1] : "");
		send_complete(out, "SHUTDOWN");
		lifecycle_shutdown(n == 1);
		return;
	}
	if (n == 0)
	{
		put_msg_start(out, 'I', 0);	/* EmptyQueryResponse */
		return;
	}
	if (strcasecmp(w[0], "SHOW") == 0 || strcasecmp(w[0], "RELOAD") == 0 || strcasecmp(w[0], "PAUSE") == 0 ||
		strcasecmp(w[0], "RESUME") == 0 || strcasecmp(w[0], "SHUTDOWN") == 0)
		admin_error(c, "42601", "syntax error in %s: the forms are SHOW <name>, RELOAD, PAUSE [db], RESUME [db], SHUTDOWN [WAIT_FOR_SERVERS]",
					w[0]);
	else
		admin_error(c, "42601", "unknown command \"%s\" (the admin console knows SHOW, RELOAD, PAUSE, RESUME, SHUTDOWN: try SHOW HELP)",
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
int
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
void
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
