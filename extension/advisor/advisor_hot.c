/*
 * advisor_hot.c
 *		Owns how many index entries a candidate index would cost its
 *		table's writes, heap-only (HOT) updates included.
 *
 * An update that changes no indexed column and finds room on its page is
 * heap-only: it adds no entry to any index.  An index on a column the
 * workload updates ends that for those updates, and each then inserts an
 * entry into every index of the table, not only the new one.  So a
 * candidate's entries are the table's inserts, deletes and non-HOT updates
 * (one entry each in the new index), plus, for the share of HOT updates
 * that set a column the candidate holds, one entry in each of the table's
 * indexes and the candidate.  That share comes from the captured UPDATE
 * statements: the calls of those that set one of the candidate's columns
 * (keys, expressions or predicate) over the calls of all UPDATEs of the
 * table; the HOT updates themselves, from the table's counters over the
 * advisor's window (advisor_writes.c).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "advisor/advisor_hot.h"
#include "advisor/advisor_writes.h"
#include "advisor/hypo_index.h"
#include "stats/stats_store.h"

/* The table and columns a plan's UPDATE sets; false for anything else. */
bool
advisor_updated_columns(PlannedStmt *pstmt, Oid *relid, Bitmapset **cols)
{
	ModifyTable *mt;
	RangeTblEntry *rte;
	ListCell   *lc;

	if (pstmt->commandType != CMD_UPDATE || !IsA(pstmt->planTree, ModifyTable))
		return false;
	mt = (ModifyTable *) pstmt->planTree;
	if (mt->resultRelations == NIL || mt->updateColnosLists == NIL)
		return false;
	rte = rt_fetch(linitial_int(mt->resultRelations), pstmt->rtable);
	*relid = rte->relid;
	*cols = NULL;
	foreach(lc, (List *) linitial(mt->updateColnosLists))
		*cols = bms_add_member(*cols, lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	return OidIsValid(*relid);
}

/* The columns a candidate's entries hold or its predicate reads. */
static Bitmapset *
candidate_columns(HypoIndex *h)
{
	Bitmapset  *cols = NULL;
	ListCell   *lc;
	int			i;

	for (i = 0; i < h->ncolumns; i++)
		if (h->keys[i] > 0)
			cols = bms_add_member(cols, h->keys[i] - FirstLowInvalidHeapAttributeNumber);
	foreach(lc, h->exprs)
		pull_varattnos((Node *) lfirst(lc), 1, &cols);
	foreach(lc, h->pred)
		pull_varattnos((Node *) lfirst(lc), 1, &cols);
	return cols;
}

/* Of the table's captured UPDATE calls, the share that sets c's columns. */
double
advisor_hot_share(List *updates, AdvisorCand *c)
{
	Bitmapset  *cols = candidate_columns(c->hypo);
	double		all = 0;
	double		touching = 0;
	ListCell   *lc;

	foreach(lc, updates)
	{
		AdvisorUpdate *u = (AdvisorUpdate *) lfirst(lc);

		if (u->relid != c->relid)
			continue;
		all += u->calls;
		if (bms_overlap(u->cols, cols))
			touching += u->calls;
	}
	return all > 0 ? touching / all : 0;
}

static int
index_count(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	int			n = list_length(RelationGetIndexList(rel));

	table_close(rel, AccessShareLock);
	return n;
}

/*
 * The entries c would add over the statements' window.  The writes are
 * counted since the advisor began to capture the table, the calls since
 * perfopt's statistics began (its start or perfopt.reset_stats()): when
 * the calls cover less time, the writes are scaled down to it, so both are
 * rates over the same time.  (Statements on a table are first captured
 * when they first run, so the calls seldom cover more.)
 */
double
advisor_write_entries(AdvisorCand *c, double hot_share)
{
	AdvisorTableWrites counted;
	double		writes_window;
	double		calls_window;
	double		entries;
	int64		evictions;
	TimestampTz calls_since;

	advisor_writes_counted(c->relid, &counted, &writes_window);
	if (counted.writes <= 0)
		return 0;
	entries = (double) (counted.writes - counted.hot_updates);
	if (counted.hot_updates > 0 && hot_share > 0)
		entries += counted.hot_updates * hot_share * (index_count(c->relid) + 1);
	stats_store_info(&evictions, &calls_since);
	calls_window = Max((double) (GetCurrentTimestamp() - calls_since), (double) USECS_PER_SEC);
	writes_window = Max(writes_window, (double) USECS_PER_SEC);
	return entries * Min(calls_window / writes_window, 1.0);
}
