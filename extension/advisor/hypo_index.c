/*
 * hypo_index.c
 *		Owns hypothetical indexes (btree, GIN, BRIN): parsing a CREATE INDEX
 *		statement into a description (with the real parser, so what is
 *		evaluated is exactly what would be built) and showing it, sized from
 *		the table's statistics by hypo_index_am.c, to the planner through
 *		get_relation_info_hook while, and only while, the advisor re-plans a
 *		statement.  Plans made with hypothetical indexes are never executed:
 *		the indexes are active only inside advisor_plan.c's re-planning.
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/plancat.h"
#include "parser/parser.h"
#include "parser/parse_utilcmd.h"
#include "rewrite/rewriteManip.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "advisor/hypo_index.h"

/*
 * Fake OIDs are taken from the top of the OID space, which a cluster
 * reaches only after billions of objects; they are never stored anywhere.
 */
#define HYPO_OID_BASE	((Oid) 4000000000U)

static Oid	next_hypo_oid = HYPO_OID_BASE;
static List *active_indexes = NIL;
static get_relation_info_hook_type prev_get_relation_info_hook = NULL;
static explain_get_index_name_hook_type prev_explain_get_index_name_hook = NULL;

static IndexStmt *
parse_index_stmt(const char *definition)
{
	List	   *raw;
	Node	   *stmt;

	raw = raw_parser(definition, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a hypothetical index must be given as exactly one CREATE INDEX statement"),
				 errdetail("Found %d statements in \"%s\".", list_length(raw), definition)));
	stmt = linitial_node(RawStmt, raw)->stmt;
	if (!IsA(stmt, IndexStmt))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("a hypothetical index must be a CREATE INDEX statement: \"%s\"",
						definition)));
	return (IndexStmt *) stmt;
}

static Oid
index_table(IndexStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, AccessShareLock, false);
	char		relkind = get_rel_relkind(relid);

	if (relkind == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("hypothetical indexes on partitioned table \"%s\" are not supported",
						stmt->relation->relname),
				 errhint("Define the hypothetical index on each partition.")));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table or materialized view",
						stmt->relation->relname)));
	return relid;
}

/* The planner's form of an expression, as relcache gives it for real indexes. */
static Node *
planner_form(Node *expr)
{
	expr = eval_const_expressions(NULL, expr);
	fix_opfuncids(expr);
	return expr;
}

static int32
column_width(Oid relid, AttrNumber attno, Oid type, int32 typmod)
{
	int32		width = 0;

	if (attno > 0)
		width = get_attavgwidth(relid, attno);
	if (width <= 0)
		width = get_typavgwidth(type, typmod);
	return width;
}

/* The key's operator class for h's access method, as DefineIndex finds it. */
static void
set_opclass(HypoIndex *h, int i, IndexElem *elem, int32 width)
{
	Oid			opclass;

	if (elem->opclassopts != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("operator class options are not supported in hypothetical indexes")));
	opclass = ResolveOpClass(elem->opclass, h->types[i], get_am_name(h->relam), h->relam);
	h->opfamily[i] = get_opclass_family(opclass);
	h->opcintype[i] = get_opclass_input_type(opclass);
	if (h->relam == GIN_AM_OID)
		h->entries_per_row += hypo_am_gin_entries(h->relid, h->keys[i], h->types[i],
												  opclass, width);
	else
		h->entries_per_row = 1;
}

/* Fill column i of h from one IndexElem (a key when is_key). */
static void
set_column(HypoIndex *h, int i, Oid relid, IndexElem *elem, bool is_key)
{
	Oid			type;
	int32		typmod;
	Oid			collation;
	int32		width;
	Node	   *expr = elem->expr;

	/* "(col)" is a plain column, as DefineIndex treats it */
	if (expr && IsA(expr, Var) && ((Var *) expr)->varattno > 0)
	{
		h->keys[i] = ((Var *) expr)->varattno;
		expr = NULL;
	}
	else if (expr == NULL)
	{
		h->keys[i] = get_attnum(relid, elem->name);
		if (h->keys[i] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" does not exist", elem->name)));
		if (h->keys[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("index creation on system columns is not supported")));
	}
	else if (!is_key)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("expressions are not supported in included columns")));

	if (expr)
	{
		h->keys[i] = 0;
		expr = planner_form(expr);
		h->exprs = lappend(h->exprs, expr);
		type = exprType(expr);
		typmod = exprTypmod(expr);
		collation = exprCollation(expr);
	}
	else
		get_atttypetypmodcoll(relid, h->keys[i], &type, &typmod, &collation);
	h->types[i] = type;
	width = column_width(relid, h->keys[i], type, typmod);
	h->entry_width += width;
	if (!is_key)
		return;

	if (elem->collation)
		collation = get_collation_oid(elem->collation, false);
	h->collations[i] = collation;
	set_opclass(h, i, elem, width);
	if ((elem->ordering != SORTBY_DEFAULT || elem->nulls_ordering != SORTBY_NULLS_DEFAULT) &&
		!hypo_am_can_order(h->relam))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support ASC/DESC or NULLS FIRST/LAST options",
						get_am_name(h->relam))));
	h->reverse[i] = (elem->ordering == SORTBY_DESC);
	h->nulls_first[i] = (elem->nulls_ordering == SORTBY_NULLS_FIRST ||
						 (elem->nulls_ordering == SORTBY_NULLS_DEFAULT && h->reverse[i]));
}

/*
 * A deterministic name in CREATE INDEX's style (table_col_col_idx), so that
 * plans read the same in every session.
 */
static char *
default_name(HypoIndex *h)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "hypo_%s", get_rel_name(h->relid));
	for (i = 0; i < h->nkeycolumns; i++)
		appendStringInfo(&buf, "_%s", h->keys[i] != 0 ?
						 get_attname(h->relid, h->keys[i], false) : "expr");
	appendStringInfoString(&buf, h->pred ? "_part_idx" : "_idx");
	return buf.data;
}

/*
 * Parse one CREATE INDEX statement into a hypothetical index.  Errors are
 * those of CREATE INDEX itself (syntax, unknown table or column, missing
 * operator class), so bad input reads the same as it would when built.
 */
HypoIndex *
hypo_index_parse(const char *definition)
{
	IndexStmt  *stmt = parse_index_stmt(definition);
	Oid			relid = index_table(stmt);
	HypoIndex  *h = palloc0(sizeof(HypoIndex));
	ListCell   *lc;
	int			i = 0;

	h->relam = hypo_am_lookup(stmt->accessMethod);
	stmt = transformIndexStmt(relid, stmt, definition);
	h->relid = relid;
	h->definition = pstrdup(definition);
	h->unique = stmt->unique;
	h->nkeycolumns = list_length(stmt->indexParams);
	h->ncolumns = h->nkeycolumns + list_length(stmt->indexIncludingParams);
	if (h->ncolumns > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("cannot use more than %d columns in an index", INDEX_MAX_KEYS)));
	hypo_am_check(h->relam, h->unique, h->nkeycolumns, h->ncolumns);
	hypo_am_options(h, stmt->options);
	foreach(lc, stmt->indexParams)
		set_column(h, i++, relid, lfirst_node(IndexElem, lc), true);
	foreach(lc, stmt->indexIncludingParams)
		set_column(h, i++, relid, lfirst_node(IndexElem, lc), false);

	if (stmt->whereClause)
	{
		Expr	   *pred = (Expr *) eval_const_expressions(NULL, stmt->whereClause);

		pred = canonicalize_qual(pred, false);
		h->pred = make_ands_implicit(pred);
		fix_opfuncids((Node *) h->pred);
	}
	h->oid = next_hypo_oid++;
	if (next_hypo_oid < HYPO_OID_BASE)
		next_hypo_oid = HYPO_OID_BASE;
	h->name = stmt->idxname ? pstrdup(stmt->idxname) : default_name(h);
	return h;
}

static List *
for_rel(List *nodes, Index relid)
{
	nodes = copyObject(nodes);
	if (relid != 1)
		ChangeVarNodes((Node *) nodes, 1, relid, 0);
	return nodes;
}

static List *
index_tlist(HypoIndex *h, Index relid, List *exprs)
{
	List	   *tlist = NIL;
	ListCell   *next_expr = list_head(exprs);
	int			i;

	for (i = 0; i < h->ncolumns; i++)
	{
		Expr	   *expr;

		if (h->keys[i] != 0)
		{
			Oid			type;
			int32		typmod;
			Oid			coll;

			get_atttypetypmodcoll(h->relid, h->keys[i], &type, &typmod, &coll);
			expr = (Expr *) makeVar(relid, h->keys[i], type, typmod, coll, 0);
		}
		else
		{
			expr = (Expr *) lfirst(next_expr);
			next_expr = lnext(exprs, next_expr);
		}
		tlist = lappend(tlist, makeTargetEntry(expr, i + 1, NULL, false));
	}
	return tlist;
}

/*
 * Fraction of the table a partial index holds.  The planner registers the
 * relation only after get_relation_info returns, so it is registered here
 * for the time of the estimate.
 */
static Selectivity
predicate_selectivity(PlannerInfo *root, RelOptInfo *rel, List *pred)
{
	bool		registered = root->simple_rel_array[rel->relid] == NULL;
	Selectivity sel;

	if (registered)
		root->simple_rel_array[rel->relid] = rel;
	PG_TRY();
	{
		sel = clauselist_selectivity(root, pred, rel->relid, JOIN_INNER, NULL);
	}
	PG_FINALLY();
	{
		if (registered)
			root->simple_rel_array[rel->relid] = NULL;
	}
	PG_END_TRY();
	return sel;
}

static IndexOptInfo *
make_index_info(PlannerInfo *root, RelOptInfo *rel, HypoIndex *h)
{
	IndexOptInfo *info = makeNode(IndexOptInfo);
	int			nkey = h->nkeycolumns;
	double		tuples = rel->tuples;
	int			i;

	info->indexoid = h->oid;
	info->reltablespace = rel->reltablespace;
	info->rel = rel;
	info->ncolumns = h->ncolumns;
	info->nkeycolumns = nkey;
	info->indexkeys = palloc(sizeof(int) * h->ncolumns);
	info->canreturn = palloc(sizeof(bool) * h->ncolumns);
	info->indexcollations = palloc(sizeof(Oid) * nkey);
	info->opfamily = palloc(sizeof(Oid) * nkey);
	info->opcintype = palloc(sizeof(Oid) * nkey);
	info->sortopfamily = palloc(sizeof(Oid) * nkey);
	info->reverse_sort = palloc(sizeof(bool) * nkey);
	info->nulls_first = palloc(sizeof(bool) * nkey);
	info->opclassoptions = palloc0(sizeof(bytea *) * nkey);
	for (i = 0; i < h->ncolumns; i++)
	{
		info->indexkeys[i] = h->keys[i];
		if (i >= nkey)
			continue;
		info->indexcollations[i] = h->collations[i];
		info->opfamily[i] = h->opfamily[i];
		info->opcintype[i] = h->opcintype[i];
		info->sortopfamily[i] = h->opfamily[i];
		info->reverse_sort[i] = h->reverse[i];
		info->nulls_first[i] = h->nulls_first[i];
	}
	info->indexprs = for_rel(h->exprs, rel->relid);
	info->indpred = for_rel(h->pred, rel->relid);
	info->indextlist = index_tlist(h, rel->relid, info->indexprs);
	info->unique = h->unique;
	info->immediate = true;
	/*
	 * Keeps get_actual_variable_range, gincostestimate and brincostestimate
	 * from opening the index: they estimate from its size alone.
	 */
	info->hypothetical = true;
	hypo_am_fill(info, h, rel);

	if (info->indpred != NIL)
		tuples *= predicate_selectivity(root, rel, info->indpred);
	hypo_am_estimate(h, rel, Max(tuples, 1.0));
	info->pages = h->pages;
	info->tuples = h->tuples;
	info->tree_height = h->relam == BTREE_AM_OID ? h->height : -1;
	return info;
}

/*
 * Has a column of h been dropped or changed type since h was parsed?  The
 * advisor may parse a candidate before DDL and plan with it after.
 */
static bool
is_stale(HypoIndex *h)
{
	int			i;

	for (i = 0; i < h->ncolumns; i++)
		if (h->keys[i] != 0 && get_atttype(h->relid, h->keys[i]) != h->types[i])
			return true;
	return false;
}

static pg_noinline void
add_hypothetical_indexes(PlannerInfo *root, Oid relationObjectId, RelOptInfo *rel)
{
	ListCell   *lc;

	foreach(lc, active_indexes)
	{
		HypoIndex  *h = (HypoIndex *) lfirst(lc);

		if (h->relid == relationObjectId && !is_stale(h))
			rel->indexlist = lappend(rel->indexlist, make_index_info(root, rel, h));
	}
}

/* Every relation of every plan passes here; almost always there is none. */
static void
hypo_get_relation_info(PlannerInfo *root, Oid relationObjectId, bool inhparent,
					   RelOptInfo *rel)
{
	if (prev_get_relation_info_hook)
		prev_get_relation_info_hook(root, relationObjectId, inhparent, rel);

	/* an inheritance parent's own rows are planned as a separate child rel */
	if (!inhparent && active_indexes != NIL)
		add_hypothetical_indexes(root, relationObjectId, rel);
}

static const char *
hypo_explain_index_name(Oid indexId)
{
	ListCell   *lc;

	foreach(lc, active_indexes)
	{
		HypoIndex  *h = (HypoIndex *) lfirst(lc);

		if (h->oid == indexId)
			return h->name;
	}
	if (prev_explain_get_index_name_hook)
		return prev_explain_get_index_name_hook(indexId);
	return NULL;
}

void
hypo_index_activate(List *indexes)
{
	active_indexes = indexes;
}

void
hypo_index_deactivate(void)
{
	active_indexes = NIL;
}

List *
hypo_index_active(void)
{
	return active_indexes;
}

/* Do the first key columns of a real index match all of h's keys? */
static bool
keys_match(HypoIndex *h, Relation idx)
{
	Form_pg_index ix = idx->rd_index;
	List	   *exprs = RelationGetIndexExpressions(idx);
	ListCell   *hexpr = list_head(h->exprs);
	ListCell   *iexpr = list_head(exprs);
	bool		flip = false;
	int			i;

	if (ix->indnkeyatts < h->nkeycolumns)
		return false;
	for (i = 0; i < ix->indnkeyatts; i++)
	{
		bool		desc = (idx->rd_indoption[i] & INDOPTION_DESC) != 0;
		bool		is_expr = ix->indkey.values[i] == 0;

		if (i >= h->nkeycolumns)
			break;
		if (ix->indkey.values[i] != h->keys[i] ||
			idx->rd_opfamily[i] != h->opfamily[i])
			return false;
		if (is_expr)
		{
			if (!equal(lfirst(hexpr), lfirst(iexpr)))
				return false;
			hexpr = lnext(h->exprs, hexpr);
		}
		/* a btree scans both ways: all columns reversed is the same order */
		if (i == 0)
			flip = (desc != h->reverse[0]);
		else if ((desc != h->reverse[i]) != flip)
			return false;
		if (is_expr)
			iexpr = lnext(exprs, iexpr);
	}
	return true;
}

/*
 * Is h served by an index that exists: a valid one of h's access method
 * whose leading keys are h's keys (same operator families), with no
 * predicate or the same predicate?  *by gets its name.
 */
bool
hypo_index_covered(const HypoIndex *hypo, char **by)
{
	HypoIndex  *h = (HypoIndex *) hypo;
	Relation	rel = relation_open(h->relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		covered = false;

	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		List	   *pred = RelationGetIndexPredicate(idx);

		if (idx->rd_index->indisvalid && idx->rd_rel->relam == h->relam &&
			(pred == NIL || equal(pred, h->pred)) && keys_match(h, idx))
		{
			covered = true;
			if (by)
				*by = pstrdup(RelationGetRelationName(idx));
		}
		index_close(idx, AccessShareLock);
		if (covered)
			break;
	}
	relation_close(rel, AccessShareLock);
	return covered;
}

/*
 * Does b serve every search a serves: same table and predicate, and a's
 * keys leading b's, in the same (or the fully reversed) order?
 */
bool
hypo_index_is_prefix(const HypoIndex *a, const HypoIndex *b)
{
	ListCell   *ae = list_head(a->exprs);
	ListCell   *be = list_head(b->exprs);
	bool		flip = false;
	int			i;

	if (a->relid != b->relid || a->relam != b->relam || a->nkeycolumns > b->nkeycolumns ||
		!equal(a->pred, b->pred))
		return false;
	for (i = 0; i < a->nkeycolumns; i++)
	{
		if (a->keys[i] != b->keys[i] || a->opfamily[i] != b->opfamily[i])
			return false;
		if (a->keys[i] == 0)
		{
			if (!equal(lfirst(ae), lfirst(be)))
				return false;
			ae = lnext(a->exprs, ae);
			be = lnext(b->exprs, be);
		}
		if (i == 0)
			flip = (a->reverse[0] != b->reverse[0]);
		else if ((a->reverse[i] != b->reverse[i]) != flip)
			return false;
	}
	return true;
}

void
hypo_index_install_hooks(void)
{
	prev_get_relation_info_hook = get_relation_info_hook;
	get_relation_info_hook = hypo_get_relation_info;
	prev_explain_get_index_name_hook = explain_get_index_name_hook;
	explain_get_index_name_hook = hypo_explain_index_name;
}
