/*
 * pool.h: pool.c's entry points: getting a pool, asking it for a server,
 * giving one back, and its upkeep.  The two flags at the end are set by the
 * live operations (ops/lifecycle.c); pool.c only reads them.
 */
#ifndef POOL_H
#define POOL_H

#include "pooler.h"

extern pool *pools;				/* every pool, newest first */

pool	   *pool_get(database *db, const char *user, const char *dbname, user_cred *cred);
pool	   *pool_for_host(pool *home, int ix);
void		pool_free_names(pool *p);
void		pool_request(pool *p, client *c);
void		pool_requeue(pool *p, client *c, struct evbuffer *replay);
void		pool_release(server *s);
void		pool_server_ready(server *s);
void		pool_server_failed(pool *p, const char *sqlstate, const char *msg);
void		pool_server_closed(server *s);
void		pool_check_waits(double now);
void		pool_refresh(pool *p);
void		pool_close_idle(pool *p, int keep, const char *why);
void		pool_tick(pool *p, double now);
void		pool_reap_removed(void);
void		pool_shutdown(void);
/* set by lifecycle.c (PAUSE, shutdown); pool.c only reads them */
extern bool shutting_down;		/* graceful shutdown under way: no new transactions */
extern bool (*pool_born_paused) (const char *dbname);	/* a new pool of dbname starts paused */

#endif
