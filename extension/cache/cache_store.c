/*
 * cache_store.c
 *		Owns the cached results in shared memory: a fixed arena of chunks
 *		sized by perfopt.cache_size at startup, entries chained through it,
 *		a hash from key to entry, eviction by a clock sweep (an LRU
 *		approximation that lets hits take only a shared lock), and the
 *		hit/miss counters behind perfopt.cache_stats.
 *
 *		An entry's blob is opaque here; cache_entry.c lays it out (the
 *		tables it depends on, the key material, the rows).  Validity is
 *		decided by the caller from the blob; this file only stores, finds,
 *		evicts and forgets.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"

#include "cache/cache_int.h"

#define CHUNK_SIZE 512
#define CACHE_MAX_STMTS 4096

typedef struct EntryKey
{
	Oid			dbid;
	Oid			userid;
	uint64		hash;
} EntryKey;

typedef struct EntryHashEntry
{
	EntryKey	key;
	int32		idx;
} EntryHashEntry;

typedef struct CacheEntry
{
	EntryKey	key;
	uint64		queryid;
	int32		first_chunk;
	int32		nchunks;
	uint32		len;
	bool		in_use;
	volatile bool used;			/* clock bit, set by hits */
} CacheEntry;

typedef struct StmtHashEntry
{
	struct
	{
		Oid			dbid;
		uint64		queryid;
	}			key;
	/* atomics: every hit of a popular statement updates them */
	pg_atomic_uint64 hits;
	pg_atomic_uint64 misses;
	pg_atomic_uint64 entries;
	pg_atomic_uint64 bytes;
	pg_atomic_uint64 invalidations;
	pg_atomic_uint64 evictions;
	pg_atomic_uint64 hit_ns;
	pg_atomic_uint64 miss_ns;
} StmtHashEntry;

/* The totals, also atomics (see above). */
typedef struct AtomicTotals
{
	pg_atomic_uint64 hits;
	pg_atomic_uint64 misses;
	pg_atomic_uint64 stores;
	pg_atomic_uint64 store_refused;
	pg_atomic_uint64 invalidations;
	pg_atomic_uint64 expirations;
	pg_atomic_uint64 evictions;
	pg_atomic_uint64 too_large;
} AtomicTotals;

typedef struct StoreShared
{
	LWLock	   *lock;
	AtomicTotals totals;
	int32		nchunks;
	int32		free_chunk;		/* head of the free chunk list */
	int32		nfree;
	int32		max_entries;
	int32		free_entry;		/* head of the free entry list */
	int32		nentries;
	int64		bytes;
	int32		clock_hand;

	/*
	 * Admission under pressure: while storing a result means evicting one
	 * (full), a result is stored only the second time its key misses
	 * within the doorkeeper's memory, so that statements that never repeat
	 * (every one distinct) cost neither a copy of their rows nor someone
	 * else's entry.  door[] holds a tag of each key seen, by its hash.
	 */
	pg_atomic_uint32 full;
	pg_atomic_uint32 door[CACHE_DOOR_SIZE];
} StoreShared;

static StoreShared *store = NULL;
bool		cache_store_attached = false;
static int32 *chunk_next = NULL;
static char *chunk_data = NULL;
static CacheEntry *entries = NULL;
static int32 *entry_next = NULL;
static HTAB *entry_hash = NULL;
static HTAB *stmt_hash = NULL;

static int32
store_nchunks(void)
{
	return (int32) Max((int64) perfopt_cache_size * 1024 / CHUNK_SIZE, 16);
}

static int32
store_max_entries(void)
{
	return Max(store_nchunks() / 2, 8);
}

Size
cache_store_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(StoreShared));
	int32		nchunks = store_nchunks();
	int32		maxent = store_max_entries();

	size = add_size(size, MAXALIGN(mul_size(nchunks, sizeof(int32))));
	size = add_size(size, mul_size(nchunks, CHUNK_SIZE));
	size = add_size(size, MAXALIGN(mul_size(maxent, sizeof(CacheEntry))));
	size = add_size(size, MAXALIGN(mul_size(maxent, sizeof(int32))));
	size = add_size(size, hash_estimate_size(maxent, sizeof(EntryHashEntry)));
	size = add_size(size, hash_estimate_size(CACHE_MAX_STMTS, sizeof(StmtHashEntry)));
	size = add_size(size, cache_flight_shmem_size());
	size = add_size(size, cache_wal_shmem_size());
	return add_size(size, cache_inval_shmem_size());
}

void
cache_store_request_lock(void)
{
	/*
	 * the store, the table slots, the standby's pending bumps (cache_wal.c),
	 * the WAL switch (cache_wal_switch.c)
	 */
	RequestNamedLWLockTranche("perfopt_cache", 4);
}

/*
 * An entry's bucket: its key's hash (cache_key_hash, over key material that
 * holds the database and the roles) is well mixed already, so folding it
 * is enough; every lookup and store computes this.
 */
static uint32
entry_key_hash(const void *key, Size keysize)
{
	const EntryKey *k = (const EntryKey *) key;
	uint64		h = k->hash ^ (((uint64) k->dbid << 32 | k->userid) * UINT64CONST(0x9E3779B97F4A7C15));

	return (uint32) (h ^ (h >> 32));
}

/* Called with AddinShmemInitLock held. */
void
cache_store_shmem_init(void)
{
	bool		found;
	HASHCTL		info;
	int32		nchunks = store_nchunks();
	int32		maxent = store_max_entries();
	char	   *p;
	Size		size;
	int32		i;

	size = MAXALIGN(sizeof(StoreShared)) +
		MAXALIGN(nchunks * sizeof(int32)) + (Size) nchunks * CHUNK_SIZE +
		MAXALIGN(maxent * sizeof(CacheEntry)) + MAXALIGN(maxent * sizeof(int32));
	p = ShmemInitStruct("perfopt cache store", size, &found);
	store = (StoreShared *) p;
	p += MAXALIGN(sizeof(StoreShared));
	chunk_next = (int32 *) p;
	p += MAXALIGN(nchunks * sizeof(int32));
	chunk_data = p;
	p += (Size) nchunks * CHUNK_SIZE;
	entries = (CacheEntry *) p;
	p += MAXALIGN(maxent * sizeof(CacheEntry));
	entry_next = (int32 *) p;

	if (!found)
	{
		store->lock = &(GetNamedLWLockTranche("perfopt_cache"))[0].lock;
		pg_atomic_init_u64(&store->totals.hits, 0);
		pg_atomic_init_u64(&store->totals.misses, 0);
		pg_atomic_init_u64(&store->totals.stores, 0);
		pg_atomic_init_u64(&store->totals.store_refused, 0);
		pg_atomic_init_u64(&store->totals.invalidations, 0);
		pg_atomic_init_u64(&store->totals.expirations, 0);
		pg_atomic_init_u64(&store->totals.evictions, 0);
		pg_atomic_init_u64(&store->totals.too_large, 0);
		store->nchunks = nchunks;
		store->max_entries = maxent;
		for (i = 0; i < nchunks; i++)
			chunk_next[i] = i + 1 < nchunks ? i + 1 : -1;
		store->free_chunk = 0;
		store->nfree = nchunks;
		for (i = 0; i < maxent; i++)
		{
			entries[i].in_use = false;
			entry_next[i] = i + 1 < maxent ? i + 1 : -1;
		}
		store->free_entry = 0;
		store->nentries = 0;
		store->bytes = 0;
		store->clock_hand = 0;
		pg_atomic_init_u32(&store->full, 0);
		for (i = 0; i < CACHE_DOOR_SIZE; i++)
			pg_atomic_init_u32(&store->door[i], 0);
	}

	info.keysize = sizeof(EntryKey);
	info.entrysize = sizeof(EntryHashEntry);
	info.hash = entry_key_hash;
	entry_hash = ShmemInitHash("perfopt cache entries", maxent, maxent,
							   &info, HASH_ELEM | HASH_FUNCTION);
	info.hash = NULL;
	info.keysize = sizeof(((StmtHashEntry *) 0)->key);
	info.entrysize = sizeof(StmtHashEntry);
	stmt_hash = ShmemInitHash("perfopt cache statements", CACHE_MAX_STMTS,
							  CACHE_MAX_STMTS, &info, HASH_ELEM | HASH_BLOBS);
	cache_inval_shmem_init();
	cache_flight_shmem_init();
	cache_wal_shmem_init();
	cache_store_attached = true;
}


#define add_total(field, n) pg_atomic_fetch_add_u64(&store->totals.field, (n))

/*
 * The statement's counters found last by this backend: entries of
 * stmt_hash never move nor go away, and a statement run over and over
 * counts every execution.
 */
static StmtHashEntry *last_stmt = NULL;

static inline StmtHashEntry *
stmt_entry_known(Oid dbid, uint64 queryid)
{
	StmtHashEntry *s = last_stmt;

	return s && s->key.queryid == queryid && s->key.dbid == dbid ? s : NULL;
}

/* The statement's counters; created under the exclusive lock only. */
static StmtHashEntry *
stmt_entry(Oid dbid, uint64 queryid, bool create)
{
	StmtHashEntry probe;
	StmtHashEntry *s;
	bool		found;

	if ((s = stmt_entry_known(dbid, queryid)) != NULL)
		return s;

	memset(&probe.key, 0, sizeof(probe.key));
	probe.key.dbid = dbid;
	probe.key.queryid = queryid;
	if (create && hash_get_num_entries(stmt_hash) >= CACHE_MAX_STMTS)
		create = false;			/* full: the totals still count */
	s = hash_search(stmt_hash, &probe.key, create ? HASH_ENTER_NULL : HASH_FIND, &found);
	if (s && create && !found)
	{
		pg_atomic_init_u64(&s->hits, 0);
		pg_atomic_init_u64(&s->misses, 0);
		pg_atomic_init_u64(&s->entries, 0);
		pg_atomic_init_u64(&s->bytes, 0);
		pg_atomic_init_u64(&s->invalidations, 0);
		pg_atomic_init_u64(&s->evictions, 0);
		pg_atomic_init_u64(&s->hit_ns, 0);
		pg_atomic_init_u64(&s->miss_ns, 0);
	}
	if (s)
		last_stmt = s;
	return s;
}

/* The first n bytes of an entry's blob (all of it: e->len). */
static void
copy_out(const CacheEntry *e, char *dst, uint32 n_wanted)
{
	int32		c = e->first_chunk;
	uint32		left = Min(e->len, n_wanted);

	while (left > 0)
	{
		uint32		n = Min(left, CHUNK_SIZE);

		memcpy(dst, chunk_data + (Size) c * CHUNK_SIZE, n);
		dst += n;
		left -= n;
		c = chunk_next[c];
	}
}

/* Exclusive lock held. */
static void
entry_free(int32 idx, bool evicted, bool invalid)
{
	CacheEntry *e = &entries[idx];
	int32		c = e->first_chunk;
	StmtHashEntry *s;

	while (c >= 0)
	{
		int32		next = chunk_next[c];

		chunk_next[c] = store->free_chunk;
		store->free_chunk = c;
		store->nfree++;
		c = next;
	}
	hash_search(entry_hash, &e->key, HASH_REMOVE, NULL);
	s = stmt_entry(e->key.dbid, e->queryid, false);
	if (s)
	{
		pg_atomic_fetch_sub_u64(&s->entries, 1);
		pg_atomic_fetch_sub_u64(&s->bytes, e->len);
		if (evicted)
			pg_atomic_fetch_add_u64(&s->evictions, 1);
		if (invalid)
			pg_atomic_fetch_add_u64(&s->invalidations, 1);
	}
	store->nentries--;
	store->bytes -= e->len;
	e->in_use = false;
	entry_next[idx] = store->free_entry;
	store->free_entry = idx;
	if (evicted)
		add_total(evictions, 1);
}

/*
 * Clock sweep: entries hit since the hand last passed get a second chance.
 * Exclusive lock held.  False when nothing is left to evict.
 */
static bool
evict_one(void)
{
	int32		tries;

	for (tries = 0; tries < 2 * store->max_entries + 1; tries++)
	{
		int32		i = store->clock_hand;
		CacheEntry *e = &entries[i];

		store->clock_hand = (i + 1) % store->max_entries;
		if (!e->in_use)
			continue;
		if (e->used)
		{
			e->used = false;
			continue;
		}
		entry_free(i, true, false);
		return true;
	}
	return false;
}

/*
 * Copy the blob stored under this key into palloc'd memory; the caller
 * checks it.  Only a shared lock: hits proceed in parallel.
 */
bool
cache_store_lookup(Oid dbid, Oid userid, uint64 keyhash,
				   const char *keydata, uint32 keylen,
				   char **blob, uint32 *bloblen)
{
	EntryKey	key;
	EntryHashEntry *h;
	bool		found = false;

	key.dbid = dbid;
	key.userid = userid;
	key.hash = keyhash;
	LWLockAcquire(store->lock, LW_SHARED);
	h = hash_search(entry_hash, &key, HASH_FIND, NULL);
	if (h)
	{
		CacheEntry *e = &entries[h->idx];

		*blob = palloc(e->len);
		*bloblen = e->len;
		copy_out(e, *blob, e->len);
		e->used = true;
		found = true;
	}
	LWLockRelease(store->lock);
	return found;
}

/* Drop the entry under this key: it turned out invalid or expired. */
void
cache_store_forget(Oid dbid, Oid userid, uint64 keyhash, bool invalid,
				   bool expired, uint64 queryid)
{
	EntryKey	key;
	EntryHashEntry *h;

	key.dbid = dbid;
	key.userid = userid;
	key.hash = keyhash;
	LWLockAcquire(store->lock, LW_EXCLUSIVE);
	h = hash_search(entry_hash, &key, HASH_FIND, NULL);
	if (h)
		entry_free(h->idx, false, invalid);
	LWLockRelease(store->lock);
	if (invalid)
		add_total(invalidations, 1);
	if (expired)
		add_total(expirations, 1);
}

/*
 * Store a blob, replacing whatever had the same key and evicting under
 * pressure.  False if it does not fit at all.
 */
/*
 * May the result of this miss be stored?  Always while the store has room;
 * when it is full, only if the key missed before (see StoreShared).  No
 * lock: a lost race only stores one entry more or less.
 */
bool
cache_store_admit(uint64 keyhash)
{
	pg_atomic_uint32 *slot;
	uint32		tag = (uint32) (keyhash >> 32) | 1;

	if (pg_atomic_read_u32(&store->full) == 0)
		return true;
	slot = &store->door[keyhash % CACHE_DOOR_SIZE];
	if (pg_atomic_read_u32(slot) == tag)
		return true;
	pg_atomic_write_u32(slot, tag);
	return false;
}

/*
 * Store the blob of a miss that ran for miss_ms; the miss is counted here
 * too, under the lock the store takes anyway, and *counted says so (when
 * false the caller counts it with cache_store_count).
 */
bool
cache_store_insert(Oid dbid, Oid userid, uint64 keyhash, uint64 queryid,
				   const char *blob, uint32 bloblen, double miss_ms, bool *counted)
{
	EntryKey	key;
	EntryHashEntry *h;
	int32		need = (bloblen + CHUNK_SIZE - 1) / CHUNK_SIZE;
	int32		idx;
	int32		prev = -1;
	int32		i;
	CacheEntry *e;
	bool		found;
	StmtHashEntry *s;
	uint32		hashvalue;

	*counted = false;
	if (need > store->nchunks / 2 || need == 0)
		return false;
	key.dbid = dbid;
	key.userid = userid;
	key.hash = keyhash;
	hashvalue = get_hash_value(entry_hash, &key);

	LWLockAcquire(store->lock, LW_EXCLUSIVE);
	h = hash_search_with_hash_value(entry_hash, &key, hashvalue, HASH_FIND, NULL);
	if (h)
		entry_free(h->idx, false, false);
	pg_atomic_write_u32(&store->full, store->nfree < need || store->free_entry < 0);
	while ((store->nfree < need || store->free_entry < 0) && evict_one())
		;
	if (store->nfree < need || store->free_entry < 0)
	{
		LWLockRelease(store->lock);
		return false;
	}
	/* the table is sized for every entry; still, a full one refuses the store */
	h = hash_search_with_hash_value(entry_hash, &key, hashvalue, HASH_ENTER_NULL, &found);
	if (h == NULL)
	{
		LWLockRelease(store->lock);
		return false;
	}

	idx = store->free_entry;
	store->free_entry = entry_next[idx];
	e = &entries[idx];
	e->key = key;
	e->queryid = queryid;
	e->len = bloblen;
	e->nchunks = need;
	e->first_chunk = -1;
	for (i = 0; i < need; i++)
	{
		int32		c = store->free_chunk;
		uint32		off = (uint32) i * CHUNK_SIZE;

		store->free_chunk = chunk_next[c];
		store->nfree--;
		chunk_next[c] = -1;
		memcpy(chunk_data + (Size) c * CHUNK_SIZE, blob + off,
			   Min(CHUNK_SIZE, bloblen - off));
		if (prev < 0)
			e->first_chunk = c;
		else
			chunk_next[prev] = c;
		prev = c;
	}
	e->used = false;
	e->in_use = true;
	h->idx = idx;
	store->nentries++;
	store->bytes += bloblen;
	s = stmt_entry(dbid, queryid, true);
	if (s)
	{
		pg_atomic_fetch_add_u64(&s->entries, 1);
		pg_atomic_fetch_add_u64(&s->bytes, bloblen);
		pg_atomic_fetch_add_u64(&s->misses, 1);
		pg_atomic_fetch_add_u64(&s->miss_ns, (uint64) (miss_ms * 1000000.0));
	}
	LWLockRelease(store->lock);
	add_total(stores, 1);
	add_total(misses, 1);
	*counted = true;
	return true;
}

/* One hit or miss of a statement, with its time in ms. */
void
cache_store_count(uint64 queryid, bool hit, double ms)
{
	StmtHashEntry *s;
	bool		locked = false;

	if (hit)
		add_total(hits, 1);
	else
		add_total(misses, 1);

	/* counters are atomics: the lock only guards the hash's lookup */
	s = stmt_entry_known(MyDatabaseId, queryid);
	if (!s)
	{
		LWLockAcquire(store->lock, LW_SHARED);
		s = stmt_entry(MyDatabaseId, queryid, false);
		if (!s)
		{
			LWLockRelease(store->lock);
			LWLockAcquire(store->lock, LW_EXCLUSIVE);
			s = stmt_entry(MyDatabaseId, queryid, true);
		}
		locked = true;
	}
	if (s)
	{
		uint64		ns = (uint64) (ms * 1000000.0);

		if (hit)
		{
			pg_atomic_fetch_add_u64(&s->hits, 1);
			pg_atomic_fetch_add_u64(&s->hit_ns, ns);
		}
		else
		{
			pg_atomic_fetch_add_u64(&s->misses, 1);
			pg_atomic_fetch_add_u64(&s->miss_ns, ns);
		}
	}
	if (locked)
		LWLockRelease(store->lock);
}

void
cache_store_count_refused(void)
{
	add_total(store_refused, 1);
}

void
cache_store_count_too_large(void)
{
	add_total(too_large, 1);
}

/*
 * Remove the entries of a database (InvalidOid: of every database) that
 * depend on a table slot (-1: all of them).  The first int32 of a blob is
 * its number of dependencies, followed by CacheDep records.
 */
int
cache_store_clear(Oid dbid, int slot)
{
	int32		i;
	int			removed = 0;

	LWLockAcquire(store->lock, LW_EXCLUSIVE);
	for (i = 0; i < store->max_entries; i++)
	{
		CacheEntry *e = &entries[i];
		bool		match;

		if (!e->in_use || (OidIsValid(dbid) && e->key.dbid != dbid))
			continue;
		match = (slot < 0);
		if (!match)
		{
			/* only the dependencies, at the blob's start (cache_entry.c) */
			char		blob[MAXALIGN(sizeof(int32)) + (2 * CACHE_MAX_DEPS + 2) * sizeof(CacheDep)];
			int32		ndeps;
			int32		d;

			copy_out(e, blob, sizeof(blob));
			memcpy(&ndeps, blob, sizeof(int32));
			ndeps = Min(ndeps, 2 * CACHE_MAX_DEPS + 2);
			for (d = 0; d < ndeps && !match; d++)
			{
				CacheDep	dep;

				memcpy(&dep, blob + MAXALIGN(sizeof(int32)) + d * sizeof(CacheDep),
					   sizeof(CacheDep));
				match = (dep.slot == slot);
			}
		}
		if (match)
		{
			entry_free(i, false, false);
			removed++;
		}
	}
	if (removed > 0)
		pg_atomic_write_u32(&store->full, 0);	/* there is room again */
	LWLockRelease(store->lock);
	return removed;
}

CacheTotals
cache_store_totals(int64 *nentries, int64 *bytes, int64 *capacity)
{
	CacheTotals t;

	LWLockAcquire(store->lock, LW_SHARED);
	*nentries = store->nentries;
	*bytes = store->bytes;
	*capacity = (int64) store->nchunks * CHUNK_SIZE;
	LWLockRelease(store->lock);
	t.hits = pg_atomic_read_u64(&store->totals.hits);
	t.misses = pg_atomic_read_u64(&store->totals.misses);
	t.stores = pg_atomic_read_u64(&store->totals.stores);
	t.store_refused = pg_atomic_read_u64(&store->totals.store_refused);
	t.invalidations = pg_atomic_read_u64(&store->totals.invalidations);
	t.expirations = pg_atomic_read_u64(&store->totals.expirations);
	t.evictions = pg_atomic_read_u64(&store->totals.evictions);
	t.too_large = pg_atomic_read_u64(&store->totals.too_large);
	return t;
}

/* A consistent copy of every statement's counters, for the views. */
CacheStmtStats *
cache_store_stmt_stats(int *count)
{
	HASH_SEQ_STATUS seq;
	StmtHashEntry *s;
	CacheStmtStats *out;
	int			n = 0;

	LWLockAcquire(store->lock, LW_SHARED);
	out = palloc(sizeof(CacheStmtStats) * Max(hash_get_num_entries(stmt_hash), 1));
	hash_seq_init(&seq, stmt_hash);
	while ((s = hash_seq_search(&seq)) != NULL)
	{
		CacheStmtStats *o = &out[n++];

		o->dbid = s->key.dbid;
		o->queryid = s->key.queryid;
		o->hits = pg_atomic_read_u64(&s->hits);
		o->misses = pg_atomic_read_u64(&s->misses);
		o->entries = pg_atomic_read_u64(&s->entries);
		o->bytes = pg_atomic_read_u64(&s->bytes);
		o->invalidations = pg_atomic_read_u64(&s->invalidations);
		o->evictions = pg_atomic_read_u64(&s->evictions);
		o->hit_time = pg_atomic_read_u64(&s->hit_ns) / 1000000.0;
		o->miss_time = pg_atomic_read_u64(&s->miss_ns) / 1000000.0;
	}
	LWLockRelease(store->lock);
	*count = n;
	return out;
}
