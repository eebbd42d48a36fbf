/*
 * bookkeeping.h
 *		What perfopt records about statements (statistics, slow-query
 *		capture, the index advisor's capture) must never fail the statement
 *		it records (bookkeeping.c).
 */
#ifndef PERFOPT_BOOKKEEPING_H
#define PERFOPT_BOOKKEEPING_H

#include "port/atomics.h"

#include "common/guc.h"

/* a piece of bookkeeping that may fail; it allocates in CurrentMemoryContext */
typedef void (*bookkeeping_work) (void *arg);

extern void bookkeeping_attach_counter(pg_atomic_uint64 *counter);
extern bool bookkeeping_try(BookkeepingStep step, bookkeeping_work work, void *arg);
extern bool bookkeeping_subxact_possible(void);
extern bool bookkeeping_try_in_subxact(BookkeepingStep step, bookkeeping_work work,
									   void *arg);
extern void bookkeeping_skip(BookkeepingStep step, const char *reason);
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
