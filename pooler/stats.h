/*
 * stats.h: stats.c's entry points: the pools' wait histogram and counters.
 */
#ifndef STATS_H
#define STATS_H

#include "pooler.h"

void		stats_wait_done(struct pool *p, double seconds);
double		stats_wait_percentile(const pool_stats *st, double q);
double		stats_wait_bucket_upper(int b);
void		stats_add(pool_stats *into, const pool_stats *from);
extern pool_stats stats_removed;	/* pools of removed databases, once freed */

#endif
