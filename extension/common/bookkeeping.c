/*
 * bookkeeping.c
 *		Owns the rule that perfopt's bookkeeping never turns a user's
 *		statement into an error, and the fault point that tests it.
 */
#include "postgres.h"

#include "common/bookkeeping.h"

static const char *const step_names[] = {"", "stats", "slowlog", "advisor"};

void
bookkeeping_raise_fault(BookkeepingStep step)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("perfopt %s bookkeeping failed on purpose", step_names[step]),
			 errdetail("perfopt.debug_fail_bookkeeping is set: a setting for perfopt's tests.")));
}
