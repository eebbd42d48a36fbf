/*
 * hypo_hide.h
 *		Existing indexes the planner does not see while, and only while, a
 *		what-if re-planning runs (see hypo_hide.c).
 */
#ifndef PERFOPT_HYPO_HIDE_H
#define PERFOPT_HYPO_HIDE_H

#include "commands/explain.h"
#include "nodes/pg_list.h"

#include "advisor/advisor_plan.h"

extern void hypo_hide_check(Oid indexid);
extern AdvisorPlanResult hypo_hide_plan(const char *sql, const char *params,
										int params_len, List *hypos,
										List *hidden, bool extract,
										ExplainState *es, bool rethrow,
										Oid *unplanned);
extern void hypo_hide_install_hooks(void);

#endif							/* PERFOPT_HYPO_HIDE_H */
