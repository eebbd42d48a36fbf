/*
 * nesting.c
 *		Owns how deeply statements are nested: the executor levels
 *		(ExecutorRun and ExecutorFinish), shared by the statistics and the
 *		result cache so that one wrapper keeps them, the planner level of
 *		the statistics, and the wrapper each capability counts its own
 *		utility-command depth with.
 *
 *		The executor and planner levels are raised and lowered around the
 *		call without a PG_TRY block, which would cost a sigsetjmp per hook
 *		on every statement.  An error that leaves them raised is always
 *		recovered from by aborting a subtransaction or the transaction: the
 *		abort puts them back to what they were when the subtransaction
 *		started (level_subxact_callback), or to zero (level_xact_callback),
 *		since no executor or planner of this backend is running when a whole
 *		transaction ends (a procedure's COMMIT and ROLLBACK are refused
 *		inside one).  Utility commands, rarer and costlier, keep their
 *		PG_TRY (perfopt_utility_nested).
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "common/nesting.h"

int			perfopt_exec_level = 0;
int			perfopt_plan_level = 0;

/* the levels at the start of each open subtransaction, innermost last */
typedef struct SubxactLevels
{
	SubTransactionId subid;
	int			exec_level;
	int			plan_level;
} SubxactLevels;

static SubxactLevels *subxact_levels = NULL;
static int	n_subxact_levels = 0;
static int	max_subxact_levels = 0;

/*
 * The levels after an error.  Whoever catches an error and goes on (PL/pgSQL's
 * EXCEPTION blocks, the other procedural languages, SAVEPOINT) rolls back a
 * subtransaction, and everything else aborts the transaction.
 */
static void
level_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		perfopt_exec_level = 0;
		perfopt_plan_level = 0;
	}
	/* every subtransaction has ended by now */
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		n_subxact_levels = 0;
}

static void
level_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (n_subxact_levels == max_subxact_levels)
			{
				int			n = Max(16, max_subxact_levels * 2);

				subxact_levels = subxact_levels == NULL ?
					MemoryContextAlloc(TopMemoryContext, n * sizeof(SubxactLevels)) :
					repalloc(subxact_levels, n * sizeof(SubxactLevels));
				max_subxact_levels = n;
			}
			subxact_levels[n_subxact_levels].subid = mySubid;
			subxact_levels[n_subxact_levels].exec_level = perfopt_exec_level;
			subxact_levels[n_subxact_levels].plan_level = perfopt_plan_level;
			n_subxact_levels++;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
		case SUBXACT_EVENT_ABORT_SUB:
			/* subtransactions end innermost first; search all the same */
			for (int i = n_subxact_levels - 1; i >= 0; i--)
			{
				if (subxact_levels[i].subid != mySubid)
					continue;
				if (event == SUBXACT_EVENT_ABORT_SUB)
				{
					perfopt_exec_level = subxact_levels[i].exec_level;
					perfopt_plan_level = subxact_levels[i].plan_level;
				}
				n_subxact_levels = i;
				break;
			}
			break;
		default:
			break;
	}
}

void
nesting_install_callbacks(void)
{
	RegisterXactCallback(level_xact_callback, NULL);
	RegisterSubXactCallback(level_subxact_callback, NULL);
}

/*
 * A utility command, one level deeper when it nests.  Each capability that
 * tells top-level statements from nested ones counts its own depth here
 * (their rules differ: EXPLAIN ANALYZE nests for statistics, not for the
 * cache).
 */
void
perfopt_utility_nested(int *level, bool nests, ProcessUtility_hook_type prev,
					   PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	if (nests)
		(*level)++;
	PG_TRY();
	{
		if (prev)
			prev(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (nests)
			(*level)--;
	}
	PG_END_TRY();
}
