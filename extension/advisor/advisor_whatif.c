/*
 * advisor_whatif.c
 *		Owns two questions about existing indexes, answered by re-planning
 *		the captured workload with the index hidden (hypo_hide.c):
 *		- perfopt._workload_cost_increase(index): how much the weighted
 *		  planner cost (calls times cost) of the captured statements that
 *		  read the index's table would rise without it, for
 *		  perfopt.unused_indexes and perfopt.duplicate_indexes;
 *		- perfopt._recommended_indexes_unused(): recommended indexes
 *		  (advisor_remember.c) that were created, whose statements ran since
 *		  but are planned without them, for perfopt.findings.
 *
 * Statements are those of this database whose statistics the user may read
 * (as for perfopt.index_recommendations).  Both are bounded: at most
 * WHATIF_MAX_STMTS statements per index, the most time-consuming first,
 * each planned as it is once per SQL statement that asks.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "advisor/advisor.h"
#include "advisor/advisor_capture.h"
#include "advisor/advisor_plan.h"
#include "advisor/advisor_subxact.h"
#include "advisor/advisor_whatif.h"
#include "advisor/hypo_hide.h"
#include "advisor/hypo_index.h"
#include "shmem.h"

#define WHATIF_MAX_STMTS 50

/* One captured statement, with its cost as planned today once known. */
/* A captured statement (AdvisorStmt, with its tables) and its cost today. */
typedef struct WhatifStmt
{
	AdvisorStmt *stmt;
	bool		planned;
	bool		plannable;
	double		cost;
} WhatifStmt;

/*
 * The workload, built once per SQL statement (a view calls the function
 * once per index) and forgotten with the transaction.
 */
typedef struct WhatifCache
{
	LocalTransactionId lxid;
	TimestampTz stmt_start;
	List	   *stmts;			/* WhatifStmt, by time */
} WhatifCache;

static WhatifCache *cache = NULL;

static void
forget_cache(void *arg)
{
	cache = NULL;
}

static List *
build_workload(void)
{
	List	   *stmts = NIL;
	ListCell   *lc;

	foreach(lc, advisor_workload(true))
	{
		WhatifStmt *s = palloc0(sizeof(WhatifStmt));

		s->stmt = (AdvisorStmt *) lfirst(lc);
		stmts = lappend(stmts, s);
	}
	return stmts;
}

static List *
workload(void)
{
	LocalTransactionId lxid = MyProc->lxid;
	TimestampTz start = GetCurrentStatementStartTimestamp();
	MemoryContext cxt;
	MemoryContext old;
	MemoryContextCallback *cb;

	if (cache && cache->lxid == lxid && cache->stmt_start == start)
		return cache->stmts;
	cxt = AllocSetContextCreate(TopTransactionContext, "perfopt what-if workload",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	cb = palloc(sizeof(MemoryContextCallback));
	cb->func = forget_cache;
	cb->arg = NULL;
	MemoryContextRegisterResetCallback(cxt, cb);
	cache = palloc(sizeof(WhatifCache));
	cache->lxid = lxid;
	cache->stmt_start = start;
	cache->stmts = build_workload();
	MemoryContextSwitchTo(old);
	return cache->stmts;
}

/* The statement's cost as planned today, planned once per SQL statement. */
static bool
cost_as_is(WhatifStmt *s)
{
	if (!s->planned)
	{
		AdvisorPlanResult r = advisor_plan_bound(s->stmt->example, s->stmt->params,
												 s->stmt->params_len, NIL, false,
												 NULL, false);

		s->plannable = r.ok;
		s->cost = r.cost;
		s->planned = true;
	}
	return s->plannable;
}

/*
 * perfopt._workload_cost_increase(index): calls times planner cost, summed
 * over the captured statements that read the index's table, re-planned
 * without the index, less the same as they are planned today.  0 when no
 * captured statement reads the table; NULL when no statement of this
 * database that reads a table was captured (there is no workload to cost),
 * or index is not an index.
 */
PG_FUNCTION_INFO_V1(perfopt_workload_cost_increase);
Datum
perfopt_workload_cost_increase(PG_FUNCTION_ARGS)
{
	Oid			indexid = PG_GETARG_OID(0);
	List	   *stmts;
	List	   *hidden = list_make1_oid(indexid);
	Oid			table;
	double		increase = 0;
	int			costed = 0;
	ListCell   *lc;

	/* without preloading nothing is captured; the views still answer */
	if (get_rel_relkind(indexid) != RELKIND_INDEX || !advisor_capture_ready())
		PG_RETURN_NULL();
	stmts = workload();
	if (stmts == NIL)
		PG_RETURN_NULL();
	table = IndexGetRelation(indexid, false);
	foreach(lc, stmts)
	{
		WhatifStmt *s = (WhatifStmt *) lfirst(lc);
		AdvisorPlanResult r;
		Oid			unplanned;

		if (!list_member_oid(s->stmt->relids, table))
			continue;
		if (costed++ >= WHATIF_MAX_STMTS)
			break;
		if (!cost_as_is(s))
			continue;
		r = hypo_hide_plan(s->stmt->example, s->stmt->params, s->stmt->params_len, NIL,
						   hidden, false, NULL, false, &unplanned);
		if (r.ok)
			increase += s->stmt->calls * (r.cost - s->cost);
	}
	PG_RETURN_FLOAT8(increase);
}

/* The EXPLAIN text of cs planned today, hiding hidden; NULL if it fails. */
static char *
explain_text(CapturedStatement *cs, List *hidden)
{
	ExplainState *es = NewExplainState();
	AdvisorPlanResult r;
	Oid			unplanned;

	es->costs = true;
	es->format = EXPLAIN_FORMAT_TEXT;
	ExplainBeginOutput(es);
	r = hypo_hide_plan(cs->example, cs->params, cs->params_len, NIL, hidden,
					   false, es, false, &unplanned);
	ExplainEndOutput(es);
	if (!r.ok)
		return NULL;
	if (es->str->len > 0 && es->str->data[es->str->len - 1] == '\n')
		es->str->data[--es->str->len] = '\0';
	return es->str->data;
}

/*
 * The existing index that serves e's definition, or InvalidOid.  Checked in
 * a subtransaction: the table may have changed since the recommendation
 * (a column dropped), which is no finding, only an error to skip.
 */
typedef struct CreatedLookup
{
	RememberedIndex *entry;
	Oid			indexid;
} CreatedLookup;

static void
look_up_created(void *arg)
{
	CreatedLookup *cl = (CreatedLookup *) arg;
	HypoIndex  *h = hypo_index_parse(cl->entry->definition);
	char	   *by = NULL;

	if (h->relid == cl->entry->relid && hypo_index_covered(h, &by))
		cl->indexid = get_relname_relid(by, get_rel_namespace(cl->entry->relid));
}

static Oid
created_index(RememberedIndex *e)
{
	CreatedLookup cl = {e, InvalidOid};

	if (get_rel_relkind(e->relid) != RELKIND_RELATION &&
		get_rel_relkind(e->relid) != RELKIND_MATVIEW)
		return InvalidOid;
	if (!advisor_try_subxact(look_up_created, &cl, false))
		return InvalidOid;
	return cl.indexid;
}

/* The captured statement queryid, if it has an example, or NULL. */
static CapturedStatement *
captured_of(List *captured, uint64 queryid)
{
	ListCell   *lc;

	foreach(lc, captured)
	{
		CapturedStatement *cs = (CapturedStatement *) lfirst(lc);

		if (cs->queryid == queryid && cs->example != NULL)
			return cs;
	}
	return NULL;
}

typedef struct UnusedCheck
{
	HTAB	   *all_calls;		/* every role's executions */
	HTAB	   *visible;		/* the statements the user may read */
	List	   *captured;
	ReturnSetInfo *rsinfo;
	int			planned;		/* statements re-planned so far */
} UnusedCheck;

/*
 * Did a statement run since it had run `then` times?  Fewer runs now than
 * then means perfopt's statistics were reset since: each run counted now
 * came after.
 */
static bool
ran_since(double now, double then)
{
	return now > then || (now < then && now > 0);
}

/* Report each statement of e that ran since but is planned without indexid. */
static void
check_statements(UnusedCheck *uc, RememberedIndex *e, Oid indexid)
{
	int			i;

	for (i = 0; i < e->nqueries && uc->planned < WHATIF_MAX_STMTS; i++)
	{
		StmtWeight *now = hash_search(uc->all_calls, &e->queryids[i], HASH_FIND, NULL);
		CapturedStatement *cs = captured_of(uc->captured, e->queryids[i]);
		char	   *plan;
		char	   *without;
		Datum		values[4];
		bool		nulls[4] = {0};

		if (now == NULL || !ran_since(now->calls, (double) e->calls[i]) ||
			cs == NULL ||
			hash_search(uc->visible, &e->queryids[i], HASH_FIND, NULL) == NULL)
			continue;
		uc->planned++;
		/* the plan cannot stay the same without an index it uses */
		plan = explain_text(cs, NIL);
		without = explain_text(cs, list_make1_oid(indexid));
		if (plan == NULL || without == NULL || strcmp(plan, without) != 0)
			continue;
		values[0] = Int64GetDatum((int64) e->queryids[i]);
		values[1] = ObjectIdGetDatum(indexid);
		values[2] = CStringGetTextDatum(e->definition);
		values[3] = CStringGetTextDatum(plan);
		tuplestore_putvalues(uc->rsinfo->setResult, uc->rsinfo->setDesc, values, nulls);
	}
}

/*
 * perfopt._recommended_indexes_unused(): for each remembered recommendation
 * of this database that an existing valid index now serves (same keys, as
 * hypo_index_covered() matches them), each of its statements that ran since
 * it was recommended and that, re-planned from its captured example, does
 * not use that index: the statement, the index, the definition recommended
 * and the plan chosen instead.
 */
PG_FUNCTION_INFO_V1(perfopt_recommended_indexes_unused);
Datum
perfopt_recommended_indexes_unused(PG_FUNCTION_ARGS)
{
	List	   *remembered;
	UnusedCheck uc;
	ListCell   *lc;

	perfopt_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	remembered = advisor_remembered(MyDatabaseId);
	if (remembered == NIL)
		return (Datum) 0;
	uc.all_calls = advisor_statement_weights(true);
	uc.visible = advisor_statement_weights(false);
	uc.captured = advisor_capture_snapshot(MyDatabaseId);
	uc.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uc.planned = 0;
	foreach(lc, remembered)
	{
		RememberedIndex *e = (RememberedIndex *) lfirst(lc);
		Oid			indexid = created_index(e);

		CHECK_FOR_INTERRUPTS();
		if (OidIsValid(indexid))
			check_statements(&uc, e, indexid);
	}
	return (Datum) 0;
}
