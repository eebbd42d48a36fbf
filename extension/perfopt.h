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

/* the executor one level deeper, *level kept right even on error (perfopt.c) */
extern void perfopt_run_nested(int *level, ExecutorRun_hook_type prev,
							   QueryDesc *queryDesc, ScanDirection direction,
							   uint64 count, bool execute_once);
extern void perfopt_finish_nested(int *level, ExecutorFinish_hook_type prev,
								  QueryDesc *queryDesc);
extern void perfopt_utility_nested(int *level, bool nests, ProcessUtility_hook_type prev,
								   PlannedStmt *pstmt, const char *queryString,
								   bool readOnlyTree, ProcessUtilityContext context,
								   ParamListInfo params, QueryEnvironment *queryEnv,
								   DestReceiver *dest, QueryCompletion *qc);

#endif							/* PERFOPT_H */
