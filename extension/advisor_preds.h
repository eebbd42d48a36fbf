/*
 * advisor_preds.h
 *		What a plan's scans filter on, join on and sort by (advisor_preds.c).
 */
#ifndef PERFOPT_ADVISOR_PREDS_H
#define PERFOPT_ADVISOR_PREDS_H

#include "nodes/plannodes.h"

typedef enum AdvisorPredKind
{
	PRED_EQ,					/* col = constant, col IN (...) */
	PRED_JOIN,					/* col = column of another table */
	PRED_RANGE,					/* col <, <=, >, >= constant */
	PRED_SORT					/* ORDER BY col */
} AdvisorPredKind;

typedef struct AdvisorPred
{
	AdvisorPredKind kind;
	Oid			relid;
	AttrNumber	attno;			/* 0: expr */
	Node	   *expr;			/* an expression key, Vars with varno 1 */
	Expr	   *clause;			/* "key = Const" with varno 1, for partials */
	int			sort_group;		/* which Sort node, for PRED_SORT */
	int			sort_pos;
	bool		reverse;		/* DESC, for PRED_SORT */
	bool		nulls_first;
} AdvisorPred;

/* A table read by a plan, and whether all of it was read. */
typedef struct AdvisorScan
{
	Oid			relid;
	bool		full;			/* sequential scan */
	double		rows;			/* planned rows out of the scan */
} AdvisorScan;

extern void advisor_extract(PlannedStmt *pstmt, List **preds, List **scans);

#endif							/* PERFOPT_ADVISOR_PREDS_H */
