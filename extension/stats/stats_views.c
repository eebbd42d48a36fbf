/*
 * stats_views.c
 *		SQL-callable functions behind perfopt.query_stats, perfopt.stats_info
 *		and perfopt.slow_queries, and their resets.  They only read the
 *		stores, and they decide what a caller may see: as in
 *		pg_stat_statements, other users' texts, constants, parameters and
 *		plans are shown only to superusers and pg_read_all_stats members.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "shmem.h"
#include "stats/slowlog.h"
#include "stats/stats_store.h"

#define HIDDEN_TEXT "<insufficient privilege>"

PG_FUNCTION_INFO_V1(perfopt_query_stats);
PG_FUNCTION_INFO_V1(perfopt_stats_info);
PG_FUNCTION_INFO_V1(perfopt_reset_stats);
PG_FUNCTION_INFO_V1(perfopt_slow_queries);
PG_FUNCTION_INFO_V1(perfopt_reset_slow_queries);

static bool
may_see_all(void)
{
	return superuser() || has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

#define QUERY_STATS_COLS 22

static void
query_stats_row(const StatsSnapshot *s, bool visible, Datum *values, bool *nulls)
{
	const StatsCounters *c = &s->counters;
	int			i = 0;

	memset(nulls, 0, sizeof(bool) * QUERY_STATS_COLS);
	values[i] = Int64GetDatum((int64) s->key.queryid);
	nulls[i++] = !visible;
	values[i++] = ObjectIdGetDatum(s->key.userid);
	values[i++] = ObjectIdGetDatum(s->key.dbid);
	values[i++] = CStringGetTextDatum(visible ? s->query : HIDDEN_TEXT);
	values[i++] = Int64GetDatum(c->calls);
	values[i++] = Int64GetDatum(c->rows);
	values[i++] = Float8GetDatum(c->total_exec_time);
	values[i++] = Float8GetDatum(c->calls > 0 ? c->total_exec_time / c->calls : 0.0);
	values[i++] = Float8GetDatum(c->min_exec_time);
	values[i++] = Float8GetDatum(c->max_exec_time);
	values[i++] = Float8GetDatum(histogram_percentile(&c->latency, 0.50, c->min_exec_time, c->max_exec_time));
	values[i++] = Float8GetDatum(histogram_percentile(&c->latency, 0.95, c->min_exec_time, c->max_exec_time));
	values[i++] = Float8GetDatum(histogram_percentile(&c->latency, 0.99, c->min_exec_time, c->max_exec_time));
	values[i++] = Int64GetDatum(c->plans);
	values[i++] = Float8GetDatum(c->total_plan_time);
	values[i++] = Int64GetDatum(c->shared_blks_hit);
	values[i++] = Int64GetDatum(c->shared_blks_read);
	values[i++] = Int64GetDatum(c->temp_blks_written);
	values[i++] = Int64GetDatum(c->cache_hits);
	values[i++] = Int64GetDatum(c->cache_misses);
	values[i++] = TimestampTzGetDatum(c->first_seen);
	values[i++] = TimestampTzGetDatum(c->last_seen);
	Assert(i == QUERY_STATS_COLS);
}

Datum
perfopt_query_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StatsSnapshot *rows;
	int			count;
	bool		see_all;
	Oid			me = GetUserId();

	perfopt_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	see_all = may_see_all();
	rows = stats_store_snapshot(&count);
	for (int i = 0; i < count; i++)
	{
		Datum		values[QUERY_STATS_COLS];
		bool		nulls[QUERY_STATS_COLS];

		/* rows created at parse analysis but never executed are not shown */
		if (rows[i].counters.calls == 0 && rows[i].counters.plans == 0)
			continue;
		query_stats_row(&rows[i], see_all || rows[i].key.userid == me, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
perfopt_stats_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int64		evictions;
	TimestampTz stats_reset;
	int64		skipped;

	perfopt_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	stats_store_info(&evictions, &stats_reset);
	skipped = stats_store_bookkeeping_skipped();
	values[0] = Int64GetDatum(evictions);
	values[1] = TimestampTzGetDatum(stats_reset);
	values[2] = Int64GetDatum(skipped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

Datum
perfopt_reset_stats(PG_FUNCTION_ARGS)
{
	perfopt_require_preload();
	stats_store_reset();
	PG_RETURN_VOID();
}

#define SLOW_QUERY_COLS 20

static void
slow_query_row(const SlowQuery *q, bool visible, Datum *values, bool *nulls)
{
	const SlowQueryHeader *h = &q->header;
	int			i = 0;

	memset(nulls, 0, sizeof(bool) * SLOW_QUERY_COLS);
	values[i++] = TimestampTzGetDatum(h->captured_at);
	values[i++] = Float8GetDatum(h->duration);
	values[i++] = ObjectIdGetDatum(h->userid);
	values[i++] = ObjectIdGetDatum(h->dbid);
	values[i++] = CStringGetTextDatum(NameStr(h->datname));
	values[i++] = CStringGetTextDatum(NameStr(h->username));
	values[i++] = CStringGetTextDatum(h->application_name);
	values[i] = CStringGetTextDatum(h->client_addr);
	nulls[i++] = h->client_addr[0] == '\0';
	values[i] = Int64GetDatum((int64) h->queryid);
	nulls[i++] = !visible;
	values[i++] = CStringGetTextDatum(visible ? q->text[SLOW_TEXT_QUERY] : HIDDEN_TEXT);
	if (q->text[SLOW_TEXT_PARAMS] == NULL)
		nulls[i++] = true;
	else
		values[i++] = CStringGetTextDatum(visible ? q->text[SLOW_TEXT_PARAMS] : HIDDEN_TEXT);
	values[i++] = Int64GetDatum(h->rows);
	values[i++] = CStringGetTextDatum(visible ? q->text[SLOW_TEXT_PLAN] : HIDDEN_TEXT);
	values[i] = CStringGetTextDatum(q->text[SLOW_TEXT_PLAN_JSON]);
	nulls[i++] = !visible;
	values[i++] = Int64GetDatum(h->buffers.shared_blks_hit);
	values[i++] = Int64GetDatum(h->buffers.shared_blks_read);
	values[i++] = Int64GetDatum(h->buffers.shared_blks_dirtied);
	values[i++] = Int64GetDatum(h->buffers.shared_blks_written);
	values[i++] = Int64GetDatum(h->buffers.temp_blks_read);
	values[i++] = Int64GetDatum(h->buffers.temp_blks_written);
	Assert(i == SLOW_QUERY_COLS);
}

Datum
perfopt_slow_queries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SlowQuery  *rows;
	int			count;
	bool		see_all;
	Oid			me = GetUserId();

	perfopt_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	see_all = may_see_all();
	rows = slowlog_snapshot(&count);
	for (int i = 0; i < count; i++)
	{
		Datum		values[SLOW_QUERY_COLS];
		bool		nulls[SLOW_QUERY_COLS];

		slow_query_row(&rows[i], see_all || rows[i].header.userid == me, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
perfopt_reset_slow_queries(PG_FUNCTION_ARGS)
{
	perfopt_require_preload();
	slowlog_reset();
	PG_RETURN_VOID();
}
