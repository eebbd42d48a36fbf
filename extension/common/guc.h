/*
 * guc.h
 *		Every perfopt.* setting, defined in guc.c.
 */
#ifndef PERFOPT_GUC_H
#define PERFOPT_GUC_H

typedef enum PerfoptTrackLevel
{
	PERFOPT_TRACK_NONE,
	PERFOPT_TRACK_TOP,
	PERFOPT_TRACK_ALL
} PerfoptTrackLevel;

/* statistics and slow-query capture */
extern int	perfopt_max_statements;
extern int	perfopt_track;
extern bool perfopt_track_planning;
extern int	perfopt_max_query_length;
extern bool perfopt_save;
extern int	perfopt_slow_query_threshold;
extern int	perfopt_slow_query_max;
extern bool perfopt_slow_query_analyze;

/* result cache (cache/) */
typedef enum CacheMode
{
	CACHE_MODE_OFF,
	CACHE_MODE_RULES,
	CACHE_MODE_ALL
} CacheMode;

extern int	perfopt_cache_mode;
extern int	perfopt_cache_size;
extern int	perfopt_cache_max_entry_size;
extern int	perfopt_cache_recompute_wait;

/* replication (replica/) */
extern bool perfopt_cache_standby_wal;
extern bool perfopt_report_commit_lsn;
extern char *perfopt_commit_lsn;

/* index advisor (advisor/) */
extern int	perfopt_advisor_max_statements;
extern bool perfopt_advisor_capture;
extern int	perfopt_advisor_max_index_size;
extern double perfopt_advisor_min_improvement;
extern double perfopt_advisor_min_workload_improvement;
extern int	perfopt_advisor_max_candidates;
extern int	perfopt_advisor_n_plus_one_threshold;
extern int	perfopt_advisor_big_table_rows;

/*
 * The bookkeeping steps perfopt.debug_fail_bookkeeping can make fail (see
 * common/bookkeeping.c); a setting for perfopt's own tests.
 */
typedef enum BookkeepingStep
{
	BOOKKEEPING_NONE,
	BOOKKEEPING_STATS,
	BOOKKEEPING_SLOWLOG,
	BOOKKEEPING_ADVISOR
} BookkeepingStep;

extern int	perfopt_debug_fail_bookkeeping;

/*
 * What perfopt.cache_standby_fault makes a standby skip (cache/cache_wal.c),
 * to show that perfopt's tests catch a standby serving stale answers.
 */
typedef enum CacheStandbyFault
{
	CACHE_STANDBY_FAULT_NONE,
	CACHE_STANDBY_FAULT_REDO,	/* replaying the bumps (startup process) */
	CACHE_STANDBY_FAULT_SETTLE,	/* the second bump (this session) */
	CACHE_STANDBY_FAULT_OFF		/* the primary's "off" record (startup process) */
} CacheStandbyFault;

extern int	perfopt_cache_standby_fault;

extern void perfopt_define_gucs(void);

#endif							/* PERFOPT_GUC_H */
