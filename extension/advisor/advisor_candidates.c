/*
 * advisor_candidates.c
 *		Owns turning the predicates of the workload's plans into candidate
 *		indexes.  Per statement and table: every filtered, joined or ranged
 *		column alone; the equality columns together, then followed by the
 *		first range column, or by the ORDER BY columns (so a sort ... LIMIT
 *		can stop early); the ORDER BY columns alone; and, when an equality
 *		filter is on a column with few distinct values, the other keys as a
 *		partial index WHERE that filter holds.  Beyond btree: a GIN index
 *		on each key a GIN operator class serves (jsonb, arrays, trigrams),
 *		and BRIN rather than btree for a range-filtered column that
 *		follows the physical order of a table mostly appended to.  Identical
 *		candidates from
 *		several statements are merged; the ones suggested by the most
 *		statement time are kept, up to perfopt.advisor_max_candidates, and
 *		those an existing index covers are dropped.
 */
#include "postgres.h"

#include <math.h>

#include "access/brin.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "advisor/advisor.h"
#include "advisor/advisor_preds.h"
#include "advisor/advisor_subxact.h"
#include "advisor/advisor_writes.h"

/*
 * BRIN: the least correlation of a column with the physical order (from
 * ANALYZE), and the largest share of the table's writes since capture began
 * that may be updates, for a summary per range of pages to stay selective.
 */
#define BRIN_MIN_CORRELATION 0.9
#define BRIN_MAX_UPDATE_SHARE 0.1
/* a filter column with at most this many values may become a partial index */
#define PARTIAL_MAX_DISTINCT 20
#define MAX_CANDIDATE_KEYS 4

static bool
same_key(AdvisorPred *a, AdvisorPred *b)
{
	return a->attno == b->attno && (a->attno != 0 || equal(a->expr, b->expr));
}

static AdvisorPred *
copy_pred(AdvisorPred *p)
{
	AdvisorPred *c = palloc(sizeof(AdvisorPred));

	memcpy(c, p, sizeof(AdvisorPred));
	return c;
}

static bool
has_key(List *keys, AdvisorPred *p)
{
	ListCell   *lc;

	foreach(lc, keys)
		if (same_key((AdvisorPred *) lfirst(lc), p))
			return true;
	return false;
}

/* Estimated number of distinct values of a column, or -1 if unknown. */
static double
column_distinct(Oid relid, AttrNumber attno)
{
	HeapTuple	tup;
	double		n = -1;

	if (attno <= 0)
		return -1;
	tup = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
						  Int16GetDatum(attno), BoolGetDatum(false));
	if (HeapTupleIsValid(tup))
	{
		float4		d = ((Form_pg_statistic) GETSTRUCT(tup))->stadistinct;

		ReleaseSysCache(tup);
		if (d > 0)
			n = d;
		else if (d < 0)
		{
			HeapTuple	ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

			if (HeapTupleIsValid(ctup))
			{
				n = -d * Max(((Form_pg_class) GETSTRUCT(ctup))->reltuples, 0);
				ReleaseSysCache(ctup);
			}
		}
	}
	return n;
}

/* The pattern operator class of a character type, for prefix searches. */
static const char *
pattern_opclass(Oid type)
{
	if (type == BPCHAROID)
		return " bpchar_pattern_ops";
	if (type == VARCHAROID)
		return " varchar_pattern_ops";
	return " text_pattern_ops";
}

/* An operator class's name, qualified when its schema is not searched. */
static char *
opclass_text(Oid opclass)
{
	HeapTuple	tup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclass));
	Form_pg_opclass form;
	char	   *name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator class %u", opclass);
	form = (Form_pg_opclass) GETSTRUCT(tup);
	if (OpclassIsVisible(opclass))
		name = pstrdup(quote_identifier(NameStr(form->opcname)));
	else
		name = quote_qualified_identifier(get_namespace_name(form->opcnamespace),
										  NameStr(form->opcname));
	ReleaseSysCache(tup);
	return name;
}

static char *
key_text(Oid relid, AdvisorPred *p, List *dpcontext)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (p->attno > 0)
		appendStringInfoString(&buf, quote_identifier(get_attname(relid, p->attno, false)));
	else
		appendStringInfo(&buf, "(%s)", deparse_expression(p->expr, dpcontext, false, false));
	if (p->pattern_ops)
		appendStringInfoString(&buf, pattern_opclass(p->attno > 0 ?
													 get_atttype(relid, p->attno) :
													 exprType(p->expr)));
	if (OidIsValid(p->opclass))
		appendStringInfo(&buf, " %s", opclass_text(p->opclass));
	if (p->kind == PRED_SORT && p->reverse)
		appendStringInfoString(&buf, p->nulls_first ? " DESC" : " DESC NULLS LAST");
	else if (p->kind == PRED_SORT && p->nulls_first)
		appendStringInfoString(&buf, " NULLS FIRST");
	return buf.data;
}

static void
add_candidate_am(List **cands, Oid relid, const char *am, List *keys, Expr *where,
				 const char *with, double weight)
{
	List	   *dpcontext = deparse_context_for(get_rel_name(relid), relid);
	StringInfoData buf;
	List	   *columns = NIL;
	ListCell   *lc;
	AdvisorCand *c;
	char	   *table;

	if (keys == NIL)
		return;
	table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									   get_rel_name(relid));
	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE INDEX CONCURRENTLY ON %s USING %s (", table, am);
	foreach(lc, keys)
	{
		char	   *k = key_text(relid, (AdvisorPred *) lfirst(lc), dpcontext);

		if (foreach_current_index(lc) >= MAX_CANDIDATE_KEYS)
			break;
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "", k);
		columns = lappend(columns, k);
	}
	appendStringInfoChar(&buf, ')');
	if (with)
		appendStringInfo(&buf, " WITH (%s)", with);
	if (where)
		appendStringInfo(&buf, " WHERE %s",
						 deparse_expression((Node *) where, dpcontext, false, false));

	foreach(lc, *cands)
	{
		c = (AdvisorCand *) lfirst(lc);
		if (strcmp(c->definition, buf.data) == 0)
		{
			c->weight += weight;
			return;
		}
	}
	c = palloc0(sizeof(AdvisorCand));
	c->definition = buf.data;
	c->table_name = table;
	c->columns = columns;
	c->relid = relid;
	c->weight = weight;
	*cands = lappend(*cands, c);
}

static void
add_candidate(List **cands, Oid relid, List *keys, Expr *where, double weight)
{
	add_candidate_am(cands, relid, "btree", keys, where, NULL, weight);
}

/* The ORDER BY keys of the first sort on relid, in order. */
static List *
sort_keys(List *preds, Oid relid)
{
	List	   *keys = NIL;
	int			group = 0;
	ListCell   *lc;

	foreach(lc, preds)
	{
		AdvisorPred *p = (AdvisorPred *) lfirst(lc);

		if (p->kind != PRED_SORT || p->relid != relid)
			continue;
		if (group == 0)
			group = p->sort_group;
		if (p->sort_group == group)
			keys = lappend(keys, p);
	}
	return keys;
}

static List *
keys_of_kind(List *preds, Oid relid, AdvisorPredKind kind, List *except)
{
	List	   *keys = NIL;
	ListCell   *lc;

	foreach(lc, preds)
	{
		AdvisorPred *p = (AdvisorPred *) lfirst(lc);

		if (p->kind == kind && p->relid == relid && !has_key(keys, p) &&
			!has_key(except, p))
			keys = lappend(keys, p);
	}
	return keys;
}

/*
 * Is the filter's constant the same every time?  Known when a second text
 * of the statement, with other constants, has the same filter; a
 * statement only ever seen with one text is taken as it is.
 */
static bool
constant_is_fixed(AdvisorStmt *s, AdvisorPred *p)
{
	ListCell   *lc;

	if (s->example2 == NULL)
		return true;
	foreach(lc, s->preds2)
	{
		AdvisorPred *q = (AdvisorPred *) lfirst(lc);

		if (q->clause && q->relid == p->relid && equal(q->clause, p->clause))
			return true;
	}
	return false;
}

/* Partial candidates: the other keys, WHERE a filter on a rare-valued column. */
static void
add_partials(List **cands, AdvisorStmt *s, Oid relid, List *eq, List *range,
			 List *sort)
{
	ListCell   *lc;

	foreach(lc, s->preds)
	{
		AdvisorPred *p = (AdvisorPred *) lfirst(lc);
		double		nd;
		List	   *keys;

		if (p->relid != relid || p->kind != PRED_EQ || p->clause == NULL ||
			!constant_is_fixed(s, p))
			continue;
		nd = column_distinct(relid, p->attno);
		if (nd < 2 || nd > PARTIAL_MAX_DISTINCT)
			continue;
		keys = list_copy(eq);
		keys = list_delete_ptr(keys, p);
		{
			ListCell   *k;

			foreach(k, keys)
				if (same_key((AdvisorPred *) lfirst(k), p))
					keys = foreach_delete_current(keys, k);
		}
		if (range)
			keys = lappend(keys, linitial(range));
		else
			keys = list_concat(keys, sort);
		add_candidate(cands, relid, keys, p->clause, s->total_time);
	}
}

/*
 * One GIN candidate per key of the statement's GIN filters, with the
 * operator class every filter on the key can use: jsonb_path_ops only when
 * containment is all the statement does with the column, else the type's
 * default (jsonb_ops).
 */
static void
add_gin(List **cands, AdvisorStmt *s, Oid relid)
{
	List	   *keys = keys_of_kind(s->preds, relid, PRED_GIN, NIL);
	ListCell   *k;

	foreach(k, keys)
	{
		AdvisorPred *key = copy_pred((AdvisorPred *) lfirst(k));
		ListCell   *lc;

		foreach(lc, s->preds)
		{
			AdvisorPred *p = (AdvisorPred *) lfirst(lc);

			if (p->kind == PRED_GIN && p->relid == relid && same_key(p, key) &&
				p->opclass != key->opclass)
				key->opclass = GetDefaultOpClass(get_opclass_input_type(key->opclass),
												 GIN_AM_OID);
		}
		if (OidIsValid(key->opclass))
			add_candidate_am(cands, relid, "gin", list_make1(key), NULL, NULL, s->total_time);
	}
}

/* |correlation| of a column with the table's physical order, or 0. */
static double
column_correlation(Oid relid, AttrNumber attno)
{
	HeapTuple	tup;
	AttStatsSlot sslot;
	double		c = 0;

	tup = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
						  Int16GetDatum(attno), BoolGetDatum(false));
	if (!HeapTupleIsValid(tup))
		return 0;
	if (get_attstatsslot(&sslot, tup, STATISTIC_KIND_CORRELATION, InvalidOid,
						 ATTSTATSSLOT_NUMBERS))
	{
		if (sslot.nnumbers > 0)
			c = fabs(sslot.numbers[0]);
		free_attstatsslot(&sslot);
	}
	ReleaseSysCache(tup);
	return c;
}

/*
 * Is the table mostly appended to?  Updates move rows away from the pages
 * their neighbours in order are on.  With no writes counted since capture
 * began, the correlation alone decides.  (Deletes are not told apart from
 * inserts in the counts: space they free is reused out of order only once
 * vacuumed, and the correlation ANALYZE measures then shows it.)
 */
static bool
mostly_appended(Oid relid)
{
	AdvisorTableWrites w;
	double		window;

	advisor_writes_counted(relid, &w, &window);
	return w.writes <= 0 || w.updates <= w.writes * BRIN_MAX_UPDATE_SHARE;
}

/*
 * Does a BRIN index suit a range filter: a column that follows the
 * physical order of a table mostly appended to?
 */
static bool
brin_suits(Oid relid, AdvisorPred *p)
{
	return p->attno > 0 && p->op != ADVISOR_OP_PREFIX &&
		OidIsValid(GetDefaultOpClass(get_atttype(relid, p->attno), BRIN_AM_OID)) &&
		column_correlation(relid, p->attno) >= BRIN_MIN_CORRELATION &&
		mostly_appended(relid);
}

/*
 * The range size of a BRIN candidate on relid.  A scan reads the ranges
 * its filter overlaps: past the pages it needs, up to a range at each end;
 * and it reads the whole index, a summary per range.  With P table pages
 * and summaries of a few dozen bytes (about 256 to an index page), the
 * pages read, P / (256 r) + r, are fewest at r = sqrt(P / 256): the power of
 * two nearest it, between 8 and the default 128 (16 for a 50,000-page
 * table, 64 at a million pages).
 */
static char *
brin_with(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	double		pages = 0;
	int			r = 8;

	if (HeapTupleIsValid(tup))
	{
		pages = Max(((Form_pg_class) GETSTRUCT(tup))->relpages, 0);
		ReleaseSysCache(tup);
	}
	while (r < BRIN_DEFAULT_PAGES_PER_RANGE && (double) r * 2 <= sqrt(pages / 256.0) * M_SQRT2)
		r *= 2;
	return psprintf("pages_per_range = %d", r);
}

static void
candidates_for_rel(List **cands, AdvisorStmt *s, Oid relid)
{
	List	   *eq = keys_of_kind(s->preds, relid, PRED_EQ, NIL);
	List	   *join = keys_of_kind(s->preds, relid, PRED_JOIN, eq);
	List	   *range = keys_of_kind(s->preds, relid, PRED_RANGE, eq);
	List	   *sort = sort_keys(s->preds, relid);
	double		w = s->total_time;
	ListCell   *lc;

	foreach(lc, eq)
		add_candidate(cands, relid, list_make1(lfirst(lc)), NULL, w);
	foreach(lc, join)
		add_candidate(cands, relid, list_make1(lfirst(lc)), NULL, w);
	/*
	 * A range column that follows the physical order of an append-only
	 * table gets BRIN in place of a btree of its own: a thousandth of the
	 * size and almost free to maintain.  (The planner costs a bitmap scan
	 * as if the rows it reads were scattered, so next to a btree BRIN
	 * would never look worth it on a plan's cost alone.)
	 */
	foreach(lc, range)
	{
		if (brin_suits(relid, lfirst(lc)))
			add_candidate_am(cands, relid, "brin", list_make1(lfirst(lc)), NULL,
							 brin_with(relid), w);
		else
			add_candidate(cands, relid, list_make1(lfirst(lc)), NULL, w);
	}
	if (list_length(eq) > 1)
		add_candidate(cands, relid, eq, NULL, w);
	if (eq && range)
		add_candidate(cands, relid, lappend(list_copy(eq), linitial(range)), NULL, w);
	/*
	 * ORDER BY keys alone only when nothing is filtered by equality: with
	 * "WHERE a = $1 ORDER BY b LIMIT n" the index that serves it leads with
	 * a; one on b alone walks past the rows of every other a.
	 */
	if (sort && eq)
		add_candidate(cands, relid, list_concat(list_copy(eq), sort), NULL, w);
	else if (sort)
		add_candidate(cands, relid, sort, NULL, w);
	add_partials(cands, s, relid, eq, range, sort);
	add_gin(cands, s, relid);
}

static int
by_weight_desc(const ListCell *a, const ListCell *b)
{
	double		wa = ((AdvisorCand *) lfirst(a))->weight;
	double		wb = ((AdvisorCand *) lfirst(b))->weight;

	return (wa < wb) ? 1 : (wa > wb) ? -1 : 0;
}

/*
 * Parse a candidate's definition as a hypothetical index, in a
 * subtransaction: a table dropped meanwhile drops the candidate, not the
 * advice.  NULL when it fails or an existing index covers it.
 */
typedef struct CandidateParse
{
	AdvisorCand *cand;
	HypoIndex  *hypo;
} CandidateParse;

static void
parse_candidate(void *arg)
{
	CandidateParse *cp = (CandidateParse *) arg;

	cp->hypo = hypo_index_parse(cp->cand->definition);
	if (hypo_index_covered(cp->hypo, NULL))
		cp->hypo = NULL;
}

static HypoIndex *
candidate_index(AdvisorCand *c)
{
	CandidateParse cp = {c, NULL};

	if (!advisor_try_subxact(parse_candidate, &cp, true))
		return NULL;
	return cp.hypo;
}

/*
 * Candidates of one statement on one table, under a lock on the table in a
 * subtransaction: the table may have been dropped since the statement was
 * planned, and the lock is released as soon as the names are read.
 */
typedef struct RelCandidates
{
	List	  **cands;
	AdvisorStmt *stmt;
	Oid			relid;
} RelCandidates;

static void
candidates_of_locked_rel(void *arg)
{
	RelCandidates *rc = (RelCandidates *) arg;

	LockRelationOid(rc->relid, AccessShareLock);
	if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rc->relid)))
		candidates_for_rel(rc->cands, rc->stmt, rc->relid);
}

static void
candidates_locked(List **cands, AdvisorStmt *s, Oid relid)
{
	RelCandidates rc = {cands, s, relid};

	(void) advisor_try_subxact(candidates_of_locked_rel, &rc, false);
}

/*
 * Candidates for the statements (AdvisorStmt with preds), best supported
 * first, at most max_candidates, each with its hypothetical index.
 */
List *
advisor_candidates(List *stmts, int max_candidates)
{
	List	   *cands = NIL;
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, stmts)
	{
		AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);
		ListCell   *r;

		foreach(r, s->relids)
			candidates_locked(&cands, s, lfirst_oid(r));
	}
	list_sort(cands, by_weight_desc);
	foreach(lc, cands)
	{
		AdvisorCand *c = (AdvisorCand *) lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (list_length(result) >= max_candidates)
			break;
		c->hypo = candidate_index(c);
		if (c->hypo)
			result = lappend(result, c);
	}
	return result;
}
