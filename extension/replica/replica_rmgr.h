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

/* record kinds, in the high bits of xl_info (the low ones are PostgreSQL's) */
#define XLOG_PERFOPT_CACHE_BUMPS	0x10	/* cache/cache_wal.c */

#endif							/* PERFOPT_REPLICA_RMGR_H */
