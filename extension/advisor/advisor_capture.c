/*
 * advisor_capture.c
 *		Owns the advisor's workload capture: for each statement (database,
 *		queryid), the columns its executed plan's scans filter on, join on
 *		and sort by, the tables it reads in full, one example text with real
 *		constants to re-plan, and the longest run of it with different
 *		constants in one transaction or burst (N+1 patterns).
 *
 * Cost: a statement's plan is read once, the first time it ends.  After
 * that an execution costs a hash of its text and a backend-local lookup
 * (nothing but a comparison once a loop of it has run 1024 times: runs
 * longer than that are reported as 1024);
 * the shared table is looked up (under a shared lock) only until this
 * backend has seen the entry, to keep a second example, and when a burst
 * grows past what was recorded.  A second example text, the first
 * one with other constants, is kept too: a filter whose constant is the
 * same in both (status = 'open') may make a partial index, one whose
 * constant varies may not.  Entries are fixed-size and the table
 * is sized at startup (perfopt.advisor_max_statements); once full, new
 * statements are not captured until perfopt.advisor_reset().
 *
 * The capture must never fail the statement it watches (see
 * common/bookkeeping.c).  Reading a plan looks up operators, operator
 * classes and functions in the catalogs, and a function the plan calls may
 * have been dropped by another session while the statement ran; so the
 * plan is read under bookkeeping_try_in_subxact, once per statement (a
 * subtransaction costs little next to a first execution).  When it fails,
 * the statement is kept with its example text and its runs but without
 * what its plan filters on (the recommendations re-plan the example
 * anyway), and the plan is not read again.  Everything else here takes a
 * lock, looks a hash up and copies fixed-size data, none of which can fail
 * but for memory of a few bytes for a backend-local hash entry, which the
 * statement would have been short of itself.
 */
#include "postgres.h"

#include <unistd.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "advisor/advisor_capture.h"
#include "advisor/advisor_params.h"
#include "advisor/advisor_preds.h"
#include "advisor/advisor_writes.h"
#include "common/bookkeeping.h"
#include "common/guc.h"
#include "common/hash_file.h"

#define ADVISOR_TRANCHE "perfopt_advisor"
/* runs of one statement closer together than this are one burst */
#define BURST_GAP_MS 100

/*
 * TimestampDifferenceExceeds(last, now, BURST_GAP_MS), inline: it is asked
 * at the end of every statement.
 */
static inline bool
burst_gap_passed(TimestampTz last, TimestampTz now)
{
	return now - last >= (TimestampTz) BURST_GAP_MS * 1000;
}
#define LOCAL_BURST_MAX 4096
/* a run this long is an N+1 pattern for sure: it is not counted further */
#define BURST_SATURATED 1024

typedef struct CaptureKey
{
	Oid			dbid;
	uint64		queryid;
} CaptureKey;

typedef struct CaptureEntry
{
	CaptureKey	key;			/* hash key: must be first */
	slock_t		mutex;			/* protects max_burst */
	int64		max_burst;
	int			npreds;
	CapturedPred preds[ADVISOR_MAX_PREDS];
	int			nscans;
	CapturedScan scans[ADVISOR_MAX_SCANS];
	int			example_len;	/* -1: too long to keep */
	uint32		example_hash;
	char		example[ADVISOR_EXAMPLE_LEN];
	/* a second text, with other constants: 0 none seen yet, -1 too long */
	int			example2_len;
	char		example2[ADVISOR_EXAMPLE_LEN];
	/* the first run's bind values (advisor_params.c): 0 none, -1 too long */
	int			params_len;
	char		params[ADVISOR_PARAMS_LEN];
} CaptureEntry;

typedef struct CaptureShared
{
	LWLock	   *lock;			/* protects the hash table */
	pg_atomic_uint32 generation;	/* bumped by perfopt.advisor_reset() */
} CaptureShared;

/* per backend: the current run of each statement */
typedef struct BurstEntry
{
	uint64		queryid;
	LocalTransactionId lxid;
	TimestampTz last;
	uint32		text_hash;
	int64		count;
	int64		reported;
	/* what this backend knows of the shared entry, valid in known_gen */
	bool		known;
	uint32		known_gen;
	bool		has_second;
	uint32		example_hash;
} BurstEntry;

static CaptureShared *capture = NULL;
static HTAB *capture_hash = NULL;
static HTAB *burst_hash = NULL;
static uint64 last_queryid = 0;		/* the statement this backend ran last */
static BurstEntry *last_burst = NULL;	/* its entry: a loop skips the lookup */
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

Size
advisor_capture_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(CaptureShared)),
					hash_estimate_size(perfopt_advisor_max_statements,
									   sizeof(CaptureEntry)));
}

void
advisor_capture_request_lock(void)
{
	RequestNamedLWLockTranche(ADVISOR_TRANCHE, 1);
}

/* Called under AddinShmemInitLock. */
void
advisor_capture_shmem_init(void)
{
	bool		found;
	HASHCTL		info;

	capture = ShmemInitStruct("perfopt advisor", sizeof(CaptureShared), &found);
	if (!found)
	{
		capture->lock = &(GetNamedLWLockTranche(ADVISOR_TRANCHE))->lock;
		pg_atomic_init_u32(&capture->generation, 0);
	}
	info.keysize = sizeof(CaptureKey);
	info.entrysize = sizeof(CaptureEntry);
	capture_hash = ShmemInitHash("perfopt advisor hash",
								 perfopt_advisor_max_statements,
								 perfopt_advisor_max_statements,
								 &info, HASH_ELEM | HASH_BLOBS);
}

bool
advisor_capture_ready(void)
{
	return capture != NULL && capture_hash != NULL;
}

static int
copy_text(char *dest, const char *text, int len)
{
	if (len >= ADVISOR_EXAMPLE_LEN)
		return -1;
	memcpy(dest, text, len);
	dest[len] = '\0';
	return len;
}

static void
fill_entry(CaptureEntry *e, List *preds, List *scans, const char *text, int len)
{
	ListCell   *lc;

	e->npreds = 0;
	foreach(lc, preds)
	{
		AdvisorPred *p = (AdvisorPred *) lfirst(lc);

		if (e->npreds >= ADVISOR_MAX_PREDS)
			break;
		e->preds[e->npreds].relid = p->relid;
		e->preds[e->npreds].attno = p->attno;
		e->preds[e->npreds].kind = (uint8) p->kind;
		e->preds[e->npreds].op = p->op;
		e->npreds++;
	}
	e->nscans = 0;
	foreach(lc, scans)
	{
		AdvisorScan *s = (AdvisorScan *) lfirst(lc);

		if (e->nscans >= ADVISOR_MAX_SCANS)
			break;
		e->scans[e->nscans].relid = s->relid;
		e->scans[e->nscans].full = s->full;
		e->scans[e->nscans].rows = (float4) s->rows;
		e->nscans++;
	}
	e->example_len = copy_text(e->example, text, len);
	e->example2_len = 0;
}

/* A plan being read under bookkeeping_try_in_subxact. */
typedef struct PlanReading
{
	PlannedStmt *pstmt;
	ParamListInfo params;
	List	   *preds;			/* the results, in CurrentMemoryContext */
	List	   *scans;
	char	   *pbuf;			/* the bind values, encoded */
	int			plen;
} PlanReading;

static void
read_plan(void *arg)
{
	PlanReading *r = (PlanReading *) arg;
	ListCell   *lc;

	advisor_extract(r->pstmt, &r->preds, &r->scans);
	/* the tables it scans: their write counts begin here */
	foreach(lc, r->scans)
		advisor_writes_note_table(((AdvisorScan *) lfirst(lc))->relid);
	r->pbuf = palloc(ADVISOR_PARAMS_LEN);
	r->plen = advisor_params_encode(r->params, r->pbuf, ADVISOR_PARAMS_LEN);
}

/* First end of a statement: read its plan and keep what the advisor needs. */
static void
capture_new(CaptureKey *key, QueryDesc *queryDesc, const char *text, int len,
			uint32 hash)
{
	MemoryContext cxt;
	MemoryContext old;
	PlanReading r = {queryDesc->plannedstmt, queryDesc->params, NIL, NIL, NULL, 0};
	CaptureEntry *e;
	bool		found;

	/* an unlocked peek: a full table is not worth reading the plan for */
	if (hash_get_num_entries(capture_hash) >= perfopt_advisor_max_statements)
		return;
	/* in a parallel operation: at another run of the statement */
	if (!bookkeeping_subxact_possible())
		return;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "perfopt advisor capture",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	if (!bookkeeping_try_in_subxact(BOOKKEEPING_ADVISOR, read_plan, &r))
	{
		r.preds = r.scans = NIL;
		r.plen = 0;
	}
	LWLockAcquire(capture->lock, LW_EXCLUSIVE);
	e = hash_search(capture_hash, key, HASH_ENTER_NULL, &found);
	if (e && !found)
	{
		SpinLockInit(&e->mutex);
		e->max_burst = 1;
		e->example_hash = hash;
		fill_entry(e, r.preds, r.scans, text, len);
		e->params_len = r.plen;
		if (r.plen > 0)
			memcpy(e->params, r.pbuf, r.plen);
	}
	LWLockRelease(capture->lock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * Count runs of the same statement with different texts (constants) in
 * one transaction block or in a burst; *burst is the run's length when it
 * is longer than any this backend reported before, else 0.  Returns the
 * statement's backend-local entry.
 */
static BurstEntry *
count_burst(uint64 queryid, uint32 h, int64 *burst)
{
	BurstEntry *b;
	bool		found;
	TimestampTz now = GetCurrentStatementStartTimestamp();
	bool		same_run;

	if (burst_hash == NULL || hash_get_num_entries(burst_hash) >= LOCAL_BURST_MAX)
	{
		HASHCTL		info;

		if (burst_hash)
			hash_destroy(burst_hash);
		last_burst = NULL;
		info.keysize = sizeof(uint64);
		info.entrysize = sizeof(BurstEntry);
		info.hcxt = TopMemoryContext;
		burst_hash = hash_create("perfopt advisor bursts", 256, &info,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (last_burst && last_queryid == queryid)
	{
		b = last_burst;
		found = true;
	}
	else
		b = hash_search(burst_hash, &queryid, HASH_ENTER, &found);
	last_burst = b;
	/*
	 * A run goes on inside one transaction block, or outside one while this
	 * backend runs nothing but this statement, each soon after the last: a
	 * busy connection that runs a mix of statements is not a loop.
	 */
	same_run = found &&
		((b->lxid == MyProc->lxid && IsTransactionBlock()) ||
		 (last_queryid == queryid &&
		  !burst_gap_passed(b->last, now)));
	last_queryid = queryid;
	if (!found)
	{
		b->reported = 0;
		b->known = false;
	}
	if (!found || !same_run)
		b->count = 1;
	else if (b->text_hash != h)
		b->count++;
	b->lxid = MyProc->lxid;
	b->last = now;
	b->text_hash = h;
	/*
	 * Report exactly up to 64 (the N+1 threshold is well below), then at
	 * each power of two: a statement run back to back for hours takes the
	 * shared entry's spinlock a few dozen times, not at every run.
	 */
	*burst = 0;
	if (b->count > b->reported && b->count > 1 &&
		(b->count <= 64 || (b->count & (b->count - 1)) == 0))
	{
		b->reported = b->count;
		*burst = b->count;
	}
	return b;
}

/* Keep the first text seen with constants other than the example's. */
static void
capture_second(CaptureKey *key, const char *text, int len, uint32 hash)
{
	CaptureEntry *e;

	LWLockAcquire(capture->lock, LW_EXCLUSIVE);
	e = hash_search(capture_hash, key, HASH_FIND, NULL);
	if (e && e->example2_len == 0 && e->example_hash != hash)
		e->example2_len = copy_text(e->example2, text, len);
	LWLockRelease(capture->lock);
}

static void
capture_end(QueryDesc *queryDesc)
{
	PlannedStmt *ps = queryDesc->plannedstmt;
	const char *text = queryDesc->sourceText;
	int			loc = Max(ps->stmt_location, 0);
	int			len;
	CaptureKey	key;
	CaptureEntry *e;
	BurstEntry *b;
	int64		burst;
	uint32		hash;
	uint32		gen = pg_atomic_read_u32(&capture->generation);
	bool		want_second;

	if (text == NULL)
		return;

	/*
	 * The hot path of a loop: the same statement as last time, its capture
	 * complete (entry known, second example kept) and its run long enough
	 * to have been reported as saturated.  While the run goes on, its text
	 * has nothing left to tell, so it is not even hashed.
	 */
	b = last_burst;
	if (b && last_queryid == ps->queryId && b->count >= BURST_SATURATED &&
		b->reported >= BURST_SATURATED && b->known && b->known_gen == gen &&
		b->has_second)
	{
		TimestampTz now = GetCurrentStatementStartTimestamp();

		if ((b->lxid == MyProc->lxid && IsTransactionBlock()) ||
			!burst_gap_passed(b->last, now))
		{
			b->lxid = MyProc->lxid;
			b->last = now;
			return;
		}
	}

	len = ps->stmt_len > 0 ? ps->stmt_len : (int) strlen(text + loc);
	text += loc;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.queryid = ps->queryId;
	hash = hash_bytes((const unsigned char *) text, len);
	b = count_burst(key.queryid, hash, &burst);

	/*
	 * The common case takes no shared lock at all: this backend knows the
	 * entry exists (since the last reset), has nothing new for its burst,
	 * and either a second example is kept or this text is the first's.
	 */
	if (b->known && b->known_gen == gen && burst == 0 &&
		(b->has_second || b->example_hash == hash))
		return;

	LWLockAcquire(capture->lock, LW_SHARED);
	e = hash_search(capture_hash, &key, HASH_FIND, NULL);
	if (e && burst > 0)
	{
		SpinLockAcquire(&e->mutex);
		e->max_burst = Max(e->max_burst, burst);
		SpinLockRelease(&e->mutex);
	}
	/* an unlocked peek: checked again under the exclusive lock */
	want_second = e && e->example2_len == 0 && e->example_hash != hash;
	if (e)
	{
		b->known = true;
		b->known_gen = gen;
		b->has_second = e->example2_len != 0 || want_second;
		b->example_hash = e->example_hash;
	}
	LWLockRelease(capture->lock);
	if (e == NULL)
		capture_new(&key, queryDesc, text, len, hash);
	else if (want_second)
		capture_second(&key, text, len, hash);
}

static void
advisor_ExecutorEnd(QueryDesc *queryDesc)
{
	/* PL/pgSQL's statements refer to its variables: they cannot be re-planned */
	if (perfopt_advisor_capture && advisor_capture_ready() && !IsParallelWorker() &&
		queryDesc->plannedstmt->queryId != UINT64CONST(0) &&
		(queryDesc->estate->es_top_eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 &&
		queryDesc->plannedstmt->commandType != CMD_UTILITY &&
		(queryDesc->params == NULL || queryDesc->params->paramFetch == NULL))
		capture_end(queryDesc);

	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

void
advisor_capture_install_hooks(void)
{
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = advisor_ExecutorEnd;
}

static void
require_capture(void)
{
	if (!advisor_capture_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt must be loaded via shared_preload_libraries"),
				 errhint("Add perfopt to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* A copy of the statements captured in database dbid (InvalidOid: all). */
List *
advisor_capture_snapshot(Oid dbid)
{
	HASH_SEQ_STATUS seq;
	CaptureEntry *e;
	List	   *result = NIL;

	require_capture();
	LWLockAcquire(capture->lock, LW_SHARED);
	hash_seq_init(&seq, capture_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		CapturedStatement *s;

		if (OidIsValid(dbid) && e->key.dbid != dbid)
			continue;
		s = palloc0(sizeof(CapturedStatement));
		s->dbid = e->key.dbid;
		s->queryid = e->key.queryid;
		SpinLockAcquire(&e->mutex);
		s->max_burst = e->max_burst;
		SpinLockRelease(&e->mutex);
		s->npreds = e->npreds;
		memcpy(s->preds, e->preds, sizeof(s->preds));
		s->nscans = e->nscans;
		memcpy(s->scans, e->scans, sizeof(s->scans));
		s->example = e->example_len >= 0 ? pnstrdup(e->example, e->example_len) : NULL;
		s->example2 = e->example2_len > 0 ? pnstrdup(e->example2, e->example2_len) : NULL;
		s->params_len = Max(e->params_len, 0);
		s->params = NULL;
		if (s->params_len > 0)
		{
			/* binary: not a string */
			s->params = palloc(s->params_len);
			memcpy(s->params, e->params, s->params_len);
		}
		result = lappend(result, s);
	}
	LWLockRelease(capture->lock);
	return result;
}

/* how predicates read in perfopt.advisor_workload: "orders.created_at >" */
static const char *
pred_label(CapturedPred *p)
{
	static const char *const ops[] = {"", "<", "<=", "=", ">=", ">", "IN", "LIKE prefix", "GIN"};

	if (p->kind == PRED_JOIN)
		return "join";
	if (p->kind == PRED_SORT)
		return "sort";
	return p->op <= ADVISOR_OP_GIN ? ops[p->op] : "?";
}

static Datum
preds_array(CapturedStatement *s)
{
	Datum	   *items = palloc(sizeof(Datum) * Max(s->npreds, 1));
	int			n = 0;
	int			i;

	for (i = 0; i < s->npreds; i++)
	{
		CapturedPred *p = &s->preds[i];
		char	   *rel = get_rel_name(p->relid);
		char	   *col = p->attno > 0 ? get_attname(p->relid, p->attno, true) : "(expression)";

		if (rel == NULL || col == NULL)
			continue;			/* dropped since */
		items[n++] = CStringGetTextDatum(psprintf("%s.%s %s", rel, col,
												  pred_label(p)));
	}
	return PointerGetDatum(construct_array(items, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
full_scans_array(CapturedStatement *s)
{
	Datum	   *items = palloc(sizeof(Datum) * Max(s->nscans, 1));
	int			n = 0;
	int			i;

	for (i = 0; i < s->nscans; i++)
		if (s->scans[i].full)
			items[n++] = ObjectIdGetDatum(s->scans[i].relid);
	return PointerGetDatum(construct_array(items, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/*
 * perfopt._advisor_workload(): what was captured, for the workload view and
 * perfopt.findings.  Example texts carry real constants, so only roles that
 * may read all statistics see them.
 */
PG_FUNCTION_INFO_V1(perfopt_advisor_workload);
Datum
perfopt_advisor_workload(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		privileged = superuser() ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	List	   *stmts;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	stmts = advisor_capture_snapshot(InvalidOid);
	foreach(lc, stmts)
	{
		CapturedStatement *s = (CapturedStatement *) lfirst(lc);
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = ObjectIdGetDatum(s->dbid);
		values[1] = Int64GetDatum((int64) s->queryid);
		if (s->example && privileged)
			values[2] = CStringGetTextDatum(s->example);
		else
			nulls[2] = true;
		values[3] = Int64GetDatum(s->max_burst);
		if (s->dbid == MyDatabaseId)
		{
			values[4] = preds_array(s);
			values[5] = full_scans_array(s);
		}
		else
			nulls[4] = nulls[5] = true; /* names resolve only in this database */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Across a clean restart (perfopt.save), as the statistics: the postmaster
 * writes the entries at shutdown and reads them back, then removes the
 * file, at the next start.  A file of another layout is ignored.
 */
#define CAPTURE_FILE	PGSTAT_STAT_PERMANENT_DIRECTORY "/perfopt_advisor.stat"
#define CAPTURE_MAGIC	0x50414456	/* "PADV" */

static void
capture_fixup(void *entry)
{
	SpinLockInit(&((CaptureEntry *) entry)->mutex);
}

/* Called in the postmaster at a clean shutdown: no backend is left. */
void
advisor_capture_save(void)
{
	if (perfopt_save && advisor_capture_ready())
		hash_file_save(capture_hash, sizeof(CaptureEntry), CAPTURE_MAGIC, CAPTURE_FILE);
}

/* Called in the postmaster at startup, before any backend. */
void
advisor_capture_load(void)
{
	if (advisor_capture_ready())
		hash_file_load(capture_hash, sizeof(CaptureEntry), CAPTURE_MAGIC, CAPTURE_FILE,
					   capture_fixup);
}

PG_FUNCTION_INFO_V1(perfopt_advisor_reset);
Datum
perfopt_advisor_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS seq;
	CaptureEntry *e;

	require_capture();
	LWLockAcquire(capture->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, capture_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		hash_search(capture_hash, &e->key, HASH_REMOVE, NULL);
	/* what backends know of the entries is stale now */
	pg_atomic_fetch_add_u32(&capture->generation, 1);
	LWLockRelease(capture->lock);
	advisor_writes_reset();
	if (burst_hash)
	{
		hash_destroy(burst_hash);
		burst_hash = NULL;
		last_burst = NULL;
	}
	PG_RETURN_VOID();
}
