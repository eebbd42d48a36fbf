/*
 * cache_standin.c
 *		Owns hits answered without the statement's real plan: the executor
 *		is handed a stand-in, a Result node with the statement's output
 *		columns and its range table (so ExecutorStart still takes the locks
 *		and checks table and column privileges on every hit), and
 *		ExecutorRun replays the stored rows, also piecemeal for a
 *		protocol-level row limit.
 *
 *		A stand-in is made at one of two moments:
 *
 *		at planning (cache_standin_plan), for statements without client
 *		parameters (the simple protocol): when a rule selects the statement
 *		and a valid entry exists for its key, the planner hook returns a
 *		stand-in instead of calling the planner, which for an aggregate
 *		over joins costs ten times more than answering.  That is only
 *		"likely a hit": the statement's snapshot is taken after planning, so
 *		ExecutorStart decides again with it, exactly as for any hit, and
 *		when the entry no longer answers it plans the statement for real
 *		from the analyzed Query kept in the stand-in and runs that instead.
 *		The same happens when such a stand-in was kept as the generic plan
 *		of a prepared statement without parameters, and is executed later.
 *
 *		at ExecutorStart (cache_standin_start), for every other statement
 *		(prepared statements, the extended protocol): the real plan exists,
 *		but initializing it (hash tables of aggregates and joins) costs more
 *		than answering.
 *
 *		A stand-in is only ever run through its entry in standins[]: one
 *		without an entry raises an error rather than returning its NULL row.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "access/xlog.h"
#include "executor/executor.h"
#include "executor/instrument.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "portability/instr_time.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cache/cache_int.h"
#include "common/nesting.h"
#include "stats/stats_hooks.h"
#include "stats/stats_store.h"

#define CACHE_MAX_STANDINS 16

typedef struct CacheStandin
{
	QueryDesc  *queryDesc;
	PlannedStmt *standin;
	int			serial;			/* also the stand-in's plan_node_id */
	char	   *next;			/* next row to send */
	uint32		left;			/* rows not sent yet */
	uint32		wire_format;	/* the stored rows' text, see cache_wire.c */
	bool		counted;
} CacheStandin;

static CacheStandin standins[CACHE_MAX_STANDINS];
static int	nstandins = 0;
static int	standin_serial = 0;

/*
 * The entry found when the planner hook made a stand-in, for the
 * ExecutorStart that follows at once in the simple protocol: it re-checks
 * that copy (generations, expiry, the snapshot) instead of building the key
 * and looking it up a second time.  Matched by the stand-in's address and
 * serial; consumed by the next top-level ExecutorStart.
 */
typedef struct PlannedHit
{
	PlannedStmt *standin;
	int			serial;
	uint32		tupdesc_hash;	/* of its output columns */
	CacheCandidate cand;
	char	   *blob;
	uint32		len;
} PlannedHit;

static PlannedHit planned = {NULL};

/* set while ExecutorStart plans a stand-in's statement for real */
static int	replanning = 0;

/*
 * The plan made after the planner hook looked its key up and found no
 * valid entry: its ExecutorStart and ExecutorRun do not look again (an
 * entry stored meanwhile by another session is then simply not used).
 * Forgotten at the next top-level planning and at transaction end.
 */
static PlannedStmt *missed_plan = NULL;
static const char *missed_text = NULL;	/* the text it was planned from */
static CacheCandidate missed_cand;	/* its key, for ExecutorRun to store with */
static CacheCandidate looked_cand;	/* the key of the last lookup at planning */
static const char *looked_text = NULL;

static CacheStandin *
find_standin(QueryDesc *queryDesc)
{
	int			i;

	for (i = 0; i < nstandins; i++)
		if (standins[i].queryDesc == queryDesc && standins[i].standin == queryDesc->plannedstmt &&
			queryDesc->plannedstmt->planTree->plan_node_id == standins[i].serial)
			return &standins[i];
	return NULL;
}

/*
 * A Result node with NULLs of the output columns of tlist (the non-junk
 * entries, as the executor describes them) and the given range table.
 */
static PlannedStmt *
make_standin(List *tlist, uint64 queryid, List *rtable, int stmt_location,
			 int stmt_len, int serial)
{
	PlannedStmt *standin = makeNode(PlannedStmt);
	Result	   *result = makeNode(Result);
	List	   *out = NIL;
	ListCell   *lc;

	foreach(lc, tlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node	   *expr = (Node *) tle->expr;
		TargetEntry *standin_tle;

		if (tle->resjunk)
			continue;
		standin_tle = makeTargetEntry((Expr *) makeNullConst(exprType(expr), exprTypmod(expr),
															 exprCollation(expr)),
									  list_length(out) + 1, tle->resname, false);
		/* the RowDescription names the column's table and attribute */
		standin_tle->resorigtbl = tle->resorigtbl;
		standin_tle->resorigcol = tle->resorigcol;
		out = lappend(out, standin_tle);
	}
	result->plan.targetlist = out;
	result->plan.plan_node_id = serial;
	standin->commandType = CMD_SELECT;
	standin->queryId = queryid;
	standin->canSetTag = true;
	standin->planTree = (Plan *) result;
	standin->rtable = rtable;
	standin->stmt_location = stmt_location;
	standin->stmt_len = stmt_len;
	standin->jitFlags = CACHE_STANDIN_PLAN;
	return standin;
}

/* Conditions on how the statement is started, for either kind of hit. */
static bool
startable(QueryDesc *queryDesc, int eflags)
{
	return cache_nesting == 0 && nstandins < CACHE_MAX_STANDINS &&
		queryDesc->instrument_options == 0 &&
		(eflags & (EXEC_FLAG_EXPLAIN_ONLY | EXEC_FLAG_BACKWARD | EXEC_FLAG_MARK |
				   EXEC_FLAG_REWIND)) == 0 &&
		(queryDesc->plannedstmt->jitFlags & CACHE_SHAPE_CACHEABLE) &&
		queryDesc->plannedstmt->planTree != NULL &&
		perfopt_cache_mode != CACHE_MODE_OFF && cache_store_ready();
}

static void
register_standin(QueryDesc *queryDesc, PlannedStmt *standin, int serial,
				 CacheBlobHeader *hdr, char *tuples)
{
	CacheStandin *st = &standins[nstandins++];

	st->queryDesc = queryDesc;
	st->serial = serial;
	st->standin = standin;
	st->next = tuples;
	st->left = hdr->ntuples;
	st->wire_format = hdr->wire_format;
	st->counted = false;
	queryDesc->plannedstmt = standin;
}

/*
 * A stand-in for a plan the planner made, if the entry answers now.  True
 * if queryDesc now runs one.
 */
static bool
standin_for_plan(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *orig = queryDesc->plannedstmt;
	List	   *tlist;
	uint32		tupdesc_hash = 0;
	CacheCandidate c;
	char	   *blob;
	uint32		len;
	CacheBlobHeader *hdr;
	char	   *tuples;
	int			serial;

	if (!startable(queryDesc, eflags))
		return false;
	tlist = orig->planTree->targetlist;
	/* an entry that no longer answers: ExecutorRun finds out again and says why */
	if (!cache_examine(queryDesc, cache_tlist_shape(tlist, &tupdesc_hash),
					   ForwardScanDirection, 0, true, cache_standin_missed_key(queryDesc), &c) ||
		!cache_find_answer(&c, queryDesc->snapshot, tupdesc_hash, orig->queryId, false,
						   &blob, &len, &hdr, &tuples))
		return false;
	serial = ++standin_serial;
	register_standin(queryDesc,
					 make_standin(tlist, orig->queryId, orig->rtable, orig->stmt_location,
								  orig->stmt_len, serial),
					 serial, hdr, tuples);
	return true;
}

/* The planner's stand-in, answered by the entry its planning found. */
static bool
planned_answers(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *standin = queryDesc->plannedstmt;
	CacheBlobHeader *hdr;
	char	   *tuples;
	bool		invalid;
	bool		expired;

	if (!startable(queryDesc, eflags) ||
		cache_runtime_refusal(queryDesc, true, ForwardScanDirection, 0, true) != NULL ||
		!cache_blob_answers(&planned.cand, queryDesc->snapshot, planned.tupdesc_hash,
							planned.blob, planned.len, &hdr, &tuples, &invalid, &expired))
		return false;
	register_standin(queryDesc, standin, standin->planTree->plan_node_id, hdr, tuples);
	return true;
}

/*
 * The entry no longer answers: plan the statement for real.  The Query is
 * copied first, since the planner scribbles on its input and a stand-in
 * kept as a generic plan is used again.
 */
static void
plan_for_real(QueryDesc *queryDesc)
{
	PlannedStmt *standin = queryDesc->plannedstmt;
	Query	   *query = copyObject(castNode(Query, standin->utilityStmt));
	PlannedStmt *real;

	replanning++;
	PG_TRY();
	{
		real = pg_plan_query(query, queryDesc->sourceText, CURSOR_OPT_PARALLEL_OK,
							 queryDesc->params);
	}
	PG_FINALLY();
	{
		replanning--;
	}
	PG_END_TRY();
	cache_plan_copy_consts(standin, real);
	queryDesc->plannedstmt = real;
}

/*
 * ExecutorStart: a planner's stand-in becomes a registered stand-in or the
 * real plan; any other plan becomes a stand-in if the entry answers now.
 */
void
cache_standin_start(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;
	bool		mine = planned.standin != NULL && planned.standin == stmt &&
		(stmt->jitFlags & CACHE_PLANNED_STANDIN) &&
		stmt->planTree->plan_node_id == planned.serial;

	if (cache_nesting == 0)
		planned.standin = NULL;
	if (!(stmt->jitFlags & CACHE_PLANNED_STANDIN))
	{
		if (stmt != missed_plan)
			(void) standin_for_plan(queryDesc, eflags);
		return;
	}

	/*
	 * A planner's stand-in lists the tables the statement names, not the
	 * partitions and inheritance children the plan would scan, so it cannot
	 * tell whether this transaction wrote one of those: after any write,
	 * the real plan decides.
	 */
	if (cache_xact_changed_anything())
	{
		plan_for_real(queryDesc);
		return;
	}
	if (mine && planned_answers(queryDesc, eflags))
		return;
	if (!mine && standin_for_plan(queryDesc, eflags))
		return;
	plan_for_real(queryDesc);
}

/*
 * The planner hook's part: a stand-in when a rule selects the statement
 * and a valid entry exists, else NULL (plan as usual).  Only for top-level
 * statements planned with nothing special asked (no cursor options) and
 * without client parameters, whose key is then known before planning, in
 * a transaction that has written no cached table (see cache_standin_start).
 */
PlannedStmt *
cache_standin_plan(Query *parse, const char *query_string, int cursorOptions,
				   ParamListInfo boundParams, int shape, bool has_params, List *rtes,
				   uint64 consts, bool *looked)
{
	CacheCandidate c;
	uint32		tupdesc_hash = 0;
	char	   *blob;
	uint32		len;
	CacheBlobHeader *hdr;
	char	   *tuples;
	PlannedStmt *standin;
	List	   *relids = NIL;
	int			i;

	*looked = false;
	if (cache_nesting == 0)
		missed_plan = NULL;
	if (!(shape & CACHE_SHAPE_CACHEABLE) || has_params || boundParams != NULL ||
		(cursorOptions & ~CURSOR_OPT_PARALLEL_OK) != 0 || cache_nesting != 0 ||
		cache_explaining != 0 || replanning != 0 || query_string == NULL ||
		parse->queryId == UINT64CONST(0) || parse->commandType != CMD_SELECT ||
		parse->utilityStmt != NULL || XactIsoLevel != XACT_READ_COMMITTED ||
		IsParallelWorker() || cache_wal_gate_shut() || nstandins >= CACHE_MAX_STANDINS ||
		cache_xact_changed_anything())
		return NULL;
	if (!cache_tlist_shape(parse->targetList, &tupdesc_hash) ||
		cache_relation_refusal_of(rtes, &c) != NULL ||
		!cache_rules_lookup(parse->queryId, c.relids, c.nrels, &c.ttl_us) ||
		((shape & CACHE_SHAPE_STABLE) && c.ttl_us < 0))
		return NULL;
	initStringInfo(&c.key);
	if (!cache_build_key(parse->queryId, query_string, parse->stmt_location,
						 parse->stmt_len, consts, NULL, (shape & CACHE_SHAPE_SETTINGS) != 0, &c.key))
		return NULL;
	c.keyhash = cache_key_hash(&c.key);
	*looked = true;
	looked_cand = c;
	looked_text = query_string;
	/*
	 * The snapshot of planning, if any: ExecutorStart checks its own.  An
	 * entry that no longer answers is counted and dropped here: ExecutorRun
	 * will not look it up again.
	 */
	if (!cache_find_answer(&c, ActiveSnapshotSet() ? GetActiveSnapshot() : NULL,
						   tupdesc_hash, parse->queryId, true, &blob, &len, &hdr, &tuples))
		return NULL;

	standin = make_standin(parse->targetList, parse->queryId, rtes, parse->stmt_location,
						   parse->stmt_len, ++standin_serial);
	standin->jitFlags |= CACHE_PLANNED_STANDIN | shape;
	cache_plan_set_consts(standin, consts);
	/* what ExecutorStart plans when the entry no longer answers */
	standin->utilityStmt = (Node *) parse;
	/* a stand-in kept as a generic plan is replanned when these change */
	for (i = 0; i < c.nrels; i++)
		relids = lappend_oid(relids, c.relids[i]);
	standin->relationOids = relids;
	planned.standin = standin;
	planned.serial = standin_serial;
	planned.tupdesc_hash = tupdesc_hash;
	planned.cand = c;
	planned.blob = blob;
	planned.len = len;
	return standin;
}

/* The planner hook found no entry for this plan's key (see missed_plan). */
void
cache_standin_note_miss(PlannedStmt *plan)
{
	missed_plan = plan;
	missed_text = looked_text;
	missed_cand = looked_cand;
}

bool
cache_standin_known_miss(PlannedStmt *plan)
{
	return plan == missed_plan;
}

/*
 * The key the planner hook built for this plan, if it is the one
 * ExecutorRun would build (same text, no parameters), else NULL: saves
 * building and hashing it again for the store.
 */
const CacheCandidate *
cache_standin_missed_key(QueryDesc *queryDesc)
{
	if (queryDesc->plannedstmt != missed_plan || missed_plan == NULL ||
		queryDesc->sourceText != missed_text || queryDesc->params != NULL)
		return NULL;
	return &missed_cand;
}

/* ExecutorRun of a stand-in: the next rows of the stored result. */
bool
cache_standin_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count)
{
	CacheStandin *st;
	MemoryContext old;
	uint64		n = 0;
	instr_time	start;
	instr_time	duration;

	if (!(queryDesc->plannedstmt->jitFlags & CACHE_STANDIN_PLAN))
		return false;
	st = find_standin(queryDesc);
	if (st == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("perfopt: cached result of this statement is gone")));
	INSTR_TIME_SET_CURRENT(start);
	cache_last_outcome = "hit";	/* cache_ExecutorRun moved the last one back */
	old = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);
	if (queryDesc->totaltime)
		InstrStartNode(queryDesc->totaltime);
	stats_measure_begin(queryDesc);	/* the statistics' own timer */
	queryDesc->already_executed = true;
	if (ScanDirectionIsForward(direction))
		n = cache_blob_send_some(queryDesc, st->wire_format, &st->next, &st->left, count);
	queryDesc->estate->es_processed = n;
	if (queryDesc->totaltime)
		InstrStopNode(queryDesc->totaltime, n);
	stats_measure_end(queryDesc);
	MemoryContextSwitchTo(old);
	if (!st->counted)
	{
		st->counted = true;
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		cache_store_count(queryDesc->plannedstmt->queryId, true,
						  INSTR_TIME_GET_MILLISEC(duration));
		stats_count_cache(queryDesc, true);
	}
	return true;
}

/* ExecutorEnd: the stand-in's entry goes. */
void
cache_standin_end(QueryDesc *queryDesc)
{
	CacheStandin *st;

	if (nstandins == 0)
		return;
	st = find_standin(queryDesc);
	if (st)
		*st = standins[--nstandins];
}

/* Portals do not outlive their transaction, nor do stand-ins. */
static void
standin_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		nstandins = 0;
		planned.standin = NULL;
		missed_plan = NULL;
	}
}

void
cache_standin_install(void)
{
	RegisterXactCallback(standin_xact_callback, NULL);
}
