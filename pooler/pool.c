/*
 * pool.c: one pool per (database, user) and host (a line may list several:
 * replica/route.c picks the host pool of each request), the only place
 * where clients and servers meet.  Keeps an application-side pool's promises on the server:
 * pool_size kept, max_overflow opened only for clients that waited
 * overflow_wait, FIFO
 * waiters with pool_timeout, pool_recycle at release, pre-ping before
 * handing out an idle connection, min_pool_size, and exponential backoff
 * while the server is down.  What runs by the clock (recycling idle
 * servers, closing overflow ones idle past overflow_idle_timeout,
 * min_pool_size, freeing pools of removed databases) is here too, driven
 * once a second by ops/janitor.c.
 *
 * Overflow follows QueuePool: a released connection, overflow or not, goes
 * to the first waiting client; one beyond pool_size that nobody waits for
 * stays idle and closes only when overflow_idle_timeout passes with nobody
 * taking it.  A pooler sees a release at every transaction end, and a busy
 * application's client between two transactions is not queued at that
 * instant: closing there (overflow_idle_timeout = 0) would log in again for
 * the client's next transaction.
 *
 * Live operations (ops/lifecycle.c, ops/reload.c) act through four things
 * here, and pool.c never calls them: a paused pool hands out no server and closes
 * those released; a pool over its (reloaded) limits closes released servers
 * instead of keeping them; a pool of a database removed by a reload is
 * freed once no client uses it; while shutting_down no new transaction
 * gets a server.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "auth.h"
#include "client.h"
#include "server.h"
#include "stats.h"
#include "pool.h"
#include "net/net.h"
#include "txn/session_state.h"
#include "replica/replica.h"

#define BACKOFF_FIRST 0.05
#define BACKOFF_MAX 0.5

pool	   *pools;
bool		shutting_down;
bool		(*pool_born_paused) (const char *dbname);

static pool *
pool_new(database *db, int hostix, const char *user, const char *dbname, user_cred *cred)
{
	pool	   *p = calloc(1, sizeof(*p));

	p->db = db;
	p->host = &db->hosts[hostix];
	p->ps = &db->ps;
	p->user = strdup(user);
	p->dbname = strdup(dbname);
	p->server_user = strdup(db->user ? db->user : user);
	p->server_dbname = strdup(db->dbname ? db->dbname : dbname);
	p->cred = db->user ? userlist_find(db->user) : cred;
	TAILQ_INIT(&p->servers);
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->waiting);
	TAILQ_INIT(&p->login_wait);
	p->paused = pool_born_paused && pool_born_paused(dbname);
	p->next = pools;
	pools = p;
	return p;
}

/*
 * The (database, user) pool a client logs in to: its first host's.  With
 * several hosts the others' pools hang off it (pool_for_host), one pool
 * per host, so pool_size and max_overflow hold per host.
 */
pool *
pool_get(database *db, const char *user, const char *dbname, user_cred *cred)
{
	pool	   *p;

	for (p = pools; p; p = p->next)
		if (p->db == db && p->home == p && strcmp(p->user, user) == 0 && strcmp(p->dbname, dbname) == 0)
			return p;
	p = pool_new(db, 0, user, dbname, cred);
	p->home = p;
	p->by_host[0] = p;
	return p;
}

/* The pool of home's database and user on host ix, made on first use. */
pool *
pool_for_host(pool *home, int ix)
{
	pool	   *p = home->by_host[ix];

	if (p)
		return p;
	p = pool_new(home->db, ix, home->user, home->dbname, home->cred);
	/* the same login as home's, which a reload may have changed since */
	free(p->server_user);
	free(p->server_dbname);
	p->server_user = strdup(home->server_user);
	p->server_dbname = strdup(home->server_dbname);
	p->home = home;
	home->by_host[ix] = p;
	return p;
}

static bool
needs_ping(pool *p, server *s)
{
	return p->ps->pool_pre_ping &&
		(p->ps->pre_ping_interval <= 0 || now_mono() - s->last_used >= p->ps->pre_ping_interval);
}

static void
fail_waiters(pool *p, bool login_only)
{
	char		msg[320];
	client	   *c;

	snprintf(msg, sizeof(msg), "perfopt-pooler: no server connection for database \"%s\": %s",
			 p->dbname, p->last_error);
	while ((c = TAILQ_FIRST(&p->login_wait)) != NULL)
		client_fail(c, p->last_sqlstate, "%s", msg);	/* unlinks itself */
	if (login_only)
		return;
	while ((c = TAILQ_FIRST(&p->waiting)) != NULL)
		client_fail(c, p->last_sqlstate, "%s", msg);
}

/*
 * The pool's host cannot be reached: with several hosts (or a role to
 * match) its waiters go to another host, or wait for one (replica/route.c);
 * else, or when the login itself is refused, they get the error.
 */
static void
fail_or_reroute(pool *p, bool login_only)
{
	if (p->db->routed && health_host_level(p->last_sqlstate))
	{
		health_host_failed(p->host, p->last_error);
		return;
	}
	fail_waiters(p, login_only);
}

/*
 * May connections beyond pool_size open now?  Only for a client that has
 * waited overflow_wait: while the pool turns over fast enough, its queue is
 * served by pool_size connections, and on a server short of cores more
 * backends at once only cost each transaction more CPU.  Overflow is for
 * clients that really wait (connections held by slow transactions).
 * pool_tick asks again once a second; 0 opens at once, as QueuePool does.
 */
static bool
overflow_due(pool *p)
{
	client	   *first = TAILQ_FIRST(&p->waiting);

	if (p->ps->overflow_wait <= 0)
		return true;
	return first != NULL && now_mono() - first->wait_start >= p->ps->overflow_wait;
}

/* Open connections for the clients that wait, up to pool_size + max_overflow. */
static void
grow(pool *p)
{
	int			cap = p->ps->pool_size + (overflow_due(p) ? p->ps->max_overflow : 0);
	int			want = p->n_waiting + (TAILQ_EMPTY(&p->login_wait) ? 0 : 1);

	if (p->paused)
		return;
	while (p->n_connecting < want && p->n_servers < cap)
	{
		if (now_mono() < p->retry_at)
		{
			/* the server is down: say so now rather than after pool_timeout */
			if (p->n_servers == 0)
				fail_or_reroute(p, false);
			return;
		}
		server_connect(p);
		want = p->n_waiting + (TAILQ_EMPTY(&p->login_wait) ? 0 : 1);
	}
}

/* Hand an idle server to c (pre-pinging it when due); false when none is idle. */
static bool
hand_idle(pool *p, client *c)
{
	server	   *s = TAILQ_FIRST(&p->idle);

	if (!s)
		return false;
	/* linking makes s S_ACTIVE, which takes it off the idle list */
	if (needs_ping(p, s))
		server_link_checked(s, c);
	else
		server_link(s, c);
	return true;
}

static void
dispatch(pool *p)
{
	client	   *c;

	while (!p->paused && (c = TAILQ_FIRST(&p->waiting)) != NULL && !TAILQ_EMPTY(&p->idle))
	{
		stats_wait_done(p, now_mono() - c->wait_start);
		hand_idle(p, c);		/* c leaves the queue as it becomes C_ACTIVE */
	}
	grow(p);
}

/*
 * c wants a server: C_LOGIN_WAIT (already queued) for its pool's first
 * server, or C_IDLE for its next transaction, queued only when no idle
 * server can take it now.
 */
void
pool_request(pool *p, client *c)
{
	if (shutting_down)
	{
		client_fail(c, "57P01", "perfopt-pooler is shutting down: no new transactions");
		return;
	}
	if (c->state == C_LOGIN_WAIT)
	{
		if (now_mono() < p->retry_at && p->n_servers == 0)
		{
			fail_or_reroute(p, true);
			return;
		}
		grow(p);
		return;
	}
	if (!p->paused && TAILQ_EMPTY(&p->waiting) && hand_idle(p, c))
		return;
	client_set_state(c, C_WAITING);
	grow(p);
}

/* A working or fresh server is free: first waiter, else idle, else closed. */
static void
give_server(pool *p, server *s)
{
	client	   *w = TAILQ_FIRST(&p->waiting);

	if (p->paused)
	{
		/* paused: the server goes (PAUSE waits for that), RESUME opens new ones */
		server_close(s, "pause");
		return;
	}
	if (s->close_needed)
	{
		/* opened before a reload changed where the database is */
		server_close(s, "database configuration changed");
		dispatch(p);
		return;
	}
	if (p->n_servers > p->ps->pool_size + p->ps->max_overflow)
	{
		/* pool_size or max_overflow lowered by a reload */
		server_close(s, "more servers than pool_size + max_overflow");
		return;
	}
	if (w)
	{
		/* overflow or not: the waiter would otherwise wait for a new login */
		stats_wait_done(p, now_mono() - w->wait_start);
		server_link(s, w);
		return;
	}
	if (p->n_servers > p->ps->pool_size && p->ps->overflow_idle_timeout <= 0)
	{
		server_close(s, "overflow connection released (max_overflow)");
		return;
	}
	/* beyond pool_size: pool_tick closes it once idle overflow_idle_timeout */
	server_set_state(s, S_IDLE);
}

void
pool_release(server *s)
{
	pool	   *p = s->pool;
	client	   *c = s->client;
	double		now = now_mono();

	if (c)
	{
		c->server = NULL;
		client_set_state(c, C_IDLE);
	}
	/* s keeps its state until give_server places it: idle, linked or closed */
	s->client = NULL;
	s->expect_rfq = s->swallow_rfq = 0;
	s->begin_absorb = false;
	s->last_used = now;
	if (p->ps->pool_recycle > 0 && now - s->created >= p->ps->pool_recycle)
	{
		p->st.recycled++;
		server_close(s, "pool_recycle: connection too old");
		dispatch(p);
		return;
	}
	if (!c && session_state_pins(s))
	{
		/* the reset did not drop what the extension reports: nobody may see it */
		server_close(s, "session state left after the reset");
		dispatch(p);
		return;
	}
	if (server_hold_for_cancel(s))
		return;					/* back through here once the cancel is spent */
	give_server(p, s);
}

void
pool_server_ready(server *s)
{
	pool	   *p = s->pool;
	client	   *c;

	p->st.servers_opened++;
	log_verbose("%s: server connection ready", server_tag(s));
	p->fail_count = 0;
	p->retry_at = 0;
	if (p->probe)
	{
		health_probe_ready(s);	/* the health check's own connection */
		return;
	}
	if (!p->have_params)
	{
		p->have_params = true;
		for (int t = 0; t < NPARAMS; t++)
			pstr_set(&p->defaults[t], s->params[t]);
	}
	give_server(p, s);
	while ((c = TAILQ_FIRST(&p->login_wait)) != NULL)
		client_welcome(c);		/* C_IDLE: off the login queue */
}

void
pool_server_failed(pool *p, const char *sqlstate, const char *msg)
{
	double		delay;

	if (p->probe)
	{
		health_probe_failed(p, sqlstate, msg);
		return;
	}
	p->fail_count++;
	p->st.connect_failures++;
	delay = BACKOFF_FIRST * pow(2, p->fail_count - 1);
	if (delay > BACKOFF_MAX)
		delay = BACKOFF_MAX;
	p->retry_at = now_mono() + delay;
	snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
	snprintf(p->last_sqlstate, sizeof(p->last_sqlstate), "%s",
			 sqlstate && strlen(sqlstate) == 5 ? sqlstate : "08006");
	log_warn("server login for database \"%s\" user \"%s\" failed: %s (retry in %.2f s)",
			 p->dbname, p->server_user, msg, delay);
	if (!p->have_params)
		p->nparams = 0;
	fail_or_reroute(p, p->n_servers > 0);
}

void
pool_server_closed(server *s)
{
	pool	   *p = s->pool;

	TAILQ_REMOVE(&p->servers, s, link);
	p->n_servers--;
}

/* The pre-ping found a dead connection: the client goes first again, with its bytes. */
void
pool_requeue(pool *p, client *c, struct evbuffer *replay)
{
	evbuffer_prepend_buffer(conn_in(&c->c), replay);
	conn_buf_put(replay);
	c->pass_remaining = 0;
	c->in_batch = false;
	client_set_state(c, C_WAITING);	/* from C_ACTIVE: first in the queue again */
	dispatch(p);
}

/*
 * The wait queue is FIFO, so the longest waiter is at its head.  No
 * pool_timeout while paused; after RESUME it counts from the RESUME.
 */
void
pool_check_waits(double now)
{
	for (pool *p = pools; p; p = p->next)
	{
		client	   *c;

		while (!p->paused && p->ps->pool_timeout > 0 && (c = TAILQ_FIRST(&p->waiting)) != NULL &&
			   now - (c->wait_start > p->resumed_at ? c->wait_start : p->resumed_at) >= p->ps->pool_timeout)
			client_wait_timeout(c);	/* unlinks itself */
	}
}

/* Close idle servers, least recently used first, until `keep` servers are left. */
void
pool_close_idle(pool *p, int keep, const char *why)
{
	server	   *s;

	while (p->n_servers > keep && (s = TAILQ_LAST(&p->idle, server_list)) != NULL)
		server_close(s, why);
}

/*
 * Settings changed (RELOAD) or the pool resumed: idle servers over the new
 * limits go now (busy ones at release, never in a transaction), waiting
 * clients get servers the new limits allow.
 */
void
pool_refresh(pool *p)
{
	int			keep = p->ps->pool_size;

	if (p->ps->overflow_idle_timeout > 0)
		keep += p->ps->max_overflow;
	pool_close_idle(p, keep, "pool_size lowered by a reload");
	dispatch(p);
	if (!TAILQ_EMPTY(&p->login_wait))
		grow(p);
}

/* Any client of home's family: its pools of every host go together. */
static bool
pool_has_clients(pool *home)
{
	client	   *c;

	TAILQ_FOREACH(c, &all_clients, link)
		if (c->pool && c->pool->home == home)
		return true;
	return false;
}

/* The names and startup parameters a pool owns (pool_free, health probes). */
void
pool_free_names(pool *p)
{
	free(p->user);
	free(p->dbname);
	free(p->server_user);
	free(p->server_dbname);
	for (int i = 0; i < p->nparams; i++)
	{
		free(p->pnames[i]);
		free(p->pvalues[i]);
	}
	free(p->pnames);
	free(p->pvalues);
}

static void
pool_free(pool *p)
{
	stats_add(&stats_removed, &p->st);
	pool_free_names(p);
	for (int t = 0; t < NPARAMS; t++)
		pstr_unref(p->defaults[t]);
	free(p);
}

/*
 * Pools of databases a reload removed live on while clients use them; then
 * their idle servers are closed and, once the last server is gone, the pool
 * itself (its counters go to stats_removed).
 */
/* A removed database's family nobody uses: idle servers closed; true once none is left. */
static bool
family_emptied(pool *home)
{
	int			left = 0;

	if (!home->db->removed || pool_has_clients(home))
		return false;
	for (int i = 0; i < MAX_HOSTS; i++)
		if (home->by_host[i])
		{
			pool_close_idle(home->by_host[i], 0, "database removed from the configuration");
			left += home->by_host[i]->n_servers;
		}
	return left == 0;
}

void
pool_reap_removed(void)
{
	pool	  **pp = &pools,
			   *p,
			   *dead = NULL;

	for (p = pools; p; p = p->next)
		p->reap = p->home == p && family_emptied(p);
	/* a family's pools all leave the list before any is freed: they point at home */
	while ((p = *pp) != NULL)
	{
		if (p->home->reap)
		{
			*pp = p->next;
			p->next = dead;
			dead = p;
			continue;
		}
		pp = &p->next;
	}
	while ((p = dead) != NULL)
	{
		dead = p->next;
		if (p->home == p)
			log_info("pool %s@%s freed: its database was removed from the configuration",
					 p->user, p->dbname);
		pool_free(p);
	}
}

/*
 * Idle servers beyond pool_size that nobody took for overflow_idle_timeout
 * close, least recently used first.  The idle list is most recent first and
 * hand_idle() takes from its head, so under a load between pool_size and
 * pool_size + max_overflow the same few connections stay busy and the
 * surplus ages at the tail.
 */
static void
close_idle_overflow(pool *p, double now)
{
	server	   *s;

	while (p->n_servers > p->ps->pool_size && (s = TAILQ_LAST(&p->idle, server_list)) != NULL &&
		   now - s->last_used >= p->ps->overflow_idle_timeout)
		server_close(s, "overflow_idle_timeout");
}

/*
 * Once a second: idle servers past pool_recycle or overflow_idle_timeout
 * close, min_pool_size is kept, and waiters no connect is under way for
 * get one.
 */
void
pool_tick(pool *p, double now)
{
	server	   *s,
			   *next;

	for (s = TAILQ_FIRST(&p->idle); s; s = next)
	{
		next = TAILQ_NEXT(s, ilink);
		if (p->ps->pool_recycle > 0 && now - s->created >= p->ps->pool_recycle)
		{
			p->st.recycled++;
			server_close(s, "pool_recycle: idle connection too old");
		}
	}
	close_idle_overflow(p, now);
	while (p->n_servers < p->ps->min_pool_size && now >= p->retry_at && !p->paused && !p->db->removed)
	{
		int			before = p->fail_count;

		server_connect(p);
		if (p->fail_count != before)
			break;
	}
	if (p->n_waiting > p->n_connecting)
		grow(p);
}

void
pool_shutdown(void)
{
	for (pool *p = pools; p; p = p->next)
	{
		server	   *s;

		while ((s = TAILQ_FIRST(&p->servers)) != NULL)
			server_close(s, "shutdown");
	}
}
