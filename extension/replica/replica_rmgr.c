/*
 * replica_rmgr.c
 *		Owns perfopt's WAL resource manager: registering it while perfopt is
 *		preloaded (PostgreSQL 15's custom resource managers), and sending
 *		each kind of record to the code that replays and describes it.  The
 *		kinds are listed in replica_rmgr.h; today the result cache's bumps
 *		(cache/cache_wal.c), which let hot standbys serve the cache, and
 *		the record saying that the primary stopped writing them
 *		(cache/cache_wal_switch.c).
 *
 *		A server that replays a perfopt record without perfopt preloaded
 *		stops its recovery with PostgreSQL's own error naming the resource
 *		manager.  That is why perfopt writes none unless asked
 *		(perfopt.cache_standby_wal, off by default): then every server
 *		replaying the WAL, standbys and a primary recovering WAL perfopt
 *		wrote, must preload perfopt.
 */
#include "postgres.h"

#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "lib/stringinfo.h"

#include "cache/cache.h"
#include "replica/replica.h"
#include "replica/replica_rmgr.h"

static void
replica_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record);

	switch (info & XLOG_PERFOPT_KIND_MASK)
	{
		case XLOG_PERFOPT_CACHE_BUMPS:
			cache_wal_redo(record, (info & XLOG_PERFOPT_CACHE_LOGS) != 0);
			break;
		case XLOG_PERFOPT_CACHE_WAL_OFF:
			cache_wal_off_redo(record);
			break;
		default:
			elog(PANIC, "perfopt redo: unknown record kind %u", info & ~XLR_INFO_MASK);
	}
}

static void
replica_desc(StringInfo buf, XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record);

	switch (info & XLOG_PERFOPT_KIND_MASK)
	{
		case XLOG_PERFOPT_CACHE_BUMPS:
			cache_wal_desc(buf, record);
			break;
		case XLOG_PERFOPT_CACHE_WAL_OFF:
			cache_wal_off_desc(buf, record);
			break;
	}
}

static const char *
replica_identify(uint8 info)
{
	switch (info & XLOG_PERFOPT_KIND_MASK)
	{
		case XLOG_PERFOPT_CACHE_BUMPS:
			return "CACHE_BUMPS";
		case XLOG_PERFOPT_CACHE_WAL_OFF:
			return "CACHE_WAL_OFF";
	}
	return NULL;
}

static RmgrData perfopt_rmgr = {
	.rm_name = PERFOPT_RMGR_NAME,
	.rm_redo = replica_redo,
	.rm_desc = replica_desc,
	.rm_identify = replica_identify,
};

void
replica_register_rmgr(void)
{
	RegisterCustomRmgr(PERFOPT_RMGR_ID, &perfopt_rmgr);
}
