/*
 * stats_store.h
 *		Per-statement statistics in shared memory (see stats_store.c).
 */
#ifndef PERFOPT_STATS_STORE_H
#define PERFOPT_STATS_STORE_H

#include "executor/instrument.h"
#include "storage/spin.h"
#include "utils/queryjumble.h"
#include "utils/timestamp.h"

#include "stats/histogram.h"

typedef struct StatsKey
{
	Oid			userid;
	Oid			dbid;
	uint64		queryid;
} StatsKey;

typedef struct StatsCounters
{
	int64		calls;
	int64		rows;
	double		total_exec_time;	/* ms */
	double		min_exec_time;
	double		max_exec_time;
	int64		plans;
	double		total_plan_time;
	int64		shared_blks_hit;
	int64		shared_blks_read;
	int64		temp_blks_written;
	int64		cache_hits;
	int64		cache_misses;
	TimestampTz first_seen;
	TimestampTz last_seen;
	double		usage;			/* eviction priority, decays over time */
	LatencyHistogram latency;
} StatsCounters;

/* A copy of one entry, taken under its spinlock, for the views. */
typedef struct StatsSnapshot
{
	StatsKey	key;
	StatsCounters counters;
	char	   *query;			/* palloc'd */
} StatsSnapshot;

/*
 * The buffer counters perfopt keeps of one execution: those of the
 * statistics and of a slow capture, not the whole BufferUsage (stats_hooks.c
 * measures executions itself, see ExecMeasure).
 */
typedef struct ExecBuffers
{
	int64		shared_blks_hit;
	int64		shared_blks_read;
	int64		shared_blks_dirtied;
	int64		shared_blks_written;
	int64		temp_blks_read;
	int64		temp_blks_written;
} ExecBuffers;

/* One execution (or one planning) to add to a statement's row. */
typedef struct StatsSample
{
	double		exec_ms;
	double		plan_ms;
	int64		plans;
	int64		calls;
	int64		rows;
	int64		cache_hits;		/* the result cache's answer to it */
	int64		cache_misses;
	const ExecBuffers *bufusage;
} StatsSample;

extern Size stats_store_shmem_size(void);
extern void stats_store_shmem_init(void);
extern void stats_store_request_lock(void);
/* set once shared memory is attached (stats_store_shmem_init) */
extern bool stats_store_attached;

/* inline: every hook asks, once or twice per statement */
static inline bool
stats_store_ready(void)
{
	return stats_store_attached;
}

extern void stats_store_prepare_text(uint64 queryid, const char *source,
									 int location, int length,
									 JumbleState *jstate);
extern void stats_store_record(uint64 queryid, const char *source,
							   int location, int length,
							   const StatsSample *sample);
extern void stats_store_count_cache(uint64 queryid, bool hit);

extern StatsSnapshot *stats_store_snapshot(int *count);
extern void stats_store_info(int64 *evictions, TimestampTz *stats_reset);
extern int64 stats_store_bookkeeping_skipped(void);
extern void stats_store_reset(void);

/* persistence across restarts (stats_persist.c walks these) */
typedef void (*stats_entry_visitor) (const StatsKey *key,
									 const StatsCounters *counters,
									 const char *query, int query_len,
									 void *arg);
extern void stats_store_visit(stats_entry_visitor visitor, void *arg);
extern void stats_store_restore(const StatsKey *key, const StatsCounters *counters,
								const char *query, int query_len);
extern void stats_store_restore_info(int64 evictions, TimestampTz stats_reset);

#endif							/* PERFOPT_STATS_STORE_H */
