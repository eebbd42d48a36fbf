/*
 * reload.c: RELOAD (admin console) and SIGHUP.  The file is read again into
 * a fresh `settings`; if it (or auth_file) has errors they are logged with
 * file, line and key, the running configuration stays and RELOAD answers
 * with the first error.  Otherwise the new values are applied to the live
 * objects, which keep their addresses: pools point at their `database`
 * (p->db, p->ps = &db->ps), clients and pools at their `user_cred`.
 *
 *   - a database still listed is updated in place: new limits apply at once
 *     to idle servers (extras closed) and to busy ones as they are released
 *     (never in the middle of a transaction); if its address, dbname, user
 *     or password changed, its servers are closed at their next release
 *     (idle ones now) and new ones use the new values;
 *   - a new database is added;
 *   - a removed database takes no new logins (3D000); its connected clients
 *     keep working until they leave (their transactions did nothing wrong),
 *     then its pools and the database itself are freed (ops/janitor.c);
 *   - listen_addr, listen_port and unix_socket_dir need a restart: a change
 *     is logged as a warning and the running value kept;
 *   - users of auth_file are updated in place (auth.c), never freed;
 *   - the logfile is reopened (log rotation).
 */
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "client.h"
#include "auth.h"
#include "server.h"
#include "pool.h"
#include "ops/ops.h"
#include "replica/replica.h"

int			verbose_extra;
static database *retired;		/* removed databases still referenced */

static int
strcmp0(const char *a, const char *b)
{
	if (!a || !b)
		return a == b ? 0 : 1;
	return strcmp(a, b);
}

static database *
take_db(database **list, const char *name)
{
	for (database **pp = list; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0)
		{
			database   *db = *pp;

			*pp = db->next;
			db->next = NULL;
			return db;
		}
	return NULL;
}

static bool
same_hosts(const database *a, const database *b)
{
	if (a->nhosts != b->nhosts)
		return false;
	for (int i = 0; i < a->nhosts; i++)
		if (strcmp(a->hosts[i].name, b->hosts[i].name) != 0 || a->hosts[i].port != b->hosts[i].port)
			return false;
	return true;
}

static bool
same_server(const database *a, const database *b)
{
	return same_hosts(a, b) && strcmp0(a->dbname, b->dbname) == 0 &&
		strcmp0(a->user, b->user) == 0 && strcmp0(a->password, b->password) == 0;
}

/*
 * A new host list: the running object takes the new hosts, unchecked, in
 * place (its pools point into its array); `nd` takes the old ones to free.
 * The same list keeps what the health check knows.
 */
static void
adopt_hosts(database *od, database *nd)
{
	int			n = od->nhosts;

	if (same_hosts(od, nd))
		return;
	for (int i = 0; i < MAX_HOSTS; i++)
	{
		db_host		t = od->hosts[i];

		od->hosts[i] = nd->hosts[i];
		od->hosts[i].db = od;
		nd->hosts[i] = t;
	}
	od->nhosts = nd->nhosts;
	nd->nhosts = n;
}

#define SWAP(a, b) do { char *t_ = (a); (a) = (b); (b) = t_; } while (0)

/* The running object takes the new values; `nd` takes the old strings to free. */
static void
adopt(database *od, database *nd)
{
	adopt_hosts(od, nd);
	SWAP(od->dbname, nd->dbname);
	SWAP(od->user, nd->user);
	SWAP(od->password, nd->password);
	od->ps = nd->ps;
	od->ps_set = nd->ps_set;
	od->tsa = nd->tsa;
	od->load_balance = nd->load_balance;
	od->read_only_routing = nd->read_only_routing;
	od->max_replica_lag = nd->max_replica_lag;
	od->causal_reads = nd->causal_reads;
	od->causal_read_timeout = nd->causal_read_timeout;
	od->causal_warned = false;
	od->routed = nd->routed;
	od->removed = false;
}

static void
server_changed(database *db)
{
	for (pool *p = pools; p; p = p->next)
	{
		server	   *s,
				   *next;

		if (p->db != db)
			continue;
		/*
		 * Connections still logging in to the old place serve nobody yet:
		 * closed now, so the clients waiting for them get new ones at once
		 * (pool_refresh) instead of a failure from a server the RELOAD
		 * meant to replace (a wrong address hangs until connect_timeout).
		 */
		for (s = TAILQ_FIRST(&p->servers); s; s = next)
		{
			next = TAILQ_NEXT(s, link);
			if (s->state == S_CONNECTING || s->state == S_LOGIN)
				server_close(s, "database configuration changed");
			else
				s->close_needed = true;
		}
		pool_close_idle(p, 0, "database configuration changed");
		/* failures at the old place say nothing about the new one */
		p->fail_count = 0;
		p->retry_at = 0;
	}
}

static void
set_str(char **slot, const char *v)
{
	char	   *n = strdup(v);

	free(*slot);
	*slot = n;
}

int
config_reload(char *err, size_t errlen)
{
	settings	running = cfg;
	user_cred  *users = NULL;
	bool		ok = true;
	int			added = 0,
				removed = 0,
				changed = 0;
	database  **pp,
			   *nd,
			   *od;

	config_reloading = true;
	config_error[0] = '\0';
	memset(&cfg, 0, sizeof(cfg));
	if (config_load(running.config_file) < 0)
		ok = false;
	else if (cfg.auth_file)
		users = userlist_parse(cfg.auth_file, &ok);
	config_reloading = false;
	if (!ok)
	{
		snprintf(err, errlen, "%s", config_error[0] ? config_error : "configuration error");
		config_free(&cfg);
		cfg = running;
		log_error("reload of %s failed: the running configuration is kept", cfg.config_file);
		return -1;
	}
	config_keep_fixed(&cfg, &running);
	cfg.verbose += verbose_extra;
	/* health checks log in again with the logins in effect (replica/health.c) */
	for (od = running.databases; od; od = od->next)
		health_stop(od);
	log_open(cfg.logfile);
	userlist_install(users);

	/* the new list, made of the running objects where names match */
	for (pp = &cfg.databases; (nd = *pp) != NULL;)
	{
		bool		was_removed = false;

		od = take_db(&running.databases, nd->name);
		if (!od && (od = take_db(&retired, nd->name)) != NULL)
			was_removed = true;
		if (!od)
		{
			log_info("reload: database \"%s\" added", nd->name);
			added++;
			pp = &nd->next;
			continue;
		}
		if (!same_server(od, nd))
		{
			log_info("reload: database \"%s\" now at %s:%d%s: its server connections are replaced as they are released",
					 nd->name, nd->hosts[0].name, nd->hosts[0].port, nd->nhosts > 1 ? " (and more hosts)" : "");
			changed++;
			server_changed(od);
		}
		else if (was_removed)
			log_info("reload: database \"%s\" added back", nd->name);
		adopt(od, nd);
		od->next = nd->next;
		*pp = od;
		config_free_database(nd);
		pp = &od->next;
	}
	while ((od = running.databases) != NULL)
	{
		running.databases = od->next;
		od->removed = true;
		od->next = retired;
		retired = od;
		removed++;
		log_warn("reload: database \"%s\" removed: new logins get 3D000, connected clients keep working until they leave",
				 od->name);
	}
	config_free(&running);

	for (pool *p = pools; p; p = p->next)
	{
		database   *db = p->db;
		const char *su = db->user ? db->user : p->user;
		user_cred  *u = db->user || cfg.auth_file ? userlist_find(su) : NULL;

		/*
		 * The same login keeps its credentials object (updated in place);
		 * a user dropped from auth_file keeps it too, so that the clients
		 * already in keep working; a new login user takes its own.
		 */
		if (u || strcmp(su, p->server_user) != 0)
			p->cred = u;
		set_str(&p->server_user, su);
		set_str(&p->server_dbname, db->dbname ? db->dbname : p->dbname);
		pool_refresh(p);
	}
	log_info("configuration reloaded from %s: %d database(s) added, %d removed, %d with a new server",
			 cfg.config_file, added, removed, changed);
	route_wake();				/* hosts or targets may have changed under waiting clients */
	return 0;
}

/* Removed databases no pool and no client refers to any more (janitor). */
void
reload_reap_databases(void)
{
	database  **pp = &retired,
			   *db;

	while ((db = *pp) != NULL)
	{
		bool		used = false;
		client	   *c;

		for (pool *p = pools; p && !used; p = p->next)
			used = p->db == db;
		TAILQ_FOREACH(c, &all_clients, link)
			if (c->db == db)
			used = true;
		if (used)
		{
			pp = &db->next;
			continue;
		}
		*pp = db->next;
		config_free_database(db);
	}
}
