/*
 * commit_lsn.c
 *		Reports where the session's last commit ended in the WAL, as the
 *		setting perfopt.commit_lsn (GUC_REPORT: PostgreSQL sends it as a
 *		ParameterStatus before the next ReadyForQuery), when the session
 *		asks with perfopt.report_commit_lsn = on.  A pooler that routes
 *		reads to standbys uses one only once it has replayed that far
 *		(pg_last_wal_replay_lsn() >= it), so that the client reads its own
 *		writes there.
 *
 *		Only commits that wrote a commit record count: a top-level
 *		transaction with an xid, and COMMIT PREPARED (which writes the
 *		prepared transaction's).  XactLastCommitEnd then holds that
 *		record's end.  Other transactions leave the value as it was, so
 *		the client gets no message; with the report off, none ever.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/guc.h"

#include "common/guc.h"
#include "replica/replica.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* this transaction ran COMMIT PREPARED, which wrote a commit record */
static bool committed_prepared = false;

static void
commit_lsn_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
	if (IsA(stmt, TransactionStmt) &&
		((TransactionStmt *) stmt)->kind == TRANS_STMT_COMMIT_PREPARED)
		committed_prepared = true;
}

/*
 * After the commit record is written and the commit visible (the xid is
 * still the transaction's here).  Setting the value at a default-level
 * source keeps it out of the transaction's GUC cleanup, which follows.
 */
static void
commit_lsn_xact(XactEvent event, void *arg)
{
	bool		wrote;
	char		lsn[32];

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	wrote = committed_prepared || TransactionIdIsValid(GetTopTransactionIdIfAny());
	committed_prepared = false;
	if (event != XACT_EVENT_COMMIT || !wrote || !perfopt_report_commit_lsn ||
		XactLastCommitEnd == InvalidXLogRecPtr || MyBackendType != B_BACKEND ||
		IsParallelWorker())
		return;
	snprintf(lsn, sizeof(lsn), "%X/%X", LSN_FORMAT_ARGS(XactLastCommitEnd));
	SetConfigOption("perfopt.commit_lsn", lsn, PGC_INTERNAL, PGC_S_DYNAMIC_DEFAULT);
}

void
commit_lsn_install_hooks(void)
{
	RegisterXactCallback(commit_lsn_xact, NULL);
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = commit_lsn_ProcessUtility;
}
