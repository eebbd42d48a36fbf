/*
 * cache_rules.c
 *		Owns what the user asked to cache.  Rules live in the table
 *		perfopt.cache_rule_defs (so they survive restarts and pg_dump); the
 *		SQL functions perfopt.cache_query/cache_table/uncache_* (plpgsql in
 *		cache.sql) call the C helpers here to analyze a statement or
 *		table and find every table that needs the invalidation trigger.
 *		Each backend keeps a copy of the rules, reloaded when the rules
 *		table's own generation (it carries the invalidation trigger too) or
 *		the database's DDL epoch moves.
 *
 *		Rules only choose what is cached; correctness never depends on them:
 *		a result is stored only while every table it read carries the
 *		trigger (cache_trigger_coverage), checked against the catalog again
 *		after any DDL.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/sysattr.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "cache/cache_int.h"
#include "common/guc.h"

typedef struct RuleEntry
{
	Oid			key_relid;		/* table rules */
	uint64		key_queryid;	/* query rules */
	int64		ttl_us;			/* -1: none */
} RuleEntry;

static HTAB *query_rules = NULL;
static HTAB *table_rules = NULL;
static uint64 epoch_seen = 0;
static uint64 rules_seen = 0;
static Oid	rules_db = InvalidOid;
static Oid	rules_relid = InvalidOid;
static int	rules_slot = -1;

/*
 * The generations of the epoch slot and of the rules table's slot, read
 * where they live (set by refresh_rules_moved; NULL until known, rules_gen
 * also while the rules table does not exist).
 */
static pg_atomic_uint64 *epoch_gen = NULL;
static pg_atomic_uint64 *rules_gen = NULL;
static Oid	trigger_fn = InvalidOid;
static bool no_rules = true;	/* both hashes empty */

/*
 * The last answer of cache_rules_lookup, for the same statement asked about
 * again (at planning and at execution, and by every execution of a
 * statement run over and over): valid while the rules this backend holds
 * (rules_version) and cache_mode are the same.
 */
static uint64 rules_version = 1;
static struct
{
	uint64		version;
	uint64		queryid;
	int			mode;
	int			nrels;
	Oid			relids[CACHE_MAX_DEPS];
	int64		ttl_us;
	bool		selected;
}			last_lookup;

PG_FUNCTION_INFO_V1(perfopt_cache_analyze);
PG_FUNCTION_INFO_V1(perfopt_cache_table_check);
PG_FUNCTION_INFO_V1(perfopt_cache_queryid);

static int64
interval_us(Interval *span)
{
	return span->time + (int64) span->day * USECS_PER_DAY +
		(int64) span->month * DAYS_PER_MONTH * USECS_PER_DAY;
}

static HTAB *
make_rule_hash(const char *name, Size keysize)
{
	HASHCTL		info;

	info.keysize = keysize;
	info.entrysize = sizeof(RuleEntry);
	info.hcxt = TopMemoryContext;
	return hash_create(name, 64, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* a table rule covers its table and every partition or child */
static void
add_table_rule(Oid relid, int64 ttl)
{
	RuleEntry  *r;
	bool		found;

	r = hash_search(table_rules, &relid, HASH_ENTER, &found);
	if (!found || (ttl >= 0 && (r->ttl_us < 0 || ttl < r->ttl_us)))
		r->ttl_us = ttl;
}

static void
load_rules(void)
{
	Relation	rel;
	Snapshot	snap;
	TableScanDesc scan;
	HeapTuple	tup;

	if (query_rules)
		hash_destroy(query_rules);
	if (table_rules)
		hash_destroy(table_rules);
	query_rules = make_rule_hash("perfopt cache query rules", sizeof(uint64));
	table_rules = make_rule_hash("perfopt cache table rules", sizeof(Oid));
	no_rules = true;
	if (!OidIsValid(rules_relid))
		return;

	/*
	 * SnapshotSelf: every committed rule and this transaction's own.  Not an
	 * MVCC snapshot, so that in a SERIALIZABLE transaction this read of
	 * perfopt's own table takes no predicate lock: it is not the user's read
	 * and must not make their transaction fail to serialize.
	 */
	rel = table_open(rules_relid, AccessShareLock);
	snap = SnapshotSelf;
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		Datum		values[6];
		bool		nulls[6];
		int64		ttl;
		char	   *kind;
		int			att;

		if (desc->natts < 6)
			break;
		/* kind, queryid, query, relid, ttl, tables: the columns read here */
		for (att = 0; att < 6; att++)
			values[att] = heap_getattr(tup, att + 1, desc, &nulls[att]);
		ttl = nulls[4] ? -1 : interval_us(DatumGetIntervalP(values[4]));
		kind = TextDatumGetCString(values[0]);
		if (strcmp(kind, "query") == 0 && !nulls[1])
		{
			uint64		qid = (uint64) DatumGetInt64(values[1]);
			RuleEntry  *r;
			bool		found;

			r = hash_search(query_rules, &qid, HASH_ENTER, &found);
			r->ttl_us = ttl;
		}
		else if (strcmp(kind, "table") == 0 && !nulls[5])
		{
			ArrayType  *arr = DatumGetArrayTypeP(values[5]);
			Datum	   *elems;
			int			n;
			int			i;

			deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
							  &elems, NULL, &n);
			for (i = 0; i < n; i++)
				add_table_rule(DatumGetObjectId(elems[i]), ttl);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	no_rules = hash_get_num_entries(query_rules) == 0 &&
		hash_get_num_entries(table_rules) == 0;
}

/*
 * Bring this backend's copy of the rules up to date.  The generations are
 * read before the snapshot is taken: a rule change committing later bumps
 * them again (at COMMIT) and the next statement reloads.
 */
static pg_noinline void
refresh_rules_moved(void)
{
	static int	epoch_slot = -1;	/* this backend's database never changes */
	uint64		epoch;
	uint64		gen = 0;

	/*
	 * Reading the rules takes a fresh snapshot, which parallel mode forbids;
	 * nothing is cached there (parallel workers, or statements nested under
	 * a Gather), so the rules seen last are good enough to refuse with.
	 */
	if (IsInParallelMode())
		return;
	rules_version++;			/* whatever moved, forget the last lookup */
	if (epoch_slot < 0 && (epoch_slot = cache_epoch_slot()) < 0)
		return;
	epoch_gen = cache_slot_gen_ptr(epoch_slot);
	epoch = cache_slot_gen(epoch_slot);
	if (epoch != epoch_seen || rules_db != MyDatabaseId)
	{
		Oid			nsp = get_namespace_oid("perfopt", true);
		bool		first = rules_db != MyDatabaseId;
		Oid			old_relid = rules_relid;
		int			old_slot = rules_slot;

		rules_db = MyDatabaseId;
		rules_relid = OidIsValid(nsp) ? get_relname_relid("cache_rule_defs", nsp) : InvalidOid;
		rules_slot = OidIsValid(rules_relid) ? cache_slot_find(MyDatabaseId, rules_relid, true) : -1;
		rules_gen = rules_slot >= 0 ? cache_slot_gen_ptr(rules_slot) : NULL;
		trigger_fn = InvalidOid;
		if (OidIsValid(nsp))
			trigger_fn = LookupFuncName(list_make2(makeString("perfopt"),
												   makeString("_cache_invalidate")),
										0, NULL, true);
		if (rules_slot >= 0)
			gen = cache_slot_gen(rules_slot);

		/*
		 * DDL moves the epoch, but the rules are only what the rules table
		 * holds: read it again only if it is another table now or its
		 * generation moved, so that DDL in a database costs its backends no
		 * read (and no lock) of the rules table.
		 */
		if (first || rules_relid != old_relid || rules_slot != old_slot ||
			rules_slot < 0 || gen != rules_seen)
			load_rules();
		epoch_seen = epoch;
		rules_seen = gen;
		return;
	}
	if (rules_slot >= 0 && (gen = cache_slot_gen(rules_slot)) != rules_seen)
	{
		load_rules();
		rules_seen = gen;
	}
}

static inline void
refresh_rules(void)
{
	/* on a standby, a rule change or DDL may have become visible since */
	if (cache_wal_has_pending())
		cache_wal_settle(ActiveSnapshotSet() ? GetActiveSnapshot() : NULL);
	/* the common case, at every statement: nothing moved */
	if (epoch_gen != NULL && rules_db == MyDatabaseId &&
		pg_atomic_read_u64(epoch_gen) == epoch_seen &&
		(rules_gen == NULL || pg_atomic_read_u64(rules_gen) == rules_seen))
		return;
	refresh_rules_moved();
}

/*
 * Cheap early answer for the common case of a database without rules:
 * then, unless cache_mode = all, nothing is a candidate.
 */
bool
cache_rules_none(void)
{
	refresh_rules();
	return !OidIsValid(trigger_fn) ||
		(perfopt_cache_mode != CACHE_MODE_ALL && no_rules);
}

/*
 * May this database have rules?  False only when it certainly has none (the
 * rules this backend holds are current), so that perfopt's event trigger can
 * skip reading the rules table on the DDL of a database that has none.
 */
bool
cache_rules_may_exist(void)
{
	refresh_rules();
	return epoch_gen == NULL || !OidIsValid(rules_relid) || !no_rules;
}

/*
 * Does a rule (or cache_mode = all) select this statement?  relids are the
 * tables it reads.  *ttl_us is the rule's TTL, -1 for none.
 */
static bool
rules_lookup(uint64 queryid, const Oid *relids, int nrels, int64 *ttl_us)
{
	RuleEntry  *r;
	int			i;
	int64		ttl = -1;

	*ttl_us = -1;
	if (!OidIsValid(trigger_fn))
		return false;			/* extension not installed here */
	r = hash_search(query_rules, &queryid, HASH_FIND, NULL);
	if (r)
	{
		*ttl_us = r->ttl_us;
		return true;
	}
	for (i = 0; i < nrels; i++)
	{
		r = hash_search(table_rules, &relids[i], HASH_FIND, NULL);
		if (!r)
			return perfopt_cache_mode == CACHE_MODE_ALL;
		if (r->ttl_us >= 0 && (ttl < 0 || r->ttl_us < ttl))
			ttl = r->ttl_us;
	}
	*ttl_us = ttl;
	return nrels > 0 || perfopt_cache_mode == CACHE_MODE_ALL;
}

bool
cache_rules_lookup(uint64 queryid, const Oid *relids, int nrels, int64 *ttl_us)
{
	refresh_rules();
	if (last_lookup.version == rules_version && last_lookup.queryid == queryid &&
		last_lookup.mode == perfopt_cache_mode && last_lookup.nrels == nrels &&
		memcmp(last_lookup.relids, relids, sizeof(Oid) * nrels) == 0)
	{
		*ttl_us = last_lookup.ttl_us;
		return last_lookup.selected;
	}
	last_lookup.selected = rules_lookup(queryid, relids, nrels, ttl_us);
	if (nrels <= CACHE_MAX_DEPS)
	{
		last_lookup.version = rules_version;
		last_lookup.queryid = queryid;
		last_lookup.mode = perfopt_cache_mode;
		last_lookup.nrels = nrels;
		memcpy(last_lookup.relids, relids, sizeof(Oid) * nrels);
		last_lookup.ttl_us = *ttl_us;
	}
	return last_lookup.selected;
}

Oid
cache_trigger_function(void)
{
	return trigger_fn;
}

/*
 * May the key trigger's bands stand for this column's writes?  Only an
 * integer column the row holds as written (a generated column is computed
 * after BEFORE triggers run).
 */
static bool
key_column_ok(Oid relid, AttrNumber attno)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attno));
	Form_pg_attribute att;
	bool		ok;

	if (!HeapTupleIsValid(tup))
		return false;
	att = (Form_pg_attribute) GETSTRUCT(tup);
	ok = !att->attisdropped && att->attgenerated == '\0' &&
		(att->atttypid == INT2OID || att->atttypid == INT4OID || att->atttypid == INT8OID);
	ReleaseSysCache(tup);
	return ok;
}

/*
 * What perfopt's triggers on the table watch: 0 when there is no
 * invalidation trigger enabled ALWAYS for every kind of write, else the
 * columns whose UPDATEs fire it (CACHE_ALL_COLUMNS when it has no column
 * list; 0 too for a column list that is no longer exact).  *keyed: the key
 * columns whose bands the key trigger notes for every row written, or 0.
 * Read with a fresh snapshot, not the relcache, which may not have seen a
 * concurrent DISABLE TRIGGER yet.
 */
uint64
cache_trigger_coverage(Oid relid, uint64 *keyed)
{
	Relation	tgrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	uint64		covered = 0;
	bool		rewrites_rows = false;
	bool		other_before_rows = false;
	Oid			keys_fn = cache_keys_trigger_function();
	int16		want = TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE |
		TRIGGER_TYPE_DELETE | TRIGGER_TYPE_TRUNCATE;
	int16		want_keys = TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE;
	bool		plain;

	*keyed = 0;
	if (!OidIsValid(trigger_fn))
		return 0;
	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, snap, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger t = (Form_pg_trigger) GETSTRUCT(tup);
		bool		isnull;
		int			i;

		if (OidIsValid(keys_fn) && t->tgfoid == keys_fn)
		{
			bytea	   *args;
			char	   *arg;
			char	   *end;

			if (t->tgenabled != TRIGGER_FIRES_ALWAYS || !TRIGGER_FOR_ROW(t->tgtype) ||
				!TRIGGER_FOR_BEFORE(t->tgtype) || (t->tgtype & want_keys) != want_keys)
				continue;
			(void) heap_getattr(tup, Anum_pg_trigger_tgqual, RelationGetDescr(tgrel), &isnull);
			if (!isnull)
				continue;
			args = DatumGetByteaPP(heap_getattr(tup, Anum_pg_trigger_tgargs,
												RelationGetDescr(tgrel), &isnull));
			if (isnull)
				continue;
			arg = VARDATA_ANY(args);
			end = arg + VARSIZE_ANY_EXHDR(args);
			for (i = 0; i < t->tgnargs && arg < end; i++, arg += strlen(arg) + 1)
			{
				int			attno = atoi(arg);

				if (attno > 0 && attno < 64 && key_column_ok(relid, attno))
					*keyed |= UINT64CONST(1) << attno;
			}
			continue;
		}
		if (TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_BEFORE(t->tgtype) &&
			(TRIGGER_FOR_INSERT(t->tgtype) || TRIGGER_FOR_UPDATE(t->tgtype)))
		{
			other_before_rows = true;
			if (TRIGGER_FOR_UPDATE(t->tgtype))
				rewrites_rows = true;
		}
		/*
		 * Trusted only when it is exactly the trigger perfopt makes: a WHEN
		 * condition or arguments added by the table's owner could keep it
		 * from firing, or change what it does.
		 */
		if (t->tgfoid != trigger_fn || t->tgenabled != TRIGGER_FIRES_ALWAYS ||
			TRIGGER_FOR_ROW(t->tgtype) || !TRIGGER_FOR_AFTER(t->tgtype) ||
			(t->tgtype & want) != want || t->tgnargs != 0 ||
			strcmp(NameStr(t->tgname), "perfopt_cache_invalidate") != 0)
			continue;
		(void) heap_getattr(tup, Anum_pg_trigger_tgqual, RelationGetDescr(tgrel), &isnull);
		if (!isnull)
			continue;
		if (t->tgattr.dim1 == 0)
			covered |= CACHE_ALL_COLUMNS;
		for (i = 0; i < t->tgattr.dim1; i++)
			if (t->tgattr.values[i] > 0 && t->tgattr.values[i] < 64)
				covered |= UINT64CONST(1) << t->tgattr.values[i];
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(tgrel, AccessShareLock);

	/*
	 * Column lists and key bands are exact only where
	 * perfopt._cache_sync_triggers would have made them: a plain table
	 * without a parent or children, where no other BEFORE row trigger may
	 * change a row after perfopt's saw it.  If the table changed since (the
	 * event trigger fixes that, but may be disabled), trust them with
	 * nothing.
	 */
	plain = get_rel_relkind(relid) == RELKIND_RELATION &&
		!get_rel_relispartition(relid) && !has_subclass(relid) && !has_superclass(relid);
	if (covered != 0 && !(covered & CACHE_ALL_COLUMNS) && (rewrites_rows || !plain))
		covered = 0;
	if (covered == 0 || other_before_rows || !plain)
		*keyed = 0;
	return covered;
}

/*
 * The columns of relid a statement reads, from its range table: every
 * column it names anywhere (select list, quals, joins, sorts, and the
 * definitions of the views it reads through).  CACHE_ALL_COLUMNS when it
 * reads the whole row, a system column (ctid and xmin change with every
 * UPDATE) or a column past the mask.
 */
uint64
cache_read_columns(List *rtable, Oid relid)
{
	uint64		mask = 0;
	ListCell   *lc;

	foreach(lc, rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		int			x = -1;

		if (rte->rtekind != RTE_RELATION || rte->relid != relid)
			continue;
		while ((x = bms_next_member(rte->selectedCols, x)) >= 0)
		{
			AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;

			if (attno <= 0 || attno >= 64)
				return CACHE_ALL_COLUMNS;
			mask |= UINT64CONST(1) << attno;
		}
	}
	return mask;
}

static void
append_attnums(StringInfo buf, uint64 mask)
{
	int			attno;
	bool		first = true;

	appendStringInfoChar(buf, '[');
	for (attno = 1; attno < 64; attno++)
		if (mask & (UINT64CONST(1) << attno))
		{
			appendStringInfo(buf, "%s%d", first ? "" : ", ", attno);
			first = false;
		}
	appendStringInfoChar(buf, ']');
}

/*
 * {"relid": [attnums], ...}: for each table, the columns the statement
 * reads (null for a table read whole), or with keys, the integer columns it
 * restricts the table to one value of.
 */
static Datum
columns_json(List *tables, PlannedStmt *plan, bool keys)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	foreach(lc, tables)
	{
		Oid			relid = lfirst_oid(lc);
		uint64		mask = keys ? cache_plan_key_columns(plan, relid) :
			cache_read_columns(plan->rtable, relid);

		appendStringInfo(&buf, "%s\"%u\": ", lc == list_head(tables) ? "" : ", ", relid);
		if (mask & CACHE_ALL_COLUMNS)
			appendStringInfoString(&buf, "null");
		else
			append_attnums(&buf, mask);
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Why a table cannot be cached, or NULL. */
/*
 * Why a table's results cannot be cached, remembered per backend: every
 * statement the cache examines asks this for each table it reads, at
 * planning and again at execution.  What it depends on (kind, persistence,
 * row-level security) changes only with an invalidation of the table's
 * relcache entry, which forgets the answer.
 */
#define REFUSAL_MEMO_SIZE 64

typedef struct RefusalMemo
{
	Oid			relid;			/* InvalidOid: empty */
	const char *why;			/* NULL: may be cached */
} RefusalMemo;

static RefusalMemo refusal_memo[REFUSAL_MEMO_SIZE];
static bool refusal_memo_registered = false;

static void
refusal_memo_forget(Datum arg, Oid relid)
{
	if (!OidIsValid(relid))
		memset(refusal_memo, 0, sizeof(refusal_memo));
	else if (refusal_memo[relid % REFUSAL_MEMO_SIZE].relid == relid)
		refusal_memo[relid % REFUSAL_MEMO_SIZE].relid = InvalidOid;
}

static const char *
relation_refusal_lookup(Oid relid, bool *exists)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class c;
	const char *why = NULL;

	*exists = HeapTupleIsValid(tup);
	if (!*exists)
		return "it does not exist";
	c = (Form_pg_class) GETSTRUCT(tup);
	if (relid < FirstNormalObjectId)
		why = "it is a system catalog";
	else if (c->relpersistence == RELPERSISTENCE_TEMP)
		why = "it is a temporary table";
	else if (c->relkind == RELKIND_FOREIGN_TABLE)
		why = "it is a foreign table, whose writes perfopt cannot see";
	else if (c->relkind == RELKIND_MATVIEW)
		why = "it is a materialized view (REFRESH fires no triggers)";
	else if (c->relkind != RELKIND_RELATION && c->relkind != RELKIND_PARTITIONED_TABLE &&
			 c->relkind != RELKIND_VIEW)
		why = "it is not a table";
	else if (c->relrowsecurity)
		why = "it has row-level security";
	ReleaseSysCache(tup);
	return why;
}

const char *
cache_relation_refusal(Oid relid)
{
	RefusalMemo *m = &refusal_memo[relid % REFUSAL_MEMO_SIZE];
	const char *why;
	bool		exists;

	if (likely(m->relid == relid && OidIsValid(relid)))
		return m->why;
	if (unlikely(!refusal_memo_registered))
	{
		CacheRegisterRelcacheCallback(refusal_memo_forget, (Datum) 0);
		refusal_memo_registered = true;
	}
	why = relation_refusal_lookup(relid, &exists);
	/* one that does not exist has no relcache entry to invalidate */
	if (exists)
	{
		m->relid = relid;
		m->why = why;
	}
	return why;
}

/* relid and all its partitions or inheritance children, checked */
static List *
tables_under(Oid relid, List *tables)
{
	List	   *all = find_all_inheritors(relid, AccessShareLock, NULL);
	ListCell   *lc;

	foreach(lc, all)
	{
		Oid			child = lfirst_oid(lc);
		const char *why = cache_relation_refusal(child);

		if (why)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot cache results that read \"%s\": %s",
							get_rel_name(child), why)));
		tables = list_append_unique_oid(tables, child);
	}
	return tables;
}

static Datum
oid_array(List *oids)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, oids)
		d[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(d, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/* Parse and analyze one SELECT; $n parameters get their types inferred. */
static Query *
analyze_one(const char *sql)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Oid		   *ptypes = NULL;
	int			nparams = 0;
	Query	   *query;

	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("perfopt.cache_query() takes exactly one statement, got %d",
						list_length(raw)),
				 errhint("Pass a single SELECT, with its constants or $1, $2... parameters.")));
	query = parse_analyze_varparams(linitial_node(RawStmt, raw), sql, &ptypes, &nparams, NULL);
	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("only SELECT statements can be cached"),
				 errhint("Writes, utility statements and SELECT INTO are never cached.")));
	if (query->queryId == UINT64CONST(0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt cannot identify statements because compute_query_id is off"),
				 errhint("Set compute_query_id = auto or on.")));
	return query;
}

/*
 * perfopt._cache_analyze(query text, has_ttl bool, OUT queryid bigint,
 * OUT tables oid[], OUT columns jsonb, OUT keys jsonb): the statement's
 * identity, every table that needs the trigger, which of their columns it
 * reads and to one value of which it restricts them (cache_keys.c), or an
 * error saying why it can never be cached.
 */
Datum
perfopt_cache_analyze(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		has_ttl = PG_GETARG_BOOL(1);
	Query	   *query = analyze_one(sql);
	uint64		queryid = query->queryId;
	const char *why = cache_shape_reason(query, has_ttl);
	List	   *rewritten;
	PlannedStmt *plan;
	List	   *tables = NIL;
	ListCell   *lc;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("statement cannot be cached: %s", why),
				 has_ttl || strstr(why, "stable") == NULL ?
				 errhint("See \"What is never cached\" in the perfopt README.") :
				 errhint("Give the rule a ttl, e.g. perfopt.cache_query(query, interval '10 seconds'), to accept answers up to that old.")));

	rewritten = pg_rewrite_query(query);
	if (list_length(rewritten) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("statement cannot be cached: rules rewrite it into several statements")));
	plan = pg_plan_query(linitial_node(Query, rewritten), sql, 0, NULL);
	foreach(lc, plan->relationOids)
	{
		Oid			relid = lfirst_oid(lc);
		const char *refusal = cache_relation_refusal(relid);

		if (refusal)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("statement cannot be cached: it reads \"%s\" and %s",
							get_rel_name(relid) ? get_rel_name(relid) : "?", refusal)));
		if (get_rel_relkind(relid) != RELKIND_VIEW)
			tables = tables_under(relid, tables);
	}
	if (list_length(tables) > CACHE_MAX_DEPS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("statement cannot be cached: it reads %d tables, at most %d are tracked",
						list_length(tables), CACHE_MAX_DEPS)));
	foreach(lc, tables)
		(void) cache_slot_find(MyDatabaseId, lfirst_oid(lc), true);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = Int64GetDatum((int64) queryid);
	values[1] = oid_array(tables);
	values[2] = columns_json(tables, plan, false);
	values[3] = columns_json(tables, plan, true);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* perfopt._cache_table_check(tbl regclass) RETURNS oid[] */
Datum
perfopt_cache_table_check(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	const char *why = cache_relation_refusal(relid);
	List	   *tables;
	ListCell   *lc;

	if (why == NULL && get_rel_relkind(relid) == RELKIND_VIEW)
		why = "it is a view";
	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot cache table \"%s\": %s",
						get_rel_name(relid) ? get_rel_name(relid) : "?", why),
				 errhint("perfopt.cache_table() takes a table; for a view, cache the tables it reads or use perfopt.cache_query().")));
	tables = tables_under(relid, NIL);
	foreach(lc, tables)
		(void) cache_slot_find(MyDatabaseId, lfirst_oid(lc), true);
	PG_RETURN_DATUM(oid_array(tables));
}

/* perfopt._cache_queryid(query text) RETURNS bigint */
Datum
perfopt_cache_queryid(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_INT64((int64) analyze_one(sql)->queryId);
}
