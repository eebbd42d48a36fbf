/*
 * advisor_plan.c
 *		Owns re-planning one statement, as text, with a set of hypothetical
 *		indexes visible to the planner.  Each re-planning runs in its own
 *		subtransaction, rolled back when done, so a statement that no
 *		longer plans (a dropped table, a type changed under it) fails
 *		alone, and no lock is held past one re-planning (DDL waits for one
 *		plan, not for the whole advice).  Statements are planned, never executed; when an
 *		EXPLAIN is asked for, the executor is only started in EXPLAIN-only
 *		mode, which opens no index.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "advisor/advisor_hot.h"
#include "advisor/advisor_params.h"
#include "advisor/advisor_plan.h"
#include "advisor/advisor_preds.h"
#include "advisor/hypo_index.h"

/*
 * The statement must be exactly one SELECT, INSERT, UPDATE or DELETE: a
 * utility statement, or several statements, would not be planned but run.
 */
static RawStmt *
single_statement(const char *sql)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	RawStmt    *stmt;

	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expected exactly one statement, found %d", list_length(raw))));
	stmt = linitial_node(RawStmt, raw);
	switch (nodeTag(stmt->stmt))
	{
		case T_SelectStmt:
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("only SELECT, INSERT, UPDATE and DELETE statements can be planned with hypothetical indexes")));
	}
	return stmt;
}

/*
 * Check that sql is one plannable statement.  A syntax error's position is
 * in sql, not in the caller's statement, so it is not reported as such.
 */
void
advisor_check_statement(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		(void) single_statement(sql);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->cursorpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();
}

static void collect_used_list(List *plans, List **used);

/* OIDs of the hypothetical indexes a plan scans. */
static void
collect_used(Plan *plan, List **used)
{
	Oid			indexid = InvalidOid;

	if (plan == NULL)
		return;
	check_stack_depth();
	if (IsA(plan, IndexScan))
		indexid = ((IndexScan *) plan)->indexid;
	else if (IsA(plan, IndexOnlyScan))
		indexid = ((IndexOnlyScan *) plan)->indexid;
	else if (IsA(plan, BitmapIndexScan))
		indexid = ((BitmapIndexScan *) plan)->indexid;
	else if (IsA(plan, Append))
		collect_used_list(((Append *) plan)->appendplans, used);
	else if (IsA(plan, MergeAppend))
		collect_used_list(((MergeAppend *) plan)->mergeplans, used);
	else if (IsA(plan, BitmapAnd))
		collect_used_list(((BitmapAnd *) plan)->bitmapplans, used);
	else if (IsA(plan, BitmapOr))
		collect_used_list(((BitmapOr *) plan)->bitmapplans, used);
	else if (IsA(plan, SubqueryScan))
		collect_used(((SubqueryScan *) plan)->subplan, used);
	if (OidIsValid(indexid))
	{
		ListCell   *lc;

		foreach(lc, hypo_index_active())
			if (((HypoIndex *) lfirst(lc))->oid == indexid)
				*used = list_append_unique_oid(*used, indexid);
	}
	collect_used(plan->lefttree, used);
	collect_used(plan->righttree, used);
}

static void
collect_used_list(List *plans, List **used)
{
	ListCell   *lc;

	foreach(lc, plans)
		collect_used((Plan *) lfirst(lc), used);
}

/*
 * Texts captured from the extended protocol carry $n: planned with the
 * values kept from a run when they are there (a custom plan), else
 * generic.
 */
static PlannedStmt *
plan_one(const char *sql, const char *params, int params_len)
{
	RawStmt    *raw = single_statement(sql);
	Oid		   *param_types = NULL;
	int			nparams = 0;
	List	   *queries;
	ListCell   *lc;

	ParamListInfo bound;

	queries = pg_analyze_and_rewrite_varparams(raw, sql, &param_types, &nparams, NULL);
	bound = nparams > 0 ? advisor_params_decode(params, params_len, param_types, nparams) : NULL;
	foreach(lc, queries)
	{
		Query	   *query = lfirst_node(Query, lc);

		if (query->canSetTag && query->commandType != CMD_UTILITY)
			return pg_plan_query(query, sql, CURSOR_OPT_PARALLEL_OK, bound);
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("statement is rewritten into nothing that can be planned")));
	return NULL;				/* keep compiler quiet */
}

typedef struct PlanRequest
{
	const char *sql;
	const char *params;
	int			params_len;
} PlanRequest;

static void
plan_in_subxact(const PlanRequest *req, List *hypos, bool extract, ExplainState *es,
				AdvisorPlanResult *r, MemoryContext resultcxt)
{
	PlannedStmt *pstmt;

	hypo_index_activate(hypos);
	pstmt = plan_one(req->sql, req->params, req->params_len);
	r->cost = pstmt->planTree->total_cost;
	r->queryid = pstmt->queryId;
	if (es)
		ExplainOnePlan(pstmt, NULL, es, req->sql, NULL, NULL, NULL, NULL);
	MemoryContextSwitchTo(resultcxt);
	if (extract)
	{
		advisor_extract(pstmt, &r->preds, &r->scans);
		(void) advisor_updated_columns(pstmt, &r->upd_relid, &r->upd_cols);
	}
	collect_used(pstmt->planTree, &r->used);
	collect_used_list(pstmt->subplans, &r->used);
	hypo_index_deactivate();
	r->ok = true;
}

/*
 * Plan sql with the hypothetical indexes in hypos, in a subtransaction.
 * A failure is returned in r.error, or re-thrown when rethrow is set; a
 * cancel is always re-thrown, so the advisor's work can be cancelled.
 * Results are allocated in the caller's memory context.
 */
AdvisorPlanResult
advisor_plan(const char *sql, List *hypos, bool extract, ExplainState *es,
			 bool rethrow)
{
	return advisor_plan_bound(sql, NULL, 0, hypos, extract, es, rethrow);
}

/* The same, with bind values kept from a run of the statement (or none). */
AdvisorPlanResult
advisor_plan_bound(const char *sql, const char *params, int params_len, List *hypos,
				   bool extract, ExplainState *es, bool rethrow)
{
	PlanRequest req = {sql, params, params_len};
	MemoryContext callercxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	MemoryContext plancxt;
	AdvisorPlanResult r = {0};

	CHECK_FOR_INTERRUPTS();
	plancxt = AllocSetContextCreate(callercxt, "perfopt advisor planning",
									ALLOCSET_DEFAULT_SIZES);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(plancxt);
	PG_TRY();
	{
		plan_in_subxact(&req, hypos, extract, es, &r, callercxt);
		/* nothing to keep: rolling back releases the locks at once */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(callercxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		hypo_index_deactivate();
		MemoryContextSwitchTo(callercxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(callercxt);
		CurrentResourceOwner = owner;
		/* a position in the statement's text is not one in the caller's */
		edata->cursorpos = 0;
		if (rethrow || edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		r.ok = false;
		r.error = edata->message;
	}
	PG_END_TRY();
	MemoryContextDelete(plancxt);
	return r;
}
