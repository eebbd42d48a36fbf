/*
 * stats_hooks.c
 *		Owns the statistics' hooks into PostgreSQL: they decide whether a
 *		statement is tracked and measure it (time and buffers of each
 *		execution, time of its planning); what is kept lives in
 *		stats_store.c (counters) and slowlog.c (slow executions).  The
 *		executor and planner hooks also raise the nesting levels of
 *		nesting.c, which the result cache reads too.
 *
 * None of what they add to a statement may fail it (common/bookkeeping.c).
 * The per-statement work here is arithmetic on a measure, and the one
 * allocation (a measure for a nested execution) is asked not to raise; the
 * parts that can fail (making a statement's row, capturing a slow one) are
 * guarded where they run, in stats_store.c and slowlog.c, on their rare
 * paths, so that no statement pays for a PG_TRY.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "executor/executor.h"
#include "executor/instrument.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "portability/instr_time.h"
#include "tcop/utility.h"
#include "utils/memutils.h"
#include "utils/queryjumble.h"

#include "common/bookkeeping.h"
#include "common/guc.h"
#include "common/nesting.h"
#include "stats/slowlog.h"
#include "stats/stats_hooks.h"
#include "stats/stats_store.h"

static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static planner_hook_type prev_planner_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * How deeply the current statement is nested, for statistics: the executor
 * and planner levels of nesting.c and the utility commands that nest.
 */
static int	utility_level = 0;

#define nesting_level (perfopt_exec_level + perfopt_plan_level + utility_level)

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

/*
 * How long one tracked execution ran and which buffers it touched.  perfopt
 * keeps this itself rather than through queryDesc->totaltime: an
 * Instrumentation node costs a zeroed allocation, a copy of every buffer and
 * WAL counter at each start and a difference of all of them at each stop,
 * while the statistics and the slow log need the time and six buffer
 * counters.  As with totaltime, only ExecutorRun and ExecutorFinish count,
 * so a cursor's idle time between fetches is not execution time.
 *
 * A measure lives in the execution's es_query_cxt and is found by its
 * QueryDesc in a short backend-local list, newest first (usually one entry:
 * the statement running now).  The context's reset callback unlinks it,
 * which covers ExecutorEnd and every error path alike.
 */
typedef struct ExecMeasure
{
	QueryDesc  *queryDesc;
	struct ExecMeasure *next;
	instr_time	total;			/* summed over the finished intervals */
	instr_time	started;		/* start of the interval running now */
	ExecBuffers bufs;			/* summed like total */
	ExecBuffers bufs_start;
	int64		cache_hits;		/* the result cache's, added with the rest */
	int64		cache_misses;
	MemoryContextCallback forget;
} ExecMeasure;

static ExecMeasure *measures = NULL;

/*
 * One measure kept ready, so that the usual execution, one at a time, does
 * not allocate one; it is taken back when its context goes.
 */
static ExecMeasure spare_measure;
static bool spare_in_use = false;

static inline ExecMeasure *
find_measure(QueryDesc *queryDesc)
{
	for (ExecMeasure *m = measures; m != NULL; m = m->next)
		if (m->queryDesc == queryDesc)
			return m;
	return NULL;
}

static void
forget_measure(void *arg)
{
	ExecMeasure *gone = (ExecMeasure *) arg;

	for (ExecMeasure **p = &measures; *p != NULL; p = &(*p)->next)
	{
		if (*p == gone)
		{
			*p = gone->next;
			break;
		}
	}
	if (gone == &spare_measure)
		spare_in_use = false;
}

static inline void
read_buffers(ExecBuffers *b)
{
	b->shared_blks_hit = pgBufferUsage.shared_blks_hit;
	b->shared_blks_read = pgBufferUsage.shared_blks_read;
	b->shared_blks_dirtied = pgBufferUsage.shared_blks_dirtied;
	b->shared_blks_written = pgBufferUsage.shared_blks_written;
	b->temp_blks_read = pgBufferUsage.temp_blks_read;
	b->temp_blks_written = pgBufferUsage.temp_blks_written;
}

static inline void
measure_start(ExecMeasure *m)
{
	INSTR_TIME_SET_CURRENT(m->started);
	read_buffers(&m->bufs_start);
}

static inline void
measure_stop(ExecMeasure *m)
{
	instr_time	now;
	ExecBuffers *b = &m->bufs;
	const ExecBuffers *s = &m->bufs_start;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_ACCUM_DIFF(m->total, now, m->started);
	b->shared_blks_hit += pgBufferUsage.shared_blks_hit - s->shared_blks_hit;
	b->shared_blks_read += pgBufferUsage.shared_blks_read - s->shared_blks_read;
	b->shared_blks_dirtied += pgBufferUsage.shared_blks_dirtied - s->shared_blks_dirtied;
	b->shared_blks_written += pgBufferUsage.shared_blks_written - s->shared_blks_written;
	b->temp_blks_read += pgBufferUsage.temp_blks_read - s->temp_blks_read;
	b->temp_blks_written += pgBufferUsage.temp_blks_written - s->temp_blks_written;
}

/*
 * For the result cache, which answers a hit in its own ExecutorRun hook
 * (before these, which it chains to): the hit's time and buffers count as the execution.
 */
void
stats_measure_begin(QueryDesc *queryDesc)
{
	ExecMeasure *m = measures ? find_measure(queryDesc) : NULL;

	if (m)
		measure_start(m);
}

void
stats_measure_end(QueryDesc *queryDesc)
{
	ExecMeasure *m = measures ? find_measure(queryDesc) : NULL;

	if (m)
		measure_stop(m);
}

/*
 * A result-cache hit or miss of this execution: counted with the rest of it
 * at ExecutorEnd, where its row is found anyway, or at once (on a row that
 * exists) when the execution is not measured.
 */
void
stats_count_cache(QueryDesc *queryDesc, bool hit)
{
	ExecMeasure *m = measures ? find_measure(queryDesc) : NULL;

	if (m == NULL)
		stats_store_count_cache(queryDesc->plannedstmt->queryId, hit);
	else if (hit)
		m->cache_hits++;
	else
		m->cache_misses++;
}

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
stats_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
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
stats_planner(Query *parse, const char *query_string, int cursorOptions,
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

	/* an error leaves the level raised: see nesting.c */
	perfopt_plan_level++;
	if (prev_planner_hook)
		result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	else
		result = standard_planner(parse, query_string, cursorOptions, boundParams);
	perfopt_plan_level--;

	if (measure)
	{
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		if (pending_plan_queryid != 0 && pending_plan_queryid != parse->queryId)
			flush_pending_plan();
		pending_plan_queryid = parse->queryId;
		pending_plan_ms += INSTR_TIME_GET_MILLISEC(duration);
	}
	return result;
}

static inline bool
statement_tracked(QueryDesc *queryDesc)
{
	return stats_store_ready() &&
		queryDesc->plannedstmt->queryId != UINT64CONST(0) &&
		tracking_enabled(nesting_level);
}

static void
stats_ExecutorStart(QueryDesc *queryDesc, int eflags)
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
	if (tracked)
	{
		ExecMeasure *m;

		if (!spare_in_use)
		{
			m = &spare_measure;
			spare_in_use = true;
		}
		else if ((m = MemoryContextAllocExtended(queryDesc->estate->es_query_cxt,
												 sizeof(ExecMeasure),
												 MCXT_ALLOC_NO_OOM)) == NULL)
		{
			bookkeeping_skip(BOOKKEEPING_STATS, "out of memory");
			return;
		}
		m->queryDesc = queryDesc;
		m->cache_hits = m->cache_misses = 0;
		INSTR_TIME_SET_ZERO(m->total);
		memset(&m->bufs, 0, sizeof(m->bufs));
		m->forget.func = forget_measure;
		m->forget.arg = m;
		MemoryContextRegisterResetCallback(queryDesc->estate->es_query_cxt, &m->forget);
		m->next = measures;
		measures = m;
	}
}

/*
 * An error thrown out of the executor leaves a measure started; nothing
 * reads it then, as the execution ends without ExecutorEnd's accounting.
 */
static void
stats_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
					bool execute_once)
{
	ExecMeasure *m = measures ? find_measure(queryDesc) : NULL;

	if (m)
		measure_start(m);
	/* an error leaves the level raised: see nesting.c */
	perfopt_exec_level++;
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
	perfopt_exec_level--;
	if (m)
		measure_stop(m);
}

static void
stats_ExecutorFinish(QueryDesc *queryDesc)
{
	ExecMeasure *m = measures ? find_measure(queryDesc) : NULL;

	if (m)
		measure_start(m);
	perfopt_exec_level++;
	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
	perfopt_exec_level--;
	if (m)
		measure_stop(m);
}

static void
stats_ExecutorEnd(QueryDesc *queryDesc)
{
	ExecMeasure *m = measures ? find_measure(queryDesc) : NULL;

	if (m && statement_tracked(queryDesc))
	{
		uint64		queryid = queryDesc->plannedstmt->queryId;
		StatsSample sample = {0};

		sample.exec_ms = INSTR_TIME_GET_MILLISEC(m->total);
		sample.calls = 1;
		sample.rows = queryDesc->estate->es_processed;
		sample.cache_hits = m->cache_hits;
		sample.cache_misses = m->cache_misses;
		sample.bufusage = &m->bufs;
		if (pending_plan_queryid == queryid)
		{
			sample.plan_ms = pending_plan_ms;
			sample.plans = 1;
			pending_plan_queryid = 0;
			pending_plan_ms = 0.0;
		}
		else if (pending_plan_queryid != 0)
			flush_pending_plan();

		stats_store_record(queryid, queryDesc->sourceText,
						   queryDesc->plannedstmt->stmt_location,
						   queryDesc->plannedstmt->stmt_len, &sample);

		if (slow_capture_enabled() && sample.exec_ms >= perfopt_slow_query_threshold)
			slowlog_capture(queryDesc, sample.exec_ms, &m->bufs);
	}
	else if (m && (m->cache_hits > 0 || m->cache_misses > 0))
	{
		/* no longer tracked (a setting changed meanwhile): as if unmeasured */
		if (m->cache_hits > 0)
			stats_store_count_cache(queryDesc->plannedstmt->queryId, true);
		if (m->cache_misses > 0)
			stats_store_count_cache(queryDesc->plannedstmt->queryId, false);
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
stats_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	perfopt_utility_nested(&utility_level, !IsA(pstmt->utilityStmt, ExecuteStmt),
						   prev_ProcessUtility, pstmt, queryString, readOnlyTree,
						   context, params, queryEnv, dest, qc);
}

void
stats_install_hooks(void)
{
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = stats_post_parse_analyze;
	prev_planner_hook = planner_hook;
	planner_hook = stats_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = stats_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = stats_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = stats_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = stats_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = stats_ProcessUtility;
}
