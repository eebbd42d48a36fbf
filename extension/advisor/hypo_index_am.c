/*
 * hypo_index_am.c
 *		Owns what differs between the access methods a hypothetical index
 *		may use (btree, GIN, BRIN): which are accepted, the planner's view of
 *		the method's abilities (taken from its IndexAmRoutine, as plancat.c
 *		takes them for a real index), and the index's estimated size, which
 *		is all the methods' cost estimators know of a hypothetical index
 *		(gincostestimate and brincostestimate check IndexOptInfo's
 *		hypothetical flag and then read no metapage).  BRIN's estimator
 *		takes the default range size for every hypothetical index, so one
 *		with its own pages_per_range is costed through a wrapper that shows
 *		it the table at the scale where the default gives as many ranges
 *		(see brin_costestimate_at_range).
 */
#include "postgres.h"

#include <math.h>

#include "access/amapi.h"
#include "access/brin.h"
#include "access/brin_page.h"
#include "access/brin_tuple.h"
#include "access/nbtree.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "storage/bufpage.h"
#include "utils/index_selfuncs.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "advisor/hypo_index.h"

/*
 * GIN: a posting list holds an item pointer in about 3 bytes once
 * compressed; a key's own tuple is shared by the rows holding it, counted
 * here as a few bytes per entry.
 */
#define GIN_BYTES_PER_ENTRY		7.0
/* the fanout taken for the height of a GIN entry tree */
#define GIN_FANOUT				200.0

/*
 * The access method of a CREATE INDEX: btree when none is named; GIN and
 * BRIN, whose cost estimators know hypothetical indexes; nothing else.
 */
Oid
hypo_am_lookup(const char *name)
{
	Oid			amoid;

	if (name == NULL)
		return BTREE_AM_OID;
	amoid = get_am_oid(name, true);
	if (amoid != BTREE_AM_OID && amoid != GIN_AM_OID && amoid != BRIN_AM_OID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("hypothetical indexes of type \"%s\" are not supported", name),
				 errhint("Hypothetical indexes can use btree, gin or brin.")));
	return amoid;
}

/* Refuse what CREATE INDEX would refuse for the method. */
void
hypo_am_check(Oid amoid, bool unique, int nkey, int ncolumns)
{
	IndexAmRoutine *am = GetIndexAmRoutineByAmId(amoid, false);
	const char *name = get_am_name(amoid);

	if (unique && !am->amcanunique)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support unique indexes", name)));
	if (ncolumns > nkey && !am->amcaninclude)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support included columns", name)));
	if (nkey > 1 && !am->amcanmulticol)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support multicolumn indexes", name)));
}

/* May the method's columns be ordered (ASC/DESC, NULLS FIRST/LAST)? */
bool
hypo_am_can_order(Oid amoid)
{
	return GetIndexAmRoutineByAmId(amoid, false)->amcanorder;
}

/*
 * The WITH options of the CREATE INDEX, checked by the method's own
 * option parser (the same errors as CREATE INDEX gives).  BRIN's range
 * size is kept: it decides the index's size and cost.
 */
void
hypo_am_options(HypoIndex *h, List *options)
{
	IndexAmRoutine *am = GetIndexAmRoutineByAmId(h->relam, false);
	bytea	   *parsed = NULL;

	if (options != NIL)
		parsed = index_reloptions(am->amoptions,
								  transformRelOptions((Datum) 0, options, NULL, NULL,
													  false, false),
								  true);
	h->pages_per_range = BRIN_DEFAULT_PAGES_PER_RANGE;
	if (h->relam == BRIN_AM_OID && parsed != NULL)
		h->pages_per_range = ((BrinOptions *) parsed)->pagesPerRange;
}

static HypoIndex *
active_hypo(Oid oid)
{
	ListCell   *lc;

	foreach(lc, hypo_index_active())
	{
		HypoIndex  *h = (HypoIndex *) lfirst(lc);

		if (h->oid == oid)
			return h;
	}
	return NULL;
}

/*
 * brincostestimate for a hypothetical BRIN index whose pages_per_range is
 * not the default.  The estimator counts the table's ranges as its pages
 * over the default range size; showing it the table's pages scaled by
 * default / pages_per_range gives it the ranges the index would have, and
 * with them the share of the table a scan reads, which is what the range
 * size changes.  (Its per-range CPU term still uses the default size, a
 * few hundredths of a cost unit per range.)  The table's pages are put
 * back however the estimator returns.
 */
static void
brin_costestimate_at_range(PlannerInfo *root, IndexPath *path, double loop_count,
						   Cost *startup, Cost *total, Selectivity *selectivity,
						   double *correlation, double *pages)
{
	HypoIndex  *h = active_hypo(path->indexinfo->indexoid);
	RelOptInfo *rel = path->indexinfo->rel;
	BlockNumber table_pages = rel->pages;
	double		scaled = (double) table_pages;

	if (h != NULL && h->pages_per_range > 0)
		scaled = ceil(scaled * BRIN_DEFAULT_PAGES_PER_RANGE / h->pages_per_range);
	rel->pages = (BlockNumber) Min(scaled, (double) MaxBlockNumber);
	PG_TRY();
	{
		brincostestimate(root, path, loop_count, startup, total, selectivity,
						 correlation, pages);
	}
	PG_FINALLY();
	{
		rel->pages = table_pages;
	}
	PG_END_TRY();
}

/* The method's abilities, as plancat.c reads them for a real index. */
void
hypo_am_fill(IndexOptInfo *info, HypoIndex *h, RelOptInfo *rel)
{
	IndexAmRoutine *am = GetIndexAmRoutineByAmId(h->relam, false);
	Relation	table = table_open(h->relid, NoLock);	/* the planner holds a lock */
	int			i;

	info->relam = h->relam;
	info->amcanorderbyop = am->amcanorderbyop;
	info->amoptionalkey = am->amoptionalkey;
	info->amsearcharray = am->amsearcharray;
	info->amsearchnulls = am->amsearchnulls;
	info->amcanparallel = am->amcanparallel;
	info->amhasgettuple = am->amgettuple != NULL;
	info->amhasgetbitmap = am->amgetbitmap != NULL &&
		table->rd_tableam->scan_bitmap_next_block != NULL;
	info->amcanmarkpos = am->ammarkpos != NULL && am->amrestrpos != NULL;
	info->amcostestimate = am->amcostestimate;
	if (h->relam == BRIN_AM_OID && h->pages_per_range != BRIN_DEFAULT_PAGES_PER_RANGE)
		info->amcostestimate = brin_costestimate_at_range;
	table_close(table, NoLock);

	/* btree returns every column; GIN and BRIN return none */
	for (i = 0; i < h->ncolumns; i++)
		info->canreturn[i] = am->amcanreturn != NULL;
	if (!am->amcanorder)
	{
		info->sortopfamily = NULL;
		info->reverse_sort = NULL;
		info->nulls_first = NULL;
	}
}

/*
 * Elements per row of an array column: the average count of distinct
 * elements ANALYZE recorded (the last number of its histogram of counts),
 * or -1.
 */
static double
array_elements(Oid relid, AttrNumber attno)
{
	HeapTuple	tup;
	AttStatsSlot sslot;
	double		n = -1;

	if (attno <= 0)
		return -1;
	tup = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
						  Int16GetDatum(attno), BoolGetDatum(false));
	if (!HeapTupleIsValid(tup))
		return -1;
	if (get_attstatsslot(&sslot, tup, STATISTIC_KIND_DECHIST, InvalidOid,
						 ATTSTATSSLOT_NUMBERS))
	{
		if (sslot.nnumbers > 0)
			n = sslot.numbers[sslot.nnumbers - 1];
		free_attstatsslot(&sslot);
	}
	ReleaseSysCache(tup);
	return n;
}

static bool
is_jsonb_path_ops(Oid opclass)
{
	HeapTuple	tup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclass));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = strcmp(NameStr(((Form_pg_opclass) GETSTRUCT(tup))->opcname),
						"jsonb_path_ops") == 0;
		ReleaseSysCache(tup);
	}
	return result;
}

/*
 * GIN keys one row adds for a column of the given average width: an
 * array's elements; a jsonb's keys and values (jsonb_ops) or its paths to
 * values (jsonb_path_ops, about half as many), taken from its width; a
 * text's trigrams, about one per character.
 */
double
hypo_am_gin_entries(Oid relid, AttrNumber attno, Oid type, Oid opclass, int32 width)
{
	double		n;

	if (type_is_array(type))
	{
		n = array_elements(relid, attno);
		if (n < 0)
			n = width / 8.0;
	}
	else if (type == JSONBOID)
		n = width / (is_jsonb_path_ops(opclass) ? 16.0 : 8.0);
	else
		n = width;
	return Max(n, 1.0);
}

static void
btree_size(HypoIndex *h, double tuples)
{
	double		usable = BLCKSZ - SizeOfPageHeaderData - MAXALIGN(sizeof(BTPageOpaqueData));
	double		entry = MAXALIGN(sizeof(IndexTupleData) + h->entry_width) + sizeof(ItemIdData);
	double		per_leaf = Max(1.0, floor(usable * BTREE_DEFAULT_FILLFACTOR / 100.0 / entry));
	double		fanout = Max(2.0, floor(usable * BTREE_NONLEAF_FILLFACTOR / 100.0 / entry));
	double		level = Max(1.0, ceil(tuples / per_leaf));
	double		pages = level;
	int			height = 0;

	/* filled as CREATE INDEX fills it: 90% leaves, 70% internal pages */
	while (level > 1.0)
	{
		level = ceil(level / fanout);
		pages += level;
		height++;
	}
	h->pages = (BlockNumber) Min(pages + 1.0, (double) MaxBlockNumber);	/* + metapage */
	h->height = height;
}

/* Entries of every row, a few bytes each, plus the metapage and the root. */
static void
gin_size(HypoIndex *h, double tuples)
{
	double		bytes = tuples * h->entries_per_row * GIN_BYTES_PER_ENTRY;
	double		pages = ceil(bytes / (BLCKSZ * 0.9)) + 2.0;

	h->pages = (BlockNumber) Min(pages, (double) MaxBlockNumber);
	h->height = (int) ceil(log(pages) / log(GIN_FANOUT));
}

/*
 * One summary tuple (a minimum and a maximum per column) per range of
 * pages_per_range table pages, the range map pointing at them, and the
 * metapage.
 */
static void
brin_size(HypoIndex *h, BlockNumber table_pages)
{
	double		ranges = Max(ceil((double) table_pages / h->pages_per_range), 1.0);
	double		revmap = floor(ranges / REVMAP_PAGE_MAXITEMS) + 1.0;
	double		tuple = MAXALIGN(SizeOfBrinTuple + 2.0 * h->entry_width) + sizeof(ItemIdData);
	double		usable = BLCKSZ - SizeOfPageHeaderData - MAXALIGN(sizeof(BrinSpecialSpace));

	h->pages = (BlockNumber) (1.0 + revmap + ceil(ranges * tuple / usable));
	h->height = 0;
}

/* Size (and height, for a tree) of h holding tuples rows of rel. */
void
hypo_am_estimate(HypoIndex *h, RelOptInfo *rel, double tuples)
{
	h->tuples = tuples;
	if (h->relam == GIN_AM_OID)
		gin_size(h, tuples);
	else if (h->relam == BRIN_AM_OID)
		brin_size(h, rel->pages);
	else
		btree_size(h, tuples);
}
