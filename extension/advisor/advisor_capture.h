/*
 * advisor_capture.h
 *		The advisor's view of the workload, captured from executed plans
 *		(advisor_capture.c).
 */
#ifndef PERFOPT_ADVISOR_CAPTURE_H
#define PERFOPT_ADVISOR_CAPTURE_H

#include "fmgr.h"
#include "nodes/pg_list.h"

#define ADVISOR_MAX_PREDS 16
#define ADVISOR_MAX_SCANS 8
#define ADVISOR_EXAMPLE_LEN 4096

typedef struct CapturedPred
{
	Oid			relid;
	int16		attno;			/* 0: an expression */
	uint8		kind;			/* AdvisorPredKind */
	uint8		op;				/* AdvisorOp */
} CapturedPred;

typedef struct CapturedScan
{
	Oid			relid;
	bool		full;
	float4		rows;
} CapturedScan;

/* One statement as the advisor keeps it (also what a snapshot returns). */
typedef struct CapturedStatement
{
	Oid			dbid;
	uint64		queryid;
	int64		max_burst;		/* most runs in one transaction or burst */
	int			npreds;
	CapturedPred preds[ADVISOR_MAX_PREDS];
	int			nscans;
	CapturedScan scans[ADVISOR_MAX_SCANS];
	char	   *example;		/* palloc'd in a snapshot; NULL if too long */
	char	   *example2;		/* one with other constants, or NULL */
	char	   *params;			/* its bind values (advisor_params.c), or NULL */
	int			params_len;
} CapturedStatement;

extern Size advisor_capture_shmem_size(void);
extern void advisor_capture_request_lock(void);
extern void advisor_capture_shmem_init(void);
extern bool advisor_capture_ready(void);
extern void advisor_capture_install_hooks(void);
extern List *advisor_capture_snapshot(Oid dbid);
extern void advisor_capture_save(void);
extern void advisor_capture_load(void);

extern Datum perfopt_advisor_workload(PG_FUNCTION_ARGS);
extern Datum perfopt_advisor_reset(PG_FUNCTION_ARGS);

#endif							/* PERFOPT_ADVISOR_CAPTURE_H */
