/*
 * bookkeeping.c
 *		Owns the rule that perfopt's bookkeeping never turns a user's
 *		statement into an error: the statistics, the slow-query capture and
 *		the index advisor's capture skip what they cannot handle, count it
 *		(perfopt.stats_info.bookkeeping_skipped) and log it once per session
 *		and step, to the server log only.  Also the fault point that makes a
 *		step fail on purpose, for tests (perfopt.debug_fail_bookkeeping).
 *
 * How each step is made safe, cheapest first:
 *
 * - Check first.  Most of the bookkeeping cannot fail by construction: the
 *   per-statement paths take a lock, look a hash up, add counters under a
 *   spinlock; shared hash tables are entered with HASH_ENTER_NULL, large
 *   work arrays allocated with MCXT_ALLOC_NO_OOM, and a NULL means "skip".
 *   No PG_TRY there: a sigsetjmp per statement is a cost this rule does not
 *   need.
 *
 * - bookkeeping_try: PG_TRY without a subtransaction, for pure computation
 *   in the caller's own memory context (normalizing a statement's text runs
 *   the SQL lexer, which raises errors on text it cannot scan).  Catching
 *   an error without a subtransaction is only sound when the code inside
 *   takes no lock, buffer pin, catalog or relcache reference or any other
 *   resource-owner state, which an abort would have released: the work
 *   passed here must not.  The interrupt holdoff counts are put back as
 *   they were; the caller deletes the memory context.
 *
 * - bookkeeping_try_in_subxact: for work that reads the catalogs (EXPLAIN
 *   of the plan for the slow log, the advisor's reading of a plan's
 *   operators and functions, the output functions of bind parameters).  A
 *   catalog lookup can fail midway with a buffer pinned or a lock taken; an
 *   internal subtransaction's rollback releases them as an abort would.  It
 *   is committed when the work succeeds (rolling back would also end the
 *   command's progress reporting), and run only on rare paths: a slow
 *   statement, a statement the advisor sees for the first time.  In a
 *   parallel operation, or outside a valid transaction, no subtransaction
 *   can start, and such work is skipped (bookkeeping_subxact_possible).
 *
 * Errors that are not the bookkeeping's own are always re-thrown: a query
 * cancel or statement timeout (ERRCODE_QUERY_CANCELED), anything above
 * ERROR, and any error while a cancel or termination is pending.  Other
 * pending interrupts (a barrier, a catchup signal) are no reason to fail a
 * statement, and are served at the next CHECK_FOR_INTERRUPTS as usual.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "common/bookkeeping.h"

static const char *const step_names[] = {"", "stats", "slowlog", "advisor"};

/* in the statistics' shared memory (stats_store.c) */
static pg_atomic_uint64 *skipped_counter = NULL;

/* whether this session has logged a skip of each step yet */
static bool logged[lengthof(step_names)];

void
bookkeeping_attach_counter(pg_atomic_uint64 *counter)
{
	skipped_counter = counter;
}

void
bookkeeping_raise_fault(BookkeepingStep step)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("perfopt %s bookkeeping failed on purpose", step_names[step]),
			 errdetail("perfopt.debug_fail_bookkeeping is set: a setting for perfopt's tests.")));
}

/* Count a skipped piece of bookkeeping; log the first of each step. */
void
bookkeeping_skip(BookkeepingStep step, const char *reason)
{
	if (skipped_counter)
		pg_atomic_fetch_add_u64(skipped_counter, 1);
	if (logged[step])
		return;
	logged[step] = true;
	ereport(LOG_SERVER_ONLY,
			(errmsg("perfopt skipped its %s bookkeeping of a statement: %s",
					step_names[step], reason),
			 errdetail("The statement itself was not affected.  Later skips in this session are only counted, in perfopt.stats_info.bookkeeping_skipped.")));
}

static bool
must_rethrow(const ErrorData *edata)
{
	return edata->elevel > ERROR ||
		edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		QueryCancelPending || ProcDiePending;
}

/*
 * Run work (pure computation, see above); false when it failed, which is
 * counted and logged.
 */
bool
bookkeeping_try(BookkeepingStep step, bookkeeping_work work, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	uint32		holdoff = InterruptHoldoffCount;
	uint32		cancel_holdoff = QueryCancelHoldoffCount;
	ErrorData  *edata = NULL;

	PG_TRY();
	{
		bookkeeping_fault_point(step);
		work(arg);
	}
	PG_CATCH();
	{
		InterruptHoldoffCount = holdoff;
		QueryCancelHoldoffCount = cancel_holdoff;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (must_rethrow(edata))
			PG_RE_THROW();
		FlushErrorState();
	}
	PG_END_TRY();
	if (edata == NULL)
		return true;
	bookkeeping_skip(step, edata->message);
	FreeErrorData(edata);
	return false;
}

/* Whether an internal subtransaction may start here. */
bool
bookkeeping_subxact_possible(void)
{
	return IsTransactionState() && !IsInParallelMode() &&
		!IsAbortedTransactionBlockState();
}

/*
 * Run work, which may read the catalogs, in an internal subtransaction;
 * false when it failed (counted and logged) or could not run.  The caller's
 * memory context and resource owner are current again on return.
 */
bool
bookkeeping_try_in_subxact(BookkeepingStep step, bookkeeping_work work, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	uint32		holdoff = InterruptHoldoffCount;
	uint32		cancel_holdoff = QueryCancelHoldoffCount;
	ErrorData  *edata = NULL;

	if (!bookkeeping_subxact_possible())
	{
		bookkeeping_skip(step, "no subtransaction can start here (parallel operation)");
		return false;
	}
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		bookkeeping_fault_point(step);
		work(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		InterruptHoldoffCount = holdoff;
		QueryCancelHoldoffCount = cancel_holdoff;
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (must_rethrow(edata))
			ReThrowError(edata);
	}
	PG_END_TRY();
	if (edata == NULL)
	{
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		return true;
	}
	bookkeeping_skip(step, edata->message);
	FreeErrorData(edata);
	return false;
}
