/*
 * stats_persist.c
 *		Owns the file that carries query statistics and captured slow
 *		queries across a clean restart: written by the postmaster at
 *		shutdown (perfopt.save), read back and removed at the next start.
 *
 * The file starts with a header that records the layout it was written
 * with; a file from another build or a torn write is ignored with a log
 * message, never half-loaded.
 */
#include "postgres.h"

#include <unistd.h>

#include "pgstat.h"
#include "storage/fd.h"

#include "common/guc.h"
#include "stats/slowlog.h"
#include "stats/stats_persist.h"
#include "stats/stats_store.h"

#define PERSIST_FILE	PGSTAT_STAT_PERMANENT_DIRECTORY "/perfopt.stat"
#define PERSIST_TMP		PERSIST_FILE ".tmp"
#define PERSIST_MAGIC	0x50455246	/* "PERF" */
#define PERSIST_VERSION	1

typedef struct PersistHeader
{
	uint32		magic;
	uint32		version;
	uint32		counters_size;	/* layout checks */
	uint32		slow_header_size;
	int64		evictions;
	TimestampTz stats_reset;
} PersistHeader;

/* record tags: a statement, a slow query, the end */
#define TAG_STATEMENT	'S'
#define TAG_SLOW		'Q'
#define TAG_END			'E'

typedef struct SaveState
{
	FILE	   *file;
	bool		failed;
} SaveState;

static void
write_bytes(SaveState *state, const void *data, size_t len)
{
	if (!state->failed && len > 0 && fwrite(data, len, 1, state->file) != 1)
		state->failed = true;
}

static void
save_statement(const StatsKey *key, const StatsCounters *counters,
			   const char *query, int query_len, void *arg)
{
	SaveState  *state = arg;
	char		tag = TAG_STATEMENT;

	write_bytes(state, &tag, 1);
	write_bytes(state, key, sizeof(StatsKey));
	write_bytes(state, counters, sizeof(StatsCounters));
	write_bytes(state, &query_len, sizeof(int));
	write_bytes(state, query, query_len);
}

static void
save_slow_query(const SlowQueryHeader *record, void *arg)
{
	SaveState  *state = arg;
	char		tag = TAG_SLOW;

	write_bytes(state, &tag, 1);
	write_bytes(state, record, record->total_len);
}

void
stats_persist_save(void)
{
	SaveState	state = {NULL, false};
	PersistHeader header;
	char		tag = TAG_END;

	if (!perfopt_save)
		return;
	state.file = AllocateFile(PERSIST_TMP, PG_BINARY_W);
	if (state.file == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write perfopt statistics file \"%s\": %m", PERSIST_TMP)));
		return;
	}
	memset(&header, 0, sizeof(header));
	header.magic = PERSIST_MAGIC;
	header.version = PERSIST_VERSION;
	header.counters_size = sizeof(StatsCounters);
	header.slow_header_size = sizeof(SlowQueryHeader);
	stats_store_info(&header.evictions, &header.stats_reset);
	write_bytes(&state, &header, sizeof(header));
	stats_store_visit(save_statement, &state);
	slowlog_visit(save_slow_query, &state);
	write_bytes(&state, &tag, 1);

	if (FreeFile(state.file) != 0)
		state.failed = true;
	if (state.failed)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write perfopt statistics file \"%s\": %m", PERSIST_TMP)));
		unlink(PERSIST_TMP);
		return;
	}
	(void) durable_rename(PERSIST_TMP, PERSIST_FILE, LOG);
}

static bool
read_bytes(FILE *file, void *data, size_t len)
{
	return len == 0 || fread(data, len, 1, file) == 1;
}

static bool
load_statement(FILE *file)
{
	StatsKey	key;
	StatsCounters counters;
	int			query_len;
	char	   *query;
	bool		ok;

	if (!read_bytes(file, &key, sizeof(key)) ||
		!read_bytes(file, &counters, sizeof(counters)) ||
		!read_bytes(file, &query_len, sizeof(int)) ||
		query_len < 0 || query_len > 64 * 1024 * 1024)
		return false;
	query = palloc(query_len + 1);
	ok = read_bytes(file, query, query_len);
	if (ok)
	{
		query[query_len] = '\0';
		stats_store_restore(&key, &counters, query, query_len);
	}
	pfree(query);
	return ok;
}

static bool
load_slow_query(FILE *file)
{
	SlowQueryHeader fixed;
	SlowQueryHeader *record;
	bool		ok;

	if (!read_bytes(file, &fixed, sizeof(fixed)) ||
		fixed.total_len < sizeof(fixed) || fixed.total_len > 256 * 1024 * 1024)
		return false;
	record = palloc(fixed.total_len);
	memcpy(record, &fixed, sizeof(fixed));
	ok = read_bytes(file, (char *) record + sizeof(fixed), fixed.total_len - sizeof(fixed));
	if (ok)
		slowlog_restore(record);
	pfree(record);
	return ok;
}

void
stats_persist_load(void)
{
	FILE	   *file;
	PersistHeader header;
	char		tag;
	bool		ok = true;

	file = AllocateFile(PERSIST_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read perfopt statistics file \"%s\": %m", PERSIST_FILE)));
		return;
	}
	if (!read_bytes(file, &header, sizeof(header)) ||
		header.magic != PERSIST_MAGIC || header.version != PERSIST_VERSION ||
		header.counters_size != sizeof(StatsCounters) ||
		header.slow_header_size != sizeof(SlowQueryHeader))
		ok = false;
	while (ok)
	{
		if (!read_bytes(file, &tag, 1))
			ok = false;
		else if (tag == TAG_END)
			break;
		else if (tag == TAG_STATEMENT)
			ok = load_statement(file);
		else if (tag == TAG_SLOW)
			ok = load_slow_query(file);
		else
			ok = false;
	}
	if (ok)
		stats_store_restore_info(header.evictions, header.stats_reset);
	else
		ereport(LOG,
				(errmsg("ignoring the rest of perfopt statistics file \"%s\": it is corrupt or from another version",
						PERSIST_FILE)));
	FreeFile(file);
	/* loaded once: a later crash restart must not bring these back */
	unlink(PERSIST_FILE);
}
