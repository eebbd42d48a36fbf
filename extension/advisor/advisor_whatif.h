/*
 * advisor_whatif.h
 *		What the workload loses without an existing index, and whether the
 *		indexes the advisor recommended are used once created
 *		(advisor_whatif.c); the recommendations remembered for that
 *		(advisor_remember.c); and what advisor_views.c shares with them.
 */
#ifndef PERFOPT_ADVISOR_WHATIF_H
#define PERFOPT_ADVISOR_WHATIF_H

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "datatype/timestamp.h"
#include "utils/hsearch.h"

#define REMEMBER_MAX_QUERIES 8
#define REMEMBER_DEFINITION_LEN 1024

/* One recommendation as remembered. */
typedef struct RememberedIndex
{
	Oid			dbid;			/* 0: a free slot */
	Oid			relid;
	TimestampTz at;				/* last recommended */
	int			nqueries;
	uint64		queryids[REMEMBER_MAX_QUERIES];
	int64		calls[REMEMBER_MAX_QUERIES];	/* executions when recommended */
	char		definition[REMEMBER_DEFINITION_LEN];
} RememberedIndex;

/* executions and time of one statement, keyed by queryid */
typedef struct StmtWeight
{
	uint64		queryid;		/* hash key */
	double		calls;
	double		total_time;
	char	   *query;
} StmtWeight;

/* advisor_views.c */
extern HTAB *advisor_statement_weights(bool all_users);
extern List *advisor_workload(bool with_tables);

/* advisor_remember.c */
extern Size advisor_remember_shmem_size(void);
extern void advisor_remember_request_lock(void);
extern void advisor_remember_shmem_init(void);
extern void advisor_remember(List *cands);
extern List *advisor_remembered(Oid dbid);

extern Datum perfopt_workload_cost_increase(PG_FUNCTION_ARGS);
extern Datum perfopt_recommended_indexes_unused(PG_FUNCTION_ARGS);

#endif							/* PERFOPT_ADVISOR_WHATIF_H */
