/*
 * cache_inval.c
 *		Owns what makes the result cache never stale: one slot per table in
 *		shared memory with a generation counter and the largest transaction
 *		id of a writer that reached commit, the writes this transaction
 *		made (noted by the triggers of cache_triggers.c), and the
 *		commit-time bumps.  The protocol, correct under READ COMMITTED,
 *		where a statement's snapshot is taken before the cache's hooks run
 *		and so may predate a write that commits before its result is
 *		stored:
 *
 *		- the trigger only remembers the table in this transaction;
 *		- at PRE_COMMIT (before the commit becomes visible) and again at
 *		  COMMIT, every remembered table gets max_xid = max(max_xid, my xid)
 *		  and gen++; an abort does nothing.  PREPARE TRANSACTION bumps at
 *		  PRE_PREPARE, as its COMMIT PREPARED runs in another session (its
 *		  xid stays running until then, so the next rule still holds);
 *		- a result computed under snapshot S is stored only if every table
 *		  it read has max_xid < S.xmin (cache_slot_check_store), remembering
 *		  each gen: any writer that could be invisible to S has an xid at or
 *		  above S.xmin, so this refuses exactly the risky stores;
 *		- it is served while every gen is unchanged.
 *
 *		The bump after the commit must not fail (it is too late to abort),
 *		so it takes no lock and allocates nothing: slots are found or
 *		created at PRE_COMMIT.
 *
 *		A table has more slots than its own (cache_int.h): a result
 *		restricted to one key value of the table (WHERE game_id = 7, see
 *		cache_keys.c) depends on the slot of that value's band and on the
 *		table's wide slot instead of the table slot.  Every write bumps the
 *		table slot; a write whose rows the key trigger saw bumps the bands
 *		of the keys they had; on a table with a key trigger, any other write
 *		(TRUNCATE, the key trigger disabled) bumps the wide slot.
 *
 *		DDL (any utility statement that may change what a statement means)
 *		bumps the database's epoch slot, on which every entry depends, the
 *		same way.  So do writes this backend cannot attribute to a table:
 *		logical replication apply (which fires no statement triggers) and
 *		COMMIT PREPARED of a transaction prepared elsewhere.
 *
 *		Why bump twice?  The max_xid rule alone refuses every store that
 *		could miss a writer, and an entry is served only to snapshots that
 *		see every writer it includes (cache_blob_answers), so entries need
 *		the first bump only.  What needs the second is what a backend reads
 *		once per generation and keeps: the rules (cache_rules.c) and which
 *		columns the triggers watch (cache_slot_coverage), read with a fresh
 *		snapshot.  Read between the two bumps, they miss the committing
 *		DDL or rule change; the bump after the commit makes them be read
 *		again.
 *
 *		Standbys replay the bumps from the WAL (cache_wal.c): the first in
 *		the record written at PRE_COMMIT, the second once the commit is
 *		visible there.  Only while perfopt.cache_standby_wal is on; a
 *		server restarted with it off writes, at the first commit with an
 *		xid, the record that tells standbys to stop serving their cache
 *		(cache_wal_switch.c).
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "replication/logicalworker.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "cache/cache_int.h"

/*
 * slots of tables, their key bands and per-database epochs perfopt can
 * track; never shrinks (about 60 bytes each)
 */
#define CACHE_MAX_SLOTS 32768
/* tables one transaction can remember writing before it bumps its epoch */
#define CACHE_MAX_WRITTEN 64

typedef CacheSlotKey SlotKey;

typedef struct SlotHashEntry
{
	SlotKey		key;
	int32		idx;
} SlotHashEntry;

/*
 * Atomics rather than a spinlock: every committing writer of a cached table
 * touches its slot, and on two oversubscribed cores a spinlock holder gets
 * preempted.  Writers raise max_xid before bumping gen; readers read gen
 * before max_xid (cache_slot_check_store), so a reader that sees a writer's
 * bump also sees its xid.
 */
typedef struct TableSlot
{
	pg_atomic_uint64 gen;
	pg_atomic_uint64 max_xid;	/* a FullTransactionId */
} TableSlot;

typedef struct InvalShared
{
	LWLock	   *lock;			/* protects the hash and nslots */
	int32		nslots;
	TableSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} InvalShared;

static InvalShared *inval = NULL;
static HTAB *slot_hash = NULL;

static int	slot_create(const SlotKey *key);

/*
 * This transaction's writes, noted by the triggers: the statement trigger
 * notes the table; the row trigger (perfopt_cache_note_keys, where a rule
 * restricts the table to key values) notes which key bands its rows had.
 * A write whose rows were not all seen by the row trigger is "wide".
 */
#define CACHE_MAX_KEYCOLS 4

typedef struct WrittenTable
{
	Oid			relid;
	bool		wide;
	bool		rules;			/* perfopt's rules table */
	int			nkeycols;
	AttrNumber	keycol[CACHE_MAX_KEYCOLS];
	uint64		bands[CACHE_MAX_KEYCOLS][CACHE_KEY_BANDS / 64];	/* bit b: band b written */
} WrittenTable;

static WrittenTable written[CACHE_MAX_WRITTEN];
static int	nwritten = 0;
static bool written_overflow = false;
static bool did_ddl = false;

/*
 * Slots bumped at PRE_COMMIT, bumped again at COMMIT without any lookup.
 * A transaction with more falls back to the global slot 0.  Their names
 * go into the WAL for standbys, with whether a standby must bump them
 * again once the commit is visible there (the epoch and the rules table's
 * slot: see the opening comment).
 */
#define CACHE_MAX_BUMPS 1024
static int32 bumped[CACHE_MAX_BUMPS];
static CacheSlotKey bumped_keys[CACHE_MAX_BUMPS];
static bool bumped_settle[CACHE_MAX_BUMPS];
static int	nbumped = 0;
static FullTransactionId bump_xid;

Size
cache_inval_shmem_size(void)
{
	Size		size = offsetof(InvalShared, slots);

	size = add_size(size, mul_size(CACHE_MAX_SLOTS, sizeof(TableSlot)));
	size = add_size(size, hash_estimate_size(CACHE_MAX_SLOTS, sizeof(SlotHashEntry)));
	return size;
}

/* Called with AddinShmemInitLock held, after cache_store_shmem_init. */
void
cache_inval_shmem_init(void)
{
	bool		found;
	HASHCTL		info;

	inval = ShmemInitStruct("perfopt cache slots",
							offsetof(InvalShared, slots) +
							CACHE_MAX_SLOTS * sizeof(TableSlot), &found);
	if (!found)
	{
		inval->lock = &(GetNamedLWLockTranche("perfopt_cache"))[1].lock;
		/* slot 0: the global slot, bumped when nothing finer is possible */
		inval->nslots = 1;
		pg_atomic_init_u64(&inval->slots[0].gen, 1);
		pg_atomic_init_u64(&inval->slots[0].max_xid,
						   U64FromFullTransactionId(FirstNormalFullTransactionId));
	}
	info.keysize = sizeof(SlotKey);
	info.entrysize = sizeof(SlotHashEntry);
	slot_hash = ShmemInitHash("perfopt cache slot hash", CACHE_MAX_SLOTS,
							  CACHE_MAX_SLOTS, &info, HASH_ELEM | HASH_BLOBS);
}

/*
 * A FullTransactionId for an xid of a running snapshot: such an xid is less
 * than 2^31 transactions behind the next one.
 */
FullTransactionId
cache_full_xid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32		behind = XidFromFullTransactionId(next) - xid;

	return FullTransactionIdFromU64(U64FromFullTransactionId(next) - behind);
}

static HTAB *local_slots = NULL;

static int
remember_slot(SlotKey *key, int idx)
{
	SlotHashEntry *entry;
	bool		found;

	if (idx >= 0)
	{
		entry = hash_search(local_slots, key, HASH_ENTER_NULL, &found);
		if (entry)
			entry->idx = idx;
	}
	return idx;
}

/*
 * The slot of a table (or, with InvalidOid, of a database's epoch); -1 when
 * it does not exist and create is false, or there is no room.  A new slot
 * cannot know which writers committed before it existed, so it starts with
 * max_xid = the last xid assigned so far: results computed under a snapshot
 * that might miss one of them are refused.
 */
int
cache_slot_find(Oid dbid, Oid relid, bool create)
{
	return cache_slot_find_sub(dbid, relid, CACHE_SLOT_TABLE, create);
}

/* The same for one of a table's other slots (cache_int.h). */
int
cache_slot_find_sub(Oid dbid, Oid relid, int32 sub, bool create)
{
	SlotKey		key;
	SlotHashEntry *entry;
	int			idx = -1;

	if (!inval)
		return -1;
	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.relid = relid;
	key.sub = sub;

	/* slots never move nor go away: remember them in this backend */
	if (local_slots == NULL)
		local_slots = cache_backend_hash("perfopt cache slots seen", sizeof(SlotKey),
								   sizeof(SlotHashEntry), 256);
	entry = hash_search(local_slots, &key, HASH_FIND, NULL);
	if (entry)
		return entry->idx;

	LWLockAcquire(inval->lock, LW_SHARED);
	entry = hash_search(slot_hash, &key, HASH_FIND, NULL);
	if (entry)
		idx = entry->idx;
	LWLockRelease(inval->lock);
	if (idx >= 0 || !create)
		return remember_slot(&key, idx);

	return remember_slot(&key, slot_create(&key));
}

/*
 * A database's epoch slot created during recovery: DDL that was running
 * when the standby started had its record replayed before, or not at all,
 * so nothing would bump the epoch when its commit becomes visible, and a
 * coverage read meanwhile would be kept (cache_wal.c settles it instead).
 */
static void
created_during_recovery(const SlotKey *key, int idx)
{
	if (key->relid != InvalidOid || !RecoveryInProgress())
		return;
	cache_wal_settle_later(idx, FullTransactionIdFromU64(
		pg_atomic_read_u64(&inval->slots[idx].max_xid)));
}

/*
 * Find or create a slot under the exclusive lock; -1 when there is no room.
 * Allocates nothing: the shared hash has its room already, and the
 * startup process replaying the WAL comes here too (cache_wal.c).  An
 * epoch slot created during recovery is settled once every writer up to
 * its creation has ended.
 */
static int
slot_create(const SlotKey *key)
{
	SlotHashEntry *entry;
	bool		found;
	int			idx = -1;
	bool		made = false;

	LWLockAcquire(inval->lock, LW_EXCLUSIVE);
	entry = hash_search(slot_hash, key, HASH_FIND, NULL);
	if (entry)
		idx = entry->idx;
	else if (inval->nslots < CACHE_MAX_SLOTS &&
			 (entry = hash_search(slot_hash, key, HASH_ENTER_NULL, &found)) != NULL)
	{
		TableSlot  *slot;
		FullTransactionId next = ReadNextFullTransactionId();

		idx = inval->nslots++;
		slot = &inval->slots[idx];
		pg_atomic_init_u64(&slot->gen, 1);
		pg_atomic_init_u64(&slot->max_xid, U64FromFullTransactionId(next) - 1);
		pg_write_barrier();		/* initialized before others can find it */
		entry->idx = idx;
		made = true;
	}
	LWLockRelease(inval->lock);
	if (made)
		created_during_recovery(key, idx);
	return idx;
}

/*
 * The slot a replayed bump names (cache_wal.c), created if need be; the
 * global slot when there is no room, which invalidates every entry.
 */
int
cache_slot_redo_find(const CacheSlotKey *key)
{
	int			idx;

	if (!inval || key->dbid == InvalidOid)
		return 0;
	idx = slot_create(key);
	return idx < 0 ? 0 : idx;
}

/*
 * Bump every slot, raising its max_xid to upto (cache_wal_switch.c, when a
 * cache that was not maintained becomes usable): every entry is dropped,
 * and results that could miss a writer up to upto are refused, as by
 * slots created now.
 */
void
cache_slot_bump_all(FullTransactionId upto)
{
	int32		n;
	int32		idx;

	LWLockAcquire(inval->lock, LW_SHARED);
	n = inval->nslots;
	LWLockRelease(inval->lock);
	for (idx = 0; idx < n; idx++)
		cache_slot_bump(idx, upto);
}

/*
 * Bump the global slot and every database's epoch, so that every entry and
 * every reading kept per generation is dropped (cache_wal.c, when it cannot
 * remember which bumps to settle).
 */
void
cache_slot_bump_epochs(void)
{
	HASH_SEQ_STATUS status;
	SlotHashEntry *entry;

	cache_slot_bump(0, InvalidFullTransactionId);
	LWLockAcquire(inval->lock, LW_SHARED);
	hash_seq_init(&status, slot_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->key.relid == InvalidOid)
			cache_slot_bump(entry->idx, InvalidFullTransactionId);
	LWLockRelease(inval->lock);
}

int
cache_epoch_slot(void)
{
	return cache_slot_find(MyDatabaseId, InvalidOid, true);
}

uint64
cache_slot_gen(int idx)
{
	return pg_atomic_read_u64(&inval->slots[idx].gen);
}

/* Where a slot's generation lives: slots never move nor change tables. */
pg_atomic_uint64 *
cache_slot_gen_ptr(int idx)
{
	return &inval->slots[idx].gen;
}

/*
 * May a result computed under a snapshot with this xmin be stored as
 * current?  Only if every writer that reached commit is older than xmin,
 * i.e. visible to the snapshot.
 */
bool
cache_slot_check_store(int idx, FullTransactionId xmin, uint64 *gen,
					   FullTransactionId *max_xid)
{
	TableSlot  *slot = &inval->slots[idx];

	*gen = pg_atomic_read_u64(&slot->gen);
	pg_memory_barrier();
	*max_xid = FullTransactionIdFromU64(pg_atomic_read_u64(&slot->max_xid));
	return FullTransactionIdPrecedes(*max_xid, xmin);
}

/*
 * What the table's invalidation triggers watch (cache_trigger_coverage:
 * columns and key columns), as this backend last read it from the catalog,
 * per DDL epoch: changing a trigger is DDL, so a reading at the current
 * epoch is still true.  Kept per backend: a shared copy would need the
 * epoch and the masks to change together.
 */
typedef struct CoverageEntry
{
	int32		slot;
	uint64		epoch_gen;
	uint64		covered;
	uint64		keyed;
} CoverageEntry;

static HTAB *coverage_seen = NULL;

bool
cache_slot_coverage(int idx, uint64 epoch_gen, uint64 *covered, uint64 *keyed)
{
	CoverageEntry *entry;

	if (coverage_seen == NULL)
		return false;
	entry = hash_search(coverage_seen, &idx, HASH_FIND, NULL);
	if (entry == NULL || entry->epoch_gen != epoch_gen)
		return false;
	*covered = entry->covered;
	*keyed = entry->keyed;
	return true;
}

void
cache_slot_set_coverage(int idx, uint64 epoch_gen, uint64 covered, uint64 keyed)
{
	CoverageEntry *entry;

	if (coverage_seen == NULL)
		coverage_seen = cache_backend_hash("perfopt cache trigger coverage", sizeof(int32),
									 sizeof(CoverageEntry), 64);
	entry = hash_search(coverage_seen, &idx, HASH_ENTER, NULL);
	entry->epoch_gen = epoch_gen;
	entry->covered = covered;
	entry->keyed = keyed;
}

/*
 * Only atomics: also runs after the commit, where nothing may fail, and in
 * the startup process replaying the WAL.
 */
void
cache_slot_bump(int idx, FullTransactionId xid)
{
	TableSlot  *slot = &inval->slots[idx];

	if (FullTransactionIdIsValid(xid))
	{
		uint64		cur = pg_atomic_read_u64(&slot->max_xid);
		uint64		mine = U64FromFullTransactionId(xid);

		while (cur < mine && !pg_atomic_compare_exchange_u64(&slot->max_xid, &cur, mine))
			;
	}
	pg_atomic_fetch_add_u64(&slot->gen, 1);	/* a full barrier */
}

static WrittenTable *
written_table(Oid relid)
{
	int			i;

	for (i = 0; i < nwritten; i++)
		if (written[i].relid == relid)
			return &written[i];
	if (nwritten == CACHE_MAX_WRITTEN)
	{
		written_overflow = true;
		return NULL;
	}
	memset(&written[nwritten], 0, sizeof(WrittenTable));
	written[nwritten].relid = relid;
	return &written[nwritten++];
}

/*
 * A write the invalidation trigger saw (cache_triggers.c); rules: to
 * perfopt's rules table.
 */
void
cache_xact_note_write(Oid relid, bool wide, bool rules)
{
	WrittenTable *w = written_table(relid);

	if (w && wide)
		w->wide = true;
	if (w && rules)
		w->rules = true;
}

/* A key band a row had, as the key trigger saw it (cache_triggers.c). */
void
cache_xact_note_key(Oid relid, AttrNumber keycol, int band)
{
	WrittenTable *w = written_table(relid);
	int			i;

	if (w == NULL)
		return;
	for (i = 0; i < w->nkeycols; i++)
		if (w->keycol[i] == keycol)
			break;
	if (i == w->nkeycols)
	{
		if (w->nkeycols == CACHE_MAX_KEYCOLS)
		{
			w->wide = true;
			return;
		}
		w->keycol[w->nkeycols++] = keycol;
	}
	w->bands[i][band / 64] |= UINT64CONST(1) << (band % 64);
}

bool
cache_xact_wrote(Oid relid)
{
	int			i;

	if (written_overflow || did_ddl)
		return true;
	for (i = 0; i < nwritten; i++)
		if (written[i].relid == relid)
			return true;
	return false;
}

/*
 * Has this transaction written a table that carries the trigger, or run
 * DDL?  Then it stores nothing.  (An xid alone, e.g. from LOCK or FOR
 * UPDATE, changes no answer; writes to tables without the trigger cannot
 * matter, as nothing that reads such a table is ever stored.)
 */
bool
cache_xact_changed_anything(void)
{
	return nwritten > 0 || written_overflow || did_ddl;
}

/*
 * Utility statements that cannot change what a cached statement returns;
 * every other one counts as DDL and invalidates the database's entries
 * when it commits.  TRUNCATE and COPY fire the triggers themselves.
 */
static bool
utility_is_harmless(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_TransactionStmt:
			return ((TransactionStmt *) stmt)->kind != TRANS_STMT_COMMIT_PREPARED;
		case T_VariableSetStmt:
		case T_VariableShowStmt:
		case T_PrepareStmt:
		case T_ExecuteStmt:
		case T_DeallocateStmt:
		case T_DeclareCursorStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
		case T_ExplainStmt:
		case T_CopyStmt:
		case T_TruncateStmt:
		case T_NotifyStmt:
		case T_ListenStmt:
		case T_UnlistenStmt:
		case T_CheckPointStmt:
		case T_DiscardStmt:
		case T_LockStmt:
		case T_VacuumStmt:
		case T_ConstraintsSetStmt:
		case T_CallStmt:
		case T_DoStmt:
		case T_LoadStmt:
		case T_ClusterStmt:
		case T_ReindexStmt:
			return true;
		default:
			return false;
	}
}

/* Called for every utility statement, at any nesting level. */
void
cache_inval_note_utility(Node *stmt)
{
	if (!utility_is_harmless(stmt))
		did_ddl = true;
}


/*
 * One slot to bump, by name: relid InvalidOid is the database's epoch; the
 * global slot when there is no room for it (it invalidates everything).
 */
static void
add_bump(Oid relid, int32 sub, bool settle)
{
	int			idx = cache_slot_find_sub(MyDatabaseId, relid, sub, true);
	int			i;

	if (idx < 0)
		idx = 0;				/* no room for a slot: bump everything */
	for (i = 0; i < nbumped; i++)
		if (bumped[i] == idx)
		{
			bumped_settle[i] |= settle;
			return;
		}
	if (nbumped == CACHE_MAX_BUMPS - 1)
		idx = 0;				/* keep the last place for the global slot */
	if (nbumped == CACHE_MAX_BUMPS)
		return;					/* the global slot is in: it covers all */
	memset(&bumped_keys[nbumped], 0, sizeof(CacheSlotKey));
	if (idx != 0)
	{
		bumped_keys[nbumped].dbid = MyDatabaseId;
		bumped_keys[nbumped].relid = relid;
		bumped_keys[nbumped].sub = sub;
	}
	bumped_settle[nbumped] = settle || idx == 0;
	bumped[nbumped++] = idx;
}

/*
 * A written table's slots: the table slot (unkeyed entries), and either the
 * wide slot or the slot of every key band its rows had (keyed entries).
 */
static void
add_table_bumps(WrittenTable *w)
{
	int			k;
	int			band;

	add_bump(w->relid, CACHE_SLOT_TABLE, w->rules);
	if (w->wide)
	{
		add_bump(w->relid, CACHE_SLOT_WIDE, false);
		return;
	}
	for (k = 0; k < w->nkeycols; k++)
		for (band = 0; band < CACHE_KEY_BANDS; band++)
			if (w->bands[k][band / 64] & (UINT64CONST(1) << (band % 64)))
				add_bump(w->relid, CACHE_SLOT_BAND(w->keycol[k], band), false);
}

/* PRE_COMMIT / PRE_PREPARE: may still fail, so find or create slots here. */
static void
bump_before_commit(void)
{
	bool		epoch = did_ddl || written_overflow;
	int			i;

	/* the common case, every commit of a transaction that changed nothing */
	if (nwritten == 0 && !epoch && !IsLogicalWorker())
		return;
	bump_xid = GetTopFullTransactionIdIfAny();

	/* Apply workers fire no statement triggers: blame the whole database. */
	if (IsLogicalWorker() && FullTransactionIdIsValid(bump_xid))
		epoch = true;
	if (nwritten == 0 && !epoch)
		return;

	nbumped = 0;
	for (i = 0; i < nwritten; i++)
		add_table_bumps(&written[i]);
	if (epoch)
		add_bump(InvalidOid, CACHE_SLOT_TABLE, true);

	/*
	 * Standbys replay what a transaction with an xid bumps: it is running
	 * there from this record until its commit record.  Without an xid
	 * nothing was written that a standby could see.
	 */
	if (FullTransactionIdIsValid(bump_xid) && cache_wal_logging() &&
		!RecoveryInProgress())
		cache_wal_log_bumps(bump_xid, bumped_keys, bumped_settle, nbumped);
	for (i = 0; i < nbumped; i++)
		cache_slot_bump(bumped[i], bump_xid);
}

static void
reset_xact_state(void)
{
	nwritten = 0;
	written_overflow = false;
	did_ddl = false;
	nbumped = 0;
	bump_xid = InvalidFullTransactionId;
}

static void
cache_xact_callback(XactEvent event, void *arg)
{
	int			i;

	if (!inval)
		return;

	/* the first commit with an xid since a restart that stopped the logging */
	if (cache_wal_off_due() &&
		(event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE))
		cache_wal_log_off();

	/*
	 * Most transactions wrote no table with a trigger and ran no DDL: there
	 * is nothing to bump nor to reset, whatever the event.  A logical
	 * replication apply worker always takes the long way (see
	 * bump_before_commit).
	 */
	if (nwritten == 0 && nbumped == 0 && !did_ddl && !written_overflow &&
		!FullTransactionIdIsValid(bump_xid) && !IsLogicalWorker())
		return;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			bump_before_commit();
			break;
		case XACT_EVENT_COMMIT:
			/*
			 * Again, now that the commit is visible: every entry whose
			 * generations were read before then is invalid, whichever
			 * snapshot computed it.
			 */
			for (i = 0; i < nbumped; i++)
				cache_slot_bump(bumped[i], bump_xid);
			reset_xact_state();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared writer stays running: stores are refused until it ends */
			reset_xact_state();
			break;
		default:
			break;
	}
}

void
cache_inval_install(void)
{
	RegisterXactCallback(cache_xact_callback, NULL);
}
