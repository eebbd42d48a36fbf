/*
 * guc.c
 *		Defines every perfopt.* setting in one place, with its unit, bounds
 *		and context.  Settings that size shared memory are PGC_POSTMASTER;
 *		those that reveal or capture other users' data are PGC_SUSET, as in
 *		auto_explain.
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/plancache.h"

#include "common/guc.h"

int			perfopt_max_statements = 5000;
int			perfopt_track = PERFOPT_TRACK_TOP;
bool		perfopt_track_planning = true;
int			perfopt_max_query_length = 8192;
bool		perfopt_save = true;
int			perfopt_slow_query_threshold = 500;
int			perfopt_slow_query_max = 1000;
bool		perfopt_slow_query_analyze = false;

static const struct config_enum_entry track_options[] = {
	{"none", PERFOPT_TRACK_NONE, false},
	{"top", PERFOPT_TRACK_TOP, false},
	{"all", PERFOPT_TRACK_ALL, false},
	{NULL, 0, false}
};

static void
define_stats_gucs(void)
{
	DefineCustomIntVariable("perfopt.max_statements",
							"Maximum number of statements tracked by perfopt.query_stats.",
							"The least used statements are evicted beyond this; evictions are counted in perfopt.stats_info.",
							&perfopt_max_statements,
							5000, 100, INT_MAX / 2,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("perfopt.track",
							 "Which statements perfopt tracks: top-level only, all (including those inside functions), or none.",
							 NULL,
							 &perfopt_track,
							 PERFOPT_TRACK_TOP, track_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("perfopt.track_planning",
							 "Whether perfopt measures planning time (total_plan_time).",
							 NULL,
							 &perfopt_track_planning,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.max_query_length",
							"Longest query text, parameter list or plan perfopt keeps; longer ones are cut with a visible marker.",
							NULL,
							&perfopt_max_query_length,
							8192, 256, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("perfopt.save",
							 "Save statistics and slow queries across a clean server shutdown.",
							 NULL,
							 &perfopt_save,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
}

static void
define_slowlog_gucs(void)
{
	DefineCustomIntVariable("perfopt.slow_query_threshold",
							"Executions slower than this are captured in perfopt.slow_queries.",
							"0 captures every execution, -1 turns capture off.",
							&perfopt_slow_query_threshold,
							500, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.slow_query_max",
							"Number of slow queries kept in the ring buffer behind perfopt.slow_queries.",
							NULL,
							&perfopt_slow_query_max,
							1000, 10, 1000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("perfopt.slow_query_analyze",
							 "Capture actual rows and times per plan node for slow queries, like EXPLAIN ANALYZE.",
							 "Times every plan node of every statement, which slows fast statements down.",
							 &perfopt_slow_query_analyze,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* --- index advisor --- */
int			perfopt_advisor_max_statements = 1000;
bool		perfopt_advisor_capture = true;
int			perfopt_advisor_max_index_size = -1;
double		perfopt_advisor_min_improvement = 10.0;
double		perfopt_advisor_min_workload_improvement = 0.5;
int			perfopt_advisor_max_candidates = 200;
int			perfopt_advisor_n_plus_one_threshold = 20;
int			perfopt_advisor_big_table_rows = 100000;

static void
define_advisor_gucs(void)
{
	DefineCustomIntVariable("perfopt.advisor_max_statements",
							"Number of statements whose predicates and example text the index advisor keeps.",
							NULL,
							&perfopt_advisor_max_statements,
							1000, 10, 100000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("perfopt.advisor_capture",
							 "Whether the index advisor captures predicates and example texts of executed statements.",
							 NULL,
							 &perfopt_advisor_capture,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.advisor_max_index_size",
							"Total size of the indexes the advisor may recommend; -1 means no limit.",
							NULL,
							&perfopt_advisor_max_index_size,
							-1, -1, INT_MAX,
							PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomRealVariable("perfopt.advisor_min_improvement",
							 "Smallest cut in a statement's planned cost, in percent, for an index to count as helping it.",
							 NULL,
							 &perfopt_advisor_min_improvement,
							 10.0, 0.0, 100.0,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomRealVariable("perfopt.advisor_min_workload_improvement",
							 "Smallest cut in the captured workload's planned cost, in percent of what it costs with the indexes recommended before, for an index to be recommended.",
							 NULL,
							 &perfopt_advisor_min_workload_improvement,
							 0.5, 0.0, 100.0,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.advisor_max_candidates",
							"Most candidate indexes the advisor evaluates per recommendation.",
							NULL,
							&perfopt_advisor_max_candidates,
							200, 1, 10000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.advisor_n_plus_one_threshold",
							"Runs of one statement with different constants, in one transaction or burst, reported as an N+1 pattern.",
							NULL,
							&perfopt_advisor_n_plus_one_threshold,
							20, 2, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.advisor_big_table_rows",
							"Tables with at least this many rows are big: reading all of them is a finding.",
							NULL,
							&perfopt_advisor_big_table_rows,
							100000, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}

/* --- end index advisor --- */

/* ---- result cache (cache/) ---- */
int			perfopt_cache_mode = CACHE_MODE_RULES;
int			perfopt_cache_size = 64 * 1024;
int			perfopt_cache_max_entry_size = 1024;
int			perfopt_cache_recompute_wait = 1000;

static const struct config_enum_entry cache_mode_options[] = {
	{"off", CACHE_MODE_OFF, false},
	{"rules", CACHE_MODE_RULES, false},
	{"all", CACHE_MODE_ALL, false},
	{NULL, 0, false}
};

/*
 * A plan made while the cache is off carries none of the marks the cache
 * puts on plans when it plans them (cache_hooks.c), and a prepared
 * statement keeps its generic plan: turning the cache on from off has this
 * backend's kept plans made again at their next use, so that they are
 * cached from then on rather than refused as if their shape were not.
 */
static void
assign_cache_mode(int newval, void *extra)
{
	if (perfopt_cache_mode == CACHE_MODE_OFF && newval != CACHE_MODE_OFF)
		ResetPlanCache();
}

static void
define_cache_gucs(void)
{
	DefineCustomEnumVariable("perfopt.cache_mode",
							 "Which statements the result cache answers: those selected by rules, every eligible one, or none (off bypasses the cache).",
							 "Rules are created with perfopt.cache_query() and perfopt.cache_table().",
							 &perfopt_cache_mode,
							 CACHE_MODE_RULES, cache_mode_options,
							 PGC_USERSET, 0,
							 NULL, assign_cache_mode, NULL);

	DefineCustomIntVariable("perfopt.cache_size",
							"Shared memory for cached results.",
							NULL,
							&perfopt_cache_size,
							64 * 1024, 64, INT_MAX / 2,
							PGC_POSTMASTER, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.cache_max_entry_size",
							"Largest result the cache keeps; larger results are simply not cached.",
							NULL,
							&perfopt_cache_max_entry_size,
							1024, 1, (int) ((MaxAllocSize + 1) / 1024 / 2),
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.cache_recompute_wait",
							"Longest a statement waits for another session recomputing the same invalidated result, instead of computing it too.",
							"0 turns the wait off: every session missing the entry computes it.",
							&perfopt_cache_recompute_wait,
							1000, 0, 60000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
}
/* ---- end result cache ---- */

/* ---- replication (replica/) ---- */
bool		perfopt_cache_standby_wal = false;
bool		perfopt_report_commit_lsn = false;
char	   *perfopt_commit_lsn = NULL;

static void
define_replica_gucs(void)
{
	DefineCustomBoolVariable("perfopt.cache_standby_wal",
							 "Whether the result cache's invalidations are written to the WAL, so that hot standbys preloading perfopt can serve their cache.",
							 "Every server that replays this server's WAL (standbys, point-in-time recovery) must preload perfopt before it is turned on: PostgreSQL stops recovery at a record it cannot replay.",
							 &perfopt_cache_standby_wal,
							 false,
							 PGC_POSTMASTER, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("perfopt.report_commit_lsn",
							 "Whether this session is told, after each commit that wrote a commit record, where that record ended in the WAL (perfopt.commit_lsn).",
							 "A pooler asks for it to send the session's reads only to standbys that have replayed its writes.",
							 &perfopt_report_commit_lsn,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("perfopt.commit_lsn",
							   "Where this session's last commit record ended in the WAL, as a pg_lsn; empty until one is reported.",
							   "Reported to the client at each change while perfopt.report_commit_lsn is on.",
							   &perfopt_commit_lsn,
							   "",
							   PGC_INTERNAL,
							   GUC_REPORT | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);
}
/* ---- end replication ---- */

/* ---- for perfopt's tests ---- */
int			perfopt_debug_fail_bookkeeping = BOOKKEEPING_NONE;
int			perfopt_cache_standby_fault = CACHE_STANDBY_FAULT_NONE;

static const struct config_enum_entry standby_fault_options[] = {
	{"none", CACHE_STANDBY_FAULT_NONE, false},
	{"redo", CACHE_STANDBY_FAULT_REDO, false},
	{"settle", CACHE_STANDBY_FAULT_SETTLE, false},
	{"off", CACHE_STANDBY_FAULT_OFF, false},
	{NULL, 0, false}
};

static const struct config_enum_entry bookkeeping_step_options[] = {
	{"", BOOKKEEPING_NONE, false},
	{"none", BOOKKEEPING_NONE, true},
	{"stats", BOOKKEEPING_STATS, false},
	{"slowlog", BOOKKEEPING_SLOWLOG, false},
	{"advisor", BOOKKEEPING_ADVISOR, false},
	{NULL, 0, false}
};

static void
define_test_gucs(void)
{
	DefineCustomEnumVariable("perfopt.debug_fail_bookkeeping",
							 "For perfopt's tests only: makes one bookkeeping step (stats, slowlog or advisor) raise an error.",
							 "The statement being recorded must still succeed; the skip is counted in perfopt.stats_info.",
							 &perfopt_debug_fail_bookkeeping,
							 BOOKKEEPING_NONE, bookkeeping_step_options,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("perfopt.cache_standby_fault",
							 "For perfopt's tests only: what a standby skips of the result cache's invalidations (none, redo, settle, off), so that it serves stale answers.",
							 "redo: the startup process applies none of the bumps in the cache's records (set it in the standby's configuration); settle: this session never makes the second bump after a DDL or rule change becomes visible; off: the startup process ignores the record saying the primary stopped writing them.",
							 &perfopt_cache_standby_fault,
							 CACHE_STANDBY_FAULT_NONE, standby_fault_options,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}

void
perfopt_define_gucs(void)
{
	define_stats_gucs();
	define_slowlog_gucs();
	define_advisor_gucs();
	define_cache_gucs();		/* result cache */
	define_replica_gucs();
	define_test_gucs();
	MarkGUCPrefixReserved("perfopt");
}
