/*
 * advisor_remember.c
 *		Owns the memory of what the advisor recommended: each time
 *		perfopt.index_recommendations is read, each recommended index's
 *		table, definition and statements (with their executions so far) are
 *		kept, so that perfopt.findings can tell, later and in any session,
 *		when such an index was created and its statements ran since without
 *		using it (advisor_whatif.c).
 *
 * The memory is a fixed array in shared memory, sized at startup: it needs
 * no write to a table, so reading the recommendations works in read-only
 * transactions and on standbys, for any role.  When full, the
 * recommendation made longest ago gives way.  It is not saved across
 * restarts: reading the recommendations again remembers them again.
 */
#include "postgres.h"

#include "access/attnum.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "advisor/advisor.h"
#include "advisor/advisor_whatif.h"

#define REMEMBER_MAX 64
#define REMEMBER_TRANCHE "perfopt advisor recommended"

typedef struct RememberShared
{
	LWLock	   *lock;
	RememberedIndex entries[REMEMBER_MAX];
} RememberShared;

static RememberShared *remember = NULL;

Size
advisor_remember_shmem_size(void)
{
	return MAXALIGN(sizeof(RememberShared));
}

void
advisor_remember_request_lock(void)
{
	RequestNamedLWLockTranche(REMEMBER_TRANCHE, 1);
}

/* Called under AddinShmemInitLock. */
void
advisor_remember_shmem_init(void)
{
	bool		found;

	remember = ShmemInitStruct("perfopt advisor recommended", sizeof(RememberShared), &found);
	if (!found)
	{
		memset(remember, 0, sizeof(RememberShared));
		remember->lock = &(GetNamedLWLockTranche(REMEMBER_TRANCHE))->lock;
	}
}

/* The entry for c, a free one, or the oldest; under the lock. */
static RememberedIndex *
slot_for(AdvisorCand *c)
{
	RememberedIndex *oldest = &remember->entries[0];
	RememberedIndex *free_slot = NULL;
	int			i;

	for (i = 0; i < REMEMBER_MAX; i++)
	{
		RememberedIndex *e = &remember->entries[i];

		if (e->dbid == MyDatabaseId && strcmp(e->definition, c->definition) == 0)
			return e;
		if (e->dbid == InvalidOid && free_slot == NULL)
			free_slot = e;
		if (e->at < oldest->at)
			oldest = e;
	}
	if (free_slot)
		return free_slot;
	oldest->dbid = InvalidOid;
	return oldest;
}

/* Add s's statement with its executions so far, unless it is there. */
static void
add_query(RememberedIndex *e, uint64 queryid, double calls)
{
	int			i;

	for (i = 0; i < e->nqueries; i++)
		if (e->queryids[i] == queryid)
			return;				/* keep the first count: "ran since" */
	if (e->nqueries >= REMEMBER_MAX_QUERIES)
		return;
	e->queryids[e->nqueries] = queryid;
	e->calls[e->nqueries] = (int64) calls;
	e->nqueries++;
}

static void
remember_one(AdvisorCand *c, HTAB *all_calls, TimestampTz now)
{
	RememberedIndex *e = slot_for(c);
	ListCell   *lc;

	if (e->dbid == InvalidOid)
	{
		memset(e, 0, sizeof(RememberedIndex));
		e->dbid = MyDatabaseId;
		e->relid = c->relid;
		strlcpy(e->definition, c->definition, REMEMBER_DEFINITION_LEN);
	}
	e->at = now;
	foreach(lc, c->helped)
	{
		AdvisorStmt *s = (AdvisorStmt *) lfirst(lc);
		StmtWeight *w = hash_search(all_calls, &s->queryid, HASH_FIND, NULL);

		add_query(e, s->queryid, w ? w->calls : 0);
	}
}

/*
 * Remember the recommendations in cands (AdvisorCand).  The executions are
 * counted over every role, as advisor_whatif.c counts them later, whoever
 * reads the recommendations or the findings.
 */
void
advisor_remember(List *cands)
{
	HTAB	   *all_calls;
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;

	if (remember == NULL || cands == NIL)
		return;
	all_calls = advisor_statement_weights(true);
	LWLockAcquire(remember->lock, LW_EXCLUSIVE);
	foreach(lc, cands)
	{
		AdvisorCand *c = (AdvisorCand *) lfirst(lc);

		/* too long to keep whole: a cut definition would name another index */
		if (strlen(c->definition) < REMEMBER_DEFINITION_LEN)
			remember_one(c, all_calls, now);
	}
	LWLockRelease(remember->lock);
}

/* Copies of the recommendations remembered for database dbid. */
List *
advisor_remembered(Oid dbid)
{
	List	   *result = NIL;
	int			i;

	if (remember == NULL)
		return NIL;
	LWLockAcquire(remember->lock, LW_SHARED);
	for (i = 0; i < REMEMBER_MAX; i++)
	{
		RememberedIndex *e = &remember->entries[i];

		if (e->dbid == dbid && e->dbid != InvalidOid)
		{
			RememberedIndex *copy = palloc(sizeof(RememberedIndex));

			memcpy(copy, e, sizeof(RememberedIndex));
			result = lappend(result, copy);
		}
	}
	LWLockRelease(remember->lock);
	return result;
}
