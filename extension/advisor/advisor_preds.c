/*
 * advisor_preds.c
 *		Owns reading a plan tree for the advisor: which columns (or
 *		expressions) its table scans filter on and with which btree
 *		operator, or with which operator of a GIN operator class (jsonb
 *		containment and key existence, arrays, pg_trgm's trigrams), which
 *		columns its joins match, which its sorts order by,
 *		and which tables it reads in full.  Works on executed plans (the
 *		workload capture) and on re-planned example statements alike.
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/syscache.h"

#include "advisor/advisor_preds.h"

typedef struct ExtractContext
{
	PlannedStmt *pstmt;
	List	   *preds;
	List	   *scans;
	int			sort_groups;
} ExtractContext;

static Node *
strip(Node *node)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node;
}

static Oid
rel_of(ExtractContext *cx, Index rti)
{
	RangeTblEntry *rte;

	if (rti == 0 || rti > list_length(cx->pstmt->rtable))
		return InvalidOid;
	rte = rt_fetch(rti, cx->pstmt->rtable);
	return rte->rtekind == RTE_RELATION ? rte->relid : InvalidOid;
}

/*
 * True when some Var of node is not a column of range table entry rti at
 * this query level.  Executed plans refer to columns through special varnos
 * as well (INDEX_VAR in an index-only scan's filter, OUTER_VAR above a
 * join), which are negative: pull_varnos() cannot be used on them, it
 * raises an error, and the advisor's capture must never fail a statement.
 */
static bool
has_foreign_var(Node *node, Index *rti)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		return var->varno != *rti || var->varattno <= 0 || var->varlevelsup != 0;
	}
	return expression_tree_walker(node, has_foreign_var, (void *) rti);
}

/* Only Vars of this scan, nothing volatile: something an index can hold. */
static bool
is_key(Node *node, Index rti)
{
	node = strip(node);
	if (IsA(node, Var))
		return ((Var *) node)->varno == rti && ((Var *) node)->varattno > 0 &&
			((Var *) node)->varlevelsup == 0;
	return contain_var_clause(node) && !has_foreign_var(node, &rti) &&
		!contain_volatile_functions(node) && !contain_subplans(node);
}

static bool
is_pseudo_constant(Node *node)
{
	return !contain_var_clause(node) && !contain_volatile_functions(node) &&
		!contain_subplans(node);
}

/* The btree strategy of opno for the key's type, 0 if it has none. */
static int
btree_strategy(Oid opno, Node *key)
{
	Oid			opclass = GetDefaultOpClass(exprType(key), BTREE_AM_OID);

	if (!OidIsValid(opclass) || !OidIsValid(opno))
		return 0;
	return get_op_opfamily_strategy(opno, get_opclass_family(opclass));
}

/*
 * Does the pattern begin with at least one fixed character?  LIKE's
 * wildcards are % and _, with \ escaping the next character; ^@ (starts
 * with) takes its whole text as the prefix.
 */
static bool
has_fixed_prefix(Node *pattern, bool like)
{
	Const	   *c;
	char	   *prefix;

	pattern = strip(pattern);
	if (!IsA(pattern, Const) || ((Const *) pattern)->constisnull)
		return false;
	c = (Const *) pattern;
	if (c->consttype != TEXTOID && c->consttype != BPCHAROID && c->consttype != VARCHAROID)
		return false;
	prefix = TextDatumGetCString(c->constvalue);
	if (!like)
		return prefix[0] != '\0';
	return prefix[0] != '\0' && prefix[0] != '%' && prefix[0] != '_' &&
		!(prefix[0] == '\\' && prefix[1] == '\0');
}

/*
 * A prefix search the planner turns into a range on an index: LIKE with a
 * fixed prefix and ^@ on text.  Under a collation that does not sort
 * bytewise the range needs a pattern operator class; under "C" or "POSIX"
 * the default one serves.  (ILIKE's prefix depends on case, so it is
 * never one.)
 */
static bool
is_prefix_search(Oid opno, Node *key, Node *pattern, bool *pattern_ops)
{
	RegProcedure fn = get_opcode(opno);
	Oid			type = exprType(strip(key));
	Oid			collation = exprCollation(key);

	if (fn != F_TEXTLIKE && fn != F_BPCHARLIKE && fn != F_STARTS_WITH)
		return false;
	if (type != TEXTOID && type != VARCHAROID && type != BPCHAROID)
		return false;
	if (!has_fixed_prefix(pattern, fn != F_STARTS_WITH))
		return false;
	*pattern_ops = !lc_collate_is_c(OidIsValid(collation) ? collation : DEFAULT_COLLATION_OID);
	return true;
}

/* A GIN operator class by name, in any schema; InvalidOid if none. */
static Oid
gin_opclass_named(const char *name)
{
	CatCList   *list = SearchSysCacheList2(CLAAMNAMENSP, ObjectIdGetDatum(GIN_AM_OID),
										   CStringGetDatum(name));
	Oid			opclass = InvalidOid;

	if (list->n_members > 0)
		opclass = ((Form_pg_opclass) GETSTRUCT(&list->members[0]->tuple))->oid;
	ReleaseSysCacheList(list);
	return opclass;
}

static bool
serves(Oid opclass, Oid opno)
{
	return OidIsValid(opclass) && op_in_opfamily(opno, get_opclass_family(opclass));
}

/*
 * The GIN operator class that serves "key opno constant", or InvalidOid:
 * for jsonb, jsonb_path_ops (smaller, containment only) or else jsonb_ops;
 * for an array, array_ops; for text, pg_trgm's gin_trgm_ops when the
 * extension is installed (infix LIKE, ILIKE, similarity, regular
 * expressions).
 */
static Oid
gin_opclass_for(Oid opno, Node *key)
{
	Oid			type = exprType(strip(key));
	Oid			opclass;

	if (type == JSONBOID)
	{
		opclass = gin_opclass_named("jsonb_path_ops");
		if (serves(opclass, opno))
			return opclass;
	}
	opclass = GetDefaultOpClass(type, GIN_AM_OID);
	if (serves(opclass, opno))
		return opclass;
	if (type == TEXTOID || type == VARCHAROID || type == BPCHAROID)
	{
		opclass = gin_opclass_named("gin_trgm_ops");
		if (serves(opclass, opno))
			return opclass;
	}
	return InvalidOid;
}

static AdvisorPred *
new_pred(AdvisorPredKind kind, Oid relid, Node *key, Index rti)
{
	AdvisorPred *p = palloc0(sizeof(AdvisorPred));

	key = strip(key);
	p->kind = kind;
	p->relid = relid;
	if (IsA(key, Var))
		p->attno = ((Var *) key)->varattno;
	else
	{
		p->expr = copyObject(key);
		if (rti != 1)
			ChangeVarNodes(p->expr, rti, 1, 0);
	}
	return p;
}

static void
add_comparison(ExtractContext *cx, Oid opno, Node *left, Node *right,
			   Index rti, Oid relid)
{
	Node	   *key = NULL;
	Node	   *other = NULL;
	int			strategy;
	AdvisorPred *p;

	if (is_key(left, rti) && is_pseudo_constant(right))
		key = left, other = right;
	else if (is_key(right, rti) && is_pseudo_constant(left))
		key = right, other = left, opno = get_commutator(opno);
	if (key == NULL)
		return;
	strategy = btree_strategy(opno, strip(key));
	if (strategy == 0)
	{
		bool		pattern_ops;

		Oid			gin;

		if (key == left && is_prefix_search(opno, key, other, &pattern_ops))
		{
			p = new_pred(PRED_RANGE, relid, key, rti);
			p->op = ADVISOR_OP_PREFIX;
			p->pattern_ops = pattern_ops;
			cx->preds = lappend(cx->preds, p);
		}
		else if (OidIsValid(gin = gin_opclass_for(opno, key)))
		{
			p = new_pred(PRED_GIN, relid, key, rti);
			p->op = ADVISOR_OP_GIN;
			p->am = GIN_AM_OID;
			p->opclass = gin;
			cx->preds = lappend(cx->preds, p);
		}
		return;
	}
	p = new_pred(strategy == BTEqualStrategyNumber ? PRED_EQ : PRED_RANGE,
				 relid, key, rti);
	p->op = (uint8) strategy;
	/* a parameter set by a nested loop is a join key */
	if (p->kind == PRED_EQ && IsA(strip(other), Param) &&
		((Param *) strip(other))->paramkind == PARAM_EXEC)
		p->kind = PRED_JOIN;
	if (p->kind == PRED_EQ && IsA(strip(other), Const))
	{
		p->clause = (Expr *) make_opclause(opno, BOOLOID, false,
										   (Expr *) copyObject(strip(key)),
										   (Expr *) copyObject(strip(other)),
										   InvalidOid, exprCollation(key));
		if (rti != 1)
			ChangeVarNodes((Node *) p->clause, rti, 1, 0);
	}
	cx->preds = lappend(cx->preds, p);
}

static void
scan_quals(ExtractContext *cx, List *quals, Index rti, Oid relid)
{
	ListCell   *lc;

	foreach(lc, quals)
	{
		Node	   *q = (Node *) lfirst(lc);

		if (is_andclause(q))
			scan_quals(cx, ((BoolExpr *) q)->args, rti, relid);
		else if (IsA(q, OpExpr) && list_length(((OpExpr *) q)->args) == 2)
			add_comparison(cx, ((OpExpr *) q)->opno, linitial(((OpExpr *) q)->args),
						   lsecond(((OpExpr *) q)->args), rti, relid);
		else if (IsA(q, ScalarArrayOpExpr) && ((ScalarArrayOpExpr *) q)->useOr)
		{
			ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) q;
			Node	   *key = linitial(saop->args);

			if (is_key(key, rti) && is_pseudo_constant(lsecond(saop->args)) &&
				btree_strategy(saop->opno, strip(key)) == BTEqualStrategyNumber)
			{
				AdvisorPred *p = new_pred(PRED_EQ, relid, key, rti);

				p->op = ADVISOR_OP_IN;
				cx->preds = lappend(cx->preds, p);
			}
		}
	}
}

static void
visit_scan(ExtractContext *cx, Plan *plan)
{
	Scan	   *scan = (Scan *) plan;
	Oid			relid = rel_of(cx, scan->scanrelid);
	AdvisorScan *s;

	if (!OidIsValid(relid))
		return;
	s = palloc0(sizeof(AdvisorScan));
	s->relid = relid;
	s->full = IsA(plan, SeqScan);
	s->rows = plan->plan_rows;
	cx->scans = lappend(cx->scans, s);

	scan_quals(cx, plan->qual, scan->scanrelid, relid);
	if (IsA(plan, IndexScan))
		scan_quals(cx, ((IndexScan *) plan)->indexqualorig, scan->scanrelid, relid);
	else if (IsA(plan, BitmapHeapScan))
		scan_quals(cx, ((BitmapHeapScan *) plan)->bitmapqualorig, scan->scanrelid, relid);
}

/*
 * Follow a Var of an upper plan node down to the table column it comes
 * from; false when it comes from anything but a plain column.
 */
static bool
resolve_var(ExtractContext *cx, Plan *plan, Var *var, Index *rti, AttrNumber *attno)
{
	Plan	   *child;
	TargetEntry *tle;
	Node	   *expr;

	for (;;)
	{
		if (var->varno == OUTER_VAR)
			child = outerPlan(plan);
		else if (var->varno == INNER_VAR)
			child = innerPlan(plan);
		else if (!IS_SPECIAL_VARNO(var->varno) && var->varattno > 0)
		{
			*rti = var->varno;
			*attno = var->varattno;
			return OidIsValid(rel_of(cx, var->varno));
		}
		else
			return false;
		if (child == NULL)
			return false;
		tle = get_tle_by_resno(child->targetlist, var->varattno);
		expr = tle ? strip((Node *) tle->expr) : NULL;
		if (expr == NULL || !IsA(expr, Var))
			return false;
		plan = child;
		var = (Var *) expr;
	}
}

static void
add_join_side(ExtractContext *cx, Plan *plan, Node *side)
{
	Index		rti;
	AttrNumber	attno;
	AdvisorPred *p;

	side = strip(side);
	if (!IsA(side, Var) || !resolve_var(cx, plan, (Var *) side, &rti, &attno))
		return;
	p = palloc0(sizeof(AdvisorPred));
	p->kind = PRED_JOIN;
	p->relid = rel_of(cx, rti);
	p->attno = attno;
	cx->preds = lappend(cx->preds, p);
}

static void
visit_join_clauses(ExtractContext *cx, Plan *plan, List *clauses)
{
	ListCell   *lc;

	foreach(lc, clauses)
	{
		OpExpr	   *op = (OpExpr *) lfirst(lc);

		if (!IsA(op, OpExpr) || list_length(op->args) != 2)
			continue;
		add_join_side(cx, plan, linitial(op->args));
		add_join_side(cx, plan, lsecond(op->args));
	}
}

/* ORDER BY columns of one table, in order; nothing if they span tables. */
static void
visit_sort(ExtractContext *cx, Sort *sort)
{
	Plan	   *plan = (Plan *) sort;
	List	   *keys = NIL;
	Oid			relid = InvalidOid;
	int			group = ++cx->sort_groups;
	int			i;

	for (i = 0; i < sort->numCols; i++)
	{
		TargetEntry *tle = get_tle_by_resno(plan->lefttree->targetlist, sort->sortColIdx[i]);
		Var			outer;
		Index		rti;
		AttrNumber	attno;
		Oid			opfamily;
		Oid			opcintype;
		int16		strategy;
		AdvisorPred *p;

		if (tle == NULL || !IsA(strip((Node *) tle->expr), Var))
			return;
		/* the sort's input column, seen from the sort node */
		memset(&outer, 0, sizeof(outer));
		outer.xpr.type = T_Var;
		outer.varno = OUTER_VAR;
		outer.varattno = sort->sortColIdx[i];
		if (!resolve_var(cx, plan, &outer, &rti, &attno) ||
			(OidIsValid(relid) && relid != rel_of(cx, rti)) ||
			!get_ordering_op_properties(sort->sortOperators[i], &opfamily,
										&opcintype, &strategy))
			return;
		relid = rel_of(cx, rti);
		p = palloc0(sizeof(AdvisorPred));
		p->kind = PRED_SORT;
		p->relid = relid;
		p->attno = attno;
		p->sort_group = group;
		p->sort_pos = i;
		p->reverse = (strategy == BTGreaterStrategyNumber);
		p->nulls_first = sort->nullsFirst[i];
		keys = lappend(keys, p);
	}
	cx->preds = list_concat(cx->preds, keys);
}

static void visit_plan(ExtractContext *cx, Plan *plan);

static void
visit_list(ExtractContext *cx, List *plans)
{
	ListCell   *lc;

	foreach(lc, plans)
		visit_plan(cx, (Plan *) lfirst(lc));
}

static void
visit_plan(ExtractContext *cx, Plan *plan)
{
	if (plan == NULL)
		return;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
			visit_scan(cx, plan);
			break;
		case T_HashJoin:
			visit_join_clauses(cx, plan, ((HashJoin *) plan)->hashclauses);
			break;
		case T_MergeJoin:
			visit_join_clauses(cx, plan, ((MergeJoin *) plan)->mergeclauses);
			break;
		case T_NestLoop:
			visit_join_clauses(cx, plan, ((Join *) plan)->joinqual);
			break;
		case T_Sort:
			visit_sort(cx, (Sort *) plan);
			break;
		case T_IncrementalSort:
			visit_sort(cx, &((IncrementalSort *) plan)->sort);
			break;
		case T_Append:
			visit_list(cx, ((Append *) plan)->appendplans);
			break;
		case T_MergeAppend:
			visit_list(cx, ((MergeAppend *) plan)->mergeplans);
			break;
		case T_SubqueryScan:
			visit_plan(cx, ((SubqueryScan *) plan)->subplan);
			break;
		case T_BitmapAnd:
			visit_list(cx, ((BitmapAnd *) plan)->bitmapplans);
			break;
		case T_BitmapOr:
			visit_list(cx, ((BitmapOr *) plan)->bitmapplans);
			break;
		default:
			break;
	}
	visit_plan(cx, plan->lefttree);
	visit_plan(cx, plan->righttree);
}

/*
 * Collect the predicates (AdvisorPred) and table scans (AdvisorScan) of a
 * plan, including its subplans, in CurrentMemoryContext.
 */
void
advisor_extract(PlannedStmt *pstmt, List **preds, List **scans)
{
	ExtractContext cx = {0};

	cx.pstmt = pstmt;
	visit_plan(&cx, pstmt->planTree);
	visit_list(&cx, pstmt->subplans);
	if (preds)
		*preds = cx.preds;
	if (scans)
		*scans = cx.scans;
}
