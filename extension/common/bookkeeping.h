/*
 * bookkeeping.h
 *		What perfopt records about statements (statistics, slow-query
 *		capture, the index advisor's capture) must never fail the statement
 *		it records (bookkeeping.c).
 */
#ifndef PERFOPT_BOOKKEEPING_H
#define PERFOPT_BOOKKEEPING_H

#include "common/guc.h"

extern void bookkeeping_raise_fault(BookkeepingStep step) pg_attribute_noreturn();

/*
 * perfopt.debug_fail_bookkeeping: the named step raises an ERROR here, so
 * that tests can show it never reaches the user's statement.
 */
static inline void
bookkeeping_fault_point(BookkeepingStep step)
{
	if (unlikely(perfopt_debug_fail_bookkeeping == (int) step))
		bookkeeping_raise_fault(step);
}

#endif							/* PERFOPT_BOOKKEEPING_H */
