/*
 * shmem.c
 *		Owns perfopt's shared-memory lifecycle: how much it asks for at
 *		startup (PG15's shmem_request_hook), creating or attaching the
 *		structures of each capability, and saving them at a clean shutdown
 *		and loading them at the next start.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "advisor/advisor_capture.h"
#include "advisor/advisor_whatif.h"
#include "advisor/advisor_writes.h"
#include "cache/cache.h"
#include "shmem.h"
#include "stats/slowlog.h"
#include "stats/stats_persist.h"
#include "stats/stats_store.h"

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
perfopt_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(add_size(stats_store_shmem_size(),
									slowlog_shmem_size()));
	RequestAddinShmemSpace(add_size(advisor_capture_shmem_size(),
									advisor_writes_shmem_size()));	/* index advisor */
	RequestAddinShmemSpace(advisor_remember_shmem_size());
	RequestAddinShmemSpace(cache_store_shmem_size());	/* result cache */
	stats_store_request_lock();
	slowlog_request_lock();
	advisor_capture_request_lock(); /* index advisor */
	advisor_writes_request_lock();
	advisor_remember_request_lock();
	cache_store_request_lock();	/* result cache */
}

/* Runs in the postmaster at exit; code != 0 means a crash: save nothing. */
static void
perfopt_shmem_shutdown(int code, Datum arg)
{
	if (code == 0)
	{
		stats_persist_save();
		advisor_capture_save(); /* index advisor */
		advisor_writes_save();
	}
}

static void
perfopt_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats_store_shmem_init();
	slowlog_shmem_init();
	advisor_capture_shmem_init();	/* index advisor */
	advisor_writes_shmem_init();
	advisor_remember_shmem_init();
	cache_store_shmem_init();	/* result cache */
	LWLockRelease(AddinShmemInitLock);

	/*
	 * Only the postmaster loads and saves.  After a crash it comes here
	 * again with fresh shared memory and finds no file (loading removes
	 * it), so a crash restart starts from empty, never from stale data.
	 */
	if (!IsUnderPostmaster)
	{
		on_shmem_exit(perfopt_shmem_shutdown, (Datum) 0);
		stats_persist_load();
		advisor_capture_load(); /* index advisor */
		advisor_writes_load();
	}
}

void
perfopt_install_shmem_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = perfopt_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = perfopt_shmem_startup;
}

void
perfopt_require_preload(void)
{
	if (!stats_store_ready() || !slowlog_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt must be loaded via shared_preload_libraries"),
				 errhint("Add perfopt to shared_preload_libraries in postgresql.conf and restart the server.")));
}
