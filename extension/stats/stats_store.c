/*
 * stats_store.c
 *		Owns perfopt's per-statement statistics in shared memory: the hash
 *		table of counters keyed by (user, database, queryid), the arena that
 *		holds the statement texts, and eviction of the least used statements
 *		once perfopt.max_statements is reached.
 *
 * Locking, as in pg_stat_statements: the hash table's LWLock is taken shared
 * to find an entry and exclusive only to add or evict one; each entry's
 * counters are guarded by its own spinlock, so concurrent executions of
 * different statements never wait for each other.
 *
 * Texts live in one fixed-size arena rather than in the entries, because
 * their lengths vary by three orders of magnitude.  New texts are appended;
 * when the arena is full, the live texts are compacted to its front.
 *
 * Nothing here may fail the statement being recorded (common/bookkeeping.c):
 * what runs under the exclusive lock cannot raise an error (the hash is
 * entered with HASH_ENTER_NULL, the work arrays of eviction and compaction
 * are allocated without raising on failure, and without them nothing is
 * evicted or compacted); a statement's text is made before the lock is
 * taken, under bookkeeping_try, since normalizing it runs the SQL lexer.  A
 * row that cannot be made is skipped and counted.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "common/bookkeeping.h"
#include "common/guc.h"
#include "stats/normalize.h"
#include "stats/stats_store.h"

#define STATS_TRANCHE "perfopt_stats"
/* average text bytes budgeted per statement */
#define TEXT_BYTES_PER_STATEMENT 2048
#define USAGE_DECAY 0.99
#define EVICT_FRACTION 0.05
#define EVICT_MIN 10

typedef struct StatsEntry
{
	StatsKey	key;			/* hash key: must be first */
	StatsCounters counters;
	Size		text_offset;
	int			text_len;
	slock_t		mutex;			/* protects counters */
} StatsEntry;

typedef struct StatsShared
{
	LWLock	   *lock;			/* protects the hash table and text arena */
	slock_t		mutex;			/* protects evictions and stats_reset */
	int64		evictions;
	TimestampTz stats_reset;
	pg_atomic_uint64 generation;	/* bumped whenever entries are removed */
	pg_atomic_uint64 bookkeeping_skipped;	/* see common/bookkeeping.c */
	Size		text_size;
	Size		text_used;
	char		text[FLEXIBLE_ARRAY_MEMBER];
} StatsShared;

static StatsShared *shared = NULL;
static HTAB *stats_hash = NULL;
bool		stats_store_attached = false;

/*
 * The row this backend added to last, so that a statement run again and
 * again (the common case) skips hashing its key and probing the shared
 * table.  The pointer stays good while no row has been removed: removals
 * happen only under the exclusive lock and move shared->generation, which
 * is compared under the shared lock before the pointer is used (dynahash
 * never moves an element while it lives).
 */
static StatsEntry *last_entry = NULL;
static StatsKey last_key;
static uint64 last_generation;

/*
 * Statements this backend knows to have a row, so that parse analysis of a
 * statement seen before costs no shared lock.  A direct-mapped set keyed by
 * queryid; it is forgotten whenever the shared generation moves (an
 * eviction or a reset may have removed any row).
 */
#define KNOWN_SLOTS 1024
static StatsKey known[KNOWN_SLOTS];
static uint64 known_generation = PG_UINT64_MAX;

static inline StatsKey *
known_slot(const StatsKey *key)
{
	return &known[key->queryid & (KNOWN_SLOTS - 1)];
}

static bool
known_to_exist(const StatsKey *key)
{
	uint64		generation = pg_atomic_read_u64(&shared->generation);
	const StatsKey *slot;

	if (generation != known_generation)
	{
		memset(known, 0, sizeof(known));
		known_generation = generation;
		return false;
	}
	slot = known_slot(key);
	return slot->queryid == key->queryid && slot->userid == key->userid &&
		slot->dbid == key->dbid;
}

static void
remember_exists(const StatsKey *key)
{
	*known_slot(key) = *key;
}

static Size
text_arena_size(void)
{
	return Max((Size) perfopt_max_statements * TEXT_BYTES_PER_STATEMENT,
			   (Size) 1024 * 1024);
}

Size
stats_store_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(offsetof(StatsShared, text) + text_arena_size());
	size = add_size(size, hash_estimate_size(perfopt_max_statements,
											 sizeof(StatsEntry)));
	return size;
}

void
stats_store_shmem_init(void)
{
	bool		found;
	HASHCTL		info;

	shared = ShmemInitStruct("perfopt stats",
							 offsetof(StatsShared, text) + text_arena_size(),
							 &found);
	if (!found)
	{
		shared->lock = &(GetNamedLWLockTranche(STATS_TRANCHE))->lock;
		SpinLockInit(&shared->mutex);
		shared->evictions = 0;
		shared->stats_reset = GetCurrentTimestamp();
		shared->text_size = text_arena_size();
		shared->text_used = 0;
		pg_atomic_init_u64(&shared->generation, 0);
		pg_atomic_init_u64(&shared->bookkeeping_skipped, 0);
	}
	bookkeeping_attach_counter(&shared->bookkeeping_skipped);

	info.keysize = sizeof(StatsKey);
	info.entrysize = sizeof(StatsEntry);
	stats_hash = ShmemInitHash("perfopt stats hash",
							   perfopt_max_statements, perfopt_max_statements,
							   &info, HASH_ELEM | HASH_BLOBS);
	stats_store_attached = true;
}

void
stats_store_request_lock(void)
{
	RequestNamedLWLockTranche(STATS_TRANCHE, 1);
}


/*
 * An array for every entry, under the exclusive lock: NULL when it cannot
 * be had (max_statements can ask for more than palloc's 1 GB).
 */
static StatsEntry **
entry_array(void)
{
	return palloc_extended(sizeof(StatsEntry *) * Max(hash_get_num_entries(stats_hash), 1),
						   MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static int
compare_text_offset(const void *a, const void *b)
{
	Size		oa = (*(StatsEntry *const *) a)->text_offset;
	Size		ob = (*(StatsEntry *const *) b)->text_offset;

	return (oa > ob) - (oa < ob);
}

/*
 * Move every live text to the front of the arena, in arena order so each
 * move is to a lower address.  Caller holds the lock exclusively.
 */
static void
compact_texts(void)
{
	HASH_SEQ_STATUS seq;
	StatsEntry **entries;
	StatsEntry *entry;
	long		n = 0;
	Size		used = 0;

	if ((entries = entry_array()) == NULL)
		return;
	hash_seq_init(&seq, stats_hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
		entries[n++] = entry;
	qsort(entries, n, sizeof(StatsEntry *), compare_text_offset);
	for (long i = 0; i < n; i++)
	{
		memmove(shared->text + used, shared->text + entries[i]->text_offset,
				entries[i]->text_len + 1);
		entries[i]->text_offset = used;
		used += entries[i]->text_len + 1;
	}
	shared->text_used = used;
	pfree(entries);
}

static int
compare_usage(const void *a, const void *b)
{
	double		ua = (*(StatsEntry *const *) a)->counters.usage;
	double		ub = (*(StatsEntry *const *) b)->counters.usage;

	return (ua > ub) - (ua < ub);
}

/*
 * Drop the least used statements: a twentieth of them, at least ten.  Every
 * survivor's usage decays, so statements that stop running eventually make
 * way for new ones.  Caller holds the lock exclusively.
 */
static void
evict_least_used(void)
{
	HASH_SEQ_STATUS seq;
	StatsEntry **entries;
	StatsEntry *entry;
	long		n = 0;
	long		victims;

	if ((entries = entry_array()) == NULL)
		return;
	hash_seq_init(&seq, stats_hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		entries[n++] = entry;
		entry->counters.usage *= USAGE_DECAY;
	}
	qsort(entries, n, sizeof(StatsEntry *), compare_usage);
	victims = Min(n, Max(EVICT_MIN, (long) (n * EVICT_FRACTION)));
	for (long i = 0; i < victims; i++)
		hash_search(stats_hash, &entries[i]->key, HASH_REMOVE, NULL);
	pfree(entries);

	SpinLockAcquire(&shared->mutex);
	shared->evictions += victims;
	SpinLockRelease(&shared->mutex);
	pg_atomic_fetch_add_u64(&shared->generation, 1);
}

/*
 * Room for a text of len bytes (plus its terminator) in the arena, making
 * room by compaction and then by eviction.  Returns how many bytes of the
 * text fit, which is len unless the arena is hopelessly small.
 */
static int
reserve_text(int len, Size *offset)
{
	if (shared->text_used + len + 1 > shared->text_size)
		compact_texts();
	if (shared->text_used + len + 1 > shared->text_size)
	{
		evict_least_used();
		compact_texts();
	}
	if (shared->text_used + len + 1 > shared->text_size)
		len = (int) Max((Size) 0, shared->text_size - shared->text_used - 1);
	*offset = shared->text_used;
	shared->text_used += len + 1;
	return len;
}

/*
 * Caller holds the lock exclusively.  NULL when shared memory has no room
 * for the row (eviction could not run).
 */
static StatsEntry *
create_entry(const StatsKey *key, const char *text, int len)
{
	StatsEntry *entry;
	bool		found;
	Size		offset;

	entry = hash_search(stats_hash, key, HASH_FIND, NULL);
	if (entry)
		return entry;
	if (hash_get_num_entries(stats_hash) >= perfopt_max_statements)
		evict_least_used();

	/* a text reserved in vain is reclaimed by the next compaction */
	len = reserve_text(len, &offset);
	entry = hash_search(stats_hash, key, HASH_ENTER_NULL, &found);
	if (entry == NULL)
		return NULL;
	Assert(!found);
	memcpy(shared->text + offset, text, len);
	shared->text[offset + len] = '\0';

	memset(&entry->counters, 0, sizeof(StatsCounters));
	entry->counters.usage = 1.0;
	entry->counters.first_seen = GetCurrentStatementStartTimestamp();
	entry->counters.last_seen = entry->counters.first_seen;
	entry->text_offset = offset;
	entry->text_len = len;
	SpinLockInit(&entry->mutex);
	return entry;
}

static inline void
make_key(StatsKey *key, uint64 queryid)
{
	memset(key, 0, sizeof(StatsKey));
	key->userid = GetUserId();
	key->dbid = MyDatabaseId;
	key->queryid = queryid;
}

/* A new row's text, made under bookkeeping_try. */
typedef struct RowText
{
	const char *source;
	int			location;
	int			length;
	JumbleState *jstate;		/* NULL: the text as written */
	char	   *text;			/* the result, in CurrentMemoryContext */
	int			len;
} RowText;

static void
make_row_text(void *arg)
{
	RowText    *t = (RowText *) arg;
	char	   *text;
	int			len;

	if (t->jstate)
		text = normalize_query_text(t->source, t->location, t->length, t->jstate, &len);
	else
	{
		/* clipped as it is copied: a huge statement is not copied whole */
		len = t->length;
		text = unconstify(char *, CleanQuerytext(t->source, &t->location, &len));
	}
	t->text = clip_text(text, len, perfopt_max_query_length, &t->len);
}

/*
 * Create key's row with the text t describes (or find the one another
 * backend just made).  Returns it with the lock held exclusively, or NULL,
 * counted, when the text or the row cannot be made.
 */
static StatsEntry *
create_row(const StatsKey *key, RowText *t)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "perfopt statement text",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	StatsEntry *entry = NULL;

	if (bookkeeping_try(BOOKKEEPING_STATS, make_row_text, t))
	{
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		entry = create_entry(key, t->text, t->len);
		if (entry == NULL)
			LWLockRelease(shared->lock);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	if (entry == NULL && t->text != NULL)
		bookkeeping_skip(BOOKKEEPING_STATS, "no shared memory left for a new statement");
	return entry;
}

/*
 * Create the statement's row with its normalized text, at parse analysis,
 * the only time the constants' locations are known.  Executions are added
 * by stats_store_record.
 */
void
stats_store_prepare_text(uint64 queryid, const char *source, int location,
						 int length, JumbleState *jstate)
{
	StatsKey	key;
	RowText		t = {0};
	bool		exists;

	make_key(&key, queryid);
	if (known_to_exist(&key))
		return;
	LWLockAcquire(shared->lock, LW_SHARED);
	exists = hash_search(stats_hash, &key, HASH_FIND, NULL) != NULL;
	LWLockRelease(shared->lock);
	if (exists)
	{
		remember_exists(&key);
		return;
	}

	location = Max(location, 0);
	(void) CleanQuerytext(source, &location, &length);
	t.source = source;
	t.location = location;
	t.length = length;
	t.jstate = jstate;
	if (create_row(&key, &t) == NULL)
		return;
	LWLockRelease(shared->lock);
	remember_exists(&key);
}

static void
add_sample(StatsCounters *c, const StatsSample *s, TimestampTz started)
{
	if (s->calls > 0)
	{
		if (c->calls == 0 || s->exec_ms < c->min_exec_time)
			c->min_exec_time = s->exec_ms;
		if (c->calls == 0 || s->exec_ms > c->max_exec_time)
			c->max_exec_time = s->exec_ms;
		c->calls += s->calls;
		c->total_exec_time += s->exec_ms;
		c->rows += s->rows;
		c->usage += 1.0;
		histogram_add(&c->latency, s->exec_ms);
		/* sessions finish out of order: keep the seen range widening */
		c->first_seen = Min(c->first_seen, started);
		c->last_seen = Max(c->last_seen, started);
	}
	c->plans += s->plans;
	c->total_plan_time += s->plan_ms;
	c->cache_hits += s->cache_hits;
	c->cache_misses += s->cache_misses;
	if (s->bufusage)
	{
		c->shared_blks_hit += s->bufusage->shared_blks_hit;
		c->shared_blks_read += s->bufusage->shared_blks_read;
		c->temp_blks_written += s->bufusage->temp_blks_written;
	}
}

/*
 * Add one execution or planning to the statement's row, creating the row
 * (with the text as written) if parse analysis did not.  Without a source
 * text, a missing row is not created and the sample is dropped.
 */
void
stats_store_record(uint64 queryid, const char *source, int location,
				   int length, const StatsSample *sample)
{
	StatsKey	key;
	StatsEntry *entry;
	TimestampTz started = GetCurrentStatementStartTimestamp();

	make_key(&key, queryid);
	LWLockAcquire(shared->lock, LW_SHARED);
	if (last_entry != NULL &&
		last_key.queryid == key.queryid && last_key.userid == key.userid &&
		last_key.dbid == key.dbid &&
		pg_atomic_read_u64(&shared->generation) == last_generation)
		entry = last_entry;
	else
		entry = hash_search(stats_hash, &key, HASH_FIND, NULL);
	if (!entry && source == NULL)
	{
		LWLockRelease(shared->lock);
		return;
	}
	if (!entry)
	{
		RowText		t = {source, Max(location, 0), length, NULL, NULL, 0};

		LWLockRelease(shared->lock);
		if ((entry = create_row(&key, &t)) == NULL)
			return;
	}
	/* the generation cannot move while any lock on the table is held */
	last_entry = entry;
	last_key = key;
	last_generation = pg_atomic_read_u64(&shared->generation);
	SpinLockAcquire(&entry->mutex);
	add_sample(&entry->counters, sample, started);
	SpinLockRelease(&entry->mutex);
	LWLockRelease(shared->lock);
}

/* Count a result-cache hit or miss on an existing row; never creates one. */
void
stats_store_count_cache(uint64 queryid, bool hit)
{
	StatsKey	key;
	StatsEntry *entry;

	make_key(&key, queryid);
	LWLockAcquire(shared->lock, LW_SHARED);
	entry = hash_search(stats_hash, &key, HASH_FIND, NULL);
	if (entry)
	{
		SpinLockAcquire(&entry->mutex);
		if (hit)
			entry->counters.cache_hits++;
		else
			entry->counters.cache_misses++;
		SpinLockRelease(&entry->mutex);
	}
	LWLockRelease(shared->lock);
}

/* A consistent copy of every row, for the views. */
StatsSnapshot *
stats_store_snapshot(int *count)
{
	HASH_SEQ_STATUS seq;
	StatsEntry *entry;
	StatsSnapshot *rows;
	int			n = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	rows = palloc(sizeof(StatsSnapshot) * Max(hash_get_num_entries(stats_hash), 1));
	hash_seq_init(&seq, stats_hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		rows[n].key = entry->key;
		SpinLockAcquire(&entry->mutex);
		rows[n].counters = entry->counters;
		SpinLockRelease(&entry->mutex);
		rows[n].query = pnstrdup(shared->text + entry->text_offset, entry->text_len);
		n++;
	}
	LWLockRelease(shared->lock);
	*count = n;
	return rows;
}

void
stats_store_info(int64 *evictions, TimestampTz *stats_reset)
{
	SpinLockAcquire(&shared->mutex);
	*evictions = shared->evictions;
	*stats_reset = shared->stats_reset;
	SpinLockRelease(&shared->mutex);
}

/* Statements whose bookkeeping was skipped (common/bookkeeping.c). */
int64
stats_store_bookkeeping_skipped(void)
{
	return (int64) pg_atomic_read_u64(&shared->bookkeeping_skipped);
}

void
stats_store_reset(void)
{
	HASH_SEQ_STATUS seq;
	StatsEntry *entry;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, stats_hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
		hash_search(stats_hash, &entry->key, HASH_REMOVE, NULL);
	shared->text_used = 0;
	pg_atomic_fetch_add_u64(&shared->generation, 1);
	SpinLockAcquire(&shared->mutex);
	shared->evictions = 0;
	shared->stats_reset = GetCurrentTimestamp();
	SpinLockRelease(&shared->mutex);
	pg_atomic_write_u64(&shared->bookkeeping_skipped, 0);
	LWLockRelease(shared->lock);
}

/*
 * Persistence.  These run only in the postmaster, at startup before any
 * backend exists or at shutdown after all have exited: nothing can race
 * them, and the postmaster has no PGPROC to wait on a lock with.
 */
void
stats_store_visit(stats_entry_visitor visitor, void *arg)
{
	HASH_SEQ_STATUS seq;
	StatsEntry *entry;

	Assert(!IsUnderPostmaster);
	hash_seq_init(&seq, stats_hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
		visitor(&entry->key, &entry->counters,
				shared->text + entry->text_offset, entry->text_len, arg);
}

void
stats_store_restore(const StatsKey *key, const StatsCounters *counters,
					const char *query, int query_len)
{
	StatsEntry *entry;

	Assert(!IsUnderPostmaster);
	entry = create_entry(key, query, Min(query_len, perfopt_max_query_length));
	if (entry)
		entry->counters = *counters;
}

void
stats_store_restore_info(int64 evictions, TimestampTz stats_reset)
{
	SpinLockAcquire(&shared->mutex);
	shared->evictions = evictions;
	shared->stats_reset = stats_reset;
	SpinLockRelease(&shared->mutex);
}
