/*
 * lifecycle.c: signals, PAUSE / RESUME and shutdown, all on the event loop
 * (libevent signal events: nothing blocks).
 *
 *   SIGHUP      reload the configuration (reload.c)
 *   SIGINT      graceful shutdown: stop accepting, clients asking for a new
 *               transaction get 57P01, running transactions finish (their
 *               servers are closed as they are released); exit 0 once none
 *               runs, or after shutdown_timeout seconds (0: no limit)
 *   SIGTERM     immediate shutdown: every connection closed, exit 0
 *
 * PAUSE [db]: the affected pools hand out no server
 * (clients queue; pool_timeout does not run while paused and counts again
 * from RESUME), idle servers are closed at once and busy ones when they are
 * released (transaction mode: at the end of the transaction; session mode:
 * when the client leaves).  The PAUSE command completes when the affected
 * pools hold no server connection at all, so the database can be restarted
 * under a paused pooler.  RESUME lets the queued clients go on.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "client.h"
#include "server.h"
#include "pool.h"
#include "net/net.h"
#include "ops/ops.h"
#include "replica/replica.h"

#define POLL_USEC 10000

static bool pause_all;
static char **paused_dbs;
static int	n_paused_dbs;

/* admin clients whose PAUSE has not completed yet */
typedef struct pause_waiter
{
	client	   *c;
	pause_answer_fn answer;		/* the console's: how to tell c its PAUSE is over */
	char	   *db;				/* NULL: every database */
} pause_waiter;
static pause_waiter *waiters;
static int	n_waiters;

static struct event sighup_ev,
			sigint_ev,
			sigterm_ev,
			poll_ev;
static bool poll_on,
			exiting;
static double shutdown_deadline;
static void (*stop_listening) (void);

bool
lifecycle_db_paused(const char *dbname)
{
	if (pause_all)
		return true;
	for (int i = 0; i < n_paused_dbs; i++)
		if (strcmp(paused_dbs[i], dbname) == 0)
			return true;
	return false;
}

static bool
matches(const char *db, const pool *p)
{
	return !db || strcmp(p->dbname, db) == 0;
}

/* No server connection left in the pools a PAUSE is about. */
static bool
pause_reached(const char *db)
{
	for (pool *p = pools; p; p = p->next)
		if (matches(db, p) && p->n_servers > 0)
			return false;
	return true;
}

/* In a transaction, running a query or resetting: what a graceful shutdown waits for. */
static bool
server_busy(const server *s)
{
	const client *c = s->client;

	if (s->state == S_RESETTING)
		return true;
	if (s->state != S_ACTIVE)
		return false;
	return s->expect_rfq > 0 || s->txstatus != 'I' || s->pass_remaining > 0 || s->in_copy_out ||
		(c && (c->in_batch || c->pass_remaining > 0));
}

static int
busy_servers(void)
{
	int			n = 0;

	for (pool *p = pools; p; p = p->next)
	{
		server	   *s;

		TAILQ_FOREACH(s, &p->servers, link)
			n += server_busy(s);
	}
	return n;
}

static void
pause_pool(pool *p, const char *why)
{
	server	   *s,
			   *next;

	p->paused = true;
	pool_close_idle(p, 0, why);
	for (s = TAILQ_FIRST(&p->servers); s; s = next)
	{
		next = TAILQ_NEXT(s, link);
		if (s->state == S_CONNECTING || s->state == S_LOGIN)
			server_close(s, why);
	}
}

static void
poll_cb(evutil_socket_t fd, short ev, void *arg)
{
	int			busy;

again:
	for (int i = 0; i < n_waiters; i++)
		if (pause_reached(waiters[i].db))
		{
			client	   *c = waiters[i].c;
			pause_answer_fn answer = waiters[i].answer;

			log_info("PAUSE %s: every server connection released", waiters[i].db ? waiters[i].db : "(all)");
			free(waiters[i].db);
			waiters[i] = waiters[--n_waiters];
			answer(c, "PAUSE", NULL, NULL);
			goto again;			/* the answer may have changed the list */
		}
	if (shutting_down && !exiting)
	{
		busy = busy_servers();
		if (busy == 0)
		{
			log_info("graceful shutdown: no transaction running any more, exiting");
			exiting = true;
			event_base_loopexit(base, NULL);
		}
		else if (cfg.shutdown_timeout > 0 && now_mono() >= shutdown_deadline)
		{
			log_warn("graceful shutdown: shutdown_timeout (%g s) reached with %d transaction(s) still running; closing them",
					 cfg.shutdown_timeout, busy);
			exiting = true;
			event_base_loopexit(base, NULL);
		}
	}
	if (n_waiters == 0 && (!shutting_down || exiting) && poll_on)
	{
		event_del(&poll_ev);
		poll_on = false;
	}
}

static void
poll_start(void)
{
	struct timeval tv = {0, POLL_USEC};

	if (!poll_on)
	{
		event_add(&poll_ev, &tv);
		poll_on = true;
	}
}

static bool
db_known(const char *db)
{
	for (database *d = cfg.databases; d; d = d->next)
		if (strcmp(d->name, db) == 0)
			return true;
	for (pool *p = pools; p; p = p->next)
		if (strcmp(p->dbname, db) == 0)
			return true;
	return false;
}

/*
 * PAUSE [db]: 0 done already, 1 under way (admin_done(admin, ...) follows),
 * -1 no such database, -2 already paused; err says it.
 */
int
lifecycle_pause(const char *db, client *admin, pause_answer_fn answer, char *err, size_t errlen)
{
	int			servers = 0;

	if (db)
	{
		if (!db_known(db))
		{
			snprintf(err, errlen, "no such database: \"%s\"", db);
			return -1;
		}
		if (lifecycle_db_paused(db))
		{
			snprintf(err, errlen, "database \"%s\" is already paused", db);
			return -2;
		}
		paused_dbs = realloc(paused_dbs, sizeof(char *) * (n_paused_dbs + 1));
		paused_dbs[n_paused_dbs++] = strdup(db);
	}
	else
	{
		if (pause_all)
		{
			snprintf(err, errlen, "the pooler is already paused");
			return -2;
		}
		pause_all = true;
	}
	for (pool *p = pools; p; p = p->next)
		if (matches(db, p))
		{
			pause_pool(p, "pause");
			servers += p->n_servers;
		}
	log_info("PAUSE %s: waiting for %d server connection(s) to be released", db ? db : "(all)", servers);
	if (pause_reached(db))
		return 0;
	waiters = realloc(waiters, sizeof(*waiters) * (n_waiters + 1));
	waiters[n_waiters].c = admin;
	waiters[n_waiters].answer = answer;
	waiters[n_waiters].db = db ? strdup(db) : NULL;
	n_waiters++;
	poll_start();
	return 1;
}

/* RESUME [db]: 0 done, -2 nothing to resume (err says why). */
int
lifecycle_resume(const char *db, char *err, size_t errlen)
{
	double		now = now_mono();
	pause_waiter *cancel;
	int			ncancel = 0;

	if (shutting_down)
	{
		snprintf(err, errlen, "the pooler is shutting down");
		return -2;
	}
	if (db)
	{
		int			i;

		for (i = 0; i < n_paused_dbs; i++)
			if (strcmp(paused_dbs[i], db) == 0)
				break;
		if (i == n_paused_dbs)
		{
			snprintf(err, errlen, pause_all ? "the whole pooler is paused: RESUME without a database name" :
					 "database \"%s\" is not paused", db);
			return -2;
		}
		free(paused_dbs[i]);
		paused_dbs[i] = paused_dbs[--n_paused_dbs];
	}
	else
	{
		if (!pause_all && n_paused_dbs == 0)
		{
			snprintf(err, errlen, "the pooler is not paused");
			return -2;
		}
		pause_all = false;
		for (int i = 0; i < n_paused_dbs; i++)
			free(paused_dbs[i]);
		n_paused_dbs = 0;
	}
	log_info("RESUME %s", db ? db : "(all)");
	for (pool *p = pools; p; p = p->next)
		if (p->paused && !lifecycle_db_paused(p->dbname))
		{
			p->paused = false;
			p->resumed_at = now;
			pool_refresh(p);
		}
	/* PAUSEs still waiting for what is no longer paused end with an error */
	cancel = malloc(sizeof(*cancel) * (n_waiters + 1));
	for (int i = 0; i < n_waiters;)
	{
		const char *w = waiters[i].db;

		if (w ? lifecycle_db_paused(w) : pause_all)
		{
			i++;
			continue;
		}
		cancel[ncancel++] = waiters[i];
		free(waiters[i].db);
		waiters[i] = waiters[--n_waiters];
	}
	for (int i = 0; i < ncancel; i++)
		cancel[i].answer(cancel[i].c, NULL, "57014", "PAUSE canceled by RESUME");
	free(cancel);
	return 0;
}

/* An admin client left: its PAUSE (if any) stays in force, nobody waits for it. */
void
lifecycle_client_gone(client *c)
{
	for (int i = 0; i < n_waiters;)
		if (waiters[i].c == c)
		{
			free(waiters[i].db);
			waiters[i] = waiters[--n_waiters];
		}
		else
			i++;
}

void
lifecycle_shutdown(bool immediate)
{
	client	   *c;

	if (immediate)
	{
		log_info("immediate shutdown: closing every connection");
		exiting = true;
		event_base_loopexit(base, NULL);
		return;
	}
	if (shutting_down)
	{
		log_info("graceful shutdown already under way");
		return;
	}
	shutting_down = true;
	if (stop_listening)
		stop_listening();
	pause_all = true;
	for (pool *p = pools; p; p = p->next)
	{
		pause_pool(p, "shutdown");
		while ((c = TAILQ_FIRST(&p->waiting)) != NULL)
			client_fail(c, "57P01", "perfopt-pooler is shutting down: no new transactions");
		while ((c = TAILQ_FIRST(&p->login_wait)) != NULL)
			client_fail(c, "57P01", "perfopt-pooler is shutting down");
	}
	route_shutdown();			/* those waiting for a host to fit them */
	shutdown_deadline = now_mono() + cfg.shutdown_timeout;
	log_info("graceful shutdown: not accepting connections; waiting for %d running transaction(s) (shutdown_timeout %g s)",
			 busy_servers(), cfg.shutdown_timeout);
	poll_start();
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	char		err[512];

	switch (sig)
	{
		case SIGHUP:
			log_info("SIGHUP: reloading %s", cfg.config_file);
			config_reload(err, sizeof(err));
			break;
		case SIGINT:
			log_info("SIGINT: graceful shutdown");
			lifecycle_shutdown(false);
			break;
		default:
			log_info("SIGTERM: immediate shutdown");
			lifecycle_shutdown(true);
			break;
	}
}

/* stop_listening: how to stop accepting (net/listener.c's, which the fuzz harnesses do not link). */
void
lifecycle_start(void (*stop) (void))
{
	stop_listening = stop;
	pool_born_paused = lifecycle_db_paused;
	event_assign(&poll_ev, base, -1, EV_PERSIST, poll_cb, NULL);
	evsignal_assign(&sighup_ev, base, SIGHUP, signal_cb, NULL);
	evsignal_assign(&sigint_ev, base, SIGINT, signal_cb, NULL);
	evsignal_assign(&sigterm_ev, base, SIGTERM, signal_cb, NULL);
	evsignal_add(&sighup_ev, NULL);
	evsignal_add(&sigint_ev, NULL);
	evsignal_add(&sigterm_ev, NULL);
}
