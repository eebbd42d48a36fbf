/*
 * slowlog.c
 *		Owns slow-query capture: deciding what to record about an execution
 *		that exceeded perfopt.slow_query_threshold (its text with the actual
 *		constants, bind parameters, the plan as text and JSON, buffers, who
 *		ran it from where) and the shared ring buffer that keeps the last
 *		perfopt.slow_query_max of them.
 *
 * Records have very different sizes (a plan can be a hundred bytes or a
 * hundred kilobytes), so the ring is a byte buffer of variable-length
 * records plus a ring of slots pointing into it.  Positions in the byte
 * buffer are logical (they only grow); a slot's record is still intact as
 * long as less than one buffer length has been written after it, which
 * makes validity a single comparison and lets the oldest records be
 * overwritten without any bookkeeping.
 *
 * A capture must never fail the statement it records (see
 * common/bookkeeping.c).  Building a record reads the catalogs (EXPLAIN
 * deparses the plan, which names functions and types another session may
 * have dropped meanwhile; bind parameters go through their types' output
 * functions; the database's name is looked up), so it runs under
 * bookkeeping_try_in_subxact: a capture that fails is skipped and counted.
 * Only a finished record is appended to the ring, which cannot fail.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "commands/explain.h"
#include "common/ip.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "common/bookkeeping.h"
#include "common/guc.h"
#include "stats/normalize.h"
#include "stats/slowlog.h"

#define SLOWLOG_TRANCHE "perfopt_slowlog"
#define RING_BYTES_PER_SLOT 8192

typedef struct SlowSlot
{
	uint64		position;		/* logical position of the record */
	uint32		len;			/* 0: empty */
} SlowSlot;

typedef struct SlowLogShared
{
	LWLock	   *lock;
	int			nslots;
	int			next_slot;
	uint64		end;			/* logical position after the newest record */
	Size		ring_size;
	SlowSlot	slots[FLEXIBLE_ARRAY_MEMBER];
	/* the byte ring follows the slots */
} SlowLogShared;

static SlowLogShared *slowlog = NULL;
static char *ring = NULL;

static Size
ring_bytes(void)
{
	return (Size) perfopt_slow_query_max * RING_BYTES_PER_SLOT;
}

static Size
slots_bytes(void)
{
	return MAXALIGN(offsetof(SlowLogShared, slots) +
					sizeof(SlowSlot) * perfopt_slow_query_max);
}

Size
slowlog_shmem_size(void)
{
	return add_size(slots_bytes(), ring_bytes());
}

void
slowlog_request_lock(void)
{
	RequestNamedLWLockTranche(SLOWLOG_TRANCHE, 1);
}

void
slowlog_shmem_init(void)
{
	bool		found;

	slowlog = ShmemInitStruct("perfopt slow queries", slowlog_shmem_size(), &found);
	ring = (char *) slowlog + slots_bytes();
	if (!found)
	{
		slowlog->lock = &(GetNamedLWLockTranche(SLOWLOG_TRANCHE))->lock;
		slowlog->nslots = perfopt_slow_query_max;
		slowlog->next_slot = 0;
		slowlog->end = 0;
		slowlog->ring_size = ring_bytes();
		memset(slowlog->slots, 0, sizeof(SlowSlot) * slowlog->nslots);
	}
}

bool
slowlog_ready(void)
{
	return slowlog != NULL;
}

static inline bool
slot_is_intact(const SlowSlot *slot)
{
	return slot->len > 0 && slowlog->end <= slot->position + slowlog->ring_size;
}

/* The longest a single text may be; a record must stay far below the ring. */
static int
text_budget(int field)
{
	int			ring_share = (int) Min(slowlog->ring_size / 16, (Size) PG_INT32_MAX);

	if (field == SLOW_TEXT_PLAN || field == SLOW_TEXT_PLAN_JSON)
		return Min(4 * perfopt_max_query_length, ring_share);
	return Min(perfopt_max_query_length, ring_share);
}

/* Append one record; the caller holds the lock exclusively. */
static void
ring_append(const SlowQueryHeader *record)
{
	uint64		position = slowlog->end;
	Size		offset = position % slowlog->ring_size;
	SlowSlot   *slot;

	if (offset + record->total_len > slowlog->ring_size)
	{
		/* records never wrap: skip the tail and start at the beginning */
		position += slowlog->ring_size - offset;
		offset = 0;
	}
	memcpy(ring + offset, record, record->total_len);
	slowlog->end = position + record->total_len;

	slot = &slowlog->slots[slowlog->next_slot];
	slot->position = position;
	slot->len = record->total_len;
	slowlog->next_slot = (slowlog->next_slot + 1) % slowlog->nslots;
}

static char *
explain_plan(QueryDesc *queryDesc, ExplainFormat format)
{
	ExplainState *es = NewExplainState();

	es->analyze = (queryDesc->instrument_options & INSTRUMENT_TIMER) != 0;
	es->timing = es->analyze;
	es->buffers = es->analyze && (queryDesc->instrument_options & INSTRUMENT_BUFFERS) != 0;
	es->verbose = false;
	es->format = format;

	ExplainBeginOutput(es);
	ExplainPrintPlan(es, queryDesc);
	ExplainEndOutput(es);
	/* a plan printed outside EXPLAIN's own query group is a list: make it an object */
	if (format == EXPLAIN_FORMAT_JSON && es->str->len >= 2)
	{
		es->str->data[0] = '{';
		es->str->data[es->str->len - 1] = '}';
	}
	if (format == EXPLAIN_FORMAT_TEXT && es->str->len > 0 &&
		es->str->data[es->str->len - 1] == '\n')
		es->str->data[--es->str->len] = '\0';
	return es->str->data;
}

static char *
bind_parameters(QueryDesc *queryDesc)
{
	ParamListInfo params = queryDesc->params;

	/* parameters fetched by a hook (PL/pgSQL) are not the client's binds */
	if (params == NULL || params->numParams == 0 || params->paramFetch != NULL)
		return NULL;
	/* each value cut to what the record could keep of all of them */
	return BuildParamLogString(params, NULL, text_budget(SLOW_TEXT_PARAMS));
}

static void
describe_client(SlowQueryHeader *h)
{
	const char *appname = application_name ? application_name : "";
	char	   *dbname = get_database_name(MyDatabaseId);
	char	   *username = GetUserNameFromId(GetUserId(), true);

	namestrcpy(&h->datname, dbname ? dbname : "");
	namestrcpy(&h->username, username ? username : "");
	strlcpy(h->application_name, appname, sizeof(h->application_name));
	h->client_addr[0] = '\0';
	if (MyProcPort && MyProcPort->raddr.addr.ss_family != AF_UNIX)
		pg_getnameinfo_all(&MyProcPort->raddr.addr, MyProcPort->raddr.salen,
						   h->client_addr, sizeof(h->client_addr),
						   NULL, 0, NI_NUMERICHOST);
}

/* One capture being built under bookkeeping_try_in_subxact. */
typedef struct SlowCapture
{
	QueryDesc  *queryDesc;
	double		duration_ms;
	const ExecBuffers *buffers;
	SlowQueryHeader *record;	/* the result, in CurrentMemoryContext */
} SlowCapture;

static void
build_record(void *arg)
{
	SlowCapture *c = (SlowCapture *) arg;
	QueryDesc  *queryDesc = c->queryDesc;
	SlowQueryHeader *h;
	char	   *texts[4];
	int			lens[4];
	char	   *raw;
	int			raw_len;
	int			raw_loc;
	Size		total;
	char	   *p;

	raw_len = queryDesc->plannedstmt->stmt_len;
	raw_loc = queryDesc->plannedstmt->stmt_location;
	/* not copied here: clip_text below copies what the record keeps */
	raw = unconstify(char *, CleanQuerytext(queryDesc->sourceText, &raw_loc, &raw_len));
	texts[SLOW_TEXT_QUERY] = raw;
	lens[SLOW_TEXT_QUERY] = raw_len;
	texts[SLOW_TEXT_PARAMS] = bind_parameters(queryDesc);
	texts[SLOW_TEXT_PLAN] = explain_plan(queryDesc, EXPLAIN_FORMAT_TEXT);
	texts[SLOW_TEXT_PLAN_JSON] = explain_plan(queryDesc, EXPLAIN_FORMAT_JSON);

	total = sizeof(SlowQueryHeader);
	for (int i = 0; i < 4; i++)
	{
		int			len = texts[i] ? (i == SLOW_TEXT_QUERY ? raw_len : strlen(texts[i])) : 0;

		if (texts[i])
			texts[i] = clip_text(texts[i], len, text_budget(i), &len);
		lens[i] = len;
		total += len + 1;
	}
	total = MAXALIGN(total);

	h = palloc0(total);
	h->total_len = total;
	h->captured_at = GetCurrentTimestamp();
	h->duration = c->duration_ms;
	h->userid = GetUserId();
	h->dbid = MyDatabaseId;
	h->queryid = queryDesc->plannedstmt->queryId;
	h->rows = queryDesc->estate->es_processed;
	h->buffers = *c->buffers;
	describe_client(h);
	h->has_params = texts[SLOW_TEXT_PARAMS] != NULL;
	p = (char *) h + sizeof(SlowQueryHeader);
	for (int i = 0; i < 4; i++)
	{
		h->text_len[i] = lens[i];
		if (lens[i] > 0)
			memcpy(p, texts[i], lens[i]);
		p[lens[i]] = '\0';
		p += lens[i] + 1;
	}
	c->record = h;
}

/*
 * Record an execution that turned out slow.  Called from ExecutorEnd before
 * the executor state is torn down, so the plan tree and its instrumentation
 * are still there to be explained.
 */
void
slowlog_capture(QueryDesc *queryDesc, double duration_ms, const ExecBuffers *b)
{
	SlowCapture c = {queryDesc, duration_ms, b, NULL};
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "perfopt slow capture",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

	if (bookkeeping_try_in_subxact(BOOKKEEPING_SLOWLOG, build_record, &c))
	{
		LWLockAcquire(slowlog->lock, LW_EXCLUSIVE);
		ring_append(c.record);
		LWLockRelease(slowlog->lock);
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
}

static void
unpack_record(const SlowQueryHeader *record, SlowQuery *out)
{
	const char *p = (const char *) record + sizeof(SlowQueryHeader);

	out->header = *record;
	for (int i = 0; i < 4; i++)
	{
		out->text[i] = pnstrdup(p, record->text_len[i]);
		p += record->text_len[i] + 1;
	}
	if (!record->has_params)
		out->text[SLOW_TEXT_PARAMS] = NULL;
}

/* Copies of the intact records, oldest first. */
SlowQuery *
slowlog_snapshot(int *count)
{
	SlowQuery  *rows;
	int			n = 0;

	rows = palloc(sizeof(SlowQuery) * slowlog->nslots);
	LWLockAcquire(slowlog->lock, LW_SHARED);
	for (int i = 0; i < slowlog->nslots; i++)
	{
		SlowSlot   *slot = &slowlog->slots[(slowlog->next_slot + i) % slowlog->nslots];

		if (slot_is_intact(slot))
			unpack_record((SlowQueryHeader *) (ring + slot->position % slowlog->ring_size),
						  &rows[n++]);
	}
	LWLockRelease(slowlog->lock);
	*count = n;
	return rows;
}

void
slowlog_reset(void)
{
	LWLockAcquire(slowlog->lock, LW_EXCLUSIVE);
	memset(slowlog->slots, 0, sizeof(SlowSlot) * slowlog->nslots);
	slowlog->next_slot = 0;
	slowlog->end = 0;
	LWLockRelease(slowlog->lock);
}

/* Postmaster only, at startup or shutdown: see stats_store_visit. */
void
slowlog_visit(slowlog_record_visitor visitor, void *arg)
{
	Assert(!IsUnderPostmaster);
	for (int i = 0; i < slowlog->nslots; i++)
	{
		SlowSlot   *slot = &slowlog->slots[(slowlog->next_slot + i) % slowlog->nslots];

		if (slot_is_intact(slot))
			visitor((SlowQueryHeader *) (ring + slot->position % slowlog->ring_size), arg);
	}
}

void
slowlog_restore(const SlowQueryHeader *record)
{
	Assert(!IsUnderPostmaster);
	if (record->total_len <= slowlog->ring_size / 4)
		ring_append(record);
}
