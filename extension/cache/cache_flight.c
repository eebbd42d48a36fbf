/*
 * cache_flight.c
 *		Owns recomputations in flight.  When a write invalidates a popular
 *		result, every session asking for it meanwhile would miss and compute
 *		it again, all at once (a leaderboard over 50,000 rows takes 50 ms,
 *		long enough for the other clients to pile up).  Instead the session
 *		that finds the entry invalid or expired takes a flight for its key
 *		and recomputes it; the others that find no entry for a key in
 *		flight wait for that flight to land and then look again.
 *
 *		Only results that were stored before take a flight: a statement
 *		never stored (too large, refused) must not make sessions wait for
 *		each other for nothing.  A wait is bounded
 *		(perfopt.cache_recompute_wait): the waiter holds its statement's
 *		locks and the deadlock detector does not see this wait, so it must
 *		always end by itself; after it the waiter computes the result
 *		itself, as without flights.  A flight ends when its result is
 *		stored or refused, and at the latest when its session's
 *		transaction ends or the session exits.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "portability/instr_time.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "cache/cache_int.h"

#define CACHE_FLIGHTS 64

typedef struct Flight
{
	int			pid;			/* 0: free */
	Oid			dbid;
	Oid			userid;
	uint64		keyhash;
	ConditionVariable landed;
} Flight;

typedef struct FlightShared
{
	slock_t		mutex;			/* guards every slot's pid and key */
	pg_atomic_uint32 taken;		/* slots in use: most lookups see 0 */
	Flight		flights[CACHE_FLIGHTS];
} FlightShared;

static FlightShared *flights = NULL;
static int	my_flight = -1;		/* the slot this session holds */

Size
cache_flight_shmem_size(void)
{
	return MAXALIGN(sizeof(FlightShared));
}

/* Called with AddinShmemInitLock held. */
void
cache_flight_shmem_init(void)
{
	bool		found;
	int			i;

	flights = ShmemInitStruct("perfopt cache flights", sizeof(FlightShared), &found);
	if (found)
		return;
	SpinLockInit(&flights->mutex);
	pg_atomic_init_u32(&flights->taken, 0);
	for (i = 0; i < CACHE_FLIGHTS; i++)
	{
		flights->flights[i].pid = 0;
		ConditionVariableInit(&flights->flights[i].landed);
	}
}

static bool
flight_is(Flight *f, Oid dbid, Oid userid, uint64 keyhash)
{
	return f->pid != 0 && f->keyhash == keyhash && f->dbid == dbid && f->userid == userid;
}

/* The slot of another session's flight for the key, or -1.  Mutex held. */
static int
find_flight(Oid dbid, Oid userid, uint64 keyhash)
{
	int			i;

	for (i = 0; i < CACHE_FLIGHTS; i++)
		if (flight_is(&flights->flights[i], dbid, userid, keyhash) &&
			flights->flights[i].pid != MyProcPid)
			return i;
	return -1;
}

/* End this session's flight, if any, waking whoever waits for it. */
void
cache_flight_land(void)
{
	Flight	   *f;

	if (my_flight < 0 || flights == NULL)
		return;
	f = &flights->flights[my_flight];
	my_flight = -1;
	SpinLockAcquire(&flights->mutex);
	f->pid = 0;
	SpinLockRelease(&flights->mutex);
	pg_atomic_fetch_sub_u32(&flights->taken, 1);
	ConditionVariableBroadcast(&f->landed);
}

static void
flight_exit(int code, Datum arg)
{
	cache_flight_land();
}

/*
 * This session recomputes the result of the key (its entry was found
 * invalid or expired): others finding no entry will wait for it.  False if
 * another session already recomputes it (the caller may wait for that
 * one); true otherwise, also when every slot is taken (no flight then).
 */
bool
cache_flight_take(Oid dbid, Oid userid, uint64 keyhash)
{
	static bool exit_registered = false;
	int			i;
	int			free_slot = -1;
	bool		taken_by_other = false;

	if (flights == NULL || perfopt_cache_recompute_wait == 0)
		return true;
	if (!exit_registered)
	{
		before_shmem_exit(flight_exit, (Datum) 0);
		exit_registered = true;
	}
	cache_flight_land();
	SpinLockAcquire(&flights->mutex);
	for (i = 0; i < CACHE_FLIGHTS; i++)
	{
		Flight	   *f = &flights->flights[i];

		if (flight_is(f, dbid, userid, keyhash))
		{
			taken_by_other = true;
			break;
		}
		if (f->pid == 0 && free_slot < 0)
			free_slot = i;
	}
	if (!taken_by_other && free_slot >= 0)
	{
		Flight	   *f = &flights->flights[free_slot];

		f->pid = MyProcPid;
		f->dbid = dbid;
		f->userid = userid;
		f->keyhash = keyhash;
		my_flight = free_slot;
		pg_atomic_fetch_add_u32(&flights->taken, 1);
	}
	SpinLockRelease(&flights->mutex);
	return !taken_by_other;
}

/*
 * If another session recomputes the key's result, wait until it is done
 * (or perfopt.cache_recompute_wait passed).  True if there was a flight to wait
 * for: the caller then looks the key up again.
 */
bool
cache_flight_wait(Oid dbid, Oid userid, uint64 keyhash)
{
	int			slot;
	Flight	   *f;
	instr_time	start;
	instr_time	now;
	long		left;

	if (flights == NULL || perfopt_cache_recompute_wait == 0 ||
		pg_atomic_read_u32(&flights->taken) == 0)
		return false;
	SpinLockAcquire(&flights->mutex);
	slot = find_flight(dbid, userid, keyhash);
	SpinLockRelease(&flights->mutex);
	if (slot < 0)
		return false;

	f = &flights->flights[slot];
	INSTR_TIME_SET_CURRENT(start);
	ConditionVariablePrepareToSleep(&f->landed);
	for (;;)
	{
		bool		in_flight;

		SpinLockAcquire(&flights->mutex);
		in_flight = flight_is(f, dbid, userid, keyhash);
		SpinLockRelease(&flights->mutex);
		if (!in_flight)
			break;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		left = perfopt_cache_recompute_wait - (long) INSTR_TIME_GET_MILLISEC(now);
		if (left <= 0 ||
			ConditionVariableTimedSleep(&f->landed, left, PG_WAIT_EXTENSION))
			break;
	}
	ConditionVariableCancelSleep();
	return true;
}

static void
flight_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		cache_flight_land();
}

void
cache_flight_install(void)
{
	RegisterXactCallback(flight_xact_callback, NULL);
}
