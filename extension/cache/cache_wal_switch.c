/*
 * cache_wal_switch.c
 *		Owns whether the result cache's invalidations go to the WAL at all
 *		(perfopt.cache_standby_wal), and what a server replaying the WAL
 *		knows of that.  A server that replays a record of perfopt's
 *		resource manager without perfopt preloaded stops its recovery, so
 *		perfopt writes none unless asked; and a hot standby whose primary
 *		writes none must not serve its cache, since nothing tells it of
 *		the primary's writes.
 *
 *		The writing side (a primary):
 *		- with the setting on, before its first record, the server writes
 *		  the state file in its data directory, durably: servers replaying
 *		  its WAL may serve their cache on the strength of its records;
 *		- with the setting off and the file there (it was on before the
 *		  restart), the first transaction with an xid that reaches
 *		  PRE_COMMIT or PRE_PREPARE writes one "off" record before its own
 *		  commit or prepare record, flushes it, then removes the file.  A
 *		  transaction that can change what a statement returns has an xid,
 *		  so no commit that a standby could see precedes the record; the
 *		  others wait for it on the lock.  A crash before the removal
 *		  writes the record again after the restart: harmless.
 *
 *		The replaying side (a standby, and any server in recovery) keeps
 *		the gate in shared memory: UNKNOWN at start, OPEN once a record
 *		says that the primary logs (every bumps record does), OFF at an
 *		"off" record.  Only while it is OPEN does a standby serve or store
 *		results (cache_session_refusal); otherwise statements bypass the
 *		cache.  Opening drops every entry and, as a fresh start does,
 *		makes every slot refuse results that could miss a writer up to the
 *		newest xid seen, whose commit may have had no record; the readings
 *		kept per epoch are settled again once those writers have ended.
 *		The replaying server keeps its own copy of the state file in step
 *		with the records (written at a record that says the primary logs,
 *		removed at an "off" record): promoted, it decides by its own
 *		setting and that copy, as a restarted primary does, so that the
 *		standbys following it learn when it does not log.
 *
 *		A server out of recovery (a primary, a promoted standby) opens the
 *		gate at its first statement, with the same reset: what a standby
 *		kept while the gate was shut was not maintained.
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "replica/replica_rmgr.h"

/* in the data directory, which is the server's working directory */
#define STATE_FILE		"perfopt_cache_wal.state"
#define STATE_FILE_TMP	STATE_FILE ".tmp"

/* XLOG_PERFOPT_CACHE_WAL_OFF */
typedef struct xl_cache_wal_off
{
	TimestampTz at;
} xl_cache_wal_off;

typedef struct SwitchShared
{
	LWLock	   *lock;			/* writing the file and the "off" record */
	pg_atomic_uint32 gate;		/* CacheWalGate */
	pg_atomic_uint32 file;		/* the state file is there */
	pg_atomic_uint32 off_due;	/* the next committer with an xid writes "off" */
} SwitchShared;

static SwitchShared *sw = NULL;
pg_atomic_uint32 *cache_wal_gate = NULL;
pg_atomic_uint32 *cache_wal_off_due_flag = NULL;

Size
cache_wal_switch_shmem_size(void)
{
	return MAXALIGN(sizeof(SwitchShared));
}

static bool
state_file_exists(void)
{
	struct stat st;

	return stat(STATE_FILE, &st) == 0;
}

/* Called with AddinShmemInitLock held, in the postmaster at its start. */
void
cache_wal_switch_shmem_init(void)
{
	bool		found;

	sw = ShmemInitStruct("perfopt cache wal switch", sizeof(SwitchShared), &found);
	if (!found)
	{
		bool		file = state_file_exists();

		sw->lock = &(GetNamedLWLockTranche("perfopt_cache"))[3].lock;
		pg_atomic_init_u32(&sw->gate, CACHE_WAL_GATE_UNKNOWN);
		pg_atomic_init_u32(&sw->file, file ? 1 : 0);
		pg_atomic_init_u32(&sw->off_due, file && !perfopt_cache_standby_wal ? 1 : 0);
	}
	cache_wal_gate = &sw->gate;
	cache_wal_off_due_flag = &sw->off_due;
}

/*
 * Write the state file durably; false (having reported at elevel, below
 * ERROR) if that failed.
 */
static bool
state_file_write(int elevel)
{
	static const char text[] =
		"perfopt wrote the result cache's invalidations to this server's WAL "
		"(perfopt.cache_standby_wal); see perfopt's README.\n";
	int			fd;
	int			save_errno;

	fd = OpenTransientFile(STATE_FILE_TMP, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", STATE_FILE_TMP)));
		return false;
	}
	errno = 0;
	if (write(fd, text, sizeof(text) - 1) != sizeof(text) - 1)
	{
		save_errno = errno ? errno : ENOSPC;
		CloseTransientFile(fd);
		errno = save_errno;
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", STATE_FILE_TMP)));
		return false;
	}
	if (CloseTransientFile(fd) != 0)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", STATE_FILE_TMP)));
		return false;
	}
	/* fsyncs the file, and the directory after the rename */
	return durable_rename(STATE_FILE_TMP, STATE_FILE, elevel) == 0;
}

/*
 * Before this server's first record: the file that says its WAL carries
 * the cache's invalidations (so that, restarted with the setting off, it
 * writes the "off" record).  A failure fails the committing transaction,
 * whose record would otherwise be written with nothing to remember it.
 */
void
cache_wal_before_first_record(void)
{
	if (pg_atomic_read_u32(&sw->file) != 0)
		return;
	LWLockAcquire(sw->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&sw->file) == 0)
	{
		(void) state_file_write(ERROR);
		pg_atomic_write_u32(&sw->file, 1);
	}
	LWLockRelease(sw->lock);
}

/* Remove the file (it may stay: then the next start writes "off" again). */
static void
state_file_remove(void)
{
	if (!state_file_exists() || durable_unlink(STATE_FILE, WARNING) == 0)
		pg_atomic_write_u32(&sw->file, 0);
}

/*
 * At PRE_COMMIT or PRE_PREPARE while the "off" record is due
 * (cache_wal_off_due): a transaction with an xid writes it, before its own
 * commit or prepare record.  Flushed before the file goes, so that a crash
 * cannot lose the record once the file that calls for it is gone.
 */
void
cache_wal_log_off(void)
{
	xl_cache_wal_off xlrec;
	XLogRecPtr	lsn;

	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()) || RecoveryInProgress())
		return;
	LWLockAcquire(sw->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&sw->off_due) != 0)
	{
		xlrec.at = GetCurrentTimestamp();
		XLogBeginInsert();
		XLogRegisterData((char *) &xlrec, sizeof(xlrec));
		lsn = XLogInsert(PERFOPT_RMGR_ID, XLOG_PERFOPT_CACHE_WAL_OFF);
		XLogFlush(lsn);
		pg_atomic_write_u32(&sw->off_due, 0);
		state_file_remove();
	}
	LWLockRelease(sw->lock);
}

/*
 * Open the gate (the lock held): drop every entry, and make every slot
 * refuse results that could miss a writer up to the newest xid this
 * server has seen (as slots created at a start do), and settle the
 * readings kept per epoch once they have all ended.
 */
static void
gate_open(void)
{
	FullTransactionId next = ReadNextFullTransactionId();
	FullTransactionId upto = FullTransactionIdFromU64(U64FromFullTransactionId(next) - 1);

	cache_slot_bump_all(upto);
	cache_wal_settle_all_later(upto);
	pg_write_barrier();
	pg_atomic_write_u32(&sw->gate, CACHE_WAL_GATE_OPEN);
}

/*
 * Why the cache is bypassed while the gate is shut; NULL when it may be
 * used after all.  Out of recovery (a primary, a standby promoted) the
 * server maintains its cache itself: the first statement opens the gate.
 */
const char *
cache_wal_gate_refusal(void)
{
	if (sw == NULL)
		return "perfopt.cache_mode is off";
	if (RecoveryInProgress())
	{
		switch (pg_atomic_read_u32(&sw->gate))
		{
			case CACHE_WAL_GATE_OPEN:
				return NULL;
			case CACHE_WAL_GATE_OFF:
				return "standby: primary does not log cache invalidations";
			default:
				return "standby: primary not known to log cache invalidations yet";
		}
	}
	LWLockAcquire(sw->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&sw->gate) != CACHE_WAL_GATE_OPEN)
		gate_open();
	LWLockRelease(sw->lock);
	return NULL;
}

/*
 * Replay of a record that says the primary logs (startup process): open
 * the gate if shut, and keep the state file as the primary does.
 */
void
cache_wal_replayed_logs(void)
{
	if (pg_atomic_read_u32(&sw->gate) == CACHE_WAL_GATE_OPEN &&
		pg_atomic_read_u32(&sw->file) != 0)
		return;
	LWLockAcquire(sw->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&sw->gate) != CACHE_WAL_GATE_OPEN)
		gate_open();
	/* a failure must not stop recovery: only a promotion relies on it */
	if (pg_atomic_read_u32(&sw->file) == 0 && state_file_write(WARNING))
		pg_atomic_write_u32(&sw->file, 1);
	if (!perfopt_cache_standby_wal)
		pg_atomic_write_u32(&sw->off_due, 1);
	LWLockRelease(sw->lock);
}

/* Replay of XLOG_PERFOPT_CACHE_WAL_OFF (startup process). */
void
cache_wal_off_redo(XLogReaderState *record)
{
	if (perfopt_cache_standby_fault == CACHE_STANDBY_FAULT_OFF || sw == NULL)
		return;
	LWLockAcquire(sw->lock, LW_EXCLUSIVE);
	pg_atomic_write_u32(&sw->gate, CACHE_WAL_GATE_OFF);
	pg_atomic_write_u32(&sw->off_due, 0);
	if (pg_atomic_read_u32(&sw->file) != 0)
		state_file_remove();
	LWLockRelease(sw->lock);
}

void
cache_wal_off_desc(StringInfo buf, XLogReaderState *record)
{
	xl_cache_wal_off *xlrec = (xl_cache_wal_off *) XLogRecGetData(record);

	appendStringInfoString(buf, "the primary stopped writing the cache's invalidations");
	if (XLogRecGetDataLen(record) >= sizeof(xl_cache_wal_off))
		appendStringInfo(buf, " at %s", timestamptz_to_str(xlrec->at));
}
