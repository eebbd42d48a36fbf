/*
 * stats_hooks.h
 *		The statistics' hooks into PostgreSQL (stats_hooks.c).
 */
#ifndef PERFOPT_STATS_HOOKS_H
#define PERFOPT_STATS_HOOKS_H

#include "executor/execdesc.h"

extern void stats_install_hooks(void);

/*
 * The result cache answers a hit before the statistics' ExecutorRun hook
 * runs: around the hit, these count its time and buffers as the execution's.
 */
extern void stats_measure_begin(QueryDesc *queryDesc);
extern void stats_measure_end(QueryDesc *queryDesc);
extern void stats_count_cache(QueryDesc *queryDesc, bool hit);

#endif							/* PERFOPT_STATS_HOOKS_H */
