/*
 * advisor_choose.c
 *		Owns choosing indexes for a workload (advisor_views.c shows the
 *		choice through SQL).
 *
 * The choice is greedy over the whole workload, in the spirit of the
 * "Extend" algorithm (Schlosser, Kossmann, Boissier): in each round every
 * remaining candidate is added, in turn, to the indexes chosen so far, the
 * statements on its table are re-planned, and the candidate that saves the
 * most workload cost per byte wins.  A candidate may replace a chosen index
 * that is a prefix of it (which extends that index by a column).  Savings
 * are the planner's cost times the statement's calls; a statement counts
 * as helped only if the candidate is in its plan and cuts its cost by
 * perfopt.advisor_min_improvement percent; the index's maintenance cost
 * (the table's inserts, updates and deletes, times an estimate per entry)
 * is subtracted; what is left must be at least
 * perfopt.advisor_min_workload_improvement percent of what the workload
 * costs with the indexes chosen before it; the total size stays within
 * perfopt.advisor_max_index_size.
 * Finally each chosen index is reported with its marginal effect: the
 * statements it helps with every other chosen index present.
 */
#include "postgres.h"

#include "catalog/pg_am.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"

#include "advisor/advisor.h"
#include "advisor/advisor_capture.h"
#include "advisor/advisor_hot.h"
#include "advisor/advisor_plan.h"
#include "advisor/advisor_preds.h"
#include "common/guc.h"

/*
 * Maintenance of one row's entries, in planner cost units.  A btree entry:
 * the descent touches height + 1 pages (CPU) and the leaf page it dirties
 * must be written back, shared by the few entries that land on it before
 * then.  GIN: as many such entries as the row has keys (its pending list
 * defers them, it does not remove them).  BRIN: a row only widens the
 * summary of its range, which an appended row almost never changes, so a
 * CPU step and no page.
 */
static double
entry_write_cost(HypoIndex *h)
{
	double		entry = random_page_cost * 0.25 + cpu_index_tuple_cost * (h->height + 1);

	if (h->relam == BRIN_AM_OID)
		return cpu_index_tuple_cost;
	if (h->relam == GIN_AM_OID)
		return entry * h->entries_per_row;
	return entry;
}

/* The captured UPDATEs, for the HOT updates a candidate would end. */
static List *workload_updates = NIL;

static double
write_overhead(AdvisorCand *c, bool count_writes)
{
	if (!count_writes)
		return 0;
	if (!c->write_known)
	{
		c->write_entries = advisor_write_entries(c, advisor_hot_share(workload_updates, c));
		c->write_known = true;
	}
	return c->write_entries * entry_write_cost(c->hypo);
}

static bool
stmt_touches(AdvisorStmt *s, Oid relid)
{
	return list_member_oid(s->relids, relid);
}

/* Plan s with hypos; its cost, and whether h is in the plan. */
static bool
cost_with(AdvisorStmt *s, List *hypos, HypoIndex *h, double *cost, bool *uses)
{
	AdvisorPlanResult r = advisor_plan_bound(s->example, s->params, s->params_len,
											 hypos, false, NULL, false);

	*cost = r.cost;
	*uses = r.ok && h && list_member_oid(r.used, h->oid);
	return r.ok;
}

static List *
chosen_hypos(List *chosen, AdvisorCand *except, List *replaced)
{
	List	   *hypos = NIL;
	ListCell   *lc;

	foreach(lc, chosen)
	{
		AdvisorCand *x = (AdvisorCand *) lfirst(lc);

		if (x != except && !list_member_ptr(replaced, x))
			hypos = lappend(hypos, x->hypo);
	}
	return hypos;
}

/*
 * The least saving, in weighted cost, that is worth an index: a share
 * (perfopt.advisor_min_workload_improvement) of what the workload costs
 * with the indexes chosen so far.  An index that makes one rare statement
 * fast but the workload no faster is not worth its storage and upkeep; but
 * once the few big indexes are chosen, what is left is the workload to
 * improve (measured against the cost before them, a jsonb search that
 * takes a tenth of what remains would count for nothing next to the scans
 * the first indexes removed).
 */
static double
min_workload_gain(List *stmts)
{
	double		total = 0;
	ListCell   *lc;

	foreach(lc, stmts)
	{
		AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);

		total += s->calls * s->cost_cur;
	}
	return total * perfopt_advisor_min_workload_improvement / 100.0;
}

typedef struct Trial
{
	double		net;			/* saving minus write cost */
	double		size_delta;
	List	   *replaced;
	double	   *costs;			/* per statement, with the candidate */
} Trial;

/* Add c to the chosen indexes (replacing its prefixes) and measure. */
static bool
try_candidate(AdvisorCand *c, List *stmts, List *chosen, bool count_writes,
			  Trial *t)
{
	double		min_ratio = 1.0 - perfopt_advisor_min_improvement / 100.0;
	double		gain = 0;
	double		write;
	int			helped = 0;
	List	   *hypos;
	ListCell   *lc;

	t->replaced = NIL;
	foreach(lc, chosen)
	{
		AdvisorCand *x = (AdvisorCand *) lfirst(lc);

		if (hypo_index_is_prefix(c->hypo, x->hypo))
			return false;		/* a chosen index serves it already */
		if (hypo_index_is_prefix(x->hypo, c->hypo))
			t->replaced = lappend(t->replaced, x);
	}
	hypos = lappend(chosen_hypos(chosen, NULL, t->replaced), c->hypo);
	t->costs = palloc(sizeof(double) * list_length(stmts));
	foreach(lc, stmts)
	{
		AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);
		int			i = foreach_current_index(lc);
		bool		uses;

		t->costs[i] = s->cost_cur;
		if (!stmt_touches(s, c->relid) ||
			!cost_with(s, hypos, c->hypo, &t->costs[i], &uses))
		{
			t->costs[i] = s->cost_cur;
			continue;
		}
		if (uses && t->costs[i] <= s->cost_cur * min_ratio)
		{
			gain += s->calls * (s->cost_cur - t->costs[i]);
			helped++;
		}
		else if (t->costs[i] > s->cost_cur)
			gain -= s->calls * (t->costs[i] - s->cost_cur);
	}
	if (helped == 0)
		return false;
	c->size_bytes = (double) c->hypo->pages * BLCKSZ;
	write = write_overhead(c, count_writes);
	t->size_delta = c->size_bytes;
	foreach(lc, t->replaced)
	{
		AdvisorCand *x = (AdvisorCand *) lfirst(lc);

		t->size_delta -= x->size_bytes;
		write -= write_overhead(x, count_writes);
	}
	t->net = gain - write;
	return t->net > 0 && gain >= min_workload_gain(stmts);
}

/* Shorter first (no needless DESC), then in text order. */
static bool
simpler(const char *a, const char *b)
{
	size_t		la = strlen(a);
	size_t		lb = strlen(b);

	return la < lb || (la == lb && strcmp(a, b) < 0);
}

typedef struct CachedTrial
{
	bool		valid;
	bool		ok;
	Trial		trial;
} CachedTrial;

/* Do the statements that c's trial re-planned include one on relid? */
static bool
trial_depends_on(AdvisorCand *c, List *stmts, Oid relid)
{
	ListCell   *lc;

	foreach(lc, stmts)
	{
		AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);

		if (stmt_touches(s, c->relid) && stmt_touches(s, relid))
			return true;
	}
	return false;
}

/*
 * The greedy rounds.  A candidate's trial only changes when an index is
 * chosen on a table its statements read, so trials are kept across rounds
 * and redone only then: a round re-plans the statements of one table, not
 * the whole workload.
 */
static List *
choose(List *stmts, List *cands, bool count_writes)
{
	List	   *chosen = NIL;
	double		budget = perfopt_advisor_max_index_size < 0 ? -1 :
		(double) perfopt_advisor_max_index_size * 1024.0;
	double		total_size = 0;
	CachedTrial *cache = palloc0(sizeof(CachedTrial) * Max(list_length(cands), 1));

	for (;;)
	{
		AdvisorCand *best = NULL;
		Trial		best_trial = {0};
		double		best_score = 0;
		ListCell   *lc;

		foreach(lc, cands)
		{
			AdvisorCand *c = (AdvisorCand *) lfirst(lc);
			CachedTrial *ct = &cache[foreach_current_index(lc)];
			double		score;

			CHECK_FOR_INTERRUPTS();
			if (c->chosen)
				continue;
			if (!ct->valid)
			{
				ct->ok = try_candidate(c, stmts, chosen, count_writes, &ct->trial);
				ct->valid = true;
			}
			if (!ct->ok)
				continue;
			if (budget >= 0 && total_size + ct->trial.size_delta > budget)
				continue;
			score = ct->trial.net / Max(ct->trial.size_delta, (double) BLCKSZ);
			/* equal scores: the simpler definition, for stable advice */
			if (best == NULL || score > best_score * (1 + 1e-9) ||
				(score >= best_score * (1 - 1e-9) &&
				 simpler(c->definition, best->definition)))
			{
				best = c;
				best_trial = ct->trial;
				best_score = score;
			}
		}
		if (best == NULL)
			break;
		foreach(lc, best_trial.replaced)
		{
			((AdvisorCand *) lfirst(lc))->chosen = false;
			chosen = list_delete_ptr(chosen, lfirst(lc));
		}
		best->chosen = true;
		chosen = lappend(chosen, best);
		total_size += best_trial.size_delta;
		foreach(lc, stmts)
		{
			AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);

			if (stmt_touches(s, best->relid))
				s->cost_cur = best_trial.costs[foreach_current_index(lc)];
		}
		foreach(lc, cands)
		{
			AdvisorCand *c = (AdvisorCand *) lfirst(lc);

			if (trial_depends_on(c, stmts, best->relid))
				cache[foreach_current_index(lc)].valid = false;
		}
	}
	return chosen;
}

/* What c buys with every other chosen index present; false if nothing. */
static bool
report_marginal(AdvisorCand *c, List *stmts, List *chosen, bool count_writes)
{
	List	   *others = chosen_hypos(chosen, c, NIL);
	List	   *all = lappend(list_copy(others), c->hypo);
	ListCell   *lc;

	c->helped = NIL;
	c->cost_before = c->cost_after = 0;
	foreach(lc, stmts)
	{
		AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);
		double		before;
		double		after;
		bool		uses;

		if (!stmt_touches(s, c->relid) ||
			!cost_with(s, others, NULL, &before, &uses) ||
			!cost_with(s, all, c->hypo, &after, &uses) ||
			!uses || after >= before)
			continue;
		c->helped = lappend(c->helped, s);
		c->cost_before += s->calls * before;
		c->cost_after += s->calls * after;
	}
	c->size_bytes = (double) c->hypo->pages * BLCKSZ;
	c->write_overhead = write_overhead(c, count_writes);
	return c->helped != NIL &&
		c->cost_before - c->cost_after >= min_workload_gain(stmts);
}

static int
by_saving_desc(const ListCell *a, const ListCell *b)
{
	AdvisorCand *ca = (AdvisorCand *) lfirst(a);
	AdvisorCand *cb = (AdvisorCand *) lfirst(b);
	double		sa = ca->cost_before - ca->cost_after;
	double		sb = cb->cost_before - cb->cost_after;

	return (sa < sb) ? 1 : (sa > sb) ? -1 : strcmp(ca->definition, cb->definition);
}

/* Re-plan each statement as it is, keeping the ones with predicates. */
static List *
plan_statements(List *stmts, bool rethrow)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, stmts)
	{
		AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);
		AdvisorPlanResult r = advisor_plan_bound(s->example, s->params, s->params_len,
												 NIL, true, NULL, rethrow);
		ListCell   *p;

		if (!r.ok)
			continue;
		s->cost_before = s->cost_cur = r.cost;
		if (s->queryid == 0)
			s->queryid = r.queryid;
		s->preds = r.preds;
		if (OidIsValid(r.upd_relid))
		{
			AdvisorUpdate *u = palloc(sizeof(AdvisorUpdate));

			u->relid = r.upd_relid;
			u->cols = r.upd_cols;
			u->calls = s->calls;
			workload_updates = lappend(workload_updates, u);
		}
		if (s->example2)
		{
			AdvisorPlanResult r2 = advisor_plan(s->example2, NIL, true, NULL, false);

			s->preds2 = r2.ok ? r2.preds : NIL;
		}
		foreach(p, r.preds)
			s->relids = list_append_unique_oid(s->relids, ((AdvisorPred *) lfirst(p))->relid);
		if (s->relids != NIL)
			result = lappend(result, s);
	}
	return result;
}

/*
 * The indexes to recommend for stmts (AdvisorStmt with example, calls and
 * time), best first, each with what it buys (AdvisorCand).  With rethrow,
 * a statement that cannot be planned is an error, else it is skipped.
 */
List *
advisor_advise(List *stmts, bool count_writes, bool rethrow)
{
	List	   *cands;
	List	   *chosen;
	List	   *result = NIL;
	ListCell   *lc;

	workload_updates = NIL;
	stmts = plan_statements(stmts, rethrow);
	cands = advisor_candidates(stmts, perfopt_advisor_max_candidates);
	chosen = choose(stmts, cands, count_writes);
	foreach(lc, chosen)
	{
		AdvisorCand *c = (AdvisorCand *) lfirst(lc);

		if (report_marginal(c, stmts, chosen, count_writes))
			result = lappend(result, c);
	}
	list_sort(result, by_saving_desc);
	return result;
}
