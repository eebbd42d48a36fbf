/*
 * replica.h
 *		What perfopt does for replication (replica/): its WAL resource
 *		manager, and the commit positions it reports to clients.
 */
#ifndef PERFOPT_REPLICA_H
#define PERFOPT_REPLICA_H

/* replica_rmgr.c: register the resource manager (only while preloading) */
extern void replica_register_rmgr(void);

/* commit_lsn.c: perfopt.commit_lsn, reported after commits when asked */
extern void commit_lsn_install_hooks(void);

#endif							/* PERFOPT_REPLICA_H */
