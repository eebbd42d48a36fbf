/*
 * cache_entry.c
 *		Owns what one cache entry is made of: the key material (everything
 *		that can change a statement's answer), the stored layout of a
 *		result, the DestReceiver that copies rows on their way to the client
 *		during a miss, and the replay of stored rows on a hit.
 *
 *		Rows are kept as detoasted MinimalTuples (a TOAST pointer would die
 *		with the next VACUUM); the client's output format (text or binary,
 *		DateStyle) is applied when they are sent, as for any other row.
 *		Rows of a client reading text may also keep the text it received
 *		(cache_wire.c), sent as it is to the next client reading text under
 *		the same output settings.
 *
 *		Layout of a blob, every part MAXALIGNed:
 *			int32 ndeps | CacheDep[ndeps] | CacheBlobHeader | key | rows
 *		where each row is a uint64 word (the MinimalTuple's length, and in
 *		the high half the length of its text, 0 without) followed by the
 *		MinimalTuple and then its text.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "tcop/dest.h"
#include "catalog/namespace.h"
#include "parser/parse_expr.h"
#include "parser/parser.h"
#include "pgtime.h"
#include "tsearch/ts_cache.h"
#include "utils/array.h"
#include "utils/datum.h"
#include "utils/pg_locale.h"
#include "utils/guc_tables.h"
#include "utils/rls.h"
#include "utils/xml.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "cache/cache_int.h"

/*
 * Settings in the key.  Output functions and built-ins read settings inside
 * the query (extra_float_digits in float8out, bytea_output in byteaout,
 * quote_all_identifiers in quote_ident, timezone_abbreviations when a
 * literal is read, xmlbinary, DateStyle, lc_numeric in to_char, ...), and
 * so do custom settings through current_setting().  A list of the ones
 * that matter would miss the next one, so the rule is the other way round:
 * every setting whose current value did not come from its built-in default
 * is in the key, by name and value, except the few below that cannot
 * change a statement's answer (plans, costs, memory, timeouts, logging,
 * statistics, maintenance).  Settings fixed for the server's lifetime
 * (internal, postmaster) are the same in every session and left out.  A
 * statement that reads settings by name (current_setting) is keyed on the
 * harmless ones too.
 *
 * The settings are walked in guc.c's array at every key; the positions of
 * the ones that may matter are remembered per backend, rebuilt when the
 * array changes (a new custom setting, or a library replacing a
 * placeholder with its real setting).
 */
static const char *const answer_neutral_prefixes[] = {
	"enable_", "log_", "debug_", "trace_", "track_", "autovacuum", "vacuum_",
	"geqo", "jit", "parallel_", "max_parallel_", "min_parallel_", "wal_",
	"checkpoint_", "bgwriter_", "archive_", "syslog_", "tcp_", "perfopt.",
	"auto_explain.", "pg_stat_statements.", "idle_", "statement_timeout",
	"lock_timeout", "deadlock_timeout", "seq_page_cost", "random_page_cost",
	"cpu_tuple_cost", "cpu_index_tuple_cost", "cpu_operator_cost",
	"effective_cache_size", "effective_io_concurrency",
	"maintenance_io_concurrency", "work_mem", "maintenance_work_mem",
	"hash_mem_multiplier", "logical_decoding_work_mem", "temp_buffers",
	"temp_file_limit", "application_name", "client_min_messages",
	"lc_messages", "from_collapse_limit", "join_collapse_limit",
	"cursor_tuple_fraction", "default_statistics_target",
	"constraint_exclusion", "plan_cache_mode", "recursive_worktable_factor",
	"commit_delay", "commit_siblings", "synchronous_commit",
	"compute_query_id", "force_parallel_mode", "check_function_bodies",
	"default_transaction_", "transaction_", "stats_fetch_consistency",
	"default_tablespace", "temp_tablespaces", "default_table_access_method",
	"default_toast_compression", "gin_pending_list_limit",
	"client_connection_check_interval", "update_process_title",
	"session_preload_libraries", "local_preload_libraries",
	"max_stack_depth", "backtrace_functions", "event_source",
	"cluster_name", "vacuum_cost_", "zero_damaged_pages",
	"ignore_checksum_failure", "ignore_system_indexes", "max_wal_size",
	"min_wal_size",
	/* rows are converted to the client's encoding when they are sent */
	"client_encoding"
};

/*
 * The settings the key looks at, remembered per backend in three lists so
 * that the walk at every key is one load and one test per setting:
 * settings of the server and libraries (never freed), the answer-neutral
 * ones (walked for current_setting() readers only), and custom
 * placeholders, which a library loaded later replaces with its real
 * setting and frees: for those the array's entry is compared first.
 * Each setting is keyed by a hash of its name (the same in every backend,
 * whatever custom settings it has) and its value.
 */
typedef struct KeySetting
{
	struct config_generic *var;
	uint64		name_hash;
	int			index;			/* in guc.c's array: placeholders only */
} KeySetting;

typedef struct KeySettingList
{
	KeySetting *items;
	int			n;
} KeySettingList;

static KeySettingList keyed_settings;	/* always in the key when set */
static KeySettingList neutral_settings; /* only for current_setting() */
static KeySettingList placeholder_settings; /* custom, not yet defined */
static struct config_generic **key_settings_array = NULL;
static int	key_settings_count = -1;

static bool
answer_neutral(const char *name)
{
	int			i;

	for (i = 0; i < lengthof(answer_neutral_prefixes); i++)
		if (pg_strncasecmp(name, answer_neutral_prefixes[i],
						   strlen(answer_neutral_prefixes[i])) == 0)
			return true;
	return false;
}

static void
list_add(KeySettingList *list, struct config_generic *g, int index)
{
	KeySetting *k = &list->items[list->n++];
	char	   *lower = pstrdup(g->name);	/* names match case-insensitively */
	char	   *c;

	for (c = lower; *c; c++)
		*c = pg_ascii_tolower((unsigned char) *c);
	k->var = g;
	k->index = index;
	k->name_hash = hash_bytes_extended((unsigned char *) lower, strlen(lower), 0);
	pfree(lower);
}

static void
remember_key_settings(struct config_generic **vars, int count)
{
	KeySettingList *lists[] = {&keyed_settings, &neutral_settings, &placeholder_settings};
	int			i;

	for (i = 0; i < lengthof(lists); i++)
	{
		if (lists[i]->items)
			pfree(lists[i]->items);
		lists[i]->items = MemoryContextAlloc(TopMemoryContext,
											 sizeof(KeySetting) * Max(count, 1));
		lists[i]->n = 0;
	}
	for (i = 0; i < count; i++)
	{
		struct config_generic *g = vars[i];

		if (g->context == PGC_INTERNAL || g->context == PGC_POSTMASTER)
			continue;
		if (g->flags & GUC_CUSTOM_PLACEHOLDER)
			list_add(&placeholder_settings, g, i);
		else if (answer_neutral(g->name))
			list_add(&neutral_settings, g, i);
		else
			list_add(&keyed_settings, g, i);
	}
	key_settings_array = vars;
	key_settings_count = count;
}

/*
 * Append n bytes to the key, inline: the key is built for every statement
 * the cache examines, and most of its pieces are a few bytes long.
 */
static inline void
key_put(StringInfo key, const void *data, int n)
{
	if (unlikely(key->len + n >= key->maxlen))
		enlargeStringInfo(key, n);
	memcpy(key->data + key->len, data, n);
	key->len += n;
}

static void
append_setting_value(StringInfo key, const KeySetting *k)
{
	struct config_generic *g = k->var;

	key_put(key, &k->name_hash, sizeof(uint64));
	switch (g->vartype)
	{
		case PGC_BOOL:
			key_put(key, *((struct config_bool *) g)->variable ? "t" : "f", 1);
			break;
		case PGC_INT:
			key_put(key, ((struct config_int *) g)->variable, sizeof(int));
			break;
		case PGC_REAL:
			key_put(key, ((struct config_real *) g)->variable, sizeof(double));
			break;
		case PGC_ENUM:
			key_put(key, ((struct config_enum *) g)->variable, sizeof(int));
			break;
		case PGC_STRING:
			{
				char	   *v = *((struct config_string *) g)->variable;

				/* with its terminating zero, so that values cannot run together */
				key_put(key, v ? v : "", v ? strlen(v) + 1 : 1);
				break;
			}
	}
}

static inline void
append_list(StringInfo key, const KeySettingList *list)
{
	int			i;

	for (i = 0; i < list->n; i++)
		if (list->items[i].var->source > PGC_S_DYNAMIC_DEFAULT)
			append_setting_value(key, &list->items[i]);
}

static void
append_settings(StringInfo key, bool all_settings)
{
	struct config_generic **vars = get_guc_variables();
	int			count = GetNumConfigOptions();
	int			i;

	if (vars != key_settings_array || count != key_settings_count)
		remember_key_settings(vars, count);
	/* a placeholder replaced by a library's own setting: start over */
	for (i = 0; i < placeholder_settings.n; i++)
		if (unlikely(vars[placeholder_settings.items[i].index] !=
					 placeholder_settings.items[i].var))
		{
			remember_key_settings(vars, count);
			break;
		}
	append_list(key, &keyed_settings);
	append_list(key, &placeholder_settings);
	if (all_settings)
		append_list(key, &neutral_settings);
}

struct CacheCapture
{
	DestReceiver pub;
	DestReceiver *inner;
	TupleDesc	desc;
	CacheWire  *wire;			/* NULL: rows are kept without their text */
	StringInfoData text;		/* the current row's text */
	StringInfoData rows;
	uint32		ntuples;
	Size		limit;
	bool		overflow;
	MemoryContextCallback release;	/* the spare's, see spare_capture */
};

/*
 * One capture kept for the statement running now (there is usually one),
 * with its buffers in TopMemoryContext, so that a miss allocates neither
 * the receiver nor its first buffers; it is taken back when the
 * statement's executor memory goes (ExecutorEnd, or an error), after the
 * miss stored what it captured.  A capture that begins while it is taken
 * (a nested statement's) gets its own, in the statement's memory.
 */
static CacheCapture spare_capture;
static bool spare_capture_taken = false;

/* spare buffers larger than this are given back rather than kept */
#define SPARE_KEEP_BYTES 65536

static void
append_param(StringInfo key, ParamExternData *prm)
{
	int16		typlen;
	bool		typbyval;

	key_put(key, &prm->ptype, sizeof(Oid));
	key_put(key, prm->isnull ? "n" : "v", 1);
	if (prm->isnull || !OidIsValid(prm->ptype))
		return;
	get_typlenbyval(prm->ptype, &typlen, &typbyval);
	if (typbyval)
	{
		int64		v;

		switch (typlen)
		{
			case 1:
				v = DatumGetChar(prm->value);
				break;
			case 2:
				v = DatumGetInt16(prm->value);
				break;
			case 4:
				v = DatumGetInt32(prm->value);
				break;
			default:
				v = DatumGetInt64(prm->value);
				break;
		}
		key_put(key, &v, sizeof(v));
	}
	else if (typlen == -1)
	{
		struct varlena *p = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(prm->value));
		uint32		len = VARSIZE_ANY_EXHDR(p);

		key_put(key, &len, sizeof(len));
		key_put(key, VARDATA_ANY(p), len);
	}
	else if (typlen == -2)
	{
		const char *s = DatumGetCString(prm->value);
		uint32		len = strlen(s);

		key_put(key, &len, sizeof(len));
		key_put(key, s, len);
	}
	else
		key_put(key, DatumGetPointer(prm->value), typlen);
}

/*
 * The constants of an analyzed statement, hashed.  The key's text says
 * which literals a statement has, but not what they were read as: parse
 * analysis reads a literal under the settings of that moment (DateStyle for
 * a date, array_nulls for an array, standard_conforming_strings for a
 * string), and a statement prepared before one of them changed keeps what
 * it read then.  The values themselves go into the key, so two analyses of
 * the same text that read different constants never share an entry.
 * Computed from the Query the planner is given, and carried to execution in
 * the plan (cache_plan_set_consts).
 */
typedef struct ConstsHash
{
	uint64		h;
} ConstsHash;

static bool
consts_walker(Node *node, ConstsHash *ch)
{
	if (node == NULL)
		return false;
	if (IsA(node, Const))
	{
		Const	   *c = (Const *) node;
		uint64		part = hash_bytes_uint32_extended(c->consttype, c->constisnull);

		if (!c->constisnull)
		{
			if (c->constbyval)
				part ^= hash_bytes_extended((unsigned char *) &c->constvalue, sizeof(Datum), part);
			else if (c->constlen == -1)
			{
				struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(c->constvalue));

				part ^= hash_bytes_extended((unsigned char *) VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v), part);
			}
			else
				part ^= hash_bytes_extended((unsigned char *) DatumGetPointer(c->constvalue),
											datumGetSize(c->constvalue, false, c->constlen), part);
		}
		ch->h = hash_combine64(ch->h * UINT64CONST(0x9E3779B97F4A7C15), part);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, consts_walker, ch, 0);
	return expression_tree_walker(node, consts_walker, ch);
}

uint64
cache_query_consts(Query *query)
{
	ConstsHash	ch = {UINT64CONST(0x2545F4914F6CDD1D)};

	(void) query_tree_walker(query, consts_walker, &ch, 0);
	return ch.h;
}

/*
 * The plan carries its Query's constants hash as two items of its
 * invalidation list whose cache ids name no catalog cache, so that they
 * match no invalidation and survive wherever the plan is copied.
 */
#define CONSTS_ITEM_HIGH (-0x7065)
#define CONSTS_ITEM_LOW (-0x7066)

void
cache_plan_set_consts(PlannedStmt *plan, uint64 consts)
{
	/* one allocation for both, and usually for the list: every plan pays it */
	PlanInvalItem *items = palloc0(sizeof(PlanInvalItem) * 2);
	PlanInvalItem *hi = &items[0];
	PlanInvalItem *lo = &items[1];

	hi->type = lo->type = T_PlanInvalItem;
	hi->cacheId = CONSTS_ITEM_HIGH;
	hi->hashValue = (uint32) (consts >> 32);
	lo->cacheId = CONSTS_ITEM_LOW;
	lo->hashValue = (uint32) consts;
	if (plan->invalItems == NIL)
		plan->invalItems = list_make2(hi, lo);
	else
		plan->invalItems = lappend(lappend(plan->invalItems, hi), lo);
}

/* to takes from's constants hash (a plan made again from the same Query) */
void
cache_plan_copy_consts(PlannedStmt *from, PlannedStmt *to)
{
	uint64		consts;
	ListCell   *lc;

	if (!cache_plan_consts(from, &consts))
		return;
	foreach(lc, to->invalItems)
	{
		PlanInvalItem *item = lfirst_node(PlanInvalItem, lc);

		if (item->cacheId == CONSTS_ITEM_HIGH || item->cacheId == CONSTS_ITEM_LOW)
			to->invalItems = foreach_delete_current(to->invalItems, lc);
	}
	cache_plan_set_consts(to, consts);
}

bool
cache_plan_consts(PlannedStmt *plan, uint64 *consts)
{
	ListCell   *lc;
	int			found = 0;

	*consts = 0;
	foreach(lc, plan->invalItems)
	{
		PlanInvalItem *item = lfirst_node(PlanInvalItem, lc);

		if (item->cacheId == CONSTS_ITEM_HIGH)
		{
			*consts |= (uint64) item->hashValue << 32;
			found |= 1;
		}
		else if (item->cacheId == CONSTS_ITEM_LOW)
		{
			*consts |= item->hashValue;
			found |= 2;
		}
	}
	return found == 3;
}

/*
 * The key material: database, roles, statement text with its constants,
 * bind parameter values and the settings above.  Built from the plan at
 * execution and from the analyzed statement at planning (cache_standin.c):
 * both must give the same bytes.  False when the statement has parameters
 * that cannot be read (a fetch hook: not a client's).
 */
bool
cache_build_key(uint64 queryid, const char *sourceText, int stmt_location,
				int stmt_len, uint64 consts, ParamListInfo params, bool all_settings,
				StringInfo key)
{
	Oid			ids[3];
	const char *text = sourceText ? sourceText : "";
	int			loc = Max(stmt_location, 0);
	int			textlen = strlen(text);
	int			len;
	int			i;

	ids[0] = MyDatabaseId;
	ids[1] = GetUserId();
	ids[2] = GetSessionUserId();
	key_put(key, ids, sizeof(ids));
	key_put(key, &queryid, sizeof(uint64));
	key_put(key, &consts, sizeof(uint64));
	append_settings(key, all_settings);
	if (loc > textlen)
		loc = 0;
	len = stmt_len > 0 && stmt_len <= textlen - loc ? stmt_len : textlen - loc;
	key_put(key, &len, sizeof(len));
	key_put(key, text + loc, len);

	if (params)
	{
		if (params->paramFetch != NULL)
			return false;
		key_put(key, &params->numParams, sizeof(int));
		for (i = 0; i < params->numParams; i++)
			append_param(key, &params->params[i]);
	}
	return true;
}

/*
 * The hash of a key's bytes, by which the store and the in-flight table
 * find its entry (the whole key is compared before an entry is used, so a
 * collision costs a lookup, never a wrong answer).  Eight bytes per step
 * and a final mix: keys run to a few hundred bytes and are hashed for
 * every statement the cache examines.
 */
uint64
cache_key_hash(const StringInfo key)
{
	const char *p = key->data;
	int			left = key->len;
	uint64		h = UINT64CONST(0x9E3779B97F4A7C15) ^ (uint64) left;
	uint64		w;

	for (; left >= 8; p += 8, left -= 8)
	{
		memcpy(&w, p, 8);
		h = (h ^ w) * UINT64CONST(0xBF58476D1CE4E5B9);
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, p, left);
	h = (h ^ w) * UINT64CONST(0x94D049BB133111EB);
	h ^= h >> 32;
	h *= UINT64CONST(0xBF58476D1CE4E5B9);
	h ^= h >> 29;
	return h;
}

/*
 * The hash of a statement's output columns (count, then each type and
 * typmod), which a stored answer must match besides its key.  One multiply
 * per value and a final mix: it is computed at every lookup and store.
 */
static inline uint64
shape_mix(uint64 h, uint32 v)
{
	return (h ^ v) * UINT64CONST(0x9E3779B97F4A7C15);
}

static inline uint32
shape_final(uint64 h)
{
	h ^= h >> 31;
	h *= UINT64CONST(0xBF58476D1CE4E5B9);
	h ^= h >> 29;
	return (uint32) h;
}

uint32
cache_tupdesc_hash(TupleDesc desc)
{
	uint64		h = shape_mix(0, (uint32) desc->natts);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		h = shape_mix(h, att->atttypid);
		h = shape_mix(h, (uint32) att->atttypmod);
	}
	return shape_final(h);
}

/*
 * The output columns of a targetlist, as the executor will describe them
 * (ExecCleanTypeFromTL: the non-junk entries' exprType and exprTypmod),
 * without building that TupleDesc: *hash is what cache_tupdesc_hash()
 * gives for it.  False if a column is an anonymous record (see below).
 */
bool
cache_tlist_shape(List *tlist, uint32 *hash)
{
	ListCell   *lc;
	int			natts = 0;
	uint64		h;

	foreach(lc, tlist)
		if (!lfirst_node(TargetEntry, lc)->resjunk)
			natts++;
	h = shape_mix(0, (uint32) natts);
	foreach(lc, tlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Oid			type;

		if (tle->resjunk)
			continue;
		type = exprType((Node *) tle->expr);
		if (type == RECORDOID || type == RECORDARRAYOID)
			return false;
		h = shape_mix(h, type);
		h = shape_mix(h, (uint32) exprTypmod((Node *) tle->expr));
	}
	*hash = shape_final(h);
	return true;
}

/* Anonymous record types have backend-local typmods: not shareable. */
bool
cache_tupdesc_ok(TupleDesc desc)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Oid			t = TupleDescAttr(desc, i)->atttypid;

		if (t == RECORDOID || t == RECORDARRAYOID)
			return false;
	}
	return true;
}

static void
append_aligned(StringInfo buf, const char *data, uint32 len)
{
	appendBinaryStringInfo(buf, data, len);
	while (buf->len % MAXIMUM_ALIGNOF)
		appendStringInfoChar(buf, '\0');
}

/* A MinimalTuple of the slot with every out-of-line value brought inline. */
static MinimalTuple
detoasted_copy(TupleTableSlot *slot, TupleDesc desc)
{
	Datum	   *values;
	int			i;
	bool		external = false;
	MinimalTuple mt;

	slot_getallattrs(slot);
	for (i = 0; i < desc->natts && !external; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		external = att->attlen == -1 && !slot->tts_isnull[i] &&
			VARATT_IS_EXTERNAL(DatumGetPointer(slot->tts_values[i]));
	}
	if (!external)
		return ExecCopySlotMinimalTuple(slot);

	values = palloc(sizeof(Datum) * desc->natts);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		values[i] = slot->tts_values[i];
		if (att->attlen == -1 && !slot->tts_isnull[i] &&
			VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
			values[i] = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(values[i])));
	}
	mt = heap_form_minimal_tuple(desc, values, slot->tts_isnull);
	pfree(values);
	return mt;
}

static bool
capture_receive(TupleTableSlot *slot, DestReceiver *self)
{
	CacheCapture *cap = (CacheCapture *) self;
	bool		more = cap->inner->receiveSlot(slot, cap->inner);

	if (!cap->overflow)
	{
		MinimalTuple mt = detoasted_copy(slot, cap->desc);
		uint32		len = mt->t_len;
		uint32		textlen = 0;

		if (cap->wire)
		{
			cache_wire_row(cap->wire, slot, &cap->text);
			textlen = cap->text.len;
		}
		if (cap->rows.len + MAXALIGN(sizeof(uint64)) + MAXALIGN(len) +
			MAXALIGN(textlen) > cap->limit)
		{
			cap->overflow = true;
			pfree(cap->rows.data);
			cap->rows.data = NULL;
		}
		else
		{
			uint64		lenword = len | ((uint64) textlen << 32);

			appendBinaryStringInfo(&cap->rows, (char *) &lenword, sizeof(uint64));
			append_aligned(&cap->rows, (char *) mt, len);
			if (textlen > 0)
				append_aligned(&cap->rows, cap->text.data, textlen);
			cap->ntuples++;
		}
		pfree(mt);
	}
	return more;
}

static void
capture_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	CacheCapture *cap = (CacheCapture *) self;

	cap->inner->rStartup(cap->inner, operation, typeinfo);
}

static void
capture_shutdown(DestReceiver *self)
{
	CacheCapture *cap = (CacheCapture *) self;

	cap->inner->rShutdown(cap->inner);
}

static void
capture_destroy(DestReceiver *self)
{
	/* owned by the query's memory context */
}

static void
release_spare_capture(void *arg)
{
	CacheCapture *cap = &spare_capture;

	cache_wire_end(cap->wire);
	cap->wire = NULL;
	if (cap->rows.data && cap->rows.maxlen > SPARE_KEEP_BYTES)
	{
		pfree(cap->rows.data);
		cap->rows.data = NULL;
	}
	if (cap->text.data && cap->text.maxlen > SPARE_KEEP_BYTES)
	{
		pfree(cap->text.data);
		cap->text.data = NULL;
	}
	spare_capture_taken = false;
}

/* The spare capture, emptied, until queryDesc's executor memory goes. */
static CacheCapture *
take_spare_capture(QueryDesc *queryDesc)
{
	CacheCapture *cap = &spare_capture;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	if (cap->rows.data == NULL)
		initStringInfo(&cap->rows);
	if (cap->text.data == NULL)
		initStringInfo(&cap->text);
	MemoryContextSwitchTo(old);
	resetStringInfo(&cap->rows);
	cap->wire = NULL;
	cap->ntuples = 0;
	cap->overflow = false;
	cap->release.func = release_spare_capture;
	cap->release.arg = NULL;
	MemoryContextRegisterResetCallback(queryDesc->estate->es_query_cxt, &cap->release);
	spare_capture_taken = true;
	return cap;
}

/* Interpose a capturing receiver in front of the statement's own. */
CacheCapture *
cache_capture_begin(QueryDesc *queryDesc, Size limit)
{
	CacheCapture *cap;

	if (!spare_capture_taken)
		cap = take_spare_capture(queryDesc);
	else
	{
		MemoryContext old = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);

		cap = palloc0(sizeof(CacheCapture));
		initStringInfo(&cap->rows);
		MemoryContextSwitchTo(old);
	}
	cap->pub.receiveSlot = capture_receive;
	cap->pub.rStartup = capture_startup;
	cap->pub.rShutdown = capture_shutdown;
	cap->pub.rDestroy = capture_destroy;
	cap->pub.mydest = queryDesc->dest->mydest;
	cap->inner = queryDesc->dest;
	cap->desc = queryDesc->tupDesc;
	cap->limit = limit;
	/* before the receiver is in place: an error here leaves nothing behind */
	cap->wire = cache_wire_begin(queryDesc, cap == &spare_capture);
	if (cap->wire && cap->text.data == NULL)
		initStringInfo(&cap->text);
	queryDesc->dest = &cap->pub;
	return cap;
}

void
cache_capture_end(QueryDesc *queryDesc, CacheCapture *cap)
{
	queryDesc->dest = cap->inner;
}

bool
cache_capture_overflowed(CacheCapture *cap)
{
	return cap->overflow;
}

char *
cache_blob_build(CacheCapture *cap, const CacheDep *deps, int ndeps,
				 const CacheBlobHeader *hdr, const StringInfo key, uint32 *len)
{
	Size		off_deps = MAXALIGN(sizeof(int32));
	Size		off_hdr = off_deps + MAXALIGN(ndeps * sizeof(CacheDep));
	Size		off_key = off_hdr + MAXALIGN(sizeof(CacheBlobHeader));
	Size		off_rows = off_key + MAXALIGN(key->len);
	Size		total = off_rows + cap->rows.len;
	char	   *blob;
	CacheBlobHeader *h;
	int32		n = ndeps;

	if (total > PG_UINT32_MAX / 2)
		return NULL;
	/* every byte is written below, the padding too */
	blob = palloc(total);
	memset(blob, 0, off_deps);
	memset(blob + off_key + key->len, 0, off_rows - off_key - key->len);
	memcpy(blob, &n, sizeof(int32));
	memcpy(blob + off_deps, deps, ndeps * sizeof(CacheDep));
	h = (CacheBlobHeader *) (blob + off_hdr);
	*h = *hdr;
	h->keylen = key->len;
	h->ntuples = cap->ntuples;
	h->wire_format = cache_wire_format_of(cap->wire);
	memcpy(blob + off_key, key->data, key->len);
	memcpy(blob + off_rows, cap->rows.data, cap->rows.len);
	*len = (uint32) total;
	return blob;
}

bool
cache_blob_parse(char *blob, uint32 len, CacheDep **deps, int *ndeps,
				 CacheBlobHeader **hdr, char **key, char **tuples)
{
	int32		n;
	Size		off_deps = MAXALIGN(sizeof(int32));
	Size		off_hdr;
	Size		off_key;

	if (len < off_deps)
		return false;
	memcpy(&n, blob, sizeof(int32));
	if (n < 0 || n > 2 * CACHE_MAX_DEPS + 2)
		return false;
	off_hdr = off_deps + MAXALIGN(n * sizeof(CacheDep));
	off_key = off_hdr + MAXALIGN(sizeof(CacheBlobHeader));
	if (len < off_key)
		return false;
	*ndeps = n;
	*deps = (CacheDep *) (blob + off_deps);
	*hdr = (CacheBlobHeader *) (blob + off_hdr);
	if (len < off_key + MAXALIGN((*hdr)->keylen))
		return false;
	*key = blob + off_key;
	*tuples = blob + off_key + MAXALIGN((*hdr)->keylen);
	return true;
}

/*
 * Replay up to max stored rows (0: all that are left) from *pos into the
 * statement's receiver, as ExecutorRun would, or their text straight to the
 * client where it may be used (cache_wire.c); advances *pos and *left.
 */
uint64
cache_blob_send_some(QueryDesc *queryDesc, uint32 wire_format, char **pos,
					 uint32 *left, uint64 max)
{
	DestReceiver *dest = queryDesc->dest;
	TupleTableSlot *slot = NULL;
	bool		as_text = cache_wire_usable(queryDesc, wire_format);
	uint64		n = 0;
	char	   *p = *pos;

	dest->rStartup(dest, CMD_SELECT, queryDesc->tupDesc);
	if (!as_text)
		slot = MakeSingleTupleTableSlot(queryDesc->tupDesc, &TTSOpsMinimalTuple);
	while (*left > 0 && (max == 0 || n < max))
	{
		uint64		lenword;
		uint32		len;
		uint32		textlen;
		bool		more = true;

		memcpy(&lenword, p, sizeof(uint64));
		len = (uint32) lenword;
		textlen = (uint32) (lenword >> 32);
		p += sizeof(uint64);
		if (as_text)
			cache_wire_send(p + MAXALIGN(len), textlen);
		else
		{
			ExecStoreMinimalTuple((MinimalTuple) p, slot, false);
			more = dest->receiveSlot(slot, dest);
			ExecClearTuple(slot);
		}
		p += MAXALIGN(len) + MAXALIGN(textlen);
		(*left)--;
		n++;
		if (!more)
			break;
	}
	if (slot)
		ExecDropSingleTupleTableSlot(slot);
	dest->rShutdown(dest);
	*pos = p;
	return n;
}

uint64
cache_blob_send(QueryDesc *queryDesc, const CacheBlobHeader *hdr, char *tuples)
{
	uint32		left = hdr->ntuples;

	return cache_blob_send_some(queryDesc, hdr->wire_format, &tuples, &left, 0);
}
