/*
 * cache_shape.c
 *		Owns the planning-time verdict on whether a statement's shape may
 *		ever be answered from the cache: a plain SELECT that locks no rows,
 *		writes nothing, samples nothing and calls only built-in functions
 *		that are immutable (or stable, which then needs a rule with a TTL).
 *		User-defined functions are refused because redefining one changes
 *		answers without touching any table.  Relation-level checks (temp,
 *		catalog, foreign, row security...) need the relations themselves and
 *		are made at execution (cache_answer.c, cache_rules.c).
 *
 *		The verdict is remembered per queryid: the jumble behind it covers
 *		every function, operator, parameter and row mark that decides it,
 *		and built-in functions change volatility only by ALTER FUNCTION,
 *		which empties the memo.  A statement reading only tables (no
 *		subqueries, views, CTEs or sublinks) then needs no walk at all: its
 *		range table is the list of tables the permission checks need.
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_proc.h"
#include "nodes/nodeFuncs.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "cache/cache_int.h"

typedef struct ShapeState
{
	bool		volatile_found;
	bool		stable_found;
	bool		user_function;
	bool		session_function;	/* answers differ per backend or client */
	bool		reads_settings; /* current_setting(): keyed on every setting */
	bool		sampled;
	bool		locks_rows;
	bool		has_params;		/* $n of a client: the key needs their values */
	List	   *rtes;			/* every table and view it reads */
	const char *reason;
} ShapeState;

typedef struct ShapeMemo
{
	uint64		queryid;
	int			shape;			/* what cache_shape_of returns */
	bool		has_params;
	bool		flat;			/* reads tables only: its rtable is every RTE */
} ShapeMemo;

#define SHAPE_MEMO_MAX 4096

static HTAB *shape_memo = NULL;

/* the entry found last: the same statement is planned over and over */
static ShapeMemo *last_shape = NULL;

static void
forget_shapes(Datum arg, int cacheid, uint32 hashvalue)
{
	last_shape = NULL;
	if (shape_memo)
	{
		hash_destroy(shape_memo);
		shape_memo = NULL;
	}
}

/*
 * Stable built-ins whose answer belongs to one backend, client or
 * transaction rather than to the data: under a TTL rule such an answer
 * would be another session's, so a statement calling one is never shared.
 * (Stable functions of the settings, the user or the transaction's time are
 * fine: the key holds the settings and roles, and a TTL may make an answer
 * old.)
 */
static bool
is_session_function(Oid func_id)
{
	switch (func_id)
	{
		case F_PG_BACKEND_PID:
		case F_INET_CLIENT_ADDR:
		case F_INET_CLIENT_PORT:
		case F_INET_SERVER_ADDR:
		case F_INET_SERVER_PORT:
		case F_TXID_CURRENT:
		case F_TXID_CURRENT_IF_ASSIGNED:
		case F_TXID_CURRENT_SNAPSHOT:
		case F_PG_CURRENT_XACT_ID:
		case F_PG_CURRENT_XACT_ID_IF_ASSIGNED:
		case F_PG_CURRENT_SNAPSHOT:
		case F_PG_MY_TEMP_SCHEMA:
		case F_PG_IS_OTHER_TEMP_SCHEMA:
		case F_PG_TRIGGER_DEPTH:
		case F_PG_LISTENING_CHANNELS:
		case F_PG_CONF_LOAD_TIME:
		case F_PG_JIT_AVAILABLE:
		case F_PG_CLIENT_ENCODING:
			return true;
		default:
			return false;
	}
}

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
	if (is_session_function(func_id))
	{
		st->session_function = true;
		return true;
	}
	if (func_id == F_CURRENT_SETTING_TEXT || func_id == F_CURRENT_SETTING_TEXT_BOOL)
		st->reads_settings = true;
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
	else if (st->session_function)
		st->reason = "it calls a function whose answer belongs to one session (backend, client address, transaction)";
	else if (st->sampled)
		st->reason = "it uses TABLESAMPLE";
}

/* Tables only: no range table entry or clause that holds another query. */
static bool
reads_tables_only(Query *query)
{
	ListCell   *lc;

	if (query->hasSubLinks || query->cteList != NIL || query->setOperations != NULL)
		return false;
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind != RTE_RELATION && rte->rtekind != RTE_JOIN)
			return false;
	}
	return true;
}

static List *
relation_rtes(Query *query)
{
	List	   *rtes = NIL;
	ListCell   *lc;

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_RELATION)
			rtes = lappend(rtes, rte);
	}
	return rtes;
}

static int
shape_bits(ShapeState *st)
{
	if (st->reason)
		return 0;
	return CACHE_SHAPE_CACHEABLE | (st->stable_found ? CACHE_SHAPE_STABLE : 0) |
		(st->reads_settings ? CACHE_SHAPE_SETTINGS : 0);
}

static void
remember_shape(Query *query, int shape, bool has_params)
{
	static bool callback_registered = false;
	ShapeMemo  *m;

	if (query->queryId == UINT64CONST(0))
		return;
	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, forget_shapes, (Datum) 0);
		callback_registered = true;
	}
	if (shape_memo && hash_get_num_entries(shape_memo) >= SHAPE_MEMO_MAX)
		forget_shapes((Datum) 0, PROCOID, 0);
	if (shape_memo == NULL)
		shape_memo = cache_backend_hash("perfopt cache statement shapes", sizeof(uint64),
										sizeof(ShapeMemo), 256);
	m = hash_search(shape_memo, &query->queryId, HASH_ENTER, NULL);
	m->shape = shape;
	m->has_params = has_params;
	m->flat = reads_tables_only(query);
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
	ShapeMemo  *m = NULL;

	if (last_shape && last_shape->queryid == query->queryId &&
		query->queryId != UINT64CONST(0))
		m = last_shape;
	else if (shape_memo && query->queryId != UINT64CONST(0))
		m = last_shape = hash_search(shape_memo, &query->queryId, HASH_FIND, NULL);
	if (m && m->flat)
	{
		*has_params = m->has_params;
		*rtes = m->shape ? relation_rtes(query) : NIL;
		return m->shape;
	}
	shape_walk(query, &st);
	*has_params = st.has_params;
	*rtes = st.rtes;
	if (m == NULL)
		remember_shape(query, shape_bits(&st), st.has_params);
	return shape_bits(&st);
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
