/*
 * cache_wal.c
 *		Owns the result cache's invalidations in the WAL, through which a
 *		hot standby serves the cache under the primary's contract, relative
 *		to its own snapshots (see cache_inval.c for the primary's side):
 *
 *		- at PRE_COMMIT (or PRE_PREPARE), while perfopt.cache_standby_wal
 *		  is on (otherwise nothing is written, and standbys bypass their
 *		  cache: cache_wal_switch.c), a transaction with an xid that
 *		  bumps slots writes one record naming them (database, table,
 *		  sub-slot: slot indexes differ between servers) and its xid.  It
 *		  precedes the commit record and carries the xid, so a standby's
 *		  snapshots count the writer as running from this record until its
 *		  commit or abort record replays: the primary's state between its
 *		  PRE_COMMIT bump and its commit;
 *		- the standby's startup process replays it (cache_wal_redo): the
 *		  same max_xid raise and gen bump in its own shared memory, slots
 *		  created as needed; with no room for one it bumps the global slot,
 *		  on which every entry depends;
 *		- the primary's second bump, after its commit, is for what backends
 *		  read once per generation (the rules, the triggers' coverage).  A
 *		  standby never sees that moment, so the record marks those slots
 *		  (an epoch, the rules table's slot, the global slot) and the
 *		  standby keeps them pending with the writer's xid.  Whoever relies
 *		  on such a reading first settles (cache_wal_settle): a pending
 *		  writer below its snapshot's xmin has ended, for that snapshot and
 *		  every later one, and its slots are bumped again.  Nothing is
 *		  written after the commit, so nothing is lost when the primary
 *		  crashes in between: a writer whose commit never comes is ended by
 *		  the standby (the restarted primary's running-xacts record, or
 *		  promotion) and settled the same way, having only invalidated;
 *		- a standby (re)started in the middle of a DDL replayed its record
 *		  before, or never: an epoch slot created during recovery is kept
 *		  pending the same way, until every writer up to its creation has
 *		  ended;
 *		- when the pending list is full, every epoch and the global slot
 *		  are bumped once the newest writer it could not keep has ended.
 *
 *		Replay during the primary's own crash recovery bumps a shared
 *		memory no backend has read yet: harmless.  A promoted standby keeps
 *		its slots, entries and pending bumps, valid under the same rules,
 *		and writes records itself from then on if its own setting says so.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/snapmgr.h"

#include "cache/cache_int.h"
#include "replica/replica_rmgr.h"

/*
 * A slot in a record: its table (InvalidOid: the database's epoch) and
 * sub-slot, whose high bits say that the standby bumps it again once the
 * writer has ended, or that it is the global slot.  Sub-slots stay far
 * below those bits (CACHE_SLOT_BAND: 2 + attno * 256 + band).
 */
typedef struct CacheWalSlot
{
	Oid			relid;
	int32		sub;
} CacheWalSlot;

#define CACHE_WAL_SETTLE	0x40000000
#define CACHE_WAL_GLOBAL	0x20000000
#define CACHE_WAL_FLAGS		(CACHE_WAL_SETTLE | CACHE_WAL_GLOBAL)

/* XLOG_PERFOPT_CACHE_BUMPS: one transaction's, so one database's */
typedef struct xl_cache_bumps
{
	uint64		xid;			/* the writer's FullTransactionId */
	Oid			dbid;
	uint32		nslots;
	CacheWalSlot slots[FLEXIBLE_ARRAY_MEMBER];
} xl_cache_bumps;

/*
 * Writers whose second bump a standby still owes: rare, as only DDL and
 * rule changes have slots to settle, and short-lived (until their commit
 * replays and a statement comes).
 */
#define PENDING_MAX		64
#define PENDING_SLOTS	4

typedef struct PendingBump
{
	uint64		xid;
	int32		nslots;
	int32		slots[PENDING_SLOTS];
} PendingBump;

typedef struct PendingShared
{
	LWLock	   *lock;
	pg_atomic_uint32 count;		/* items, plus one while overflowed */
	pg_atomic_uint64 oldest;	/* the oldest writer pending, read without the lock */
	int32		n;
	bool		overflow;
	uint64		overflow_xid;	/* the newest writer not kept */
	PendingBump items[PENDING_MAX];
} PendingShared;

static PendingShared *pending = NULL;
pg_atomic_uint32 *cache_wal_pending = NULL;

Size
cache_wal_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(PendingShared)), cache_wal_switch_shmem_size());
}

/* Called with AddinShmemInitLock held. */
void
cache_wal_shmem_init(void)
{
	bool		found;

	pending = ShmemInitStruct("perfopt cache pending bumps", sizeof(PendingShared), &found);
	if (!found)
	{
		pending->lock = &(GetNamedLWLockTranche("perfopt_cache"))[2].lock;
		pg_atomic_init_u32(&pending->count, 0);
		pg_atomic_init_u64(&pending->oldest, PG_UINT64_MAX);
		pending->n = 0;
		pending->overflow = false;
		pending->overflow_xid = 0;
	}
	cache_wal_pending = &pending->count;
	cache_wal_switch_shmem_init();
}

/*
 * The record of a committing writer's bumps (cache_inval.c, at PRE_COMMIT
 * or PRE_PREPARE, with the writer's xid current: XLogInsert puts it in the
 * record's header), while perfopt.cache_standby_wal is on: flagged as
 * coming from a server that logs them (cache_wal_switch.c).
 */
void
cache_wal_log_bumps(FullTransactionId xid, const CacheSlotKey *keys, const bool *settle,
					int n)
{
	xl_cache_bumps hdr;
	CacheWalSlot *slots = palloc(Max(n, 1) * sizeof(CacheWalSlot));
	int			i;

	memset(&hdr, 0, sizeof(hdr));
	hdr.xid = U64FromFullTransactionId(xid);
	hdr.dbid = MyDatabaseId;
	hdr.nslots = n;
	for (i = 0; i < n; i++)
	{
		slots[i].relid = keys[i].relid;
		slots[i].sub = keys[i].sub;
		if (keys[i].dbid == InvalidOid)
			slots[i].sub = CACHE_WAL_GLOBAL;
		if (settle[i])
			slots[i].sub |= CACHE_WAL_SETTLE;
	}
	cache_wal_before_first_record();
	XLogBeginInsert();
	XLogRegisterData((char *) &hdr, offsetof(xl_cache_bumps, slots));
	XLogRegisterData((char *) slots, n * sizeof(CacheWalSlot));
	(void) XLogInsert(PERFOPT_RMGR_ID, XLOG_PERFOPT_CACHE_BUMPS | XLOG_PERFOPT_CACHE_LOGS);
	pfree(slots);
}

/* Under the lock, after any change: what settling backends read first. */
static void
pending_update_count(void)
{
	uint64		oldest = pending->overflow ? pending->overflow_xid : PG_UINT64_MAX;
	int			i;

	for (i = 0; i < pending->n; i++)
		oldest = Min(oldest, pending->items[i].xid);
	pg_atomic_write_u64(&pending->oldest, oldest);
	pg_atomic_write_u32(&pending->count, pending->n + (pending->overflow ? 1 : 0));
}

/* Keep a replayed writer's slots to settle; too many: the overflow. */
static void
pending_add(FullTransactionId xid, const int32 *slots, int n)
{
	LWLockAcquire(pending->lock, LW_EXCLUSIVE);
	if (n <= PENDING_SLOTS && pending->n < PENDING_MAX)
	{
		PendingBump *p = &pending->items[pending->n++];

		p->xid = U64FromFullTransactionId(xid);
		p->nslots = n;
		memcpy(p->slots, slots, n * sizeof(int32));
	}
	else
	{
		pending->overflow = true;
		pending->overflow_xid = Max(pending->overflow_xid, U64FromFullTransactionId(xid));
	}
	pending_update_count();
	LWLockRelease(pending->lock);
}

/*
 * A slot to bump again once every writer up to upto has ended here
 * (cache_inval.c: an epoch slot created during recovery).
 */
void
cache_wal_settle_later(int idx, FullTransactionId upto)
{
	int32		slot = idx;

	if (pending != NULL)
		pending_add(upto, &slot, 1);
}

/*
 * Every writer up to upto is to be settled as if the pending list had
 * overflowed (cache_wal_switch.c, when the gate opens): every epoch and
 * the global slot are bumped again once they have all ended.
 */
void
cache_wal_settle_all_later(FullTransactionId upto)
{
	LWLockAcquire(pending->lock, LW_EXCLUSIVE);
	pending->overflow = true;
	pending->overflow_xid = Max(pending->overflow_xid, U64FromFullTransactionId(upto));
	pending_update_count();
	LWLockRelease(pending->lock);
}

/*
 * Replay of XLOG_PERFOPT_CACHE_BUMPS, in the startup process.  Takes the
 * slot lock and the pending lock briefly, one after the other; allocates
 * nothing.  logs: the record says that the primary logs its bumps (every
 * record does; a standby serves its cache only once it has seen one).
 */
void
cache_wal_redo(XLogReaderState *record, bool logs)
{
	xl_cache_bumps *xlrec = (xl_cache_bumps *) XLogRecGetData(record);
	FullTransactionId xid;
	int32		settle[PENDING_SLOTS + 1];
	int			nsettle = 0;
	uint32		i;

	if (XLogRecGetDataLen(record) < offsetof(xl_cache_bumps, slots) ||
		XLogRecGetDataLen(record) < offsetof(xl_cache_bumps, slots) +
		(Size) xlrec->nslots * sizeof(CacheWalSlot))
		elog(PANIC, "perfopt cache bumps record is too short: %u bytes",
			 XLogRecGetDataLen(record));
	if (!cache_store_ready())
		return;
	if (logs)
		cache_wal_replayed_logs();
	if (perfopt_cache_standby_fault == CACHE_STANDBY_FAULT_REDO)
		return;
	xid = FullTransactionIdFromU64(xlrec->xid);
	for (i = 0; i < xlrec->nslots; i++)
	{
		CacheWalSlot *s = &xlrec->slots[i];
		CacheSlotKey key;
		int			idx;

		key.dbid = (s->sub & CACHE_WAL_GLOBAL) ? InvalidOid : xlrec->dbid;
		key.relid = s->relid;
		key.sub = s->sub & ~CACHE_WAL_FLAGS;
		idx = cache_slot_redo_find(&key);
		cache_slot_bump(idx, xid);
		if ((s->sub & CACHE_WAL_SETTLE) && nsettle <= PENDING_SLOTS)
			settle[nsettle++] = idx;
	}
	if (nsettle == 0)
		return;
	if (!FullTransactionIdIsValid(xid))
	{
		/* no writer to wait for: nothing can have read in between */
		for (i = 0; i < nsettle; i++)
			cache_slot_bump(settle[i], InvalidFullTransactionId);
		return;
	}
	pending_add(xid, settle, nsettle);
}

/*
 * The second bump of every pending writer that has ended for this
 * snapshot: below its xmin, it is neither running nor in progress for any
 * later snapshot either.  Entries of a pending list stay until their bumps
 * are done, so a backend that finds none to settle cannot be ahead of one.
 */
void
cache_wal_settle(Snapshot snapshot)
{
	FullTransactionId xmin;
	int			i;

	if (snapshot == NULL || !IsMVCCSnapshot(snapshot) || pending == NULL ||
		perfopt_cache_standby_fault == CACHE_STANDBY_FAULT_SETTLE)
		return;
	xmin = cache_full_xid(snapshot->xmin);
	/* while a writer is still running here, statements pass without the lock */
	if (U64FromFullTransactionId(xmin) <= pg_atomic_read_u64(&pending->oldest))
		return;
	LWLockAcquire(pending->lock, LW_EXCLUSIVE);
	for (i = 0; i < pending->n;)
	{
		PendingBump *p = &pending->items[i];
		int			k;

		if (!FullTransactionIdPrecedes(FullTransactionIdFromU64(p->xid), xmin))
		{
			i++;
			continue;
		}
		for (k = 0; k < p->nslots; k++)
			cache_slot_bump(p->slots[k], InvalidFullTransactionId);
		*p = pending->items[--pending->n];
	}
	if (pending->overflow &&
		FullTransactionIdPrecedes(FullTransactionIdFromU64(pending->overflow_xid), xmin))
	{
		cache_slot_bump_epochs();
		pending->overflow = false;
		pending->overflow_xid = 0;
	}
	pending_update_count();
	LWLockRelease(pending->lock);
}

/* What pg_waldump and friends print of a record. */
void
cache_wal_desc(StringInfo buf, XLogReaderState *record)
{
	xl_cache_bumps *xlrec = (xl_cache_bumps *) XLogRecGetData(record);
	uint32		i;

	if (XLogRecGetDataLen(record) < offsetof(xl_cache_bumps, slots))
		return;
	appendStringInfo(buf, "xid " UINT64_FORMAT "; db %u; %u slots:", xlrec->xid, xlrec->dbid,
					 xlrec->nslots);
	for (i = 0; i < xlrec->nslots && i < 16; i++)
	{
		CacheWalSlot *s = &xlrec->slots[i];

		if (s->sub & CACHE_WAL_GLOBAL)
			appendStringInfoString(buf, " global");
		else
			appendStringInfo(buf, " %u/%d", s->relid, s->sub & ~CACHE_WAL_FLAGS);
		if (s->sub & CACHE_WAL_SETTLE)
			appendStringInfoChar(buf, '*');
	}
	if (i < xlrec->nslots)
		appendStringInfoString(buf, " ...");
}
