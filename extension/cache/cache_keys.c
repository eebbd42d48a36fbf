/*
 * cache_keys.c
 *		Owns key-restricted invalidation: finding that a statement reads only
 *		the rows of a table with one value in an integer column (WHERE
 *		s.game_id = 7, or = $1), so that its cached result depends on that
 *		value's band of the table instead of the whole table.  A write then
 *		invalidates the results of the keys its rows had, before and after,
 *		and leaves the leaderboards of other games alone.
 *
 *		The restriction is read from the executed plan: the one scan of the
 *		table (a table read twice is not keyed) filters on column = value,
 *		as a top-level conjunct of its filter or index condition, so a row
 *		with another value never reaches anything above the scan.  The
 *		value is a constant or a bind parameter of the statement.  Rows are
 *		hashed into CACHE_KEY_BANDS bands; two keys sharing a band only cost
 *		a needless recomputation.
 *
 *		The writing side is the key trigger, perfopt._cache_note_keys(), in
 *		cache_inval.c; perfopt._cache_sync_triggers() (cache.sql) puts it
 *		on tables whose query rules restrict them to key values.
 */
#include "postgres.h"

#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "parser/parse_func.h"
#include "utils/lsyscache.h"

#include "cache/cache_int.h"

static Oid	keys_fn = InvalidOid;
static Oid	keys_fn_db = InvalidOid;
static uint64 keys_fn_epoch = 0;

/*
 * perfopt._cache_note_keys(), looked up again after any DDL (the extension
 * may have been dropped and created again).
 */
Oid
cache_keys_trigger_function(void)
{
	int			epoch_slot = cache_epoch_slot();
	uint64		epoch = epoch_slot >= 0 ? cache_slot_gen(epoch_slot) : 0;

	if (epoch_slot < 0)
		return InvalidOid;
	if (keys_fn_db != MyDatabaseId || keys_fn_epoch != epoch)
	{
		keys_fn = LookupFuncName(list_make2(makeString("perfopt"),
											makeString("_cache_note_keys")),
								 0, NULL, true);
		keys_fn_db = MyDatabaseId;
		keys_fn_epoch = epoch;
	}
	return keys_fn;
}

static bool
key_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID;
}

static int64
key_value(Oid type, Datum value)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(value);
		case INT4OID:
			return DatumGetInt32(value);
		default:
			return DatumGetInt64(value);
	}
}

/*
 * The band of an integer key value; equal values of int2, int4 and int8
 * fall in the same band, as the integer equality operators compare them.
 */
int
cache_key_band(Oid type, Datum value)
{
	uint64		v;

	if (!key_type(type))
		return -1;
	v = (uint64) key_value(type, value);
	return hash_bytes_uint32((uint32) v ^ (uint32) (v >> 32)) % CACHE_KEY_BANDS;
}

/* Counting the scans of one range-table entry in a plan tree. */
typedef struct ScanSearch
{
	Index		rti;
	Scan	   *scan;
	int			count;
} ScanSearch;

static void find_scans(Plan *plan, ScanSearch *search);

static void
find_scans_list(List *plans, ScanSearch *search)
{
	ListCell   *lc;

	foreach(lc, plans)
		find_scans((Plan *) lfirst(lc), search);
}

static void
find_scans(Plan *plan, ScanSearch *search)
{
	if (plan == NULL)
		return;
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
		case T_ForeignScan:
		case T_CustomScan:
			if (((Scan *) plan)->scanrelid == search->rti)
			{
				search->scan = (Scan *) plan;
				search->count++;
			}
			break;
		default:
			break;
	}
	switch (nodeTag(plan))
	{
		case T_Append:
			find_scans_list(((Append *) plan)->appendplans, search);
			break;
		case T_MergeAppend:
			find_scans_list(((MergeAppend *) plan)->mergeplans, search);
			break;
		case T_BitmapAnd:
			find_scans_list(((BitmapAnd *) plan)->bitmapplans, search);
			break;
		case T_BitmapOr:
			find_scans_list(((BitmapOr *) plan)->bitmapplans, search);
			break;
		case T_SubqueryScan:
			find_scans(((SubqueryScan *) plan)->subplan, search);
			break;
		case T_CustomScan:
			find_scans_list(((CustomScan *) plan)->custom_plans, search);
			break;
		default:
			break;
	}
	find_scans(plan->lefttree, search);
	find_scans(plan->righttree, search);
}

/*
 * The table's one scan in the statement, or NULL: the table must be in the
 * range table once (self-joins, subqueries reading it again and min/max
 * rewrites all add entries) and scanned by exactly one node.
 */
static Scan *
only_scan(PlannedStmt *stmt, Oid relid)
{
	ScanSearch	search;
	ListCell   *lc;
	Index		rti = 0;
	Index		i = 0;

	foreach(lc, stmt->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		i++;
		if (rte->rtekind != RTE_RELATION || rte->relid != relid)
			continue;
		if (rti != 0)
			return NULL;
		rti = i;
	}
	if (rti == 0)
		return NULL;
	search.rti = rti;
	search.scan = NULL;
	search.count = 0;
	find_scans(stmt->planTree, &search);
	find_scans_list(stmt->subplans, &search);
	return search.count == 1 ? search.scan : NULL;
}

/* A column of the scanned table, through an index-only scan's index columns. */
static Var *
scan_column(Node *node, Scan *scan)
{
	Var		   *var;

	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	if (node == NULL || !IsA(node, Var))
		return NULL;
	var = (Var *) node;
	if (var->varlevelsup != 0)
		return NULL;
	if (IsA(scan, IndexOnlyScan) && var->varno == INDEX_VAR)
	{
		List	   *tlist = ((IndexOnlyScan *) scan)->indextlist;
		TargetEntry *tle;

		if (var->varattno < 1 || var->varattno > list_length(tlist))
			return NULL;
		tle = list_nth_node(TargetEntry, tlist, var->varattno - 1);
		return scan_column((Node *) tle->expr, scan);
	}
	if (var->varno != scan->scanrelid || var->varattno < 1)
		return NULL;
	return var;
}

/* An integer constant, or a bind parameter's value; false if neither. */
static bool
key_operand(Node *node, ParamListInfo params, bool want_value, int *band)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	if (node && IsA(node, Const))
	{
		Const	   *c = (Const *) node;

		if (c->constisnull || !key_type(c->consttype))
			return false;
		*band = cache_key_band(c->consttype, c->constvalue);
		return true;
	}
	if (node && IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
	{
		Param	   *p = (Param *) node;
		ParamExternData *prm;

		if (!key_type(p->paramtype))
			return false;
		if (!want_value)
			return true;
		/* only plain arrays of values: a paramFetch hook might compute them */
		if (params == NULL || params->paramFetch != NULL ||
			p->paramid < 1 || p->paramid > params->numParams)
			return false;
		prm = &params->params[p->paramid - 1];
		if (prm->isnull || prm->ptype != p->paramtype)
			return false;
		*band = cache_key_band(prm->ptype, prm->value);
		return true;
	}
	return false;
}

/* Is this conjunct "column = value" on the scanned table?  Which column? */
static AttrNumber
key_conjunct(Node *clause, Scan *scan, ParamListInfo params, bool want_value,
			 int *band)
{
	OpExpr	   *op;
	Var		   *var;
	int			side;

	if (clause == NULL || !IsA(clause, OpExpr))
		return InvalidAttrNumber;
	op = (OpExpr *) clause;
	if (list_length(op->args) != 2 ||
		get_op_opfamily_strategy(op->opno, INTEGER_BTREE_FAM_OID) != BTEqualStrategyNumber)
		return InvalidAttrNumber;
	for (side = 0; side < 2; side++)
	{
		var = scan_column(list_nth(op->args, side), scan);
		if (var && key_type(var->vartype) &&
			key_operand(list_nth(op->args, 1 - side), params, want_value, band))
			return var->varattno;
	}
	return InvalidAttrNumber;
}

/* The conjunct lists every row of the scan satisfies. */
static List *
scan_conjuncts(Scan *scan)
{
	List	   *quals = scan->plan.qual;

	switch (nodeTag(scan))
	{
		case T_SeqScan:
			return quals;
		case T_IndexScan:
			return list_concat_copy(((IndexScan *) scan)->indexqualorig, quals);
		case T_IndexOnlyScan:
			return list_concat_copy(((IndexOnlyScan *) scan)->indexqual, quals);
		case T_BitmapHeapScan:
			return list_concat_copy(((BitmapHeapScan *) scan)->bitmapqualorig, quals);
		default:
			return NIL;
	}
}

/*
 * The integer columns a statement restricts a table to one value of (a
 * mask of attribute numbers below 64): what the table's key trigger should
 * hash, from the plan of a rule's statement.
 */
uint64
cache_plan_key_columns(PlannedStmt *stmt, Oid relid)
{
	Scan	   *scan = only_scan(stmt, relid);
	uint64		mask = 0;
	ListCell   *lc;

	if (scan == NULL)
		return 0;
	foreach(lc, scan_conjuncts(scan))
	{
		int			band;
		AttrNumber	attno = key_conjunct(lfirst(lc), scan, NULL, false, &band);

		if (attno > 0 && attno < 64)
			mask |= UINT64CONST(1) << attno;
	}
	return mask;
}

/*
 * Does this execution read only the rows of relid with one value in a
 * column the key trigger hashes (keyed, a mask)?  Then its column and the
 * value's band.
 */
bool
cache_plan_key(PlannedStmt *stmt, ParamListInfo params, Oid relid, uint64 keyed,
			   AttrNumber *attno, int *band)
{
	Scan	   *scan = only_scan(stmt, relid);
	ListCell   *lc;

	if (scan == NULL)
		return false;
	foreach(lc, scan_conjuncts(scan))
	{
		AttrNumber	col = key_conjunct(lfirst(lc), scan, params, true, band);

		if (col > 0 && col < 64 && (keyed & (UINT64CONST(1) << col)))
		{
			*attno = col;
			return true;
		}
	}
	return false;
}
