/*
 * health.c: what each host of a routed database is, and the only writer
 * of it.  Each host gets the pooler's own connection: a hidden pool of one
 * server connection (in no list: no client ever gets it), logged in like
 * every other (server_login.c: TLS, every auth method) as the line's
 * user=, else as the first pool's login.  Every health_check_period a
 * Query on it asks pg_is_in_recovery(), the WAL position (a primary's
 * pg_current_wal_lsn(), a standby's pg_last_wal_replay_lsn()) and
 * default_transaction_read_only; a standby's replay lag is the primary's
 * last position minus its own.  The in_hot_standby that PostgreSQL reports
 * on any server connection (at login, and at the ReadyForQuery after a
 * promotion) updates the role at once.
 *
 * A host is taken out when its check fails or goes unanswered within
 * connect_timeout, or when any pool's connect to it fails for a reason of
 * the host itself (SQLSTATE class 08, 57P01-57P03), and tried again with
 * backoff (50 ms doubling up to health_check_period).  Each change wakes
 * route.c.  All of it runs on the event loop: the connection is
 * non-blocking like every server connection, and a 100 ms tick only looks
 * at clocks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "config.h"
#include "proto.h"
#include "auth.h"
#include "server.h"
#include "pool.h"
#include "net/net.h"
#include "replica/replica.h"

#define CHECK_SQL "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() " \
	"THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, " \
	"current_setting('default_transaction_read_only')"
#define TICK_USEC 100000
#define BACKOFF_FIRST 0.05

/* a probe's pool and the settings only it uses: one connection, no pre-ping, no recycling */
typedef struct probe_pool
{
	pool		p;
	pool_settings ps;
} probe_pool;

static struct event tick_ev;
static struct event fresh_ev;	/* reads wait for a replay position: check within 1 ms */

const char *
health_role_name(const db_host *h)
{
	return h->role == ROLE_PRIMARY ? "primary" : h->role == ROLE_STANDBY ? "standby" : "unknown";
}

const char *
health_state_name(const db_host *h)
{
	if (!h->db->routed)
		return "unchecked";
	return h->health == HEALTH_UP ? "up" : h->health == HEALTH_DOWN ? "down" : "checking";
}

/* The health check's login: the line's user=, else the first pool's (NULL: none yet). */
static pool *
probe_new(db_host *h)
{
	database   *db = h->db;
	const char *user = NULL,
			   *dbname = NULL;
	user_cred  *cred = NULL;
	probe_pool *pp;
	pool	   *p;

	if (db->user && (db->dbname || strcmp(db->name, "*") != 0))
	{
		user = db->user;
		dbname = db->dbname ? db->dbname : db->name;
		cred = userlist_find(db->user);
	}
	else
		for (p = pools; p && !user; p = p->next)
			if (p->db == db)
			{
				user = p->server_user;
				dbname = p->server_dbname;
				cred = p->cred;
			}
	if (!user || !(pp = calloc(1, sizeof(*pp))))
		return NULL;
	pp->ps = db->ps;
	pp->ps.pool_mode = MODE_SESSION;	/* asks the server for no extra reports */
	pp->ps.pool_size = 1;
	pp->ps.max_overflow = 0;
	pp->ps.min_pool_size = 0;
	pp->ps.pool_pre_ping = false;
	pp->ps.pool_recycle = 0;
	p = &pp->p;
	p->db = db;
	p->host = h;
	p->ps = &pp->ps;
	p->home = p;
	p->probe = true;
	p->user = strdup(user);
	p->dbname = strdup(dbname);
	p->server_user = strdup(user);
	p->server_dbname = strdup(dbname);
	p->cred = cred;
	TAILQ_INIT(&p->servers);
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->waiting);
	TAILQ_INIT(&p->login_wait);
	h->probe = p;
	return p;
}

static void
probe_free(db_host *h)
{
	pool	   *p = h->probe;
	server	   *s;

	if (!p)
		return;
	while ((s = TAILQ_FIRST(&p->servers)) != NULL)
		server_close(s, "health check stopped");
	pool_free_names(p);
	free(p);					/* the probe_pool it starts */
	h->probe = NULL;
	h->check_sent = 0;
}

/* A reload or a removal: the checks start again from the configuration in effect. */
void
health_stop(database *db)
{
	for (int i = 0; i < db->nhosts; i++)
		probe_free(&db->hosts[i]);
}

/* Failures of the host itself, not of one login: it cannot be reached, or it is shutting down or starting. */
bool
health_host_level(const char *sqlstate)
{
	return sqlstate && (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
						strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0);
}

/* Failures at the old place say nothing about the host that is back. */
static void
pools_forget_failures(db_host *h)
{
	for (pool *p = pools; p; p = p->next)
		if (p->host == h)
		{
			p->fail_count = 0;
			p->retry_at = 0;
		}
}

void
health_host_failed(db_host *h, const char *msg)
{
	double		cap = cfg.health_check_period > BACKOFF_FIRST ? cfg.health_check_period : BACKOFF_FIRST;
	double		delay;

	h->fail_count++;
	delay = BACKOFF_FIRST * pow(2, h->fail_count - 1);
	if (delay > cap)
		delay = cap;
	h->retry_at = now_mono() + delay;
	h->check_sent = 0;
	snprintf(h->last_error, sizeof(h->last_error), "%s", msg);
	if (h->health != HEALTH_DOWN)
	{
		h->failures++;
		log_warn("host %s:%d of database \"%s\" taken out: %s (retried with backoff)",
				 h->name, h->port, h->db->name, msg);
	}
	h->health = HEALTH_DOWN;
	route_wake();
}

/* The probe could not log in: the host is out until a retry works. */
void
health_probe_failed(pool *p, const char *sqlstate, const char *msg)
{
	health_host_failed(p->host, msg);
}

static void
send_check(server *s)
{
	db_host    *h = s->pool->host;

	server_set_state(s, S_RESETTING);	/* its answers are swallowed, then it is idle again */
	send_query(s->c.out, CHECK_SQL);
	s->expect_rfq++;
	s->swallow_rfq++;
	h->check_sent = h->last_sent = now_mono();
	if (conn_flush(&s->c) < 0)
	{
		server_close(s, "health check: write failed");
		h->check_sent = 0;		/* the next tick connects again */
	}
}

/* The probe logged in: check at once. */
void
health_probe_ready(server *s)
{
	send_check(s);
}

/* "16/B374D848" */
bool
health_parse_lsn(const char *v, size_t len, uint64_t *out)
{
	char		buf[40],
			   *slash,
			   *end;
	unsigned long hi,
				lo;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, v, len);
	buf[len] = '\0';
	if (!(slash = strchr(buf, '/')))
		return false;
	*slash = '\0';
	hi = strtoul(buf, &end, 16);
	if (*end)
		return false;
	lo = strtoul(slash + 1, &end, 16);
	if (*end)
		return false;
	*out = ((uint64_t) hi << 32) | (uint64_t) (lo & 0xffffffffUL);
	return true;
}

/* Each standby's lag: the primary's last position minus its own replay position. */
static void
compute_lags(database *db)
{
	uint64_t	primary = 0;
	bool		have = false;

	for (int i = 0; i < db->nhosts; i++)
	{
		db_host    *h = &db->hosts[i];

		if (h->health == HEALTH_UP && h->role == ROLE_PRIMARY && h->lsn_known &&
			(!have || h->lsn > primary))
		{
			primary = h->lsn;
			have = true;
		}
	}
	for (int i = 0; i < db->nhosts; i++)
	{
		db_host    *h = &db->hosts[i];

		if (h->role == ROLE_PRIMARY)
			h->lag = 0;
		else if (h->role == ROLE_STANDBY && have && h->lsn_known)
			h->lag = primary > h->lsn ? (int64_t) (primary - h->lsn) : 0;
		else
			h->lag = -1;
	}
}

static void
set_role(db_host *h, enum host_role role)
{
	if (h->role != role && h->role != ROLE_UNKNOWN)
		log_info("host %s:%d of database \"%s\" is now a %s", h->name, h->port, h->db->name,
				 role == ROLE_PRIMARY ? "primary" : "standby");
	h->role = role;
}

/* A check answered: the host is up, with this role and position. */
static void
host_checked(db_host *h, bool standby, const char *lsn, size_t lsnlen, bool read_only)
{
	if (h->health != HEALTH_UP)
	{
		log_info("host %s:%d of database \"%s\" is up: %s%s", h->name, h->port, h->db->name,
				 standby ? "standby" : "primary", read_only ? " (default_transaction_read_only on)" : "");
		pools_forget_failures(h);
	}
	set_role(h, standby ? ROLE_STANDBY : ROLE_PRIMARY);
	h->health = HEALTH_UP;
	h->read_only = read_only;
	h->lsn_known = health_parse_lsn(lsn, lsnlen, &h->lsn);
	h->checked_at = now_mono();
	h->check_sent = 0;
	h->fail_count = 0;
	h->retry_at = 0;
	compute_lags(h->db);
	route_wake();
}

/* The check's one DataRow: three text columns. */
static bool
read_row(db_host *h, const unsigned char *body, size_t len)
{
	const char *col[3];
	int32_t		clen[3];
	size_t		at = 2;

	if (len < 2 || ((body[0] << 8) | body[1]) != 3)
		return false;
	for (int i = 0; i < 3; i++)
	{
		if (at + 4 > len)
			return false;
		clen[i] = (int32_t) get_u32(body + at);
		at += 4;
		col[i] = (const char *) body + at;
		if (clen[i] > 0)
			at += clen[i];
		if (at > len)
			return false;
	}
	if (clen[0] != 1)
		return false;
	host_checked(h, col[0][0] == 't', col[1], clen[1] > 0 ? (size_t) clen[1] : 0,
				 clen[2] == 2 && strncmp(col[2], "on", 2) == 0);
	return true;
}

/*
 * A message answering the probe's check (server_forward.c swallows them):
 * the row says what the host is; a ReadyForQuery without one means the
 * check failed.
 */
void
health_answer(server *s, char type, const unsigned char *body, size_t len)
{
	db_host    *h = s->pool->host;

	if (type == 'D' && !read_row(h, body, len))
		log_warn("host %s:%d: health check answered an unexpected row", h->name, h->port);
	else if (type == 'Z' && h->check_sent > 0)
		health_host_failed(h, "health check query failed");
}

/* in_hot_standby reported on a connection to h: a promotion is seen at once. */
void
health_reported(db_host *h, const char *in_hot_standby)
{
	enum host_role role = strcmp(in_hot_standby, "on") == 0 ? ROLE_STANDBY : ROLE_PRIMARY;

	if (h->health != HEALTH_UP || h->role == role)
		return;
	set_role(h, role);
	compute_lags(h->db);
	route_wake();
}

/* One host's next step: its connection, its check, or its answer overdue. */
static void
step(db_host *h, double now)
{
	server	   *s;
	double		timeout = h->db->ps.connect_timeout > 0 ? h->db->ps.connect_timeout : 5;

	if (!h->probe && !probe_new(h))
		return;					/* no login known yet: the first client brings one */
	s = TAILQ_FIRST(&h->probe->servers);
	if (h->check_sent > 0 && !s)
		h->check_sent = 0;		/* its connection closed under the check: connect again now */
	if (h->check_sent > 0)
	{
		if (now - h->check_sent < timeout)
			return;
		if (s)
			server_close(s, "health check: no answer");
		health_host_failed(h, "health check: no answer within connect_timeout");
		return;
	}
	if (!s)
	{
		if (now < h->retry_at)
			return;
		h->check_sent = now;
		server_connect(h->probe);	/* ends in health_probe_ready or health_probe_failed */
		return;
	}
	if (s->state == S_IDLE && now - h->checked_at >= cfg.health_check_period)
		send_check(s);
}

/*
 * A read waits until h has replayed a client's commit (causal_reads): its
 * replay position is asked now (or, when it was asked less than 1 ms ago
 * or is being asked, 1 ms from now), not at the next period.  route.c asks
 * again after each answer while the read still waits, so a waiting read
 * costs one small query per millisecond at most, and only until
 * causal_read_timeout.
 */
void
health_want_fresh(db_host *h)
{
	struct timeval tv = {0, 1000};
	server	   *s = h->probe ? TAILQ_FIRST(&h->probe->servers) : NULL;

	if (s && s->state == S_IDLE && h->check_sent == 0 && now_mono() - h->last_sent >= 0.001)
	{
		send_check(s);
		return;
	}
	h->want_fresh = true;
	if (!evtimer_pending(&fresh_ev, NULL))
		evtimer_add(&fresh_ev, &tv);
}

static void
fresh_cb(evutil_socket_t fd, short ev, void *arg)
{
	for (database *db = cfg.databases; db; db = db->next)
		for (int i = 0; db->routed && i < db->nhosts; i++)
		{
			db_host    *h = &db->hosts[i];
			server	   *s = h->probe ? TAILQ_FIRST(&h->probe->servers) : NULL;

			if (!h->want_fresh)
				continue;
			h->want_fresh = false;
			if (s && s->state == S_IDLE && h->check_sent == 0)
				send_check(s);	/* else the check under way answers soon enough */
		}
}

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	double		now = now_mono();

	for (database *db = cfg.databases; db; db = db->next)
		if (db->routed && !db->removed)
			for (int i = 0; i < db->nhosts; i++)
				step(&db->hosts[i], now);
}

void
health_start(void)
{
	struct timeval tv = {0, TICK_USEC};

	event_assign(&tick_ev, base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(&tick_ev, &tv);
	evtimer_assign(&fresh_ev, base, fresh_cb, NULL);
}
