/*
 * cache_triggers.c
 *		Owns the two triggers through which writes reach the result cache:
 *		the invalidation trigger, a statement trigger on every table a
 *		cached result reads, notes that this transaction wrote the table;
 *		the key trigger, a row trigger on tables whose rules restrict them
 *		to key values (cache_keys.c), notes which key bands the rows
 *		written had.  Both only note: the bumps happen at commit
 *		(cache_inval.c), so a rolled-back write invalidates nothing.
 *		perfopt._cache_sync_triggers() (cache.sql) creates them.
 */
#include "postgres.h"

#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "cache/cache_int.h"

PG_FUNCTION_INFO_V1(perfopt_cache_invalidate);
PG_FUNCTION_INFO_V1(perfopt_cache_note_keys);

/*
 * Must this write bump the table's wide slot, on which its keyed entries
 * depend?  Only where keyed entries can exist, i.e. the table has a key
 * trigger (stores check it in the catalog; removing it is DDL, which drops
 * keyed entries), and that trigger did not see every row: TRUNCATE, or a key
 * trigger that is not enabled ALWAYS or has a WHEN condition.  The
 * relcache's copy is the one the executor fired row triggers from.
 */
static bool
write_is_wide(Relation rel, bool truncate)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	Oid			keys_fn;
	bool		has_key_trigger = false;
	int			i;

	/* no BEFORE row trigger at all, the common case: no key trigger either */
	if (trigdesc == NULL ||
		!(trigdesc->trig_insert_before_row || trigdesc->trig_update_before_row ||
		  trigdesc->trig_delete_before_row))
		return false;
	keys_fn = cache_keys_trigger_function();
	if (!OidIsValid(keys_fn))
		return false;
	for (i = 0; i < trigdesc->numtriggers; i++)
	{
		Trigger    *t = &trigdesc->triggers[i];

		if (t->tgfoid != keys_fn)
			continue;
		has_key_trigger = true;
		if (!truncate && t->tgenabled == TRIGGER_FIRES_ALWAYS && t->tgqual == NULL &&
			TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_BEFORE(t->tgtype) &&
			TRIGGER_FOR_INSERT(t->tgtype) && TRIGGER_FOR_UPDATE(t->tgtype) &&
			TRIGGER_FOR_DELETE(t->tgtype))
			return false;
	}
	return has_key_trigger;
}

/*
 * A statement trigger fires only on the table a statement names: a write
 * through a partitioned or inheritance parent (rows routed to partitions,
 * moved between them, updated or deleted in children, COPY into the parent)
 * fires none of its descendants' triggers.  So a write noted on a parent is
 * noted on every descendant as well: entries that read a partition or child
 * directly are invalidated at commit, and this transaction sees its own
 * write there (cache_xact_wrote).  A write straight into a child needs no
 * such step upwards: an entry that read the parent lists the children it
 * read among its tables.  Descendants have no key trigger of their own to
 * trust (keys are exact on plain tables only), so their writes are wide.
 */
static void
note_descendants(Oid relid)
{
	List	   *all = find_all_inheritors(relid, NoLock, NULL);
	ListCell   *lc;

	foreach(lc, all)
	{
		if (lfirst_oid(lc) != relid)
			cache_xact_note_write(lfirst_oid(lc), true, false);
	}
	list_free(all);
}

/*
 * Is this perfopt's rules table?  Its writes change what backends keep of
 * the rules, which standbys must read again once the write is visible
 * there (cache_inval.c).  The name first: a string comparison per write.
 */
static bool
is_rules_table(Relation rel)
{
	char	   *nsp;
	bool		rules;

	if (strcmp(RelationGetRelationName(rel), "cache_rule_defs") != 0)
		return false;
	nsp = get_namespace_name(RelationGetNamespace(rel));
	rules = nsp != NULL && strcmp(nsp, "perfopt") == 0;
	if (nsp)
		pfree(nsp);
	return rules;
}

/*
 * The invalidation trigger: AFTER INSERT OR UPDATE [OF ...] OR DELETE OR
 * TRUNCATE, FOR EACH STATEMENT, ENABLE ALWAYS.  It only notes the table;
 * the bump happens at commit, so a rolled-back write invalidates nothing.
 */
Datum
perfopt_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("perfopt._cache_invalidate() must be called as a trigger"),
				 errhint("perfopt.cache_query() and perfopt.cache_table() create the triggers that call it.")));
	cache_xact_note_write(RelationGetRelid(trigdata->tg_relation),
						  write_is_wide(trigdata->tg_relation,
										TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event)),
						  is_rules_table(trigdata->tg_relation));
	if (trigdata->tg_relation->rd_rel->relhassubclass)
		note_descendants(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/* One key column's band in a row, or -1 for NULL. */
static int
row_band(TupleTableSlot *slot, AttrNumber attno)
{
	bool		isnull;
	Datum		d;
	Oid			type;

	if (attno < 1 || attno > slot->tts_tupleDescriptor->natts)
		return -1;
	d = slot_getattr(slot, attno, &isnull);
	if (isnull)
		return -1;
	type = TupleDescAttr(slot->tts_tupleDescriptor, attno - 1)->atttypid;
	return cache_key_band(type, d);
}

/*
 * The key trigger: BEFORE INSERT OR UPDATE OR DELETE, FOR EACH ROW, ENABLE
 * ALWAYS, its arguments the key columns' numbers.  It notes the band of
 * each key value a row had before and after the write, so that the commit
 * invalidates only entries restricted to those keys (cache_keys.c).  No
 * other BEFORE row trigger may run on the table (perfopt checks), so the
 * values it sees are the ones written.
 */
Datum
perfopt_cache_note_keys(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	Oid			relid;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("perfopt._cache_note_keys() must be called as a BEFORE row trigger"),
				 errhint("perfopt.cache_query() creates the triggers that call it.")));
	trigger = trigdata->tg_trigger;
	relid = RelationGetRelid(trigdata->tg_relation);
	for (i = 0; i < trigger->tgnargs; i++)
	{
		AttrNumber	attno = (AttrNumber) atoi(trigger->tgargs[i]);
		int			band = row_band(trigdata->tg_trigslot, attno);

		if (band >= 0)
			cache_xact_note_key(relid, attno, band);
		if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) &&
			(band = row_band(trigdata->tg_newslot, attno)) >= 0)
			cache_xact_note_key(relid, attno, band);
	}
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return PointerGetDatum(trigdata->tg_newtuple);
	return PointerGetDatum(trigdata->tg_trigtuple);
}
