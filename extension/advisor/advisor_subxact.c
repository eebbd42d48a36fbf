/*
 * advisor_subxact.c
 *		Owns running one piece of the advisor's work in a subtransaction, so
 *		that a table dropped or changed since a statement was captured (a
 *		candidate's column gone, a recommended index's table rewritten)
 *		skips that piece and not the whole advice.  A cancel is never
 *		swallowed: the advice must stay cancellable.  The work allocates in
 *		the caller's memory context, which survives the subtransaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "advisor/advisor_subxact.h"

/*
 * Run work(arg); false when it failed.  keep_locks: the subtransaction is
 * committed, so the locks it took last to the end of the transaction (the
 * caller then reads what they protect); else it is rolled back.
 */
bool
advisor_try_subxact(advisor_work work, void *arg, bool keep_locks)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		work(arg);
		if (keep_locks)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
