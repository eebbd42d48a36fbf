/*
 * perfopt.h
 *		What the capabilities of perfopt share: the shared-memory lifecycle
 *		(shmem.c) and the one error raised when the library was not
 *		preloaded.
 */
#ifndef PERFOPT_H
#define PERFOPT_H

#include "executor/executor.h"
#include "tcop/utility.h"

extern void perfopt_install_shmem_hooks(void);
extern void perfopt_require_preload(void);

/*
 * Executor nesting (ExecutorRun, ExecutorFinish) of the current statement,
 * kept by the statistics hooks of perfopt.c for every capability: 0 while a
 * top-level statement is started, run or ended.
 */
extern int	perfopt_exec_level;

/*
 * The result cache answers a hit before perfopt's ExecutorRun hook runs:
 * around the hit, these count its time and buffers as the execution's.
 */
extern void perfopt_measure_begin(QueryDesc *queryDesc);
extern void perfopt_measure_end(QueryDesc *queryDesc);

/* a utility command one level deeper, *level kept right even on error (perfopt.c) */
extern void perfopt_utility_nested(int *level, bool nests, ProcessUtility_hook_type prev,
								   PlannedStmt *pstmt, const char *queryString,
								   bool readOnlyTree, ProcessUtilityContext context,
								   ParamListInfo params, QueryEnvironment *queryEnv,
								   DestReceiver *dest, QueryCompletion *qc);

#endif							/* PERFOPT_H */
