/*
 * cache_shape.c
 *		Owns the planning-time verdict on whether a statement's shape may
 *		ever be answered from the cache: a plain SELECT that locks no rows,
 *		writes nothing, samples nothing and calls only built-in functions
 *		that are immutable (or stable, which then needs a rule with a TTL).
 *		User-defined functions are refused because redefining one changes
 *		answers without touching any table.  Relation-level checks (temp,
 *		catalog, foreign, row security...) need the relations themselves and
 *		are made at execution (cache_serve.c).
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_proc.h"
#include "nodes/nodeFuncs.h"
#include "utils/lsyscache.h"

#include "cache.h"

typedef struct ShapeState
{
	bool		volatile_found;
	bool		stable_found;
	bool		user_function;
	bool		sampled;
	bool		locks_rows;
	bool		has_params;		/* $n of a client: the key needs their values */
	List	   *rtes;			/* every table and view it reads */
	const char *reason;
} ShapeState;

static bool
function_checker(Oid func_id, void *context)
{
	ShapeState *st = (ShapeState *) context;
	char		v;

	if (func_id >= FirstNormalObjectId)
	{
		st->user_function = true;
		return true;
	}
	v = func_volatile(func_id);
	if (v == PROVOLATILE_VOLATILE)
	{
		st->volatile_found = true;
		return true;
	}
	if (v == PROVOLATILE_STABLE)
		st->stable_found = true;
	return false;
}

static bool
shape_walker(Node *node, ShapeState *st)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, function_checker, st))
		return true;
	if (IsA(node, NextValueExpr))
	{
		st->volatile_found = true;
		return true;
	}
	/* CURRENT_TIMESTAMP, CURRENT_USER and friends */
	if (IsA(node, SQLValueFunction))
		st->stable_found = true;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
		st->has_params = true;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->tablesample)
		{
			st->sampled = true;
			return true;
		}
		/* views too: their rewritten RTE carries the view's permissions */
		if (rte->rtekind == RTE_RELATION)
			st->rtes = lappend(st->rtes, rte);
		return false;
	}
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

		if (q->rowMarks != NIL || q->hasForUpdate)
		{
			st->locks_rows = true;
			return true;
		}
		if (q->commandType != CMD_SELECT || q->hasModifyingCTE)
		{
			st->reason = "it writes";
			return true;
		}
		return query_tree_walker(q, shape_walker, st, QTW_EXAMINE_RTES_BEFORE);
	}
	return expression_tree_walker(node, shape_walker, st);
}

static void
shape_walk(Query *query, ShapeState *st)
{
	memset(st, 0, sizeof(ShapeState));
	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
	{
		st->reason = "it is not a SELECT";
		return;
	}
	if (shape_walker((Node *) query, st) && st->reason == NULL)
		st->reason = "it is not cacheable";
	if (st->locks_rows)
		st->reason = "it locks rows (FOR UPDATE/SHARE)";
	else if (st->volatile_found)
		st->reason = "it calls a volatile function";
	else if (st->user_function)
		st->reason = "it calls a user-defined function or operator";
	else if (st->sampled)
		st->reason = "it uses TABLESAMPLE";
}

/*
 * CACHE_SHAPE_* bits for a statement about to be planned; for a cacheable
 * one also whether it has client parameters and the RTE_RELATION entries
 * of every level of it (subqueries, views, CTEs, sublinks), which is the
 * range table the planner would give its plan, for permission checks.
 */
int
cache_shape_of(Query *query, bool *has_params, List **rtes)
{
	ShapeState	st;

	shape_walk(query, &st);
	*has_params = st.has_params;
	*rtes = st.rtes;
	if (st.reason)
		return 0;
	return CACHE_SHAPE_CACHEABLE | (st.stable_found ? CACHE_SHAPE_STABLE : 0);
}

/* Why a statement can never be cached (NULL: it can), for rule creation. */
const char *
cache_shape_reason(Query *query, bool have_ttl)
{
	ShapeState	st;

	shape_walk(query, &st);
	if (st.reason)
		return st.reason;
	if (st.stable_found && !have_ttl)
		return "it calls a stable function such as now(), whose result may change without any write";
	return NULL;
}
