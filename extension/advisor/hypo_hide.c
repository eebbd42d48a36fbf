/*
 * hypo_hide.c
 *		Owns hiding existing indexes from the planner ("what if this index
 *		were dropped"): get_relation_info_hook removes them from the
 *		relation's index list while, and only while, hypo_hide_plan
 *		re-plans one statement through advisor_plan.c.  The list of hidden
 *		indexes is backend-local, set just before that planning and cleared
 *		just after it, on error too, so no other statement ever plans
 *		without them; the plans made are never executed.
 */
#include "postgres.h"

#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "optimizer/plancat.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "advisor/hypo_hide.h"

static List *hidden_indexes = NIL;	/* OIDs; NIL outside hypo_hide_plan */
static List *hidden_tables = NIL;	/* their tables, in the same order */
static List *tables_planned = NIL;	/* of those, the ones the planner met */
static MemoryContext hide_cxt = NULL;	/* where those lists live */
static get_relation_info_hook_type prev_get_relation_info_hook = NULL;

static pg_noinline void
hide_indexes(Oid relid, RelOptInfo *rel)
{
	MemoryContext old;
	ListCell   *lc;

	if (!list_member_oid(hidden_tables, relid))
		return;
	/* the planner's context is gone when the planning is checked */
	old = MemoryContextSwitchTo(hide_cxt);
	tables_planned = list_append_unique_oid(tables_planned, relid);
	MemoryContextSwitchTo(old);
	foreach(lc, rel->indexlist)
	{
		IndexOptInfo *info = (IndexOptInfo *) lfirst(lc);

		if (list_member_oid(hidden_indexes, info->indexoid))
			rel->indexlist = foreach_delete_current(rel->indexlist, lc);
	}
}

/*
 * Runs around hypo_index.c's hook: the hypothetical indexes are added
 * first, then the hidden real ones removed.  Almost always nothing is
 * hidden.
 */
static void
hide_get_relation_info(PlannerInfo *root, Oid relationObjectId, bool inhparent,
					   RelOptInfo *rel)
{
	if (prev_get_relation_info_hook)
		prev_get_relation_info_hook(root, relationObjectId, inhparent, rel);
	if (hidden_indexes != NIL)
		hide_indexes(relationObjectId, rel);
}

/*
 * Can indexid be hidden: an index (not a partitioned one, whose partitions'
 * indexes are what plans use) on a table the user may read?
 */
void
hypo_hide_check(Oid indexid)
{
	char		relkind = get_rel_relkind(indexid);
	Oid			table;

	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", indexid),
				 errhint("Give the indexes to hide by name.")));
	if (relkind == RELKIND_PARTITIONED_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot hide partitioned index \"%s\"", get_rel_name(indexid)),
				 errhint("Hide the index of each partition the statement reads.")));
	if (relkind != RELKIND_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an index", get_rel_name(indexid)),
				 errhint("Only existing indexes can be hidden; give hypothetical ones as CREATE INDEX statements.")));
	table = IndexGetRelation(indexid, false);
	if (pg_class_aclcheck(table, GetUserId(), ACL_SELECT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(table, GetUserId(), ACL_SELECT,
								  ACLMASK_ANY) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(table)),
				 errhint("Hiding index \"%s\" requires SELECT on its table.",
						 get_rel_name(indexid))));
}

static void
hide_begin(List *hidden)
{
	ListCell   *lc;

	hidden_indexes = hidden_tables = tables_planned = NIL;
	hide_cxt = CurrentMemoryContext;
	foreach(lc, hidden)
	{
		hidden_tables = lappend_oid(hidden_tables,
									IndexGetRelation(lfirst_oid(lc), false));
		hidden_indexes = lappend_oid(hidden_indexes, lfirst_oid(lc));
	}
}

/* A hidden index whose table the planning did not meet, or InvalidOid. */
static Oid
first_unplanned(void)
{
	ListCell   *li;
	ListCell   *lt;

	forboth(li, hidden_indexes, lt, hidden_tables)
		if (!list_member_oid(tables_planned, lfirst_oid(lt)))
			return lfirst_oid(li);
	return InvalidOid;
}

static void
hide_end(void)
{
	/* the lists live in the caller's context: only forget them */
	hidden_indexes = hidden_tables = tables_planned = NIL;
}

/*
 * advisor_plan_bound() with the indexes in hidden (OIDs checked by
 * hypo_hide_check) removed from the planner's view.  *unplanned gets a
 * hidden index whose table the statement does not plan, or InvalidOid.
 */
AdvisorPlanResult
hypo_hide_plan(const char *sql, const char *params, int params_len,
			   List *hypos, List *hidden, bool extract, ExplainState *es,
			   bool rethrow, Oid *unplanned)
{
	AdvisorPlanResult r;

	*unplanned = InvalidOid;
	if (hidden == NIL)
		return advisor_plan_bound(sql, params, params_len, hypos, extract, es,
								  rethrow);
	PG_TRY();
	{
		hide_begin(hidden);
		r = advisor_plan_bound(sql, params, params_len, hypos, extract, es,
							   rethrow);
		*unplanned = first_unplanned();
	}
	PG_FINALLY();
	{
		hide_end();
	}
	PG_END_TRY();
	return r;
}

void
hypo_hide_install_hooks(void)
{
	prev_get_relation_info_hook = get_relation_info_hook;
	get_relation_info_hook = hide_get_relation_info;
}
