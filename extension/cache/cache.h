/*
 * cache.h
 *		What the rest of perfopt sees of the query-result cache: its hooks
 *		(cache_hooks.c), its shared memory (cache_store.c, which also
 *		sizes and creates the table slots and the recomputation flights),
 *		and the replay of its WAL records (cache_wal.c, cache_wal_switch.c).
 *		Everything else the cache's files share is in cache_int.h.
 */
#ifndef PERFOPT_CACHE_H
#define PERFOPT_CACHE_H

/* cache_hooks.c */
extern void cache_install_hooks(void);

/* cache_store.c */
extern Size cache_store_shmem_size(void);
extern void cache_store_request_lock(void);
extern void cache_store_shmem_init(void);

/* cache_wal.c: the cache's WAL records, replayed by perfopt's resource manager */
struct XLogReaderState;
struct StringInfoData;
extern void cache_wal_redo(struct XLogReaderState *record, bool logs);
extern void cache_wal_desc(struct StringInfoData *buf, struct XLogReaderState *record);

/* cache_wal_switch.c: the record saying that the primary stopped writing them */
extern void cache_wal_off_redo(struct XLogReaderState *record);
extern void cache_wal_off_desc(struct StringInfoData *buf, struct XLogReaderState *record);

#endif							/* PERFOPT_CACHE_H */
