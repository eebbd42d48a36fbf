/*
 * cache_answer.c
 *		Owns the decisions the result cache takes the same way wherever a
 *		statement is answered, in the executor hooks (cache_hooks.c) or by a
 *		stand-in plan (cache_standin.c): where the current statement stands
 *		(nesting, EXPLAIN, perfopt.cache_warm()), why a statement is refused
 *		(the run-time conditions of the contract, the tables it reads, the
 *		rules), examining a candidate, finding the stored answer that is
 *		still valid under the statement's snapshot, and the outcome the
 *		user reads.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "tcop/pquery.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cache/cache_int.h"

/* utility commands this statement runs under (see cache_int.h: cache_nesting) */
int			cache_utility_level = 0;

/* inside EXPLAIN, whose plan must be the real one */
int			cache_explaining = 0;

/* perfopt.cache_warm() lets the statement it runs count as top level */
int			cache_warm_level = -1;

/*
 * What happened to the current top-level statement (for EXPLAIN ANALYZE and
 * cache_warm) and to the one before it (for perfopt.cache_last_outcome(),
 * itself a statement).
 */
const char *cache_last_outcome = NULL;
const char *cache_prev_outcome = NULL;

#define SHAPE_REFUSAL "statement shape not cacheable (not a plain SELECT, or volatile, user-defined or session functions)"

/* the outcome of an unmarked plan, spelled out when read */
const char	cache_unmarked[] = "unmarked";

/* An outcome as the user reads it. */
const char *
cache_outcome_text(const char *outcome)
{
	if (outcome != cache_unmarked)
		return outcome;
	return cache_rules_none() ? "no cache rule selects it" : SHAPE_REFUSAL;
}

/* The run-time conditions of the contract; NULL when they all hold. */
const char *
cache_runtime_refusal(QueryDesc *queryDesc, bool records_ok, ScanDirection direction,
				uint64 count, bool at_start)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;
	const char *why = cache_session_refusal();

	if (why)
		return why;
	/* without rules the planner did not look at the shape at all */
	if (!(stmt->jitFlags & CACHE_SHAPE_CACHEABLE) && cache_rules_none())
		return "no cache rule selects it";
	if (!(stmt->jitFlags & CACHE_SHAPE_CACHEABLE) || stmt->commandType != CMD_SELECT ||
		queryDesc->operation != CMD_SELECT || stmt->queryId == UINT64CONST(0))
		return SHAPE_REFUSAL;
	if (stmt->rowMarks != NIL || stmt->hasModifyingCTE || stmt->dependsOnRole)
		return "statement locks rows, writes or depends on the role";
	/*
	 * Only a whole result from a fresh start: a second run of the same
	 * statement continues where it stopped, and a scrollable cursor may be
	 * fetched backwards from where a real run would have left it.
	 */
	if ((!at_start && (count != 0 || queryDesc->already_executed ||
					   !ScanDirectionIsForward(direction))) ||
		ActivePortal == NULL || (ActivePortal->cursorOptions & CURSOR_OPT_SCROLL))
		return "fetched piecemeal (cursor or row limit)";
	if (XactIsoLevel != XACT_READ_COMMITTED)
		return "transaction is not READ COMMITTED";
	if (queryDesc->snapshot == NULL || !IsMVCCSnapshot(queryDesc->snapshot))
		return "no MVCC snapshot";
	if (!records_ok)
		return "returns anonymous records";
	return NULL;
}

/* The tables a range table reads, and whether each may be cached at all. */
const char *
cache_relation_refusal_of(List *rtable, CacheCandidate *c)
{
	ListCell   *lc;

	c->nrels = 0;
	foreach(lc, rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		int			i;

		if (rte->rtekind != RTE_RELATION)
			continue;
		if (cache_relation_refusal(rte->relid))
			return "reads a table that is never cached";
		if (rte->relkind == RELKIND_VIEW)
			continue;			/* its tables are in the range table too */
		for (i = 0; i < c->nrels; i++)
			if (c->relids[i] == rte->relid)
				break;
		if (i < c->nrels)
			continue;
		if (c->nrels == CACHE_MAX_DEPS)
			return "reads too many tables";
		if (cache_xact_wrote(rte->relid))
			return "this transaction wrote a table it reads";
		c->relids[c->nrels++] = rte->relid;
	}
	return NULL;
}

/*
 * Is the stored blob the answer for this statement, now, under this
 * snapshot?  (NULL: no snapshot yet, all but the snapshot checked.)
 */
bool
cache_blob_answers(CacheCandidate *c, Snapshot snapshot, uint32 tupdesc_hash, char *blob,
				   uint32 len, CacheBlobHeader **hdr, char **tuples, bool *invalid,
				   bool *expired)
{
	CacheDep   *deps;
	int			ndeps;
	char	   *key;
	int			i;

	*invalid = *expired = false;
	if (!cache_blob_parse(blob, len, &deps, &ndeps, hdr, &key, tuples) ||
		(*hdr)->keylen != (uint32) c->key.len ||
		memcmp(key, c->key.data, c->key.len) != 0 ||
		(*hdr)->tupdesc_hash != tupdesc_hash)
		return false;			/* another statement with the same hash */
	for (i = 0; i < ndeps; i++)
	{
		if (cache_slot_gen(deps[i].slot) != deps[i].gen)
		{
			*invalid = true;
			return false;
		}
	}
	if ((*hdr)->expires != 0 && GetCurrentTimestamp() >= (*hdr)->expires)
	{
		*expired = true;
		return false;
	}

	/*
	 * Every writer the result includes must be visible to this statement's
	 * snapshot, taken before this check: never serve what is newer.
	 */
	return snapshot == NULL ||
		FullTransactionIdPrecedes((*hdr)->max_writer, cache_full_xid(snapshot->xmin));
}

/*
 * The stored answer to c under snapshot (see cache_blob_answers), copied
 * out of the store into *blob, or false.  With forget, an entry found
 * invalid or expired is dropped and counted now, and this session takes
 * the flight of its recomputation (cache_flight.c); callers that leave
 * that to ExecutorRun pass false.  Finding no entry for a key that another
 * session recomputes, it waits for that session once and looks again.
 */
bool
cache_find_answer(CacheCandidate *c, Snapshot snapshot, uint32 tupdesc_hash,
				  uint64 queryid, bool forget, char **blob,
				  uint32 *len, CacheBlobHeader **hdr, char **tuples)
{
	Oid			userid = GetUserId();
	bool		waited = false;

	for (;;)
	{
		bool		invalid;
		bool		expired;

		if (!cache_store_lookup(MyDatabaseId, userid, c->keyhash,
								c->key.data, c->key.len, blob, len))
		{
			if (!waited && cache_flight_wait(MyDatabaseId, userid, c->keyhash))
			{
				waited = true;
				continue;
			}
			return false;
		}
		if (cache_blob_answers(c, snapshot, tupdesc_hash, *blob, *len, hdr, tuples,
							   &invalid, &expired))
			return true;
		pfree(*blob);
		if (!forget || !(invalid || expired))
			return false;
		cache_store_forget(MyDatabaseId, userid, c->keyhash, invalid, expired, queryid);
		if (cache_flight_take(MyDatabaseId, userid, c->keyhash) || waited ||
			!cache_flight_wait(MyDatabaseId, userid, c->keyhash))
			return false;
		waited = true;
	}
}


/*
 * Is this statement a candidate?  Fills c; sets cache_last_outcome if not.
 * known: the key the planner hook already built for this plan
 * (cache_standin_missed_key), or NULL.
 */
bool
cache_examine(QueryDesc *queryDesc, bool records_ok, ScanDirection direction,
			  uint64 count, bool at_start, const CacheCandidate *known, CacheCandidate *c)
{
	const char *why = cache_runtime_refusal(queryDesc, records_ok, direction, count, at_start);
	PlannedStmt *stmt = queryDesc->plannedstmt;

	if (!why && cache_rules_none())
		why = "no cache rule selects it";
	if (!why)
		why = cache_relation_refusal_of(stmt->rtable, c);
	if (!why && !cache_rules_lookup(queryDesc->plannedstmt->queryId,
									c->relids, c->nrels, &c->ttl_us))
		why = "no cache rule selects it";
	if (!why && (queryDesc->plannedstmt->jitFlags & CACHE_SHAPE_STABLE) && c->ttl_us < 0)
		why = "calls a stable function and its rule has no ttl";
	if (!why && known)
	{
		c->key = known->key;
		c->keyhash = known->keyhash;
		return true;
	}
	if (!why)
	{
		initStringInfo(&c->key);
		if (!cache_build_key(stmt->queryId, queryDesc->sourceText, stmt->stmt_location,
							 stmt->stmt_len, queryDesc->params,
							 (stmt->jitFlags & CACHE_SHAPE_SETTINGS) != 0, &c->key))
			why = "parameters cannot be read";
	}
	if (why)
	{
		if (!at_start)
			cache_last_outcome = why;
		return false;
	}
	c->keyhash = cache_key_hash(&c->key);
	return true;
}
