/*
 * advisor_views.c
 *		Owns the advisor's SQL functions: perfopt.index_recommendations
 *		(the captured workload, weighted by perfopt.query_stats' calls, less
 *		those answered by the result cache, and times),
 *		perfopt.recommend_indexes (one statement),
 *		perfopt.explain_hypothetical (indexes added or hidden) and
 *		perfopt._plan_full_scans (for perfopt.findings).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"

#include "advisor/advisor.h"
#include "advisor/advisor_capture.h"
#include "advisor/advisor_plan.h"
#include "advisor/advisor_preds.h"
#include "advisor/advisor_whatif.h"
#include "advisor/hypo_hide.h"
#include "shmem.h"
#include "stats/stats_store.h"

/* statements re-planned per advice, the most time-consuming first */
#define ADVISOR_MAX_STMTS 200

static Datum
text_array(List *strings)
{
	Datum	   *items = palloc(sizeof(Datum) * Max(list_length(strings), 1));
	ListCell   *lc;

	foreach(lc, strings)
		items[foreach_current_index(lc)] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(items, list_length(strings), TEXTOID,
										   -1, false, TYPALIGN_INT));
}

static void
emit(ReturnSetInfo *rsinfo, List *result)
{
	ListCell   *lc;

	foreach(lc, result)
	{
		AdvisorCand *c = (AdvisorCand *) lfirst(lc);
		Datum		values[10];
		bool		nulls[10] = {0};
		Datum	   *ids = palloc(sizeof(Datum) * list_length(c->helped));
		List	   *texts = NIL;
		ListCell   *h;

		foreach(h, c->helped)
		{
			AdvisorStmt *s = (AdvisorStmt *) lfirst(h);

			ids[foreach_current_index(h)] = Int64GetDatum((int64) s->queryid);
			texts = lappend(texts, s->query);
		}
		values[0] = CStringGetTextDatum(c->table_name);
		values[1] = text_array(c->columns);
		values[2] = CStringGetTextDatum(c->definition);
		values[3] = PointerGetDatum(construct_array(ids, list_length(c->helped), INT8OID,
													8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[4] = text_array(texts);
		values[5] = Float8GetDatum(c->cost_before);
		values[6] = Float8GetDatum(c->cost_after);
		values[7] = Float8GetDatum(c->cost_before > 0 ?
								   100.0 * (c->cost_before - c->cost_after) / c->cost_before : 0);
		values[8] = Int64GetDatum((int64) c->size_bytes);
		values[9] = Float8GetDatum(c->write_overhead);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * executions that ran their plan (calls less result-cache hits) and time
 * per statement of this database, from perfopt.query_stats: of every role
 * with all_users, else of the roles whose statistics the user may read
 */
HTAB *
advisor_statement_weights(bool all_users)
{
	bool		privileged = all_users || superuser() ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	HASHCTL		info;
	HTAB	   *weights;
	StatsSnapshot *snap;
	int			n;
	int			i;

	perfopt_require_preload();
	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(StmtWeight);
	info.hcxt = CurrentMemoryContext;
	weights = hash_create("perfopt advisor weights", 256, &info,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	snap = stats_store_snapshot(&n);
	for (i = 0; i < n; i++)
	{
		StmtWeight *w;
		bool		found;

		if (snap[i].key.dbid != MyDatabaseId ||
			(!privileged && snap[i].key.userid != GetUserId()))
			continue;
		w = hash_search(weights, &snap[i].key.queryid, HASH_ENTER, &found);
		if (!found)
		{
			w->calls = w->total_time = 0;
			w->query = snap[i].query;
		}
		/* answers from the result cache ran no plan: no index speeds them up */
		w->calls += Max(snap[i].counters.calls - snap[i].counters.cache_hits, 0);
		w->total_time += snap[i].counters.total_exec_time;
	}
	return weights;
}

static int
by_time_desc(const ListCell *a, const ListCell *b)
{
	double		ta = ((AdvisorStmt *) lfirst(a))->total_time;
	double		tb = ((AdvisorStmt *) lfirst(b))->total_time;

	return (ta < tb) ? 1 : (ta > tb) ? -1 : 0;
}

/*
 * The captured statements of this database that have calls, by time.
 * with_tables: each with the tables its captured plan read (relids), and
 * only those that read one (the what-if costs per table).
 */
List *
advisor_workload(bool with_tables)
{
	HTAB	   *weights = advisor_statement_weights(false);
	List	   *captured = advisor_capture_snapshot(MyDatabaseId);
	List	   *stmts = NIL;
	ListCell   *lc;

	foreach(lc, captured)
	{
		CapturedStatement *cs = (CapturedStatement *) lfirst(lc);
		StmtWeight *w = hash_search(weights, &cs->queryid, HASH_FIND, NULL);
		AdvisorStmt *s;

		if (w == NULL || w->calls <= 0 || cs->example == NULL)
			continue;
		s = palloc0(sizeof(AdvisorStmt));
		s->queryid = cs->queryid;
		s->example = cs->example;
		s->example2 = cs->example2;
		s->params = cs->params;
		s->params_len = cs->params_len;
		s->query = w->query ? w->query : cs->example;
		s->calls = w->calls;
		s->total_time = w->total_time;
		if (with_tables)
		{
			int			i;

			for (i = 0; i < cs->npreds; i++)
				s->relids = list_append_unique_oid(s->relids, cs->preds[i].relid);
			for (i = 0; i < cs->nscans; i++)
				s->relids = list_append_unique_oid(s->relids, cs->scans[i].relid);
			/* one that reads no table is no index's business */
			if (s->relids == NIL)
				continue;
		}
		stmts = lappend(stmts, s);
	}
	list_sort(stmts, by_time_desc);
	return stmts;
}

PG_FUNCTION_INFO_V1(perfopt_index_recommendations);
Datum
perfopt_index_recommendations(PG_FUNCTION_ARGS)
{
	List	   *result;

	InitMaterializedSRF(fcinfo, 0);
	result = advisor_advise(list_truncate(advisor_workload(false), ADVISOR_MAX_STMTS),
							true, false);
	/* so that perfopt.findings can tell whether, once created, they serve */
	advisor_remember(result);
	emit((ReturnSetInfo *) fcinfo->resultinfo, result);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(perfopt_recommend_indexes);
Datum
perfopt_recommend_indexes(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	AdvisorStmt *s = palloc0(sizeof(AdvisorStmt));

	advisor_check_statement(sql);
	s->example = s->query = sql;
	s->calls = s->total_time = 1;
	InitMaterializedSRF(fcinfo, 0);
	/* one statement has no call rate to weigh writes against */
	emit((ReturnSetInfo *) fcinfo->resultinfo, advisor_advise(list_make1(s), false, true));
	return (Datum) 0;
}

static List *
parse_index_array(ArrayType *arr)
{
	Datum	   *items;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *hypos = NIL;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("index definitions must be a one-dimensional text array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &items, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		MemoryContext cxt = CurrentMemoryContext;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("index definition %d is NULL", i + 1)));
		PG_TRY();
		{
			hypos = lappend(hypos, hypo_index_parse(TextDatumGetCString(items[i])));
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			/* a position in the definition is not one in the caller's text */
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			edata->cursorpos = 0;
			if (edata->context == NULL)
				edata->context = psprintf("index definition %d", i + 1);
			ReThrowError(edata);
		}
		PG_END_TRY();
	}
	return hypos;
}

/* The existing indexes to hide, each checked (hypo_hide_check). */
static List *
parse_hide_array(ArrayType *arr)
{
	Datum	   *items;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *hidden = NIL;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("indexes to hide must be a one-dimensional regclass array")));
	deconstruct_array(arr, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
					  &items, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("index to hide %d is NULL", i + 1)));
		hypo_hide_check(DatumGetObjectId(items[i]));
		hidden = list_append_unique_oid(hidden, DatumGetObjectId(items[i]));
	}
	return hidden;
}

/*
 * perfopt.explain_hypothetical(query, indexes, hide): the plan of query
 * with the hypothetical indexes added and the existing indexes in hide
 * removed, its cost, the cost as the query is planned today, and which of
 * the hypothetical indexes the plan uses.
 */
PG_FUNCTION_INFO_V1(perfopt_explain_hypothetical);
Datum
perfopt_explain_hypothetical(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *hypos = parse_index_array(PG_GETARG_ARRAYTYPE_P(1));
	List	   *hidden = PG_NARGS() > 2 ? parse_hide_array(PG_GETARG_ARRAYTYPE_P(2)) : NIL;
	Oid			unplanned;
	ExplainState *es = NewExplainState();
	AdvisorPlanResult without;
	AdvisorPlanResult with;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {0};
	List	   *used = NIL;
	ListCell   *lc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	advisor_check_statement(sql);
	without = advisor_plan(sql, NIL, false, NULL, true);
	es->costs = true;
	es->format = EXPLAIN_FORMAT_TEXT;
	ExplainBeginOutput(es);
	with = hypo_hide_plan(sql, NULL, 0, hypos, hidden, false, es, true, &unplanned);
	ExplainEndOutput(es);
	if (OidIsValid(unplanned))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("index \"%s\" is not on a table the statement reads",
						get_rel_name(unplanned)),
				 errhint("Hide only indexes of the tables in the statement.")));
	if (es->str->len > 0 && es->str->data[es->str->len - 1] == '\n')
		es->str->data[--es->str->len] = '\0';
	foreach(lc, hypos)
	{
		HypoIndex  *h = (HypoIndex *) lfirst(lc);

		if (list_member_oid(with.used, h->oid))
			used = lappend(used, h->name);
	}
	values[0] = CStringGetTextDatum(es->str->data);
	values[1] = Float8GetDatum(with.cost);
	values[2] = Float8GetDatum(without.cost);
	values[3] = text_array(used);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * perfopt._plan_full_scans(example): the tables the statement's plan reads
 * in full today, or NULL when it no longer plans.  perfopt.findings uses it
 * so that a full scan fixed by an index since the capture is not reported.
 */
PG_FUNCTION_INFO_V1(perfopt_plan_full_scans);
Datum
perfopt_plan_full_scans(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	AdvisorPlanResult r = advisor_plan(sql, NIL, true, NULL, false);
	Datum	   *items;
	int			n = 0;
	ListCell   *lc;

	if (!r.ok)
		PG_RETURN_NULL();
	items = palloc(sizeof(Datum) * Max(list_length(r.scans), 1));
	foreach(lc, r.scans)
	{
		AdvisorScan *scan = (AdvisorScan *) lfirst(lc);

		if (scan->full)
			items[n++] = ObjectIdGetDatum(scan->relid);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(items, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

