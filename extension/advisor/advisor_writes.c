/*
 * advisor_writes.c
 *		Owns the write rates the advisor weighs an index's upkeep against:
 *		for each table a captured statement scans, the inserts, updates and
 *		deletes counted since the advisor began to capture that table, not
 *		since the statistics were last reset.
 *
 * Why not the table's statistics as they are: they count from the last
 * pg_stat_reset() or crash, so the bulk load that filled a database counts
 * as its write rate for as long as nobody resets them, and a DBA should not
 * have to reset what autovacuum relies on to get advice.  So when a
 * statement that scans a table is first captured, the table's counters are
 * noted here (its baseline); from then on each sample adds what the
 * counters grew by.  A sample is taken whenever a statement on the table is
 * first captured and whenever advice is computed.  When the counters went
 * back (pg_stat_reset(), pg_stat_reset_single_table_counters(), or a
 * restart after a crash, which starts them from zero), what they hold now
 * is what was written since, and is added; only writes between the last
 * sample and the reset are lost.  So the advice is the same whether or not
 * anyone reset statistics, and a load before capture began does not count.
 *
 * Counters are read straight from the shared statistics, without caching
 * them in the caller's transaction (stats_fetch_consistency), so that the
 * user's own reads of pg_stat_* in that transaction see what they would
 * have seen without perfopt.
 *
 * Locking: one LWLock guards the table; a sample holds it exclusively
 * while it looks one entry up and adds to it.  Entries are fixed-size, the
 * table is sized at startup (perfopt.advisor_max_statements entries); once
 * full, a new table has no baseline and its writes count as zero until
 * perfopt.advisor_reset(), which forgets every baseline.  The entries are
 * saved at a clean shutdown and read back at startup, as the statistics
 * themselves are.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "advisor/advisor_writes.h"
#include "common/guc.h"
#include "common/hash_file.h"

#define WRITES_TRANCHE "perfopt_advisor_writes"
#define WRITES_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/perfopt_advisor_writes.stat"
#define WRITES_MAGIC	0x50415752	/* "PAWR" */

typedef struct WritesKey
{
	Oid			dbid;
	Oid			relid;
} WritesKey;

typedef struct WritesEntry
{
	WritesKey	key;			/* hash key: must be first */
	TimestampTz since;			/* capture of the table began */
	TimestampTz reset_seen;		/* the database's statistics reset then */
	AdvisorTableWrites last;	/* the counters at the last sample */
	AdvisorTableWrites counted; /* written since capture began */
} WritesEntry;

typedef struct WritesShared
{
	LWLock	   *lock;
} WritesShared;

static WritesShared *writes = NULL;
static HTAB *writes_hash = NULL;

Size
advisor_writes_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(WritesShared)),
					hash_estimate_size(perfopt_advisor_max_statements,
									   sizeof(WritesEntry)));
}

void
advisor_writes_request_lock(void)
{
	RequestNamedLWLockTranche(WRITES_TRANCHE, 1);
}

/* Called under AddinShmemInitLock. */
void
advisor_writes_shmem_init(void)
{
	bool		found;
	HASHCTL		info;

	writes = ShmemInitStruct("perfopt advisor writes", sizeof(WritesShared), &found);
	if (!found)
		writes->lock = &(GetNamedLWLockTranche(WRITES_TRANCHE))->lock;
	info.keysize = sizeof(WritesKey);
	info.entrysize = sizeof(WritesEntry);
	writes_hash = ShmemInitHash("perfopt advisor writes hash",
								perfopt_advisor_max_statements,
								perfopt_advisor_max_statements,
								&info, HASH_ELEM | HASH_BLOBS);
}

/*
 * The table's counters and its database's reset time, read from the shared
 * statistics without leaving a copy in the transaction's snapshot.
 */
static void
read_counters(Oid relid, AdvisorTableWrites *now, TimestampTz *reset)
{
	int			saved = pgstat_fetch_consistency;
	PgStat_StatTabEntry *t;
	PgStat_StatDBEntry *db;

	pgstat_fetch_consistency = PGSTAT_FETCH_CONSISTENCY_NONE;
	PG_TRY();
	{
		t = pgstat_fetch_stat_tabentry(relid);
		db = pgstat_fetch_stat_dbentry(MyDatabaseId);
	}
	PG_FINALLY();
	{
		pgstat_fetch_consistency = saved;
	}
	PG_END_TRY();
	memset(now, 0, sizeof(*now));
	if (t)
	{
		now->writes = t->tuples_inserted + t->tuples_updated + t->tuples_deleted;
		now->updates = t->tuples_updated;
		now->hot_updates = t->tuples_hot_updated;
	}
	*reset = db ? db->stat_reset_timestamp : 0;
}

/* What the counters grew by since the last sample (all of them after a reset). */
static void
add_sample(WritesEntry *e, const AdvisorTableWrites *now, TimestampTz reset)
{
	bool		restarted = reset != e->reset_seen || now->writes < e->last.writes ||
		now->updates < e->last.updates || now->hot_updates < e->last.hot_updates;

	e->counted.writes += now->writes - (restarted ? 0 : e->last.writes);
	e->counted.updates += now->updates - (restarted ? 0 : e->last.updates);
	e->counted.hot_updates += now->hot_updates - (restarted ? 0 : e->last.hot_updates);
	e->last = *now;
	e->reset_seen = reset;
}

/*
 * Sample the table, beginning its count when it has none (begin) ; false
 * when it has no entry and none could be made.
 */
static bool
sample(Oid relid, bool begin, AdvisorTableWrites *counted, TimestampTz *since)
{
	WritesKey	key;
	WritesEntry *e;
	AdvisorTableWrites now;
	TimestampTz reset;
	bool		found;

	if (writes == NULL || writes_hash == NULL)
		return false;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = relid;
	read_counters(relid, &now, &reset);
	LWLockAcquire(writes->lock, LW_EXCLUSIVE);
	e = hash_search(writes_hash, &key, begin ? HASH_ENTER_NULL : HASH_FIND, &found);
	if (e && !found)
	{
		e->since = GetCurrentTimestamp();
		e->reset_seen = reset;
		e->last = now;
		memset(&e->counted, 0, sizeof(e->counted));
	}
	else if (e)
		add_sample(e, &now, reset);
	if (e)
	{
		if (counted)
			*counted = e->counted;
		if (since)
			*since = e->since;
	}
	LWLockRelease(writes->lock);
	return e != NULL;
}

/* A statement scanning the table was captured: its count begins, or goes on. */
void
advisor_writes_note_table(Oid relid)
{
	(void) sample(relid, true, NULL, NULL);
}

/*
 * The table's writes since capture of it began, and how long ago that was.
 * A table no captured statement scans begins its count now (zero writes).
 */
void
advisor_writes_counted(Oid relid, AdvisorTableWrites *counted, double *window_us)
{
	TimestampTz since;

	memset(counted, 0, sizeof(*counted));
	*window_us = 0;
	if (sample(relid, true, counted, &since))
		*window_us = (double) (GetCurrentTimestamp() - since);
}

/* perfopt.advisor_reset(): every count begins again. */
void
advisor_writes_reset(void)
{
	HASH_SEQ_STATUS seq;
	WritesEntry *e;

	if (writes == NULL || writes_hash == NULL)
		return;
	LWLockAcquire(writes->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, writes_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		hash_search(writes_hash, &e->key, HASH_REMOVE, NULL);
	LWLockRelease(writes->lock);
}

/* Called in the postmaster at a clean shutdown: no backend is left. */
void
advisor_writes_save(void)
{
	if (perfopt_save && writes_hash != NULL)
		hash_file_save(writes_hash, sizeof(WritesEntry), WRITES_MAGIC, WRITES_FILE);
}

/* Called in the postmaster at startup, before any backend. */
void
advisor_writes_load(void)
{
	if (writes_hash != NULL)
		hash_file_load(writes_hash, sizeof(WritesEntry), WRITES_MAGIC, WRITES_FILE, NULL);
}
