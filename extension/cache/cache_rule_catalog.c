/*
 * cache_rule_catalog.c
 *		Owns how perfopt's own SQL reads its rules table,
 *		perfopt.cache_rule_defs: perfopt._cache_rule_rows() returns the rule
 *		rows that name given tables, with each row's address, for the event
 *		trigger and the rule functions (cache.sql, cache_children.sql) to
 *		read and to change by address.
 *
 *		Those reads run inside the user's transaction (the event trigger
 *		during their CREATE or ALTER TABLE), but they are perfopt's
 *		bookkeeping, not the user's reads.  A plain SELECT of the table would
 *		take a predicate lock in a SERIALIZABLE transaction, and two such
 *		transactions doing DDL on different cached tables would then fail to
 *		serialize, which they do not without perfopt.  So the rows are read
 *		here as the backend's copy of the rules is (cache_rules.c), with
 *		SnapshotSelf: every committed row and this transaction's own, a
 *		snapshot that is not MVCC and so takes no predicate lock and records
 *		no conflict.  A row changed after a REPEATABLE READ or SERIALIZABLE
 *		transaction's snapshot is seen as it is now, and said not to be
 *		current: the transaction cannot change it, and even trying would
 *		read it with the snapshot (a predicate lock, a conflict with its
 *		writer).  Under READ COMMITTED every row is current: each statement
 *		of the callers takes a snapshot newer than this read.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(perfopt_cache_rule_rows);

/* the columns returned after the row's address, by name */
static const char *const rule_columns[] = {
	"kind", "queryid", "query", "relid", "tables", "columns", "keys"
};

#define RULE_NCOLS	lengthof(rule_columns)
#define RULE_TABLES 4			/* index of "tables" in rule_columns */

/* each returned column's number in the rules table, 0 when it has none */
static void
rule_attnums(TupleDesc desc, AttrNumber *attnums)
{
	int			i;
	int			att;

	for (i = 0; i < RULE_NCOLS; i++)
	{
		attnums[i] = 0;
		for (att = 0; att < desc->natts; att++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, att);

			if (!a->attisdropped && strcmp(NameStr(a->attname), rule_columns[i]) == 0)
				attnums[i] = a->attnum;
		}
	}
}

/* does the oid array hold one of wanted's nwanted oids? */
static bool
names_any(Datum tables, const Datum *wanted, int nwanted)
{
	ArrayType  *arr = DatumGetArrayTypeP(tables);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int			j;

	deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		for (j = 0; !nulls[i] && j < nwanted; j++)
			if (DatumGetObjectId(elems[i]) == DatumGetObjectId(wanted[j]))
				return true;
	return false;
}

/*
 * Is the row the scan stands on the version xact (the transaction's snapshot,
 * NULL under READ COMMITTED) sees?  A visibility test alone: no predicate
 * lock, no conflict recorded.
 */
static bool
row_current(TableScanDesc scan, HeapTuple tup, Snapshot xact)
{
	Buffer		buf = ((HeapScanDesc) scan)->rs_cbuf;
	bool		seen;

	if (xact == NULL)
		return true;
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	seen = HeapTupleSatisfiesVisibility(tup, xact, buf);
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
	return seen;
}

/*
 * perfopt._cache_rule_rows(tbls oid[]): (id tid, current, kind, queryid,
 * query, relid, tables, columns, keys) of each rule whose tables include one of tbls, or
 * of every rule when tbls is NULL.  Materialized before the caller sees a
 * row, so that its changes never meet the scan.
 */
Datum
perfopt_cache_rule_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *wanted = NULL;
	bool	   *wanted_nulls;
	int			nwanted = 0;
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	AttrNumber	attnums[RULE_NCOLS];
	Snapshot	xact = NULL;

	InitMaterializedSRF(fcinfo, 0);
	if (IsolationUsesXactSnapshot())
		xact = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	if (!PG_ARGISNULL(0))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), OIDOID, sizeof(Oid), true,
						  TYPALIGN_INT, &wanted, &wanted_nulls, &nwanted);
	nsp = get_namespace_oid("perfopt", false);
	relid = get_relname_relid("cache_rule_defs", nsp);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("perfopt's rules table perfopt.cache_rule_defs does not exist"),
				 errhint("Reinstall the extension: DROP EXTENSION perfopt; CREATE EXTENSION perfopt;")));

	rel = table_open(relid, AccessShareLock);
	rule_attnums(RelationGetDescr(rel), attnums);
	scan = table_beginscan(rel, SnapshotSelf, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Datum		values[RULE_NCOLS + 2];
		bool		nulls[RULE_NCOLS + 2];
		int			i;

		values[0] = PointerGetDatum(&tup->t_self);
		nulls[0] = false;
		for (i = 0; i < RULE_NCOLS; i++)
		{
			values[i + 2] = (Datum) 0;
			nulls[i + 2] = true;
			if (attnums[i] > 0)
				values[i + 2] = heap_getattr(tup, attnums[i], RelationGetDescr(rel),
											 &nulls[i + 2]);
		}
		if (wanted != NULL &&
			(nulls[RULE_TABLES + 2] || !names_any(values[RULE_TABLES + 2], wanted, nwanted)))
			continue;
		values[1] = BoolGetDatum(row_current(scan, tup, xact));
		nulls[1] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	table_endscan(scan);

	/*
	 * The lock is kept to the end of the transaction, as a SELECT's would
	 * be: the callers change rows by the addresses returned, which a
	 * rewrite of the table (VACUUM FULL, CLUSTER) must not move meanwhile.
	 */
	table_close(rel, NoLock);
	return (Datum) 0;
}
