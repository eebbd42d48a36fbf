/*
 * stats_persist.h
 *		Statistics and slow queries across restarts (see stats_persist.c).
 */
#ifndef PERFOPT_STATS_PERSIST_H
#define PERFOPT_STATS_PERSIST_H

extern void stats_persist_save(void);
extern void stats_persist_load(void);

#endif							/* PERFOPT_STATS_PERSIST_H */
