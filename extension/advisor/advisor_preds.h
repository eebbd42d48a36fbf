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
	PRED_SORT,					/* ORDER BY col */
	PRED_GIN					/* col @>, ?, &&, LIKE '%x%' ... constant:
								 * an operator of a GIN operator class */
} AdvisorPredKind;

/* The comparison of a filter: btree strategies 1 to 5, and IN (...). */
typedef enum AdvisorOp
{
	ADVISOR_OP_NONE = 0,
	ADVISOR_OP_LT = 1,
	ADVISOR_OP_LE = 2,
	ADVISOR_OP_EQ = 3,
	ADVISOR_OP_GE = 4,
	ADVISOR_OP_GT = 5,
	ADVISOR_OP_IN = 6,
	ADVISOR_OP_PREFIX = 7,		/* LIKE 'abc%', ^@ 'abc': a range of a prefix */
	ADVISOR_OP_GIN = 8			/* an operator only a GIN index serves */
} AdvisorOp;

typedef struct AdvisorPred
{
	AdvisorPredKind kind;
	uint8		op;				/* AdvisorOp: the comparison, for display */
	Oid			relid;
	AttrNumber	attno;			/* 0: expr */
	Node	   *expr;			/* an expression key, Vars with varno 1 */
	Expr	   *clause;			/* "key = Const" with varno 1, for partials */
	int			sort_group;		/* which Sort node, for PRED_SORT */
	int			sort_pos;
	bool		reverse;		/* DESC, for PRED_SORT */
	bool		nulls_first;
	/*
	 * A prefix search (PRED_RANGE with ADVISOR_OP_PREFIX) on a key whose
	 * collation sorts other than bytewise: only a pattern operator class
	 * (text_pattern_ops) serves it.
	 */
	bool		pattern_ops;
	/*
	 * A PRED_GIN's access method and the operator class that serves its
	 * operator (jsonb_path_ops when it can, for @>).
	 */
	Oid			am;
	Oid			opclass;
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
