/*
 * ops/ops.h: the live operations, above the pooler's core: the admin
 * console (admin.c, admin_show.c), the Prometheus endpoint (metrics.c),
 * RELOAD (reload.c), PAUSE / RESUME / shutdown (lifecycle.c) and the
 * once-a-second janitor (janitor.c).
 */
#ifndef OPS_H
#define OPS_H

#include "pooler.h"
#include "client.h"			/* console_ops */

/* ---- the once-a-second timer (janitor.c) ---- */
void		janitor_start(void);
void		janitor_stop(void);

/* ---- Prometheus endpoint (metrics.c) ---- */
int			metrics_start(void);
void		metrics_stop(void);

/* ---- admin console: the virtual database ADMIN_DB (admin.c, admin_show.c) ---- */
extern const console_ops admin_console;	/* what main.c plugs into client_console */
bool		admin_show(client *c, const char *name);	/* admin_show.c; false: no such SHOW */

/* ---- reload (reload.c) ---- */
int			config_reload(char *err, size_t errlen);
void		reload_reap_databases(void);
extern int	verbose_extra;		/* -v on the command line, kept across reloads */

/* ---- pause, resume, shutdown (lifecycle.c) ---- */
void		lifecycle_start(void (*stop_listening) (void));
void		lifecycle_shutdown(bool immediate);
/* how a PAUSE that had to wait is answered: tag on success, else sqlstate and msg */
typedef void (*pause_answer_fn) (client *c, const char *tag, const char *sqlstate, const char *msg);
int			lifecycle_pause(const char *db, client *admin, pause_answer_fn answer, char *err, size_t errlen);
int			lifecycle_resume(const char *db, char *err, size_t errlen);
bool		lifecycle_db_paused(const char *dbname);
void		lifecycle_client_gone(client *c);

#endif
