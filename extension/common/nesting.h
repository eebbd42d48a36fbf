/*
 * nesting.h
 *		How deeply the current statement is nested, for every capability
 *		that treats top-level statements apart (nesting.c).
 */
#ifndef PERFOPT_NESTING_H
#define PERFOPT_NESTING_H

#include "tcop/utility.h"

/*
 * Executor nesting (ExecutorRun, ExecutorFinish) of the current statement,
 * raised and lowered by the statistics hooks (stats_hooks.c) for every
 * capability: 0 while a top-level statement is started, run or ended.
 */
extern int	perfopt_exec_level;

/* planner nesting, raised and lowered by the statistics' planner hook */
extern int	perfopt_plan_level;

/* put the levels back after an error (the transaction callbacks) */
extern void nesting_install_callbacks(void);

/* a utility command one level deeper, *level kept right even on error */
extern void perfopt_utility_nested(int *level, bool nests, ProcessUtility_hook_type prev,
								   PlannedStmt *pstmt, const char *queryString,
								   bool readOnlyTree, ProcessUtilityContext context,
								   ParamListInfo params, QueryEnvironment *queryEnv,
								   DestReceiver *dest, QueryCompletion *qc);

#endif							/* PERFOPT_NESTING_H */
