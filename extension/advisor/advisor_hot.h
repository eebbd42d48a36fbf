/*
 * advisor_hot.h
 *		Updates that an index would take off the heap-only path
 *		(advisor_hot.c).
 */
#ifndef PERFOPT_ADVISOR_HOT_H
#define PERFOPT_ADVISOR_HOT_H

#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"

#include "advisor/advisor.h"

/* An UPDATE of the workload: its table, the columns it sets, its calls. */
typedef struct AdvisorUpdate
{
	Oid			relid;
	Bitmapset  *cols;			/* attnos offset by FirstLowInvalidHeapAttributeNumber */
	double		calls;
} AdvisorUpdate;

extern bool advisor_updated_columns(PlannedStmt *pstmt, Oid *relid, Bitmapset **cols);
extern double advisor_hot_share(List *updates, AdvisorCand *c);
extern double advisor_write_entries(AdvisorCand *c, double hot_share);

#endif							/* PERFOPT_ADVISOR_HOT_H */
