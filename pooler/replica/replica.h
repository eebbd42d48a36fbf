/*
 * replica/replica.h: databases with several hosts, or a role to match:
 * route.c chooses the host each request goes to (libpq's
 * target_session_attrs, load_balance_hosts, read-only routing) and holds
 * the clients no host fits yet; health.c learns what each host is (role,
 * health, replay position) and is the only one that writes it.
 */
#ifndef REPLICA_H
#define REPLICA_H

#include "pooler.h"

/* ---- route.c ---- */
void		route_login(client *c);
void		route_request(client *c);
void		route_wake(void);
void		route_check_waits(double now);
void		route_shutdown(void);
bool		route_fits(const db_host *h, enum target_attrs want);
bool		route_lag_ok(const db_host *h);
void		route_commit_reported(server *s, const char *lsn, bool login);

/* ---- health.c ---- */
void		health_start(void);
void		health_probe_ready(server *s);
void		health_probe_failed(pool *p, const char *sqlstate, const char *msg);
void		health_answer(server *s, char type, const unsigned char *body, size_t len);
void		health_reported(db_host *h, const char *in_hot_standby);
bool		health_host_level(const char *sqlstate);
void		health_host_failed(db_host *h, const char *msg);
void		health_stop(database *db);
const char *health_role_name(const db_host *h);
const char *health_state_name(const db_host *h);
bool		health_parse_lsn(const char *v, size_t len, uint64_t *out);
void		health_want_fresh(db_host *h);

#endif
