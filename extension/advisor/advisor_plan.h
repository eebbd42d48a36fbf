/*
 * advisor_plan.h
 *		Re-planning statements with hypothetical indexes (advisor_plan.c).
 */
#ifndef PERFOPT_ADVISOR_PLAN_H
#define PERFOPT_ADVISOR_PLAN_H

#include "commands/explain.h"
#include "nodes/pg_list.h"

typedef struct AdvisorPlanResult
{
	bool		ok;
	double		cost;			/* total cost of the plan */
	uint64		queryid;
	List	   *preds;			/* AdvisorPred, when asked for */
	List	   *scans;			/* AdvisorScan, when asked for */
	List	   *used;			/* OIDs of hypothetical indexes in the plan */
	Oid			upd_relid;		/* an UPDATE's table, when asked for */
	Bitmapset  *upd_cols;		/* and the columns it sets (advisor_hot.h) */
	char	   *error;			/* why it could not be planned */
} AdvisorPlanResult;

extern void advisor_check_statement(const char *sql);
extern AdvisorPlanResult advisor_plan(const char *sql, List *hypos,
									  bool extract, ExplainState *es,
									  bool rethrow);
extern AdvisorPlanResult advisor_plan_bound(const char *sql, const char *params,
											int params_len, List *hypos,
											bool extract, ExplainState *es,
											bool rethrow);

#endif							/* PERFOPT_ADVISOR_PLAN_H */
