/*
 * hypo_index.h
 *		Hypothetical btree, GIN and BRIN indexes the planner sees but that
 *		do not exist (see hypo_index.c, and hypo_index_am.c for what differs
 *		between the access methods).
 */
#ifndef PERFOPT_HYPO_INDEX_H
#define PERFOPT_HYPO_INDEX_H

#include "nodes/pathnodes.h"
#include "nodes/pg_list.h"
#include "storage/block.h"

typedef struct HypoIndex
{
	Oid			oid;			/* fake, never a real relation */
	Oid			relid;			/* the table */
	char	   *name;			/* shown by EXPLAIN */
	char	   *definition;		/* the CREATE INDEX text it came from */
	Oid			relam;			/* btree, gin or brin */
	bool		unique;
	int			ncolumns;		/* key and INCLUDE columns */
	int			nkeycolumns;
	AttrNumber	keys[INDEX_MAX_KEYS];	/* 0 for an expression */
	Oid			types[INDEX_MAX_KEYS];	/* of each column when parsed */
	Oid			collations[INDEX_MAX_KEYS];
	Oid			opfamily[INDEX_MAX_KEYS];
	Oid			opcintype[INDEX_MAX_KEYS];
	bool		reverse[INDEX_MAX_KEYS];
	bool		nulls_first[INDEX_MAX_KEYS];
	List	   *exprs;			/* expression columns, Vars with varno 1 */
	List	   *pred;			/* implicit-AND predicate, varno 1, or NIL */
	int32		entry_width;	/* bytes of one index tuple's data */
	double		entries_per_row;	/* entries a row adds (GIN: its keys) */
	int			pages_per_range;	/* BRIN: its WITH option, or the default */
	/* estimated by the planner hook from the table's statistics */
	double		tuples;
	BlockNumber pages;
	int			height;
} HypoIndex;

extern HypoIndex *hypo_index_parse(const char *definition);
extern void hypo_index_activate(List *indexes);
extern void hypo_index_deactivate(void);
extern List *hypo_index_active(void);
extern void hypo_index_install_hooks(void);
extern bool hypo_index_covered(const HypoIndex *hypo, char **by);
extern bool hypo_index_is_prefix(const HypoIndex *a, const HypoIndex *b);

/* per access method (hypo_index_am.c) */
extern Oid	hypo_am_lookup(const char *name);
extern void hypo_am_check(Oid amoid, bool unique, int nkey, int ncolumns);
extern void hypo_am_options(HypoIndex *h, List *options);
extern bool hypo_am_can_order(Oid amoid);
extern void hypo_am_fill(IndexOptInfo *info, HypoIndex *h, RelOptInfo *rel);
extern double hypo_am_gin_entries(Oid relid, AttrNumber attno, Oid type,
								  Oid opclass, int32 width);
extern void hypo_am_estimate(HypoIndex *h, RelOptInfo *rel, double tuples);

#endif							/* PERFOPT_HYPO_INDEX_H */
