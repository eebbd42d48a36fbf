/*
 * route.c: which host serves a request of a database with several hosts
 * (or a role to match): a client's login, then each transaction in
 * transaction mode (a session's first in session mode).  Owns matching
 * libpq's target_session_attrs against what health.c knows of each host,
 * read-only routing (a transaction that declares itself read-only goes to
 * a standby, everything else to the writable host), choosing among the
 * hosts that fit (load_balance_hosts), and the clients no host fits yet
 * (C_ROUTING, the routing queue): they go on as soon as one does, or get
 * 08006 after pool_timeout (a login after startup_timeout).
 *
 * A host is served by one pool per (database, user) (pool_for_host): a
 * client moves between its family's pools only while it holds no server,
 * so everything pool.c promises holds per host.  When a host changes
 * (taken out, back, promoted, lagging) route_wake() moves the clients
 * queued on a host that no longer fits them, and lets the routing queue
 * try again.  Nothing here guesses from SQL: the only text read is a
 * deferred BEGIN's own modes (txn/begin_options.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "scram.h"
#include "client.h"
#include "pool.h"
#include "net/net.h"
#include "txn/txn.h"
#include "replica/replica.h"

/* A standby within max_replica_lag; an unknown lag (no primary known) does not keep it out. */
bool
route_lag_ok(const db_host *h)
{
	long long	max = h->db->max_replica_lag;

	return max <= 0 || h->lag < 0 || h->lag <= max;
}

/* libpq's target_session_attrs, against what the health check last saw. */
bool
route_fits(const db_host *h, enum target_attrs want)
{
	if (h->health != HEALTH_UP)
		return false;
	switch (want)
	{
		case TSA_ANY:
			return true;
		case TSA_READ_WRITE:
			return h->role == ROLE_PRIMARY && !h->read_only;
		case TSA_PRIMARY:
			return h->role == ROLE_PRIMARY;
		case TSA_READ_ONLY:
			return h->role == ROLE_STANDBY ? route_lag_ok(h) : h->read_only;
		case TSA_STANDBY:
		case TSA_PREFER_STANDBY:
			return h->role == ROLE_STANDBY && route_lag_ok(h);
	}
	return false;
}

/* A standby serves a read that needs `need` (causal_reads) only once it has replayed that far. */
static bool
replayed(const db_host *h, uint64_t need)
{
	return need == 0 || h->role != ROLE_STANDBY || (h->lsn_known && h->lsn >= need);
}

/*
 * The hosts that fit, in the line's order.  prefer-standby takes any host
 * when no standby fits; but while a standby fits except that it has not
 * replayed the client's commit yet, the read waits for it (0 hosts, *behind
 * set) until causal_read_timeout sends it to the primary (route_check_waits).
 */
static int
fitting(const database *db, enum target_attrs want, uint64_t need, int *ix, bool *behind)
{
	int			n = 0;

	for (int i = 0; i < db->nhosts; i++)
	{
		const db_host *h = &db->hosts[i];

		if (!route_fits(h, want))
			continue;
		if (replayed(h, need))
			ix[n++] = i;
		else
		{
			*behind = true;
			health_want_fresh((db_host *) h);
		}
	}
	if (n == 0 && want == TSA_PREFER_STANDBY && !*behind)
		return fitting(db, TSA_ANY, need, ix, behind);
	return n;
}

static uint32_t
next_random(void)
{
	static uint32_t x;

	if (x == 0)
	{
		random_bytes(&x, sizeof(x));
		x |= 1;
	}
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

/* The pool of a host fitting c's request: the first, or one at random (load_balance_hosts). */
static pool *
pick(client *c)
{
	pool	   *home = c->pool->home;
	database   *db = home->db;
	int			ix[MAX_HOSTS];
	bool		behind = false;
	int			n = fitting(db, c->want, c->need_lsn, ix, &behind);

	if (n == 0)
		return NULL;
	return pool_for_host(home, ix[db->load_balance ? next_random() % n : 0]);
}

/* Where a database's writes go: with read_only_routing, "any" means the writable host. */
static enum target_attrs
write_want(const database *db)
{
	return db->read_only_routing && db->tsa == TSA_ANY ? TSA_READ_WRITE : db->tsa;
}

/* Where a read goes that must see every commit: the writes' route, or the primary for a prefer-standby line. */
static enum target_attrs
primary_want(const database *db)
{
	enum target_attrs w = write_want(db);

	return w == TSA_PREFER_STANDBY ? TSA_PRIMARY : w;
}

/* The client's own value of a setting (startup or SET) is one of the words. */
static bool
client_setting_is(const client *c, const char *name, const char *const *words)
{
	char		v[64];

	if (!c->settings || !settings_value(c->settings, name, v, sizeof(v)))
		return false;
	for (int i = 0; words[i]; i++)
		if (strcasecmp(v, words[i]) == 0)
			return true;
	return false;
}

/*
 * Read-only routing: a transaction that says READ ONLY (or a client whose
 * default_transaction_read_only is on, unless its BEGIN says READ WRITE)
 * goes to a standby, unless it is SERIALIZABLE, which a hot standby
 * refuses.  In session mode the session's first transaction would decide
 * for all the others: there everything takes the writes' route.
 */
static enum target_attrs
request_want(const client *c)
{
	static const char *const on[] = {"on", "true", "yes", "1", NULL};
	static const char *const serializable[] = {"serializable", NULL};
	const database *db = c->pool->db;
	begin_modes m = {-1, -1};
	bool		ro,
				ser;

	if (!db->read_only_routing || c->pool_mode != MODE_TRANSACTION)
		return write_want(db);
	if (c->begin_text)
		(void) begin_statement_modes(c->begin_text->s, strlen(c->begin_text->s), &m);
	else
		(void) begin_request_modes((client *) c, &m);
	ro = m.read_only >= 0 ? m.read_only : client_setting_is(c, "default_transaction_read_only", on);
	ser = m.serializable >= 0 ? m.serializable :
		client_setting_is(c, "default_transaction_isolation", serializable);
	return ro && !ser ? TSA_PREFER_STANDBY : write_want(db);
}

/*
 * causal_reads: the commit position a read-only request must find replayed
 * on a standby: the client's last commit (session), or its user's (user).
 * A primary that reports no commit positions (no perfopt extension there)
 * leaves nothing to wait for: then reads stay on the primary, where they
 * see every commit.
 */
static uint64_t
causal_need(client *c)
{
	database   *db = c->pool->db;
	bool		reports = false;

	if (db->causal_reads == CAUSAL_OFF || c->want != TSA_PREFER_STANDBY)
		return 0;
	for (int i = 0; i < db->nhosts; i++)
		if (db->hosts[i].role == ROLE_PRIMARY && db->hosts[i].health == HEALTH_UP)
			reports = db->hosts[i].reports_commit_lsn;
	if (!reports)
	{
		if (!db->causal_warned)
			log_warn("database \"%s\": causal_reads is %s but its primary reports no commit positions (perfopt.commit_lsn): read-only transactions stay on the primary",
					 db->name, config_causal_name(db->causal_reads));
		db->causal_warned = true;
		c->want = primary_want(db);
		return 0;
	}
	return db->causal_reads == CAUSAL_USER ? c->pool->home->commit_lsn : c->commit_lsn;
}

/*
 * perfopt.commit_lsn from a server: at login, that the host can report it
 * (server_login.c asks for it from then on); after a commit, where its
 * record ended, remembered for the client and its user.  Never forwarded
 * (txn/startup_settings.c does not carry it either).
 */
void
route_commit_reported(server *s, const char *lsn, bool login)
{
	uint64_t	at;
	pool	   *home = s->pool->home;

	if (login)
	{
		s->pool->host->reports_commit_lsn = true;
		return;
	}
	if (!health_parse_lsn(lsn, strlen(lsn), &at))
		return;
	if (s->client && at > s->client->commit_lsn)
		s->client->commit_lsn = at;
	if (home && at > home->commit_lsn)
		home->commit_lsn = at;
}

static bool
all_down(const database *db)
{
	for (int i = 0; i < db->nhosts; i++)
		if (db->hosts[i].health != HEALTH_DOWN)
			return false;
	return true;
}

/* "127.0.0.1:5433 standby, 127.0.0.1:5432 down (connection refused)" */
static void
describe_hosts(const database *db, char *buf, size_t len)
{
	size_t		n = 0;

	buf[0] = '\0';
	for (int i = 0; i < db->nhosts && n < len; i++)
	{
		const db_host *h = &db->hosts[i];

		n += snprintf(buf + n, len - n, "%s%s:%d %s", i ? ", " : "", h->name, h->port,
					  h->health == HEALTH_UP ? health_role_name(h) : health_state_name(h));
		if (n < len && h->health == HEALTH_DOWN && h->last_error[0])
			n += snprintf(buf + n, len - n, " (%s)", h->last_error);
	}
}

static void
no_host(client *c, const char *why)
{
	char		hosts[512];
	database   *db = c->pool->db;

	describe_hosts(db, hosts, sizeof(hosts));
	client_fail(c, "08006", "perfopt-pooler: no server for database \"%s\" is %s%s: %s",
				c->dbname, config_tsa_name(c->want), why, hosts);
}

/*
 * A C_ROUTING client tries again: on to a host that fits (its login goes
 * on there, or its request joins that pool's queue), or it stays, or it
 * gets the error when every host is down (as a single host's clients do).
 */
static void
route_try(client *c)
{
	pool	   *p = pick(c);

	if (!p)
	{
		if (all_down(c->pool->db))
			no_host(c, " (every host is down)");
		return;
	}
	c->pool = p;				/* the routing queue is not a pool's: safe to move */
	if (c->route_login && p->have_params)
		client_welcome(c);		/* C_IDLE: off the routing queue */
	else if (c->route_login)
	{
		client_set_state(c, C_LOGIN_WAIT);
		pool_request(p, c);
	}
	else
	{
		client_set_state(c, C_IDLE);
		pool_request(p, c);
	}
}

/*
 * An authenticated client of a routed database: its welcome comes from a
 * host of the database's own target (with read_only_routing, the
 * writable one), so a driver that checks in_hot_standby or
 * default_transaction_read_only at login sees what it asked for.
 */
void
route_login(client *c)
{
	c->want = write_want(c->pool->db);
	c->need_lsn = 0;
	c->route_login = true;
	conn_read_off(&c->c);
	client_set_state(c, C_ROUTING);
	route_try(c);
}

/* An idle client needs a server (process_idle set its wait_start). */
void
route_request(client *c)
{
	c->want = request_want(c);
	c->need_lsn = causal_need(c);
	c->route_login = false;
	client_set_state(c, C_ROUTING);
	route_try(c);
}

/* Still a place for this want?  A prefer-standby waiter stays on any host that is up. */
static bool
keeps(const db_host *h, enum target_attrs want)
{
	return route_fits(h, want == TSA_PREFER_STANDBY ? TSA_ANY : want);
}

/* Clients of a host's pool that no longer fits them, into *list (grown as needed). */
static void
collect_misplaced(pool *p, client ***list, int *n, int *cap)
{
	struct client_list *queues[] = {&p->waiting, &p->login_wait};
	client	   *c;

	for (int q = 0; q < 2; q++)
		TAILQ_FOREACH(c, queues[q], wlink)
		{
			if (keeps(p->host, c->want))
				continue;
			if (*n == *cap)
			{
				*cap = *cap ? *cap * 2 : 16;
				*list = realloc(*list, sizeof(client *) * *cap);
			}
			(*list)[(*n)++] = c;
		}
}

/* One pass over every routed pool's queues, then the routing queue. */
static void
wake_once(void)
{
	client	  **list = NULL,
			   *c;
	int			n = 0,
				cap = 0,
				moved;

	for (pool *p = pools; p; p = p->next)
		if (p->db->routed)
			collect_misplaced(p, &list, &n, &cap);
	moved = n;
	TAILQ_FOREACH(c, &routing_queue, wlink)
	{
		if (n == cap)
		{
			cap = cap ? cap * 2 : 16;
			list = realloc(list, sizeof(client *) * cap);
		}
		list[n++] = c;
	}
	/* each may be closed by what an earlier one causes: look at its state again */
	for (int i = 0; i < n; i++)
	{
		c = list[i];
		if (i < moved && (c->state == C_WAITING || c->state == C_LOGIN_WAIT))
		{
			bool		login = c->state == C_LOGIN_WAIT;

			log_verbose("%s: its host %s:%d no longer fits: routed again", client_tag(c),
						c->pool->host->name, c->pool->host->port);
			client_set_state(c, C_ROUTING);
			c->route_login = login;
		}
		if (c->state == C_ROUTING)
			route_try(c);
	}
	free(list);
}

/*
 * A host changed (health.c): clients queued where they no longer fit move,
 * the routing queue tries again.  A change caused by what this does (a
 * connect that fails at once) runs another pass instead of nesting.
 */
void
route_wake(void)
{
	static bool busy,
				again;

	if (busy)
	{
		again = true;
		return;
	}
	busy = true;
	do
	{
		again = false;
		wake_once();
	} while (again);
	busy = false;
}

/*
 * Every 100 ms: a read that waited causal_read_timeout for a standby to
 * replay its commit goes to the primary; a request that found no host
 * within pool_timeout gets 08006.
 */
void
route_check_waits(double now)
{
	client	   *c;
	bool		acted = true;

	/* what one does may move others (a wake): look from the head again after each */
	while (acted)
	{
		acted = false;
		TAILQ_FOREACH(c, &routing_queue, wlink)
		{
			double		limit = c->pool->ps->pool_timeout;

			if (c->need_lsn && now - c->wait_start >= c->pool->db->causal_read_timeout)
			{
				log_verbose("%s: no standby replayed its commit within causal_read_timeout: to the primary",
							client_tag(c));
				c->need_lsn = 0;
				c->want = primary_want(c->pool->db);
				route_try(c);
			}
			else if (!c->route_login && limit > 0 && now - c->wait_start >= limit)
				no_host(c, " within pool_timeout");
			else
				continue;
			acted = true;
			break;
		}
	}
}

/* A graceful shutdown: those still waiting for a host start nothing. */
void
route_shutdown(void)
{
	client	   *c;

	while ((c = TAILQ_FIRST(&routing_queue)) != NULL)
		client_fail(c, "57P01", "perfopt-pooler is shutting down: no new transactions");
}
