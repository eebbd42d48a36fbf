/*
 * advisor.h
 *		The index recommender (advisor_choose.c, advisor_candidates.c,
 *		advisor_views.c).
 */
#ifndef PERFOPT_ADVISOR_H
#define PERFOPT_ADVISOR_H

#include "fmgr.h"
#include "nodes/pg_list.h"

#include "advisor/hypo_index.h"

/* One statement of the workload being advised on. */
typedef struct AdvisorStmt
{
	uint64		queryid;
	char	   *example;		/* text to re-plan */
	char	   *example2;		/* one with other constants, or NULL */
	char	   *params;			/* example's bind values (advisor_params.c) */
	int			params_len;
	List	   *preds2;			/* AdvisorPred of example2's plan */
	char	   *query;			/* normalized text to show */
	double		calls;
	double		total_time;
	double		cost_before;	/* with the existing indexes only */
	double		cost_cur;		/* with the indexes chosen so far */
	List	   *preds;			/* AdvisorPred of its plan */
	List	   *relids;			/* tables it filters, joins or sorts */
} AdvisorStmt;

/* One candidate index and, once chosen, what it buys. */
typedef struct AdvisorCand
{
	char	   *definition;		/* CREATE INDEX CONCURRENTLY ... */
	char	   *table_name;		/* schema-qualified, quoted */
	List	   *columns;		/* key and INCLUDE column texts */
	Oid			relid;
	double		weight;			/* time of the statements that suggest it */
	HypoIndex  *hypo;
	bool		chosen;
	double		size_bytes;
	double		write_overhead;
	bool		write_known;	/* write_entries computed */
	double		write_entries;	/* index entries its writes would add */
	/* marginal effect, with every other chosen index present */
	double		cost_before;
	double		cost_after;
	List	   *helped;			/* AdvisorStmt */
} AdvisorCand;

extern List *advisor_candidates(List *stmts, int max_candidates);
extern List *advisor_advise(List *stmts, bool count_writes, bool rethrow);

extern Datum perfopt_explain_hypothetical(PG_FUNCTION_ARGS);
extern Datum perfopt_index_recommendations(PG_FUNCTION_ARGS);
extern Datum perfopt_recommend_indexes(PG_FUNCTION_ARGS);
extern Datum perfopt_plan_full_scans(PG_FUNCTION_ARGS);

#endif							/* PERFOPT_ADVISOR_H */
