/*
 * replica_rmgr.h
 *		perfopt's WAL resource manager: its id and the kinds of record it
 *		replays (replica_rmgr.c dispatches each kind to its owner).
 */
#ifndef PERFOPT_REPLICA_RMGR_H
#define PERFOPT_REPLICA_RMGR_H

#include "access/rmgr.h"

/*
 * The id PostgreSQL sets aside for extensions under development; every
 * server replaying perfopt's WAL must preload perfopt.
 */
#define PERFOPT_RMGR_ID		RM_EXPERIMENTAL_ID
#define PERFOPT_RMGR_NAME	"perfopt"

/*
 * Record kinds, in the high bits of xl_info (the low ones are PostgreSQL's),
 * and one flag beside them.
 */
#define XLOG_PERFOPT_KIND_MASK		0x70
#define XLOG_PERFOPT_CACHE_BUMPS	0x10	/* cache/cache_wal.c */
#define XLOG_PERFOPT_CACHE_WAL_OFF	0x20	/* cache/cache_wal_switch.c */

/*
 * Set on every record of a server that writes the cache's invalidations
 * (perfopt.cache_standby_wal = on): a standby that replays one knows that
 * the primary logs them (cache/cache_wal_switch.c).
 */
#define XLOG_PERFOPT_CACHE_LOGS		0x80

#endif							/* PERFOPT_REPLICA_RMGR_H */
