/*
 * cache_int.h
 *		What the files of the query-result cache share, and only they.  The
 *		declarations stand under the file that defines them, from the
 *		bottom of the cache up: the store, the table slots and their
 *		invalidation, key bands, rules, statement shapes, stored entries,
 *		their wire text, recomputation flights, the shared decisions, and
 *		stand-in plans; the hooks on top need nothing declared but
 *		cache.h's.
 */
#ifndef PERFOPT_CACHE_INT_H
#define PERFOPT_CACHE_INT_H

#include "access/parallel.h"
#include "access/transam.h"
#include "access/xlog.h"
#include "executor/execdesc.h"
#include "lib/stringinfo.h"
#include "nodes/plannodes.h"
#include "port/atomics.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cache/cache.h"
#include "common/guc.h"
#include "common/nesting.h"

/*
 * Column sets as masks: bit n for attribute n (1..63), and this bit for
 * every column (see cache_read_columns).
 */
#define CACHE_ALL_COLUMNS	UINT64CONST(1)

/*
 * A table's slots in cache_inval.c: the table slot, on which every entry
 * reading the table depends, except entries restricted to one key value
 * (cache_keys.c), which depend on the wide slot and that value's band.
 */
#define CACHE_SLOT_TABLE	0
#define CACHE_SLOT_WIDE		1
#define CACHE_KEY_BANDS		256
#define CACHE_SLOT_BAND(attno, band) (2 + (int32) (attno) * CACHE_KEY_BANDS + (band))

/* keys the store's admission remembers when it is full (cache_store.c) */
#define CACHE_DOOR_SIZE		65536

/*
 * at most this many tables behind one cached statement; an entry depends on
 * up to two slots per table, the global slot and the database's epoch
 */
#define CACHE_MAX_DEPS 32

/*
 * Planner verdict on a statement's shape, kept in high bits of
 * PlannedStmt->jitFlags so that it travels with cached (generic) plans; the
 * executor hook hides them from the executor (see cache_hooks.c).
 */
#define CACHE_SHAPE_CACHEABLE	(1 << 28)	/* read-only, deterministic enough */
#define CACHE_SHAPE_STABLE		(1 << 29)	/* calls stable functions: TTL only */
#define CACHE_SHAPE_SETTINGS	(1 << 26)	/* reads settings by name: all keyed */
#define CACHE_SHAPE_BITS		(CACHE_SHAPE_CACHEABLE | CACHE_SHAPE_STABLE | CACHE_SHAPE_SETTINGS)
#define CACHE_STANDIN_PLAN		(1 << 30)	/* a hit's stand-in plan (cache_standin.c) */
#define CACHE_PLANNED_STANDIN	(1 << 27)	/* ... made by the planner hook */
#define CACHE_STANDIN_BITS		(CACHE_STANDIN_PLAN | CACHE_PLANNED_STANDIN)

/* One table an entry depends on, with the generation it was computed at. */
typedef struct CacheDep
{
	int32		slot;			/* index into the table-slot array */
	uint32		pad;
	uint64		gen;
} CacheDep;

/* A hash table of this backend's, living as long as it does. */
static inline HTAB *
cache_backend_hash(const char *name, Size keysize, Size entrysize, long nelem)
{
	HASHCTL		info;

	info.keysize = keysize;
	info.entrysize = entrysize;
	info.hcxt = TopMemoryContext;
	return hash_create(name, nelem, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* ---- cache_store.c: entries in shared memory ---- */

/* Totals for perfopt.cache_totals. */
typedef struct CacheTotals
{
	int64		hits;
	int64		misses;
	int64		stores;
	int64		store_refused;
	int64		invalidations;
	int64		expirations;
	int64		evictions;
	int64		too_large;
} CacheTotals;

/* Per-statement counters for perfopt.cache_stats. */
typedef struct CacheStmtStats
{
	Oid			dbid;
	uint64		queryid;
	int64		hits;
	int64		misses;
	int64		entries;
	int64		bytes;
	int64		invalidations;
	int64		evictions;
	double		hit_time;		/* ms */
	double		miss_time;		/* ms */
} CacheStmtStats;

/* set once shared memory is attached; inline, asked by every statement */
extern bool cache_store_attached;
static inline bool
cache_store_ready(void)
{
	return cache_store_attached;
}
extern bool cache_store_lookup(Oid dbid, Oid userid, uint64 keyhash,
							   const char *keydata, uint32 keylen,
							   char **blob, uint32 *bloblen);
extern void cache_store_forget(Oid dbid, Oid userid, uint64 keyhash,
							   bool invalid, bool expired, uint64 queryid);
extern bool cache_store_admit(uint64 keyhash);
extern bool cache_store_insert(Oid dbid, Oid userid, uint64 keyhash,
							   uint64 queryid, const char *blob, uint32 bloblen,
							   double miss_ms, bool *counted);
extern void cache_store_count(uint64 queryid, bool hit, double ms);
extern void cache_store_count_refused(void);
extern void cache_store_count_too_large(void);
extern int	cache_store_clear(Oid dbid, int slot);
extern CacheTotals cache_store_totals(int64 *entries, int64 *bytes, int64 *capacity);
extern CacheStmtStats *cache_store_stmt_stats(int *count);

/* ---- cache_inval.c: table slots, this transaction's writes, commit-time bumps ---- */

/*
 * A slot's name, the same on every server of a replication cluster (its
 * index into the slot array is not): a table's slot (sub: CACHE_SLOT_TABLE,
 * _WIDE or _BAND()), a database's epoch (relid InvalidOid), or the global
 * slot 0 (dbid InvalidOid).
 */
typedef struct CacheSlotKey
{
	Oid			dbid;
	Oid			relid;
	int32		sub;
} CacheSlotKey;

extern Size cache_inval_shmem_size(void);
extern void cache_inval_shmem_init(void);
extern void cache_inval_install(void);
extern int	cache_slot_find(Oid dbid, Oid relid, bool create);
extern int	cache_slot_find_sub(Oid dbid, Oid relid, int32 sub, bool create);
extern uint64 cache_slot_gen(int slot);
extern pg_atomic_uint64 *cache_slot_gen_ptr(int slot);
extern bool cache_slot_check_store(int slot, FullTransactionId xmin, uint64 *gen,
								   FullTransactionId *max_xid);
extern void cache_slot_bump(int slot, FullTransactionId xid);
extern int	cache_slot_redo_find(const CacheSlotKey *key);
extern void cache_slot_bump_epochs(void);
extern void cache_slot_bump_all(FullTransactionId upto);
extern bool cache_slot_coverage(int slot, uint64 epoch_gen, uint64 *covered,
								uint64 *keyed);
extern void cache_slot_set_coverage(int slot, uint64 epoch_gen, uint64 covered,
									uint64 keyed);
extern int	cache_epoch_slot(void);
extern void cache_xact_note_write(Oid relid, bool wide, bool rules);
extern void cache_xact_note_key(Oid relid, AttrNumber keycol, int band);
extern bool cache_xact_wrote(Oid relid);
extern bool cache_xact_changed_anything(void);
extern void cache_inval_note_utility(Node *stmt);
extern FullTransactionId cache_full_xid(TransactionId xid);

/* ---- cache_wal.c: the bumps in the WAL, replayed by standbys ---- */
extern Size cache_wal_shmem_size(void);
extern void cache_wal_shmem_init(void);
extern void cache_wal_log_bumps(FullTransactionId xid, const CacheSlotKey *keys,
								const bool *settle, int n);
extern void cache_wal_settle(Snapshot snapshot);
extern void cache_wal_settle_later(int slot, FullTransactionId upto);
extern void cache_wal_settle_all_later(FullTransactionId upto);

/* set at shared memory's creation; read by every statement, hence inline */
extern pg_atomic_uint32 *cache_wal_pending;

/*
 * Are bumps waiting for their writer's commit to become visible here
 * (cache_wal.c)?  Then whoever relies on a reading of the catalog or of the
 * rules per generation settles them first (cache_wal_settle).
 */
static inline bool
cache_wal_has_pending(void)
{
	return unlikely(cache_wal_pending != NULL && pg_atomic_read_u32(cache_wal_pending) != 0);
}

/* ---- cache_wal_switch.c: whether the invalidations go to the WAL ---- */
extern Size cache_wal_switch_shmem_size(void);
extern void cache_wal_switch_shmem_init(void);
extern void cache_wal_before_first_record(void);
extern void cache_wal_log_off(void);
extern void cache_wal_replayed_logs(void);
extern const char *cache_wal_gate_refusal(void);

/* Whether this server's cache may be used (see cache_wal_switch.c). */
typedef enum CacheWalGate
{
	CACHE_WAL_GATE_OPEN = 0,
	CACHE_WAL_GATE_UNKNOWN,		/* a standby that has replayed no record yet */
	CACHE_WAL_GATE_OFF			/* a standby whose primary said it stopped logging */
} CacheWalGate;

/* set at shared memory's creation; read by every statement, hence inline */
extern pg_atomic_uint32 *cache_wal_gate;
extern pg_atomic_uint32 *cache_wal_off_due_flag;

/* Do committing writers log their bumps for standbys? */
static inline bool
cache_wal_logging(void)
{
	return perfopt_cache_standby_wal && XLogStandbyInfoActive();
}

/* Is the gate shut: a standby that must bypass, or a server yet to open it? */
static inline bool
cache_wal_gate_shut(void)
{
	return unlikely(cache_wal_gate == NULL ||
					pg_atomic_read_u32(cache_wal_gate) != CACHE_WAL_GATE_OPEN);
}

/* Must the next committer with an xid write the "off" record? */
static inline bool
cache_wal_off_due(void)
{
	return unlikely(cache_wal_off_due_flag != NULL &&
					pg_atomic_read_u32(cache_wal_off_due_flag) != 0);
}

/* ---- cache_keys.c: results restricted to one key value ---- */
extern Oid	cache_keys_trigger_function(void);
extern int	cache_key_band(Oid type, Datum value);
extern uint64 cache_plan_key_columns(PlannedStmt *stmt, Oid relid);
extern bool cache_plan_key(PlannedStmt *stmt, ParamListInfo params, Oid relid,
						   uint64 keyed, AttrNumber *attno, int *band);

/* ---- cache_rules.c: what the user asked to cache ---- */
extern bool cache_rules_none(void);
extern bool cache_rules_may_exist(void);
extern bool cache_rules_lookup(uint64 queryid, const Oid *relids, int nrels,
							   int64 *ttl_us);
extern Oid	cache_trigger_function(void);
extern uint64 cache_trigger_coverage(Oid relid, uint64 *keyed);
extern uint64 cache_read_columns(List *rtable, Oid relid);
extern const char *cache_relation_refusal(Oid relid);

/* ---- cache_shape.c: which statements may be cached at all ---- */
extern int	cache_shape_of(Query *query, bool *has_params, List **rtes);
extern const char *cache_shape_reason(Query *query, bool have_ttl);

/* ---- cache_entry.c: key material, the stored layout, capturing rows ---- */
typedef struct CacheBlobHeader
{
	uint32		keylen;
	uint32		ntuples;
	uint32		tupdesc_hash;
	uint32		wire_format;	/* rows keep their text (cache_wire.c); 0: not */
	TimestampTz expires;		/* 0: no TTL */
	FullTransactionId max_writer;	/* newest writer the result includes */
} CacheBlobHeader;

typedef struct CacheCapture CacheCapture;

extern bool cache_build_key(uint64 queryid, const char *sourceText, int stmt_location,
							int stmt_len, uint64 consts, ParamListInfo params,
							bool all_settings, StringInfo key);
extern uint64 cache_query_consts(Query *query);
extern void cache_plan_set_consts(PlannedStmt *plan, uint64 consts);
extern bool cache_plan_consts(PlannedStmt *plan, uint64 *consts);
extern void cache_plan_copy_consts(PlannedStmt *from, PlannedStmt *to);
extern uint64 cache_key_hash(const StringInfo key);
extern uint32 cache_tupdesc_hash(TupleDesc desc);
extern bool cache_tlist_shape(List *tlist, uint32 *hash);
extern bool cache_tupdesc_ok(TupleDesc desc);
extern CacheCapture *cache_capture_begin(QueryDesc *queryDesc, Size limit);
extern void cache_capture_end(QueryDesc *queryDesc, CacheCapture *cap);
extern bool cache_capture_overflowed(CacheCapture *cap);
extern char *cache_blob_build(CacheCapture *cap, const CacheDep *deps, int ndeps,
							  const CacheBlobHeader *hdr, const StringInfo key,
							  uint32 *len);
extern bool cache_blob_parse(char *blob, uint32 len, CacheDep **deps, int *ndeps,
							 CacheBlobHeader **hdr, char **key, char **tuples);
extern uint64 cache_blob_send(QueryDesc *queryDesc, const CacheBlobHeader *hdr,
							  char *tuples);
extern uint64 cache_blob_send_some(QueryDesc *queryDesc, uint32 wire_format, char **pos,
								   uint32 *left, uint64 max);

/* ---- cache_wire.c: rows kept as the text a client receives ---- */
typedef struct CacheWire CacheWire;

extern uint32 cache_wire_format(void);
extern CacheWire *cache_wire_begin(QueryDesc *queryDesc, bool spare);
extern void cache_wire_end(CacheWire *w);
extern uint32 cache_wire_format_of(CacheWire *w);
extern void cache_wire_row(CacheWire *w, TupleTableSlot *slot, StringInfo buf);
extern bool cache_wire_usable(QueryDesc *queryDesc, uint32 format);
extern void cache_wire_send(const char *body, uint32 len);

/* ---- cache_flight.c: one session recomputes an invalidated result, others wait ---- */
extern Size cache_flight_shmem_size(void);
extern void cache_flight_shmem_init(void);
extern void cache_flight_install(void);
extern bool cache_flight_take(Oid dbid, Oid userid, uint64 keyhash);
extern bool cache_flight_wait(Oid dbid, Oid userid, uint64 keyhash);
extern void cache_flight_land(void);

/* ---- cache_answer.c: the decisions shared by the hooks and the stand-ins ---- */

/*
 * How deeply the current statement is nested, for the cache: the executor
 * levels of nesting.c, plus utility commands other than EXECUTE and
 * EXPLAIN (cache_hooks.c counts them).  Only level 0 uses the cache, or
 * the level perfopt.cache_warm() runs its statement at.
 */
extern int	cache_utility_level;
#define cache_nesting (perfopt_exec_level + cache_utility_level)
extern int	cache_warm_level;

/* inside EXPLAIN, whose plan must be the real one */
extern int	cache_explaining;

/* what happened to the current top-level statement, and to the one before */
extern const char *cache_last_outcome;
extern const char *cache_prev_outcome;

/* the outcome of a plan the planner hook did not mark, spelled out when read */
extern const char cache_unmarked[];

/* A statement the cache may answer, as examined before running it. */
typedef struct CacheCandidate
{
	Oid			relids[CACHE_MAX_DEPS];
	int			nrels;
	int64		ttl_us;
	StringInfoData key;
	uint64		keyhash;
} CacheCandidate;

/*
 * What rules out the cache for any statement in this backend right now.
 * Inline: every statement asks, through the executor hook, when no rule
 * exists.
 */
static inline const char *
cache_session_refusal(void)
{
	if (perfopt_cache_mode == CACHE_MODE_OFF || !cache_store_ready())
		return "perfopt.cache_mode is off";
	if (cache_nesting != 0 && cache_nesting != cache_warm_level)
		return "not a top-level statement";
	if (IsParallelWorker())
		return "parallel worker";
	if (cache_wal_gate_shut())
		return cache_wal_gate_refusal();
	return NULL;
}

extern const char *cache_outcome_text(const char *outcome);
extern const char *cache_runtime_refusal(QueryDesc *queryDesc, bool records_ok,
										 ScanDirection direction, uint64 count,
										 bool at_start);
extern const char *cache_relation_refusal_of(List *rtable, CacheCandidate *c);
extern bool cache_examine(QueryDesc *queryDesc, bool records_ok, ScanDirection direction,
						  uint64 count, bool at_start, const CacheCandidate *known,
						  CacheCandidate *c);
extern bool cache_blob_answers(CacheCandidate *c, Snapshot snapshot, uint32 tupdesc_hash,
							   char *blob, uint32 len, CacheBlobHeader **hdr,
							   char **tuples, bool *invalid, bool *expired);
extern bool cache_find_answer(CacheCandidate *c, Snapshot snapshot, uint32 tupdesc_hash,
							  uint64 queryid, bool forget, char **blob, uint32 *len,
							  CacheBlobHeader **hdr, char **tuples);
extern int64 cache_plan_bound(PlannedStmt *stmt);

/* ---- cache_standin.c: hits answered by a stand-in plan ---- */
extern void cache_standin_install(void);
extern PlannedStmt *cache_standin_plan(Query *parse, const char *query_string,
									   int cursorOptions, ParamListInfo boundParams,
									   int shape, bool has_params, List *rtes,
									   uint64 consts, bool *looked);
extern void cache_standin_note_miss(PlannedStmt *plan);
extern bool cache_standin_known_miss(PlannedStmt *plan);
extern const CacheCandidate *cache_standin_missed_key(QueryDesc *queryDesc);
extern void cache_standin_start(QueryDesc *queryDesc, int eflags);
extern bool cache_standin_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count);
extern void cache_standin_end(QueryDesc *queryDesc);

#endif							/* PERFOPT_CACHE_INT_H */
