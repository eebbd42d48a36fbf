/*
 * perfopt.c
 *		Entry point of the perfopt extension: _PG_init defines the settings
 *		and wires perfopt into PostgreSQL's hooks, each chained to whatever
 *		was installed before.  The hooks here only decide whether a statement
 *		is tracked and measure it; what is kept lives in stats_store.c
 *		(counters) and slowlog.c (slow executions).
 */
#include "postgres.h"

#include "access/parallel.h"
#include "executor/executor.h"
#include "executor/instrument.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "portability/instr_time.h"
#include "tcop/utility.h"
#include "utils/queryjumble.h"

#include "advisor.h"
#include "cache.h"			/* result cache */
#include "guc.h"
#include "perfopt.h"
#include "slowlog.h"
#include "stats_store.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static planner_hook_type prev_planner_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * How deeply statements are nested: the executor levels (ExecutorRun and
 * ExecutorFinish), shared with the result cache so that one wrapper keeps
 * them, and for statistics the planner and utility commands on top.
 */
int			perfopt_exec_level = 0;
static int	other_level = 0;

#define nesting_level (perfopt_exec_level + other_level)

/*
 * Planning time waiting to be added to its statement's row.  Planning is
 * almost always followed at once by the execution of the same statement,
 * so carrying it over saves a second hash lookup per statement.  The
 * planned text may be gone by the time the time is flushed, so a flush
 * only adds to a row that exists already.
 */
static uint64 pending_plan_queryid = 0;
static double pending_plan_ms = 0.0;

#define tracking_enabled(level) \
	(!IsParallelWorker() && \
	 (perfopt_track == PERFOPT_TRACK_ALL || \
	  (perfopt_track == PERFOPT_TRACK_TOP && (level) == 0)))

#define slow_capture_enabled() (perfopt_slow_query_threshold >= 0)

static void
flush_pending_plan(void)
{
	StatsSample sample = {0};

	if (pending_plan_queryid == 0)
		return;
	sample.plan_ms = pending_plan_ms;
	sample.plans = 1;
	stats_store_record(pending_plan_queryid, NULL, 0, -1, &sample);
	pending_plan_queryid = 0;
	pending_plan_ms = 0.0;
}

static void
perfopt_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);

	if (!stats_store_ready() || !tracking_enabled(nesting_level) ||
		query->queryId == UINT64CONST(0) || query->utilityStmt != NULL)
		return;

	/* Only now are the constants' locations known: keep the normalized text. */
	if (jstate && jstate->clocations_count > 0)
		stats_store_prepare_text(query->queryId, pstate->p_sourcetext,
								 query->stmt_location, query->stmt_len, jstate);
}

static PlannedStmt *
perfopt_planner(Query *parse, const char *query_string, int cursorOptions,
				ParamListInfo boundParams)
{
	PlannedStmt *result;
	instr_time	start;
	instr_time	duration;
	bool		measure;

	measure = perfopt_track_planning && stats_store_ready() && query_string &&
		parse->queryId != UINT64CONST(0) && tracking_enabled(nesting_level);
	if (measure)
		INSTR_TIME_SET_CURRENT(start);

	other_level++;
	PG_TRY();
	{
		if (prev_planner_hook)
			result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions, boundParams);
	}
	PG_FINALLY();
	{
		other_level--;
	}
	PG_END_TRY();

	if (measure)
	{
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		if (pending_plan_queryid != parse->queryId)
			flush_pending_plan();
		pending_plan_queryid = parse->queryId;
		pending_plan_ms += INSTR_TIME_GET_MILLISEC(duration);
	}
	return result;
}

static bool
statement_tracked(QueryDesc *queryDesc)
{
	return stats_store_ready() &&
		queryDesc->plannedstmt->queryId != UINT64CONST(0) &&
		tracking_enabled(nesting_level);
}

static void
perfopt_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	/* EXPLAIN without ANALYZE plans but never runs: not an execution */
	bool		tracked = statement_tracked(queryDesc) &&
		(eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0;

	/* per-node timing is costly, so only when slow plans are to be analyzed */
	if (tracked && slow_capture_enabled() && perfopt_slow_query_analyze)
		queryDesc->instrument_options |= INSTRUMENT_ALL;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	/* one timer and buffer counter around the whole execution */
	if (tracked && queryDesc->totaltime == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);

		queryDesc->totaltime = InstrAlloc(1, INSTRUMENT_ALL, false);
		MemoryContextSwitchTo(oldcxt);
	}
}

/*
 * Each capability that tells top-level statements from nested ones counts
 * its own depth (their rules differ: EXPLAIN ANALYZE nests for statistics,
 * not for the cache), through these two.
 */
void
perfopt_run_nested(int *level, ExecutorRun_hook_type prev, QueryDesc *queryDesc,
				   ScanDirection direction, uint64 count, bool execute_once)
{
	(*level)++;
	PG_TRY();
	{
		if (prev)
			prev(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		(*level)--;
	}
	PG_END_TRY();
}

void
perfopt_finish_nested(int *level, ExecutorFinish_hook_type prev, QueryDesc *queryDesc)
{
	(*level)++;
	PG_TRY();
	{
		if (prev)
			prev(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		(*level)--;
	}
	PG_END_TRY();
}

static void
perfopt_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
					bool execute_once)
{
	perfopt_run_nested(&perfopt_exec_level, prev_ExecutorRun, queryDesc, direction,
					   count, execute_once);
}

static void
perfopt_ExecutorFinish(QueryDesc *queryDesc)
{
	perfopt_finish_nested(&perfopt_exec_level, prev_ExecutorFinish, queryDesc);
}

static void
perfopt_ExecutorEnd(QueryDesc *queryDesc)
{
	if (queryDesc->totaltime && statement_tracked(queryDesc))
	{
		uint64		queryid = queryDesc->plannedstmt->queryId;
		StatsSample sample = {0};

		/* the timer must be stopped before it can be read */
		InstrEndLoop(queryDesc->totaltime);
		sample.exec_ms = queryDesc->totaltime->total * 1000.0;
		sample.calls = 1;
		sample.rows = queryDesc->estate->es_processed;
		sample.bufusage = &queryDesc->totaltime->bufusage;
		if (pending_plan_queryid == queryid)
		{
			sample.plan_ms = pending_plan_ms;
			sample.plans = 1;
			pending_plan_queryid = 0;
			pending_plan_ms = 0.0;
		}
		else
			flush_pending_plan();

		stats_store_record(queryid, queryDesc->sourceText,
						   queryDesc->plannedstmt->stmt_location,
						   queryDesc->plannedstmt->stmt_len, &sample);

		if (slow_capture_enabled() && sample.exec_ms >= perfopt_slow_query_threshold)
			slowlog_capture(queryDesc, sample.exec_ms);
	}

	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/*
 * Statements run by a utility command (CREATE TABLE AS, EXPLAIN ANALYZE,
 * DO, CALL) count as nested.  EXECUTE of a prepared statement does not: the
 * statement it runs is what the client asked for.
 */
static void
perfopt_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	perfopt_utility_nested(&other_level, !IsA(pstmt->utilityStmt, ExecuteStmt),
						   prev_ProcessUtility, pstmt, queryString, readOnlyTree,
						   context, params, queryEnv, dest, qc);
}

/* A utility command, one level deeper when it nests (see perfopt_run_nested). */
void
perfopt_utility_nested(int *level, bool nests, ProcessUtility_hook_type prev,
					   PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	if (nests)
		(*level)++;
	PG_TRY();
	{
		if (prev)
			prev(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (nests)
			(*level)--;
	}
	PG_END_TRY();
}

void
_PG_init(void)
{
	/*
	 * Without preloading there is no shared memory to keep anything in; the
	 * SQL functions then raise an error that says so.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	perfopt_define_gucs();
	EnableQueryId();
	perfopt_install_shmem_hooks();

	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = perfopt_post_parse_analyze;
	prev_planner_hook = planner_hook;
	planner_hook = perfopt_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = perfopt_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = perfopt_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = perfopt_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = perfopt_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = perfopt_ProcessUtility;

	advisor_install_hooks();	/* index advisor: planner and capture hooks */
	cache_install_hooks();		/* result cache: runs first, chains to the above */
}
