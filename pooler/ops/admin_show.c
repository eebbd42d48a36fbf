/*
 * admin_show.c: the admin console's SHOW commands, each a result set
 * (RowDescription, DataRows, CommandComplete "SHOW") built from the live
 * pools, clients, servers and settings.  Read-only: nothing here changes
 * the pooler, which is why stats_users may run all of it.
 */
#define _GNU_SOURCE				/* struct ucred */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "proto.h"
#include "client.h"
#include "stats.h"
#include "pool.h"
#include "net/net.h"
#include "ops/ops.h"
#include "txn/session_state.h"
#include "replica/replica.h"

#define INT8OID 20
#define TEXTOID 25

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
		"recycled", "pre_ping_failures", "host"
	};
	result		r;
	double		now = now_mono();
	char		hp[300];

	rs_begin(&r, ac, cols, "ttiiiiiiiitiiiiiit");
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
			else if (c->state == C_WAITING || c->state == C_LOGIN_WAIT || c->state == C_ROUTING)
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
		snprintf(hp, sizeof(hp), "%s:%d", p->host->name, p->host->port);
		rs_text(&r, hp);
		rs_end_row(&r);
	}
	rs_done(&r);
}

static const char *const conn_cols[] = {
	"type", "user", "database", "state", "addr", "port", "local_addr", "local_port", "connect_time",
	"request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid", "application_name",
	"pinned",					/* session state holding the client on its server */
	"role", "health", "replay_lag_bytes"	/* SHOW SERVERS: its host's (replica/health.c) */
};
#define CLIENT_COLS "ttttti" "ti" "tt" "iii" "tti" "t" "t"
#define SERVER_COLS CLIENT_COLS "tti"

/* A host's role, health and replay lag, as SHOW SERVERS and SHOW DATABASES give them. */
static void
host_cols(result *r, const db_host *h)
{
	rs_text(r, health_role_name(h));
	rs_text(r, health_state_name(h));
	if (h->role == ROLE_STANDBY && h->lag >= 0)
		rs_int(r, h->lag);
	else
		rs_text(r, h->role == ROLE_PRIMARY ? "0" : NULL);
}

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

	rs_begin(&r, ac, conn_cols, CLIENT_COLS);
	TAILQ_FOREACH(c, &all_clients, link)
	{
		const char *state;
		double		w = c->state == C_WAITING || (c->state == C_ROUTING && !c->route_login) ?
			now - c->wait_start : 0;
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
			case C_ROUTING:
				state = c->route_login ? "login" : "waiting";
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
		rs_text(&r, session_state_describe(c->server, a, sizeof(a)));
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

	rs_begin(&r, ac, conn_cols, SERVER_COLS);
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
			rs_text(&r, p->host->name);
			rs_int(&r, p->host->port);
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
			rs_text(&r, session_state_describe(s, t1, sizeof(t1)));
			host_cols(&r, p->host);
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

/* One row per host of each [databases] entry: a single-host line is one row, as before. */
static void
show_databases(client *ac)
{
	static const char *const cols[] = {
		"name", "host", "port", "database", "force_user", "pool_size", "max_overflow", "min_pool_size",
		"pool_mode", "pool_timeout", "current_connections", "paused",
		"target_session_attrs", "load_balance_hosts", "read_only_routing", "max_replica_lag", "causal_reads",
		"role", "health", "replay_lag_bytes", "wal_lsn", "checked_ms_ago", "failures", "last_error"
	};
	result		r;
	double		now = now_mono();

	rs_begin(&r, ac, cols, "ttittiiittii" "tttit" "tti" "tiit");
	for (database *db = cfg.databases; db; db = db->next)
		for (int i = 0; i < db->nhosts; i++)
		{
			const db_host *h = &db->hosts[i];
			int			n = 0;
			char		t[32],
						lsn[40];

			for (pool *p = pools; p; p = p->next)
				if (p->host == h)
					n += p->n_servers;
			snprintf(t, sizeof(t), "%g", db->ps.pool_timeout);
			snprintf(lsn, sizeof(lsn), "%X/%X", (unsigned) (h->lsn >> 32), (unsigned) h->lsn);
			rs_text(&r, db->name);
			rs_text(&r, h->name);
			rs_int(&r, h->port);
			rs_text(&r, db->dbname);
			rs_text(&r, db->user);
			rs_int(&r, db->ps.pool_size);
			rs_int(&r, db->ps.max_overflow);
			rs_int(&r, db->ps.min_pool_size);
			rs_text(&r, db->ps.pool_mode == MODE_SESSION ? "session" : "transaction");
			rs_text(&r, t);
			rs_int(&r, n);
			rs_int(&r, lifecycle_db_paused(db->name));
			rs_text(&r, config_tsa_name(db->tsa));
			rs_text(&r, db->load_balance ? "random" : "disable");
			rs_text(&r, db->read_only_routing ? "on" : "off");
			rs_int(&r, db->max_replica_lag);
			rs_text(&r, config_causal_name(db->causal_reads));
			host_cols(&r, h);
			rs_text(&r, h->lsn_known ? lsn : NULL);
			if (h->checked_at > 0)
				rs_int(&r, (long long) ((now - h->checked_at) * 1000));
			else
				rs_text(&r, NULL);
			rs_int(&r, (long long) h->failures);
			rs_text(&r, h->health == HEALTH_DOWN ? h->last_error : NULL);
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
		{"SHOW DATABASES", "the [databases] entries in effect, one row per host: role, health, replay lag"},
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

/* SHOW <name>: false when no such name is known */
bool
admin_show(client *c, const char *name)
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
		if (strcasecmp(name, shows[i].name) == 0)
		{
			shows[i].fn(c);
			return true;
		}
	return false;
}
