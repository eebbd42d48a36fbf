/*
 * slowlog.h
 *		The slow-query ring buffer (see slowlog.c).
 */
#ifndef PERFOPT_SLOWLOG_H
#define PERFOPT_SLOWLOG_H

#include "executor/execdesc.h"
#include "utils/timestamp.h"

#include "stats/stats_store.h"		/* ExecBuffers */

/* Fixed part of a captured slow query; its four texts follow it. */
typedef struct SlowQueryHeader
{
	uint32		total_len;		/* header + texts, MAXALIGNed */
	TimestampTz captured_at;
	double		duration;		/* ms */
	Oid			userid;
	Oid			dbid;
	uint64		queryid;
	int64		rows;
	ExecBuffers buffers;
	NameData	datname;
	NameData	username;
	char		application_name[NAMEDATALEN];
	char		client_addr[64];	/* empty for Unix sockets */
	bool		has_params;
	uint32		text_len[4];	/* query, params, plan, plan_json */
} SlowQueryHeader;

#define SLOW_TEXT_QUERY 0
#define SLOW_TEXT_PARAMS 1
#define SLOW_TEXT_PLAN 2
#define SLOW_TEXT_PLAN_JSON 3

/* A captured slow query copied out of shared memory. */
typedef struct SlowQuery
{
	SlowQueryHeader header;
	char	   *text[4];
} SlowQuery;

extern Size slowlog_shmem_size(void);
extern void slowlog_shmem_init(void);
extern void slowlog_request_lock(void);
extern bool slowlog_ready(void);

/* b: the execution's buffer counters, as stats_hooks.c measured them */
extern void slowlog_capture(QueryDesc *queryDesc, double duration_ms,
							const ExecBuffers *b);
extern SlowQuery *slowlog_snapshot(int *count);
extern void slowlog_reset(void);

/* persistence (stats_persist.c): raw records, oldest first */
typedef void (*slowlog_record_visitor) (const SlowQueryHeader *record, void *arg);
extern void slowlog_visit(slowlog_record_visitor visitor, void *arg);
extern void slowlog_restore(const SlowQueryHeader *record);

#endif							/* PERFOPT_SLOWLOG_H */
