/*
 * cache_hooks.c
 *		Owns the planner, executor, utility and EXPLAIN hooks of the result
 *		cache: they mark cacheable statement shapes at planning, answer a
 *		hit in ExecutorRun (after ExecutorStart took the locks and checked
 *		privileges, so a REVOKE takes effect at once) and store a miss when
 *		the protocol of cache_inval.c allows it.  Whether a statement is a
 *		candidate and which stored answer is valid are cache_answer.c's;
 *		hits that skip the real plan, or planning altogether, are
 *		cache_standin.c's.  It works for every protocol because rows go to
 *		queryDesc->dest, which formats them as the client asked.
 *
 *		These hooks are installed last, so they run first and chain to the
 *		index advisor's and the statistics' hooks (perfopt.c).
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/instrument.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "parser/parsetree.h"
#include "parser/scanner.h"
/* after scanner.h, whose types it uses: the grammar's token numbers */
#include "parser/gram.h"
#include "portability/instr_time.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cache/cache_int.h"
#include "common/nesting.h"
#include "stats/stats_hooks.h"
#include "stats/stats_store.h"

static planner_hook_type prev_planner = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ExplainOneQuery_hook_type prev_ExplainOneQuery = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;

/*
 * The statement parse analysis produced last, while it is planned in the
 * same breath (the simple protocol, EXPLAIN): its constants were read under
 * the settings of now, which the key holds, so the key needs no walk of
 * them (0).  A plan made later from a kept copy (a prepared statement) is
 * another Query, and planned from another copy of the text: the key then
 * holds a hash of its constants as they were read (cache_query_consts).
 */
static Query *fresh_query = NULL;
static const char *fresh_text = NULL;

/*
 * Set while EXPLAIN ANALYZE runs a statement that some cache rule could
 * select: only then does EXPLAIN print a "Perfopt Cache" line, so that
 * without rules EXPLAIN's output is PostgreSQL's own.
 */
static bool explained_rule_applies = false;

/* Could some cache rule select this statement, whatever else refuses it? */
static bool
rule_could_select(PlannedStmt *stmt)
{
	CacheCandidate c;
	int64		ttl_us;

	if (cache_rules_none())
		return false;
	(void) cache_relation_refusal_of(stmt->rtable, &c);
	return cache_rules_lookup(stmt->queryId, c.relids, c.nrels, &ttl_us);
}

/*
 * Is parse the statement analyzed last, planned from the same text, so its
 * constants were read under the settings of now?  Only as the first
 * statement of its string: the whole string was lexed before an earlier
 * statement in it could change a setting (standard_conforming_strings).
 * The statement EXPLAIN explains was analyzed with the EXPLAIN (see
 * cache_ExplainOneQuery), which was the first of its string.
 */
static bool
analyzed_just_now(Query *parse, const char *query_string)
{
	Query	   *top = fresh_query;

	return top == parse && query_string == fresh_text &&
		(top->stmt_location <= 0 || cache_explaining > 0);
}

static PlannedStmt *
plan_chained(Query *parse, const char *query_string, int cursorOptions,
			 ParamListInfo boundParams)
{
	if (prev_planner)
		return prev_planner(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/*
 * Planning while some rule exists.  Kept out of cache_planner so that the
 * statements planned without any rule, every one of them when caching is
 * not used, pay for no more than the test that sends them on.
 */
static pg_noinline PlannedStmt *
plan_with_rules(Query *parse, const char *query_string, int cursorOptions,
				ParamListInfo boundParams)
{
	PlannedStmt *result;
	int			shape;
	bool		has_params = false;
	bool		looked = false;
	List	   *rtes = NIL;
	uint64		consts;

	/* before planning, which rewrites the tree it is given */
	shape = cache_shape_of(parse, &has_params, &rtes);
	consts = 0;
	if ((shape & CACHE_SHAPE_CACHEABLE) && !analyzed_just_now(parse, query_string))
		consts = cache_query_consts(parse) | 1;
	fresh_query = NULL;
	result = cache_standin_plan(parse, query_string, cursorOptions, boundParams,
								shape, has_params, rtes, consts, &looked);
	if (result)
		return result;

	result = plan_chained(parse, query_string, cursorOptions, boundParams);
	result->jitFlags |= shape;
	if (shape & CACHE_SHAPE_CACHEABLE)
		cache_plan_set_consts(result, consts);
	if (looked)
		cache_standin_note_miss(result);
	return result;
}

/*
 * Without any rule nothing can be cached, so every statement would pay for
 * the walk of its tree for nothing; a plan made then lacks the bits and is
 * simply never cached.  Creating the first rule installs triggers, whose
 * relcache invalidation replans the statements on those tables.
 */
static PlannedStmt *
cache_planner(Query *parse, const char *query_string, int cursorOptions,
			  ParamListInfo boundParams)
{
	if (cache_store_ready() && perfopt_cache_mode != CACHE_MODE_OFF &&
		!IsInParallelMode() && !cache_rules_none())
		return plan_with_rules(parse, query_string, cursorOptions, boundParams);
	/* what was analyzed last is only fresh for the planning that follows */
	fresh_query = NULL;
	return plan_chained(parse, query_string, cursorOptions, boundParams);
}

/*
 * A hit may be decided here already (cache_standin.c), and a stand-in made
 * by the planner hook becomes the real plan if it is not one.  The executor
 * must not see perfopt's bits in jitFlags; hide them meanwhile.
 */
static void
cache_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;
	int			bits;

	/* the common case: a plan the planner hook did not mark (no rules) */
	if ((stmt->jitFlags & (CACHE_SHAPE_BITS | CACHE_STANDIN_BITS)) == 0)
	{
		if (prev_ExecutorStart)
			prev_ExecutorStart(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
		return;
	}

	cache_standin_start(queryDesc, eflags);
	stmt = queryDesc->plannedstmt;
	bits = stmt->jitFlags & (CACHE_SHAPE_BITS | CACHE_STANDIN_BITS);
	if (bits == 0)
	{
		/* nothing to hide: the common case without cache rules */
		if (prev_ExecutorStart)
			prev_ExecutorStart(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
		return;
	}

	stmt->jitFlags &= ~CACHE_SHAPE_BITS;
	PG_TRY();
	{
		if (prev_ExecutorStart)
			prev_ExecutorStart(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
	}
	PG_FINALLY();
	{
		stmt->jitFlags |= bits;
	}
	PG_END_TRY();
}

/*
 * Why a plan the planner hook did not mark is not cached: what
 * cache_runtime_refusal says of it, without its other checks.  Every
 * statement pays this when no rule exists, so it is kept short: whether no
 * rule exists or the shape is never cached is told apart only when someone
 * asks (cache_outcome_text).
 */
static const char *
unmarked_refusal(void)
{
	const char *why = cache_session_refusal();

	return why ? why : cache_unmarked;
}

static bool
serve_hit(CacheCandidate *c, QueryDesc *queryDesc)
{
	char	   *blob;
	uint32		len;
	CacheBlobHeader *hdr;
	char	   *tuples;
	MemoryContext old;
	uint64		n;

	if (!cache_find_answer(c, queryDesc->snapshot, cache_tupdesc_hash(queryDesc->tupDesc),
						   queryDesc->plannedstmt->queryId, true, &blob, &len, &hdr, &tuples))
		return false;

	old = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);
	if (queryDesc->totaltime)
		InstrStartNode(queryDesc->totaltime);
	stats_measure_begin(queryDesc);	/* the statistics' own timer */
	queryDesc->already_executed = true;
	n = cache_blob_send(queryDesc, hdr, tuples);
	queryDesc->estate->es_processed = n;
	if (queryDesc->totaltime)
		InstrStopNode(queryDesc->totaltime, n);
	stats_measure_end(queryDesc);
	MemoryContextSwitchTo(old);
	pfree(blob);
	return true;
}

/*
 * The slot and trigger coverage of the tables this backend stored results
 * of lately, per DDL epoch as cache_slot_coverage keeps them: both are
 * looked up for every store, in hash tables, and change only with the
 * epoch (slots never move).  A few entries, replaced in turn.
 */
typedef struct StoreTableMemo
{
	Oid			relid;
	int			slot;
	uint64		epoch;
	uint64		covered;
	uint64		keyed;
} StoreTableMemo;

#define STORE_TABLE_MEMOS 8
static StoreTableMemo store_tables[STORE_TABLE_MEMOS];
static int	store_tables_next = 0;

/*
 * A table's slot and coverage at this epoch; NULL with *why set when the
 * result may not be stored.
 */
static const StoreTableMemo *
store_table(Oid relid, uint64 epoch, const char **why)
{
	StoreTableMemo *m;
	int			slot;
	uint64		covered;
	uint64		keyed;
	int			i;

	for (i = 0; i < STORE_TABLE_MEMOS; i++)
		if (store_tables[i].relid == relid && store_tables[i].epoch == epoch &&
			OidIsValid(relid))
			return &store_tables[i];
	slot = cache_slot_find(MyDatabaseId, relid, true);
	if (slot < 0)
	{
		*why = "no room for a table slot";
		return NULL;
	}
	if (!cache_slot_coverage(slot, epoch, &covered, &keyed))
	{
		covered = cache_trigger_coverage(relid, &keyed);
		if (covered == 0)
		{
			*why = "a table it reads has no enabled invalidation trigger";
			return NULL;
		}
		cache_slot_set_coverage(slot, epoch, covered, keyed);
	}
	m = &store_tables[store_tables_next];
	store_tables_next = (store_tables_next + 1) % STORE_TABLE_MEMOS;
	m->relid = relid;
	m->slot = slot;
	m->epoch = epoch;
	m->covered = covered;
	m->keyed = keyed;
	return m;
}

/*
 * Store the result of a miss if the protocol allows: every table it read
 * carries the trigger (checked in the catalog once per DDL epoch), watching
 * the updates of every column the statement reads, and has no writer that
 * reached commit at or after the snapshot's xmin.
 */
static const char *
store_result(CacheCandidate *c, QueryDesc *queryDesc, CacheCapture *cap, instr_time start,
			 bool *counted)
{
	static int	epoch_slot = -1;	/* this backend's database never changes */
	CacheDep	deps[2 * CACHE_MAX_DEPS + 2];
	int			ndeps = 0;
	uint64		epoch;
	FullTransactionId xmin;
	FullTransactionId max_writer = FirstNormalFullTransactionId;
	CacheBlobHeader hdr;
	char	   *blob;
	uint32		len;
	uint64		covered;
	uint64		keyed;
	AttrNumber	keycol;
	int			band;
	int			i;
	instr_time	duration;

	*counted = false;
	if (cache_capture_overflowed(cap))
	{
		cache_store_count_too_large();
		return "result larger than perfopt.cache_max_entry_size";
	}
	if (cache_xact_changed_anything())
		return "this transaction has written";
	if (epoch_slot < 0 && (epoch_slot = cache_epoch_slot()) < 0)
		return "no room for the database's slot";
	/* the coverage read per epoch below must not predate a visible DDL */
	if (cache_wal_has_pending())
		cache_wal_settle(queryDesc->snapshot);
	epoch = cache_slot_gen(epoch_slot);
	deps[ndeps++].slot = 0;
	deps[ndeps++].slot = epoch_slot;
	for (i = 0; i < c->nrels; i++)
	{
		const char *why = NULL;
		const StoreTableMemo *t = store_table(c->relids[i], epoch, &why);
		int			slot;

		if (t == NULL)
			return why;
		slot = t->slot;
		covered = t->covered;
		keyed = t->keyed;
		/* an UPDATE of a column the trigger does not watch fires nothing */
		if (!(covered & CACHE_ALL_COLUMNS) &&
			(cache_read_columns(queryDesc->plannedstmt->rtable, c->relids[i]) & ~covered) != 0)
			return "it reads a column whose updates the table's invalidation trigger does not watch";
		/* restricted to one key value: that value's band and the wide slot */
		if (keyed != 0 &&
			cache_plan_key(queryDesc->plannedstmt, queryDesc->params, c->relids[i], keyed,
						   &keycol, &band))
		{
			int			wide = cache_slot_find_sub(MyDatabaseId, c->relids[i],
												   CACHE_SLOT_WIDE, true);

			slot = cache_slot_find_sub(MyDatabaseId, c->relids[i],
									   CACHE_SLOT_BAND(keycol, band), true);
			if (slot < 0 || wide < 0)
				return "no room for a table slot";
			deps[ndeps++].slot = wide;
		}
		deps[ndeps++].slot = slot;
	}

	xmin = cache_full_xid(queryDesc->snapshot->xmin);
	for (i = 0; i < ndeps; i++)
	{
		FullTransactionId mx;

		deps[i].pad = 0;
		if (!cache_slot_check_store(deps[i].slot, xmin, &deps[i].gen, &mx))
			return "a writer committed concurrently";
		if (FullTransactionIdPrecedes(max_writer, mx))
			max_writer = mx;
	}
	if (deps[1].gen != epoch)
		return "DDL committed concurrently";

	memset(&hdr, 0, sizeof(hdr));
	hdr.tupdesc_hash = cache_tupdesc_hash(queryDesc->tupDesc);
	hdr.max_writer = max_writer;
	hdr.expires = c->ttl_us >= 0 ?
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 0) + c->ttl_us : 0;
	blob = cache_blob_build(cap, deps, ndeps, &hdr, &c->key, &len);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	if (blob == NULL ||
		!cache_store_insert(MyDatabaseId, GetUserId(), c->keyhash,
							queryDesc->plannedstmt->queryId, blob, len,
							INSTR_TIME_GET_MILLISEC(duration), counted))
		return "does not fit in perfopt.cache_size";
	return NULL;
}

static void
run_chained(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
			bool execute_once)
{
	/* the statistics' ExecutorRun, further down the chain, counts the level */
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
}

static void
cache_ExecutorEnd(QueryDesc *queryDesc)
{
	cache_standin_end(queryDesc);
	/* a recomputation that did not reach its store (bypassed at run time) */
	cache_flight_land();
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/*
 * Did a run the client limited to count rows return its whole answer?  Yes
 * if the plan ended before the limit, or cannot return more rows than it
 * did.  Pulling one row more to find out would compute, and perhaps fail
 * on, a row the client did not ask for (asyncpg's fetchrow asks for one).
 */
static bool
whole_under_limit(QueryDesc *queryDesc, uint64 count)
{
	uint64		n = queryDesc->estate->es_processed;
	int64		bound;

	if (n < count)
		return true;
	bound = cache_plan_bound(queryDesc->plannedstmt);
	return bound >= 0 && (uint64) bound <= n;
}

/* The end of a miss: a whole answer stored if the protocol allows. */
static void
finish_miss(CacheCandidate *c, QueryDesc *queryDesc, CacheCapture *cap, uint64 limit,
			instr_time start)
{
	uint64		queryid = queryDesc->plannedstmt->queryId;
	instr_time	duration;
	bool		counted = false;

	if (limit != 0 && !whole_under_limit(queryDesc, limit))
		cache_last_outcome = "miss, not stored: the row limit stopped it before the end of the answer";
	else
		cache_last_outcome = store_result(c, queryDesc, cap, start, &counted);
	cache_flight_land();
	if (cache_last_outcome)
		cache_store_count_refused();
	else
		cache_last_outcome = "miss, stored";
	/* a stored miss was counted by the store, under the lock it took */
	if (!counted)
	{
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		cache_store_count(queryid, false, INSTR_TIME_GET_MILLISEC(duration));
	}
	stats_count_cache(queryDesc, false);
}

/*
 * A plan the planner hook marked: served from the cache, or run and its
 * result stored.  Apart from cache_ExecutorRun, whose common case (an
 * unmarked plan) then needs neither this frame nor its PG_TRY.
 *
 * A first run under a row limit (the extended protocol's Execute with
 * max_rows) is a candidate too: its hits are stand-ins, which replay in
 * pieces, so here it can only miss; it runs as asked, and its rows are
 * stored only if they are the whole answer (whole_under_limit).  Later
 * runs of the same portal continue the plan and are not cached.
 */
static pg_noinline void
run_marked(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
		   bool execute_once)
{
	CacheCandidate c;
	CacheCapture *cap;
	instr_time	start;
	instr_time	duration;
	uint64		queryid = queryDesc->plannedstmt->queryId;
	uint64		limit;

	if (cache_standin_run(queryDesc, direction, count))
		return;
	limit = count != 0 && !queryDesc->already_executed &&
		ScanDirectionIsForward(direction) ? count : 0;
	if (!cache_examine(queryDesc, queryDesc->tupDesc && cache_tupdesc_ok(queryDesc->tupDesc),
					   direction, count - limit, false, cache_standin_missed_key(queryDesc), &c))
	{
		run_chained(queryDesc, direction, count, execute_once);
		return;
	}

	INSTR_TIME_SET_CURRENT(start);
	if (limit == 0 && !cache_standin_known_miss(queryDesc->plannedstmt) &&
		serve_hit(&c, queryDesc))
	{
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		cache_store_count(queryid, true, INSTR_TIME_GET_MILLISEC(duration));
		stats_count_cache(queryDesc, true);
		cache_last_outcome = "hit";
		return;
	}

	/* a full store takes a result the second time its key misses */
	if (cache_nesting != cache_warm_level && !cache_store_admit(c.keyhash))
	{
		run_chained(queryDesc, direction, count, execute_once);
		cache_last_outcome = "miss, not stored: the cache is full and the statement missed for the first time";
		cache_flight_land();
		cache_store_count_refused();
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		cache_store_count(queryid, false, INSTR_TIME_GET_MILLISEC(duration));
		stats_count_cache(queryDesc, false);
		return;
	}
	cap = cache_capture_begin(queryDesc, (Size) perfopt_cache_max_entry_size * 1024);
	PG_TRY();
	{
		run_chained(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		cache_capture_end(queryDesc, cap);
	}
	PG_END_TRY();
	finish_miss(&c, queryDesc, cap, limit, start);
}

static void
cache_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				  bool execute_once)
{
	if (cache_nesting == 0 || cache_nesting == cache_warm_level)
	{
		cache_prev_outcome = cache_last_outcome;
		cache_last_outcome = NULL;
		if (unlikely(cache_explaining))
			explained_rule_applies = rule_could_select(queryDesc->plannedstmt);
	}
	/* not marked by the planner hook: never cached, say why and run it */
	if ((queryDesc->plannedstmt->jitFlags & (CACHE_SHAPE_CACHEABLE | CACHE_STANDIN_PLAN)) == 0)
	{
		cache_last_outcome = unmarked_refusal();
		run_chained(queryDesc, direction, count, execute_once);
		return;
	}
	run_marked(queryDesc, direction, count, execute_once);
}

/*
 * The EXPLAIN statement being run (its text and its span in it), for the
 * span of the statement it explains (see explained_span).
 */
static const char *explain_text = NULL;
static int	explain_location = 0;
static int	explain_len = 0;

/* Could this token begin a statement the cache may answer? */
static bool
starts_select(int tok)
{
	return tok == SELECT || tok == VALUES || tok == WITH || tok == TABLE || tok == '(';
}

/*
 * Where the statement an EXPLAIN explains begins, as an offset into the
 * EXPLAIN's text, or -1.  The grammar gives that statement no location of
 * its own (its Query spans the whole EXPLAIN), so the key would be built
 * from "EXPLAIN ... SELECT ..." and never match the statement's.  Its
 * tokens follow EXPLAIN and either one parenthesized option list or the
 * ANALYZE and VERBOSE keywords.  Anything unexpected gives -1 and the
 * whole text is the key, as before: a span that skipped part of the
 * statement could let statements with different constants share a key.
 */
static int
explained_offset(const char *text)
{
	core_yy_extra_type extra;
	core_yyscan_t scanner = scanner_init(text, &extra, &ScanKeywords, ScanKeywordTokens);
	core_YYSTYPE yylval;
	YYLTYPE		loc = -1;
	int			tok = core_yylex(&yylval, &loc, scanner);
	int			result = -1;

	if (tok == EXPLAIN)
	{
		tok = core_yylex(&yylval, &loc, scanner);
		if (tok == '(')
		{
			int			depth = 1;

			tok = core_yylex(&yylval, &loc, scanner);
			if (starts_select(tok))
			{
				/* a parenthesized statement, not options */
				scanner_finish(scanner);
				return -1;
			}
			while (depth > 0 && tok != 0)
			{
				if (tok == '(')
					depth++;
				else if (tok == ')')
					depth--;
				tok = core_yylex(&yylval, &loc, scanner);
			}
		}
		else
		{
			if (tok == ANALYZE || tok == ANALYSE)
				tok = core_yylex(&yylval, &loc, scanner);
			if (tok == VERBOSE)
				tok = core_yylex(&yylval, &loc, scanner);
		}
		if (starts_select(tok))
			result = loc;
	}
	scanner_finish(scanner);
	return result;
}

/*
 * Give the statement EXPLAIN ANALYZE runs the span of its own text within
 * the EXPLAIN, so that its key is the one the statement itself has.  Only
 * for a statement some rule could select: elsewhere nothing changes.
 */
static void
explained_span(Query *query, IntoClause *into, ExplainState *es, const char *queryString)
{
	CacheCandidate c;
	int64		ttl_us;
	int			offset;

	if (!es->analyze || into != NULL || queryString == NULL || queryString != explain_text ||
		explain_location < 0 || (size_t) explain_location >= strlen(queryString) ||
		query->commandType != CMD_SELECT || query->utilityStmt != NULL ||
		query->queryId == UINT64CONST(0) || query->stmt_location != 0 ||
		query->stmt_len != 0 || cache_rules_none())
		return;
	(void) cache_relation_refusal_of(query->rtable, &c);
	if (!cache_rules_lookup(query->queryId, c.relids, c.nrels, &ttl_us))
		return;
	offset = explained_offset(explain_text + explain_location);
	if (offset <= 0 || (explain_len > 0 && offset >= explain_len))
		return;
	query->stmt_location = explain_location + offset;
	query->stmt_len = explain_len > 0 ? explain_len - offset : 0;
}

/* The line EXPLAIN ANALYZE ends with, if a rule could select the statement. */
static const char *
explained_outcome(void)
{
	if (!cache_last_outcome || !explained_rule_applies)
		return NULL;
	return cache_outcome_text(cache_last_outcome);
}

/*
 * EXPLAIN ANALYZE EXECUTE runs its statement through ExplainExecuteQuery,
 * where no hook can reach the EXPLAIN's output: a receiver in front of the
 * client's adds the line after EXPLAIN's own text, where the statement
 * form has it.
 */
typedef struct ExplainTail
{
	DestReceiver pub;
	DestReceiver *inner;
	TupleDesc	desc;
} ExplainTail;

static bool
tail_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ExplainTail *tail = (ExplainTail *) self;

	return tail->inner->receiveSlot(slot, tail->inner);
}

static void
tail_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	ExplainTail *tail = (ExplainTail *) self;

	tail->desc = typeinfo;
	tail->inner->rStartup(tail->inner, operation, typeinfo);
}

static void
tail_shutdown(DestReceiver *self)
{
	ExplainTail *tail = (ExplainTail *) self;
	const char *outcome = explained_outcome();

	if (outcome && tail->desc && tail->desc->natts == 1 &&
		TupleDescAttr(tail->desc, 0)->atttypid == TEXTOID)
	{
		TupleTableSlot *slot = MakeSingleTupleTableSlot(tail->desc, &TTSOpsVirtual);

		ExecClearTuple(slot);
		slot->tts_values[0] = CStringGetTextDatum(psprintf("Perfopt Cache: %s", outcome));
		slot->tts_isnull[0] = false;
		ExecStoreVirtualTuple(slot);
		tail->inner->receiveSlot(slot, tail->inner);
		ExecDropSingleTupleTableSlot(slot);
	}
	tail->inner->rShutdown(tail->inner);
}

static void
tail_destroy(DestReceiver *self)
{
	/* palloc'd in the statement's context */
}

/* A boolean EXPLAIN option as ExplainQuery reads it, without its errors. */
static bool
option_true(DefElem *opt)
{
	bool		result = false;

	if (opt->arg == NULL)
		return true;
	if (IsA(opt->arg, Boolean))
		return boolVal(opt->arg);
	if (IsA(opt->arg, Integer))
		return intVal(opt->arg) != 0;
	if (IsA(opt->arg, String))
		(void) parse_bool(strVal(opt->arg), &result);
	return result;
}

/* Is this EXPLAIN ANALYZE EXECUTE, in text format? */
static bool
explains_execute(ExplainStmt *stmt)
{
	Query	   *query = (Query *) stmt->query;
	bool		analyze = false;
	ListCell   *lc;

	if (!IsA(query, Query) || query->commandType != CMD_UTILITY ||
		query->utilityStmt == NULL || !IsA(query->utilityStmt, ExecuteStmt))
		return false;
	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, "analyze") == 0)
			analyze = option_true(opt);
		else if (strcmp(opt->defname, "format") == 0 &&
				 (opt->arg == NULL || !IsA(opt->arg, String) ||
				  pg_strcasecmp(strVal(opt->arg), "text") != 0))
			return false;
	}
	return analyze;
}

static void
utility_chained(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		nests = !IsA(parsetree, ExecuteStmt) && !IsA(parsetree, ExplainStmt);

	perfopt_utility_nested(&cache_utility_level, nests, prev_ProcessUtility, pstmt, queryString,
						   readOnlyTree, context, params, queryEnv, dest, qc);
}

/* EXPLAIN ANALYZE EXECUTE of a statement while rules exist (see ExplainTail). */
static pg_noinline void
explain_execute(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	ExplainTail *tail = palloc0(sizeof(ExplainTail));

	tail->pub.receiveSlot = tail_receive;
	tail->pub.rStartup = tail_startup;
	tail->pub.rShutdown = tail_shutdown;
	tail->pub.rDestroy = tail_destroy;
	tail->pub.mydest = dest->mydest;
	tail->inner = dest;
	cache_last_outcome = NULL;
	explained_rule_applies = false;
	cache_explaining++;
	PG_TRY();
	{
		utility_chained(pstmt, queryString, readOnlyTree, context, params, queryEnv,
						&tail->pub, qc);
	}
	PG_FINALLY();
	{
		cache_explaining--;
	}
	PG_END_TRY();
}

/*
 * An EXPLAIN, with its text and span remembered while it runs (and only
 * then, so that explained_span never reads another statement's).
 */
static pg_noinline void
explain_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	const char *save_text = explain_text;
	int			save_location = explain_location;
	int			save_len = explain_len;

	explain_text = queryString;
	explain_location = pstmt->stmt_location;
	explain_len = pstmt->stmt_len;
	PG_TRY();
	{
		if (cache_nesting == 0 && !cache_rules_none() &&
			explains_execute((ExplainStmt *) pstmt->utilityStmt))
			explain_execute(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							dest, qc);
		else
			utility_chained(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							dest, qc);
	}
	PG_FINALLY();
	{
		explain_text = save_text;
		explain_location = save_location;
		explain_len = save_len;
	}
	PG_END_TRY();
}

/*
 * EXECUTE runs what the client asked for, and EXPLAIN ANALYZE runs its
 * statement as if it were top level, so that EXPLAIN can show a hit.
 */
static void
cache_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	cache_inval_note_utility(parsetree);
	if (IsA(parsetree, ExplainStmt))
		explain_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		utility_chained(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

/* EXPLAIN (ANALYZE) says whether the answer came from the cache. */
static void
explain_one(Query *query, int cursorOptions, IntoClause *into,
			ExplainState *es, const char *queryString,
			ParamListInfo params, QueryEnvironment *queryEnv)
{
	PlannedStmt *plan;
	instr_time	planstart;
	instr_time	planduration;
	BufferUsage bufusage_start;
	BufferUsage bufusage;

	if (prev_ExplainOneQuery)
	{
		prev_ExplainOneQuery(query, cursorOptions, into, es, queryString,
							 params, queryEnv);
		return;
	}
	if (es->buffers)
		bufusage_start = pgBufferUsage;
	INSTR_TIME_SET_CURRENT(planstart);
	plan = pg_plan_query(query, queryString, cursorOptions, params);
	INSTR_TIME_SET_CURRENT(planduration);
	INSTR_TIME_SUBTRACT(planduration, planstart);
	if (es->buffers)
	{
		memset(&bufusage, 0, sizeof(BufferUsage));
		BufferUsageAccumDiff(&bufusage, &pgBufferUsage, &bufusage_start);
	}
	ExplainOnePlan(plan, into, es, queryString, params, queryEnv,
				   &planduration, (es->buffers ? &bufusage : NULL));
}

/*
 * EXPLAIN shows the real plan: the planner hook makes no stand-in inside it
 * (EXPLAIN ANALYZE runs the real plan's ExecutorStart and answers a hit in
 * ExecutorRun, so it still shows "Perfopt Cache: hit").
 */
static void
cache_ExplainOneQuery(Query *query, int cursorOptions, IntoClause *into,
					  ExplainState *es, const char *queryString,
					  ParamListInfo params, QueryEnvironment *queryEnv)
{
	const char *outcome;

	cache_last_outcome = NULL;
	explained_rule_applies = false;
	/* analyzed with the EXPLAIN just now, then copied by the rewriter */
	if (fresh_query != NULL && fresh_query->commandType == CMD_UTILITY &&
		fresh_query->utilityStmt != NULL && IsA(fresh_query->utilityStmt, ExplainStmt) &&
		fresh_query->stmt_location <= 0 && queryString == fresh_text)
		fresh_query = query;
	explained_span(query, into, es, queryString);
	cache_explaining++;
	PG_TRY();
	{
		explain_one(query, cursorOptions, into, es, queryString, params, queryEnv);
	}
	PG_FINALLY();
	{
		cache_explaining--;
	}
	PG_END_TRY();
	outcome = explained_outcome();
	if (es->format == EXPLAIN_FORMAT_TEXT && es->analyze && outcome)
		ExplainPropertyText("Perfopt Cache", outcome, es);
}

static void
cache_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	/*
	 * Only the analysis of the text the client just sent in a simple Query
	 * message, whose buffer lives in MessageContext, or of what
	 * cache_warm() gave.  Not a prepared statement's re-analysis: when a
	 * driver binds a statement whose plan was invalidated, the text being
	 * analyzed is also debug_query_string, but it is the statement's own
	 * copy, and the generic plan made then is kept and run later, after
	 * settings may have changed, so its key must hold its constants.
	 */
	fresh_query = (pstate->p_sourcetext == debug_query_string && MessageContext != NULL &&
				   MemoryContextContains(MessageContext, (void *) pstate->p_sourcetext)) ||
		cache_warm_level >= 0 ? query : NULL;
	fresh_text = pstate->p_sourcetext;
}

void
cache_install_hooks(void)
{
	cache_inval_install();
	cache_flight_install();
	prev_planner = planner_hook;
	planner_hook = cache_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = cache_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = cache_ExecutorRun;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = cache_ExecutorEnd;
	cache_standin_install();
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = cache_ProcessUtility;
	prev_ExplainOneQuery = ExplainOneQuery_hook;
	ExplainOneQuery_hook = cache_ExplainOneQuery;
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = cache_post_parse_analyze;
}

