/*
 * cache_views.c
 *		Owns the SQL-visible side of the result cache that is not rules:
 *		per-statement statistics (behind perfopt.cache_stats), the totals
 *		(perfopt.cache_totals), perfopt.cache_clear() and
 *		perfopt.cache_warm().
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "cache/cache_int.h"

PG_FUNCTION_INFO_V1(perfopt_cache_stats);
PG_FUNCTION_INFO_V1(perfopt_cache_totals);
PG_FUNCTION_INFO_V1(perfopt_cache_clear);
PG_FUNCTION_INFO_V1(perfopt_cache_clear_table);
PG_FUNCTION_INFO_V1(perfopt_cache_warm);
PG_FUNCTION_INFO_V1(perfopt_cache_last_outcome);
PG_FUNCTION_INFO_V1(perfopt_cache_rules_may_exist);

static void
require_cache(void)
{
	if (!cache_store_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt must be loaded via shared_preload_libraries"),
				 errhint("Add perfopt to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* perfopt._cache_stats(): one row per statement of this database */
Datum
perfopt_cache_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CacheStmtStats *stats;
	int			n;
	int			i;

	require_cache();
	InitMaterializedSRF(fcinfo, 0);
	stats = cache_store_stmt_stats(&n);
	for (i = 0; i < n; i++)
	{
		CacheStmtStats *s = &stats[i];
		Datum		values[9];
		bool		nulls[9] = {0};

		if (s->dbid != MyDatabaseId)
			continue;
		values[0] = Int64GetDatum((int64) s->queryid);
		values[1] = Int64GetDatum(s->hits);
		values[2] = Int64GetDatum(s->misses);
		values[3] = Int64GetDatum(s->entries);
		values[4] = Int64GetDatum(s->bytes);
		values[5] = Int64GetDatum(s->invalidations);
		values[6] = Int64GetDatum(s->evictions);
		values[7] = Float8GetDatum(s->hits > 0 ? s->hit_time / s->hits : 0.0);
		values[8] = Float8GetDatum(s->misses > 0 ? s->miss_time / s->misses : 0.0);
		nulls[7] = s->hits == 0;
		nulls[8] = s->misses == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* perfopt.cache_totals(): one row for the whole cache */
Datum
perfopt_cache_totals(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	CacheTotals t;
	int64		entries;
	int64		bytes;
	int64		capacity;
	Datum		values[13];
	bool		nulls[13] = {0};

	require_cache();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	t = cache_store_totals(&entries, &bytes, &capacity);
	values[0] = Int64GetDatum(entries);
	values[1] = Int64GetDatum(bytes);
	values[2] = Int64GetDatum(capacity);
	values[3] = Int64GetDatum(t.hits);
	values[4] = Int64GetDatum(t.misses);
	values[5] = Float8GetDatum(t.hits + t.misses > 0 ?
							   (double) t.hits / (t.hits + t.misses) : 0.0);
	nulls[5] = t.hits + t.misses == 0;
	values[6] = Int64GetDatum(t.stores);
	values[7] = Int64GetDatum(t.store_refused);
	values[8] = Int64GetDatum(t.invalidations);
	values[9] = Int64GetDatum(t.expirations);
	values[10] = Int64GetDatum(t.evictions);
	values[11] = Int64GetDatum(t.too_large);
	values[12] = Int64GetDatum((int64) perfopt_cache_max_entry_size * 1024);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* perfopt.cache_clear(): drop every entry of this database */
Datum
perfopt_cache_clear(PG_FUNCTION_ARGS)
{
	require_cache();
	PG_RETURN_INT32(cache_store_clear(MyDatabaseId, -1));
}

/* perfopt.cache_clear(tbl regclass): drop the entries that read tbl */
Datum
perfopt_cache_clear_table(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int			slot;
	int			removed = 0;

	require_cache();
	/* entries restricted to a key value all depend on the wide slot */
	slot = cache_slot_find(MyDatabaseId, relid, false);
	if (slot >= 0)
		removed += cache_store_clear(MyDatabaseId, slot);
	slot = cache_slot_find_sub(MyDatabaseId, relid, CACHE_SLOT_WIDE, false);
	if (slot >= 0)
		removed += cache_store_clear(MyDatabaseId, slot);
	PG_RETURN_INT32(removed);
}

/*
 * Run one SELECT as if it were top level, so that a miss is stored: the
 * body of perfopt.cache_warm().  Returns what happened to it.
 */
static const char *
warm_statement(const char *sql)
{
	int			saved = cache_warm_level;
	const char *outcome;

	cache_last_outcome = NULL;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cache_warm_level = cache_nesting;
	PG_TRY();
	{
		/* read-only: a data-modifying statement is refused, not run */
		if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("perfopt.cache_warm() only runs a SELECT")));
	}
	PG_FINALLY();
	{
		cache_warm_level = saved;
	}
	PG_END_TRY();
	outcome = cache_last_outcome ? cache_outcome_text(cache_last_outcome) : "not run";
	SPI_finish();
	return outcome;
}

/*
 * perfopt.cache_warm(query text) RETURNS boolean: run the statement so that
 * its result is in the cache; true when it is (stored now or already).
 */
Datum
perfopt_cache_warm(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *raw;
	const char *outcome;

	require_cache();
	raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1 ||
		!IsA(linitial_node(RawStmt, raw)->stmt, SelectStmt) ||
		((SelectStmt *) linitial_node(RawStmt, raw)->stmt)->intoClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("perfopt.cache_warm() takes exactly one SELECT statement"),
				 errhint("Pass the statement exactly as the application sends it, with its constants.")));
	if (perfopt_cache_mode == CACHE_MODE_OFF)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt.cache_mode is off"),
				 errhint("SET perfopt.cache_mode = rules (the default) to use the cache.")));
	outcome = warm_statement(sql);
	if (strcmp(outcome, "hit") == 0 || strcmp(outcome, "miss, stored") == 0)
		PG_RETURN_BOOL(true);
	ereport(NOTICE,
			(errmsg("statement not cached: %s", outcome)));
	PG_RETURN_BOOL(false);
}

/*
 * perfopt.cache_last_outcome(): what the cache did with this session's
 * previous top-level statement ("hit", "miss, stored" or why it was
 * bypassed or not stored); NULL before any.
 */
Datum
perfopt_cache_last_outcome(PG_FUNCTION_ARGS)
{
	if (cache_prev_outcome == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(cache_outcome_text(cache_prev_outcome)));
}

/* perfopt._cache_rules_may_exist(): false when this database has no rule */
Datum
perfopt_cache_rules_may_exist(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(cache_rules_may_exist());
}
