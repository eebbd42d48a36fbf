/*
 * session_report.c
 *		Reports which session state a backend holds between transactions,
 *		as the setting perfopt.session_state (GUC_REPORT, so PostgreSQL
 *		sends a ParameterStatus before ReadyForQuery whenever it changes).
 *
 * A transaction-mode pooler must keep a client on its server connection
 * while that connection holds something only this client may see: temp
 * objects, session advisory locks, LISTEN channels, SQL PREPAREd
 * statements and WITH HOLD cursors.  The value lists them ("temp,advisory"
 * or empty) as they stand when each top-level transaction has ended,
 * committed or aborted.
 *
 * Each kind is found where it is cheap to know:
 *	- temp objects: at pre-commit of a transaction that wrote, one index
 *	  probe of pg_depend for anything depending on our temp namespace;
 *	  an aborted transaction changed nothing there
 *	- advisory locks: once every lock of the transaction is released, any
 *	  advisory lock still in our PROCLOCK lists is a session lock
 *	- LISTEN: the utility statements (LISTEN, UNLISTEN, DISCARD ALL) are
 *	  recorded and take effect at commit, as PostgreSQL applies them
 *	- PREPARE and WITH HOLD cursors: the names made by utility statements
 *	  are looked up again, forgotten once gone
 * The setting is written only when the list differs from the last one, so
 * an ordinary transaction costs a few comparisons and no message.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "commands/prepare.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "common/session_report.h"

#define STATE_GUC "perfopt.session_state"

/* the kinds of state, in the order the value lists them */
#define SS_TEMP		0x01
#define SS_ADVISORY	0x02
#define SS_LISTEN	0x04
#define SS_PREPARED	0x08
#define SS_CURSOR	0x10

static const char *const kind_names[] = {"temp", "advisory", "listen", "prepared", "cursor"};

/* a LISTEN-family statement of the open transaction, applied at commit */
typedef struct ListenAction
{
	char		kind;			/* 'L' listen, 'U' unlisten, '*' unlisten all */
	int			level;			/* subtransaction nesting level that ran it */
	char	   *channel;
} ListenAction;

static char *session_state_value = NULL;	/* the GUC's storage */
static int	reported_bits = 0;	/* what the value says now ("" at start) */
static bool report_due = false; /* a top-level transaction is ending */
static bool temp_objects = false;	/* as of the last commit */
static bool temp_at_precommit = false;	/* the probe's answer, kept if it commits */
static List *channels = NIL;	/* listened to, as of the last commit */
static List *pending_listen = NIL;	/* ListenAction *, in TopTransactionContext */
static List *sql_prepared = NIL;	/* names PREPAREd by SQL, some maybe gone */
static List *held_cursors = NIL;	/* names DECLAREd WITH HOLD, some maybe gone */

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static bool
reporting_backend(void)
{
	return MyBackendType == B_BACKEND && !IsParallelWorker();
}

/* Remember a name in a session-long list (no duplicates). */
static void
remember_name(List **list, const char *name)
{
	MemoryContext old;
	ListCell   *lc;

	if (name == NULL || *name == '\0')
		return;
	foreach(lc, *list)
		if (strcmp((char *) lfirst(lc), name) == 0)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	*list = lappend(*list, pstrdup(name));
	MemoryContextSwitchTo(old);
}

/* Record a LISTEN-family action; it counts only if its transaction commits. */
static void
pend_listen(char kind, const char *channel)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	ListenAction *a = palloc(sizeof(ListenAction));

	a->kind = kind;
	a->level = GetCurrentTransactionNestLevel();
	a->channel = channel ? pstrdup(channel) : NULL;
	pending_listen = lappend(pending_listen, a);
	MemoryContextSwitchTo(old);
}

/* A utility statement that ran without error: note what it may have made. */
static void
note_statement(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_PrepareStmt:
			remember_name(&sql_prepared, ((PrepareStmt *) stmt)->name);
			break;
		case T_DeclareCursorStmt:
			if (((DeclareCursorStmt *) stmt)->options & CURSOR_OPT_HOLD)
				remember_name(&held_cursors, ((DeclareCursorStmt *) stmt)->portalname);
			break;
		case T_ListenStmt:
			pend_listen('L', ((ListenStmt *) stmt)->conditionname);
			break;
		case T_UnlistenStmt:
			pend_listen(((UnlistenStmt *) stmt)->conditionname ? 'U' : '*',
						((UnlistenStmt *) stmt)->conditionname);
			break;
		case T_DiscardStmt:
			if (((DiscardStmt *) stmt)->target == DISCARD_ALL)
				pend_listen('*', NULL);
			break;
		default:
			break;
	}
}

static void
session_report_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
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
	if (reporting_backend())
		note_statement(stmt);
}

/* The committed transaction's LISTEN-family actions, applied in order. */
static void
apply_listen_actions(void)
{
	ListCell   *lc;

	foreach(lc, pending_listen)
	{
		ListenAction *a = lfirst(lc);

		if (a->kind == 'L')
			remember_name(&channels, a->channel);
		else
		{
			ListCell   *cc;

			foreach(cc, channels)
			{
				if (a->kind == '*' || strcmp((char *) lfirst(cc), a->channel) == 0)
				{
					pfree(lfirst(cc));
					channels = foreach_delete_current(channels, cc);
				}
			}
		}
	}
}

/*
 * Anything in our temp namespace?  Every object there depends on it in
 * pg_depend (how DISCARD TEMP finds them), so one index probe answers.
 * SnapshotSelf sees this transaction's own last changes.
 */
static bool
temp_objects_exist(void)
{
	Oid			nsp,
				toast_nsp;
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	bool		found;

	GetTempNamespaceState(&nsp, &toast_nsp);
	if (!OidIsValid(nsp))
		return false;
	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(NamespaceRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(nsp));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, SnapshotSelf, 2, key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static void
session_report_xact(XactEvent event, void *arg)
{
	if (!reporting_backend())
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* no transaction id: nothing was written, temp objects included */
			temp_at_precommit = GetTopTransactionIdIfAny() == InvalidTransactionId ?
				temp_objects : temp_objects_exist();
			break;
		case XACT_EVENT_COMMIT:
			temp_objects = temp_at_precommit;
			apply_listen_actions();
			pending_listen = NIL;
			report_due = true;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			pending_listen = NIL;
			report_due = true;
			break;
		default:
			break;
	}
}

/* A subtransaction ends: its LISTEN-family actions go up a level or are dropped. */
static void
session_report_subxact(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, pending_listen)
	{
		ListenAction *a = lfirst(lc);

		if (a->level < level)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			a->level = level - 1;
		else
			pending_listen = foreach_delete_current(pending_listen, lc);
	}
}

/*
 * Once the transaction's locks are released, an advisory lock we still
 * hold is a session lock.  Only this backend adds advisory locks to its
 * own lists, so an empty list read without the partition lock is truly
 * empty of them; a non-empty one is walked under it.
 */
static bool
holds_advisory_lock(void)
{
	bool		found = false;

	for (int i = 0; i < NUM_LOCK_PARTITIONS && !found; i++)
	{
		SHM_QUEUE  *head = &MyProc->myProcLocks[i];
		PROCLOCK   *pl;

		if (SHMQueueEmpty(head))
			continue;
		LWLockAcquire(LockHashPartitionLockByIndex(i), LW_SHARED);
		pl = (PROCLOCK *) SHMQueueNext(head, head, offsetof(PROCLOCK, procLink));
		while (pl && !found)
		{
			found = pl->holdMask != 0 && pl->tag.myLock->tag.locktag_type == LOCKTAG_ADVISORY;
			pl = (PROCLOCK *) SHMQueueNext(head, &pl->procLink, offsetof(PROCLOCK, procLink));
		}
		LWLockRelease(LockHashPartitionLockByIndex(i));
	}
	return found;
}

/* Forget the SQL prepared statements that are gone; true when one is left. */
static bool
prepared_left(void)
{
	ListCell   *lc;

	foreach(lc, sql_prepared)
	{
		PreparedStatement *ps = FetchPreparedStatement((char *) lfirst(lc), false);

		if (ps && ps->from_sql)
			continue;
		pfree(lfirst(lc));
		sql_prepared = foreach_delete_current(sql_prepared, lc);
	}
	return sql_prepared != NIL;
}

/*
 * Forget the WITH HOLD cursors that are gone or go with this transaction
 * (made in it and not persisted: an abort drops them); true when one is left.
 */
static bool
cursor_left(void)
{
	ListCell   *lc;

	foreach(lc, held_cursors)
	{
		Portal		portal = GetPortalByName((char *) lfirst(lc));

		if (PortalIsValid(portal) && (portal->cursorOptions & CURSOR_OPT_HOLD) &&
			portal->createSubid == InvalidSubTransactionId)
			continue;
		pfree(lfirst(lc));
		held_cursors = foreach_delete_current(held_cursors, lc);
	}
	return held_cursors != NIL;
}

/* Write the setting when the list changed: PostgreSQL reports it before ReadyForQuery. */
static void
report(int bits)
{
	char		buf[64];

	if (bits == reported_bits)
		return;
	buf[0] = '\0';
	for (int i = 0; i < lengthof(kind_names); i++)
	{
		if (!(bits & (1 << i)))
			continue;
		if (buf[0])
			strlcat(buf, ",", sizeof(buf));
		strlcat(buf, kind_names[i], sizeof(buf));
	}
	/* a default-level source: not undone by the transaction's GUC cleanup */
	SetConfigOption(STATE_GUC, buf, PGC_INTERNAL, PGC_S_DYNAMIC_DEFAULT);
	reported_bits = bits;
}

/* After the top-level transaction released its locks, committed or aborted. */
static void
session_report_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel, void *arg)
{
	int			bits = 0;

	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel || !report_due)
		return;
	report_due = false;
	if (temp_objects)
		bits |= SS_TEMP;
	if (holds_advisory_lock())
		bits |= SS_ADVISORY;
	if (channels != NIL)
		bits |= SS_LISTEN;
	if (sql_prepared != NIL && prepared_left())
		bits |= SS_PREPARED;
	if (held_cursors != NIL && cursor_left())
		bits |= SS_CURSOR;
	report(bits);
}

void
session_report_install_hooks(void)
{
	DefineCustomStringVariable(STATE_GUC,
							   "Session state this backend holds between transactions.",
							   "Reported to the client at each change: temp, advisory, listen, prepared, cursor.",
							   &session_state_value,
							   "",
							   PGC_INTERNAL,
							   GUC_REPORT | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);
	RegisterXactCallback(session_report_xact, NULL);
	RegisterSubXactCallback(session_report_subxact, NULL);
	RegisterResourceReleaseCallback(session_report_release, NULL);
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = session_report_ProcessUtility;
}
