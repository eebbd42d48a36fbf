/*
 * cache_answer.c
 *		Owns the decisions the result cache takes the same way wherever a
 *		statement is answered, in the executor hooks (cache_hooks.c) or by a
 *		stand-in plan (cache_standin.c): where the current statement stands
 *		(nesting, EXPLAIN, perfopt.cache_warm()), why a statement is refused
 *		(the run-time conditions of the contract, the tables it reads, the
 *		rules), examining a candidate, finding the stored answer that is
 *		still valid under the statement's snapshot, the outcome the user
 *		reads, and whether a run stopped by a row limit returned the whole
 *		answer.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "parser/parsetree.h"
#include "tcop/pquery.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "cache/cache_int.h"

/* utility commands this statement runs under (see cache_int.h: cache_nesting) */
int			cache_utility_level = 0;

/* inside EXPLAIN, whose plan must be the real one */
int			cache_explaining = 0;

/* perfopt.cache_warm() lets the statement it runs count as top level */
int			cache_warm_level = -1;

/*
 * What happened to the current top-level statement (for EXPLAIN ANALYZE and
 * cache_warm) and to the one before it (for perfopt.cache_last_outcome(),
 * itself a statement).
 */
const char *cache_last_outcome = NULL;
const char *cache_prev_outcome = NULL;

#define SHAPE_REFUSAL "statement shape not cacheable (not a plain SELECT, or volatile, user-defined or session functions)"

/* the outcome of an unmarked plan, spelled out when read */
const char	cache_unmarked[] = "unmarked";

/* An outcome as the user reads it. */
const char *
cache_outcome_text(const char *outcome)
{
	if (outcome != cache_unmarked)
		return outcome;
	return cache_rules_none() ? "no cache rule selects it" : SHAPE_REFUSAL;
}

/* The run-time conditions of the contract; NULL when they all hold. */
const char *
cache_runtime_refusal(QueryDesc *queryDesc, bool records_ok, ScanDirection direction,
				uint64 count, bool at_start)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;
	const char *why = cache_session_refusal();

	if (why)
		return why;
	/* without rules the planner did not look at the shape at all */
	if (!(stmt->jitFlags & CACHE_SHAPE_CACHEABLE) && cache_rules_none())
		return "no cache rule selects it";
	if (!(stmt->jitFlags & CACHE_SHAPE_CACHEABLE) || stmt->commandType != CMD_SELECT ||
		queryDesc->operation != CMD_SELECT || stmt->queryId == UINT64CONST(0))
		return SHAPE_REFUSAL;
	if (stmt->rowMarks != NIL || stmt->hasModifyingCTE || stmt->dependsOnRole)
		return "statement locks rows, writes or depends on the role";
	/*
	 * Only a whole result from a fresh start: a second run of the same
	 * statement continues where it stopped, and a scrollable cursor may be
	 * fetched backwards from where a real run would have left it.
	 */
	if ((!at_start && (count != 0 || queryDesc->already_executed ||
					   !ScanDirectionIsForward(direction))) ||
		ActivePortal == NULL || (ActivePortal->cursorOptions & CURSOR_OPT_SCROLL))
		return "fetched piecemeal (cursor or row limit)";
	if (XactIsoLevel != XACT_READ_COMMITTED)
		return "transaction is not READ COMMITTED";
	if (queryDesc->snapshot == NULL || !IsMVCCSnapshot(queryDesc->snapshot))
		return "no MVCC snapshot";
	if (!records_ok)
		return "returns anonymous records";
	return NULL;
}

/* The tables a range table reads, and whether each may be cached at all. */
const char *
cache_relation_refusal_of(List *rtable, CacheCandidate *c)
{
	ListCell   *lc;

	c->nrels = 0;
	foreach(lc, rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		int			i;

		if (rte->rtekind != RTE_RELATION)
			continue;
		if (cache_relation_refusal(rte->relid))
			return "reads a table that is never cached";
		if (rte->relkind == RELKIND_VIEW)
			continue;			/* its tables are in the range table too */
		for (i = 0; i < c->nrels; i++)
			if (c->relids[i] == rte->relid)
				break;
		if (i < c->nrels)
			continue;
		if (c->nrels == CACHE_MAX_DEPS)
			return "reads too many tables";
		if (cache_xact_wrote(rte->relid))
			return "this transaction wrote a table it reads";
		c->relids[c->nrels++] = rte->relid;
	}
	return NULL;
}

/*
 * Is the stored blob the answer for this statement, now, under this
 * snapshot?  (NULL: no snapshot yet, all but the snapshot checked.)
 */
bool
cache_blob_answers(CacheCandidate *c, Snapshot snapshot, uint32 tupdesc_hash, char *blob,
				   uint32 len, CacheBlobHeader **hdr, char **tuples, bool *invalid,
				   bool *expired)
{
	CacheDep   *deps;
	int			ndeps;
	char	   *key;
	int			i;

	*invalid = *expired = false;
	if (!cache_blob_parse(blob, len, &deps, &ndeps, hdr, &key, tuples) ||
		(*hdr)->keylen != (uint32) c->key.len ||
		memcmp(key, c->key.data, c->key.len) != 0 ||
		(*hdr)->tupdesc_hash != tupdesc_hash)
		return false;			/* another statement with the same hash */
	for (i = 0; i < ndeps; i++)
	{
		if (cache_slot_gen(deps[i].slot) != deps[i].gen)
		{
			*invalid = true;
			return false;
		}
	}
	if ((*hdr)->expires != 0 && GetCurrentTimestamp() >= (*hdr)->expires)
	{
		*expired = true;
		return false;
	}

	/*
	 * Every writer the result includes must be visible to this statement's
	 * snapshot, taken before this check: never serve what is newer.
	 */
	return snapshot == NULL ||
		FullTransactionIdPrecedes((*hdr)->max_writer, cache_full_xid(snapshot->xmin));
}

/*
 * The stored answer to c under snapshot (see cache_blob_answers), copied
 * out of the store into *blob, or false.  With forget, an entry found
 * invalid or expired is dropped and counted now, and this session takes
 * the flight of its recomputation (cache_flight.c); callers that leave
 * that to ExecutorRun pass false.  Finding no entry for a key that another
 * session recomputes, it waits for that session once and looks again.
 */
bool
cache_find_answer(CacheCandidate *c, Snapshot snapshot, uint32 tupdesc_hash,
				  uint64 queryid, bool forget, char **blob,
				  uint32 *len, CacheBlobHeader **hdr, char **tuples)
{
	Oid			userid = GetUserId();
	bool		waited = false;

	for (;;)
	{
		bool		invalid;
		bool		expired;

		if (!cache_store_lookup(MyDatabaseId, userid, c->keyhash,
								c->key.data, c->key.len, blob, len))
		{
			if (!waited && cache_flight_wait(MyDatabaseId, userid, c->keyhash))
			{
				waited = true;
				continue;
			}
			return false;
		}
		if (cache_blob_answers(c, snapshot, tupdesc_hash, *blob, *len, hdr, tuples,
							   &invalid, &expired))
			return true;
		pfree(*blob);
		if (!forget || !(invalid || expired))
			return false;
		cache_store_forget(MyDatabaseId, userid, c->keyhash, invalid, expired, queryid);
		if (cache_flight_take(MyDatabaseId, userid, c->keyhash) || waited ||
			!cache_flight_wait(MyDatabaseId, userid, c->keyhash))
			return false;
		waited = true;
	}
}


/*
 * Is this statement a candidate?  Fills c; sets cache_last_outcome if not.
 * known: the key the planner hook already built for this plan
 * (cache_standin_missed_key), or NULL.
 */
bool
cache_examine(QueryDesc *queryDesc, bool records_ok, ScanDirection direction,
			  uint64 count, bool at_start, const CacheCandidate *known, CacheCandidate *c)
{
	const char *why = cache_runtime_refusal(queryDesc, records_ok, direction, count, at_start);
	PlannedStmt *stmt = queryDesc->plannedstmt;
	uint64		consts;

	if (!why && cache_rules_none())
		why = "no cache rule selects it";
	if (!why)
		why = cache_relation_refusal_of(stmt->rtable, c);
	if (!why && !cache_rules_lookup(queryDesc->plannedstmt->queryId,
									c->relids, c->nrels, &c->ttl_us))
		why = "no cache rule selects it";
	if (!why && (queryDesc->plannedstmt->jitFlags & CACHE_SHAPE_STABLE) && c->ttl_us < 0)
		why = "calls a stable function and its rule has no ttl";
	if (!why && known)
	{
		c->key = known->key;
		c->keyhash = known->keyhash;
		return true;
	}
	if (!why && !cache_plan_consts(stmt, &consts))
		why = "its plan was not made by this session's planner";
	if (!why)
	{
		initStringInfo(&c->key);
		if (!cache_build_key(stmt->queryId, queryDesc->sourceText, stmt->stmt_location,
							 stmt->stmt_len, consts, queryDesc->params,
							 (stmt->jitFlags & CACHE_SHAPE_SETTINGS) != 0, &c->key))
			why = "parameters cannot be read";
	}
	if (why)
	{
		if (!at_start)
			cache_last_outcome = why;
		return false;
	}
	c->keyhash = cache_key_hash(&c->key);
	return true;
}

/*
 * ---- Whether a run stopped by a row limit returned the whole answer ----
 *
 * A run that returned as many rows as the limit asked for may have more to
 * give; asking the plan for one more would compute (and may fail on) a row
 * the client never asked for.  The plan itself can say there is no more:
 * the most rows it can return, from its top down.
 */

/* An equality the scan checks between a column and a value of the client's. */
typedef struct ScanEquality
{
	AttrNumber	attno;
	Oid			opno;
	Oid			collid;
} ScanEquality;

/* The table column behind a Var of the scan (index-only: through its index). */
static AttrNumber
scan_column(Var *var, Scan *scan)
{
	if (var->varlevelsup != 0)
		return InvalidAttrNumber;
	if (var->varno == INDEX_VAR && IsA(scan, IndexOnlyScan))
	{
		List	   *itl = ((IndexOnlyScan *) scan)->indextlist;
		TargetEntry *tle;

		if (var->varattno < 1 || var->varattno > list_length(itl))
			return InvalidAttrNumber;
		tle = list_nth_node(TargetEntry, itl, var->varattno - 1);
		if (!IsA(tle->expr, Var))
			return InvalidAttrNumber;
		var = (Var *) tle->expr;
	}
	else if (var->varno != scan->scanrelid)
		return InvalidAttrNumber;
	return var->varattno;
}

/*
 * Under binary-compatible relabelling only: a cast that is a function may
 * map several values to one, and then an equality on its result does not
 * pin the column.
 */
static Node *
skip_relabel(Node *node)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node;
}

/* The column = constant-or-parameter clauses among quals, into eqs. */
static int
scan_equalities(List *quals, Scan *scan, ScanEquality *eqs, int n, int max)
{
	ListCell   *lc;

	foreach(lc, quals)
	{
		OpExpr	   *op = (OpExpr *) lfirst(lc);
		Node	   *left;
		Node	   *right;

		if (!IsA(op, OpExpr) || list_length(op->args) != 2 || n == max)
			continue;
		left = skip_relabel(linitial(op->args));
		right = skip_relabel(lsecond(op->args));
		if (!IsA(left, Var))
		{
			Node	   *tmp = left;

			left = right;
			right = tmp;
		}
		if (!IsA(left, Var) ||
			!(IsA(right, Const) || (IsA(right, Param) &&
									((Param *) right)->paramkind == PARAM_EXTERN)))
			continue;
		eqs[n].attno = scan_column((Var *) left, scan);
		eqs[n].opno = op->opno;
		eqs[n].collid = op->inputcollid;
		if (eqs[n].attno > 0)
			n++;
	}
	return n;
}

/*
 * Does this valid, immediate, non-partial unique index have every key
 * column compared for equality, by its own operator family and collation?
 */
static bool
index_pins_one_row(Oid indexid, const ScanEquality *eqs, int n)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
	Form_pg_index index;
	oidvector  *classes;
	oidvector  *collations;
	bool		isnull;
	bool		pinned;
	int			k;

	if (!HeapTupleIsValid(tup))
		return false;
	index = (Form_pg_index) GETSTRUCT(tup);
	pinned = index->indisunique && index->indimmediate && index->indisvalid &&
		heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
		heap_attisnull(tup, Anum_pg_index_indexprs, NULL);
	if (pinned)
	{
		classes = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tup,
																  Anum_pg_index_indclass,
																  &isnull));
		collations = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tup,
																	 Anum_pg_index_indcollation,
																	 &isnull));
		for (k = 0; pinned && k < index->indnkeyatts; k++)
		{
			Oid			family = get_opclass_family(classes->values[k]);
			int			i;

			for (i = 0; i < n; i++)
				if (eqs[i].attno == index->indkey.values[k] &&
					eqs[i].collid == collations->values[k] &&
					get_op_opfamily_strategy(eqs[i].opno, family) == BTEqualStrategyNumber)
					break;
			pinned = i < n;
		}
	}
	ReleaseSysCache(tup);
	return pinned;
}

/* Does this scan of a table return at most one row? */
static bool
scan_returns_one(PlannedStmt *stmt, Scan *scan)
{
	RangeTblEntry *rte;
	ScanEquality eqs[INDEX_MAX_KEYS * 2];
	int			n = 0;
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	bool		one = false;

	if (scan->scanrelid < 1 || scan->scanrelid > list_length(stmt->rtable))
		return false;
	rte = rt_fetch(scan->scanrelid, stmt->rtable);
	if (rte->rtekind != RTE_RELATION ||
		(rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_MATVIEW))
		return false;
	n = scan_equalities(scan->plan.qual, scan, eqs, n, lengthof(eqs));
	if (IsA(scan, IndexScan))
		n = scan_equalities(((IndexScan *) scan)->indexqualorig, scan, eqs, n, lengthof(eqs));
	else if (IsA(scan, IndexOnlyScan))
		n = scan_equalities(((IndexOnlyScan *) scan)->indexqual, scan, eqs, n, lengthof(eqs));
	else if (IsA(scan, BitmapHeapScan))
		n = scan_equalities(((BitmapHeapScan *) scan)->bitmapqualorig, scan, eqs, n,
							lengthof(eqs));
	if (n == 0)
		return false;
	/* the executor holds the table's lock */
	rel = table_open(rte->relid, NoLock);
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
		if ((one = index_pins_one_row(lfirst_oid(lc), eqs, n)))
			break;
	list_free(indexes);
	table_close(rel, NoLock);
	return one;
}

/*
 * The most rows the plan can return, or -1 when it does not say: one for
 * a plain aggregate, a Result without input and a scan whose equalities
 * cover a unique index's key; a constant LIMIT's count; nodes that only
 * order, drop or project rows keep their input's.
 */
int64
cache_plan_bound(PlannedStmt *stmt)
{
	Plan	   *plan = stmt->planTree;

	while (plan != NULL)
	{
		switch (nodeTag(plan))
		{
			case T_Sort:
			case T_IncrementalSort:
			case T_Unique:
			case T_Material:
				plan = outerPlan(plan);
				break;
			case T_Result:
				if (outerPlan(plan) == NULL)
					return 1;
				plan = outerPlan(plan);
				break;
			case T_Agg:
				return ((Agg *) plan)->aggstrategy == AGG_PLAIN &&
					((Agg *) plan)->groupingSets == NIL ? 1 : -1;
			case T_Limit:
				{
					Limit	   *limit = (Limit *) plan;
					Const	   *count = (Const *) limit->limitCount;

					if (limit->limitOption != LIMIT_OPTION_COUNT || count == NULL ||
						!IsA(count, Const) || count->constisnull ||
						count->consttype != INT8OID || DatumGetInt64(count->constvalue) < 0)
						return -1;
					return DatumGetInt64(count->constvalue);
				}
			case T_SeqScan:
			case T_IndexScan:
			case T_IndexOnlyScan:
			case T_BitmapHeapScan:
				return scan_returns_one(stmt, (Scan *) plan) ? 1 : -1;
			default:
				return -1;
		}
	}
	return -1;
}
