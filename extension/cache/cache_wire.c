/*
 * cache_wire.c
 *		Owns the second form of a stored row: the body of the DataRow
 *		message a client reading text receives, kept beside the row so that
 *		a hit sends it as it is instead of running every column's output
 *		function again (for a ten-row leaderboard that was more than half of
 *		what a hit cost after parsing).
 *
 *		Text is only the same for the same output settings, so an entry
 *		records the settings it was printed under (cache_wire_format) and a
 *		hit uses the text only under the same ones, to a client that asked
 *		for text; otherwise the row goes through the output functions as
 *		usual.  Only columns of built-in scalar types get a text form: what
 *		their output functions print depends on the value and the settings
 *		recorded here (or in the key: TimeZone, lc_monetary), never on the
 *		catalogs (an enum's label can be renamed without touching a table)
 *		or on user code.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/bytea.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "tcop/pquery.h"
#include "utils/memutils.h"
#include "utils/portal.h"

#include "cache/cache_int.h"

struct CacheWire
{
	int			natts;
	int			capacity;		/* of out[] */
	const FmgrInfo **out;		/* each column's output function */
	uint32		format;
};

/*
 * The output functions of plain_output_function()'s types, looked up once
 * per backend: they are built-in and keep nothing in fn_extra, so one
 * FmgrInfo serves every capture (a miss looked them up again for every
 * statement before).
 */
static FmgrInfo plain_out[64];
static Oid	plain_out_fn[lengthof(plain_out)];

/*
 * One CacheWire kept for the capture of the statement running now (there is
 * usually one), so that a miss allocates none; a capture that begins while
 * it is taken (a nested one) gets its own.
 */
static CacheWire spare_wire;
static bool spare_wire_taken = false;

/*
 * The output function of a type whose text depends only on the value and
 * the settings of cache_wire_format() and the key; InvalidOid otherwise.
 */
static Oid
plain_output_function(Oid type)
{
	switch (type)
	{
		case BOOLOID:
			return F_BOOLOUT;
		case INT2OID:
			return F_INT2OUT;
		case INT4OID:
			return F_INT4OUT;
		case INT8OID:
			return F_INT8OUT;
		case OIDOID:
			return F_OIDOUT;
		case NUMERICOID:
			return F_NUMERIC_OUT;
		case FLOAT4OID:
			return F_FLOAT4OUT;
		case FLOAT8OID:
			return F_FLOAT8OUT;
		case TEXTOID:
			return F_TEXTOUT;
		case VARCHAROID:
			return F_VARCHAROUT;
		case BPCHAROID:
			return F_BPCHAROUT;
		case NAMEOID:
			return F_NAMEOUT;
		case CHAROID:
			return F_CHAROUT;
		case DATEOID:
			return F_DATE_OUT;
		case TIMEOID:
			return F_TIME_OUT;
		case TIMETZOID:
			return F_TIMETZ_OUT;
		case TIMESTAMPOID:
			return F_TIMESTAMP_OUT;
		case TIMESTAMPTZOID:
			return F_TIMESTAMPTZ_OUT;
		case INTERVALOID:
			return F_INTERVAL_OUT;
		case UUIDOID:
			return F_UUID_OUT;
		case BYTEAOID:
			return F_BYTEAOUT;
		case JSONOID:
			return F_JSON_OUT;
		case JSONBOID:
			return F_JSONB_OUT;
		default:
			return InvalidOid;
	}
}

/*
 * The settings that change the text of those types and are not in the key,
 * packed exactly (no hash: two packings are equal only for equal
 * settings); never 0, which marks an entry without text.
 */
uint32
cache_wire_format(void)
{
	uint32		f = 1;

	f |= (uint32) (pg_get_client_encoding() & 0x3F) << 1;
	f |= (uint32) ((extra_float_digits + 15) & 0x1F) << 7;
	f |= (uint32) (bytea_output & 0x1) << 12;
	f |= (uint32) (DateStyle & 0x7) << 13;
	f |= (uint32) (DateOrder & 0x3) << 16;
	f |= (uint32) (IntervalStyle & 0x3) << 18;
	return f;
}

/*
 * Whether the statement's rows go to the client as text: the portal the
 * protocol runs (its formats are set; a cursor's or an SQL EXECUTE's
 * portal has none, and its receiver prints for another portal) asked for
 * text in every column.
 */
static bool
client_reads_text(QueryDesc *queryDesc)
{
	CommandDest d = queryDesc->dest->mydest;
	Portal		portal = ActivePortal;
	int			natts = queryDesc->tupDesc->natts;
	int			i;

	if ((d != DestRemote && d != DestRemoteExecute) || portal == NULL ||
		portal->formats == NULL || portal->tupDesc == NULL ||
		portal->tupDesc->natts != natts)
		return false;
	for (i = 0; i < natts; i++)
		if (portal->formats[i] != 0)
			return false;
	return true;
}

/* The backend's FmgrInfo of a plain type's output function fn. */
static const FmgrInfo *
plain_out_info(Oid fn)
{
	int			i = fn % lengthof(plain_out);

	/* open addressing: plain_output_function() has fewer functions than slots */
	while (plain_out_fn[i] != fn)
	{
		if (plain_out_fn[i] == InvalidOid)
		{
			fmgr_info_cxt(fn, &plain_out[i], TopMemoryContext);
			plain_out_fn[i] = fn;
			break;
		}
		i = (i + 1) % lengthof(plain_out);
	}
	return &plain_out[i];
}

/*
 * A text form for this statement's rows as they are stored, or NULL; spare:
 * the capture may take the kept one (it gives it back by cache_wire_end).
 */
CacheWire *
cache_wire_begin(QueryDesc *queryDesc, bool spare)
{
	TupleDesc	desc = queryDesc->tupDesc;
	CacheWire  *w;
	int			i;

	if (!client_reads_text(queryDesc))
		return NULL;
	if (spare && !spare_wire_taken)
	{
		w = &spare_wire;
		if (w->capacity < desc->natts)
		{
			if (w->out)
				pfree(w->out);
			w->out = NULL;
			w->capacity = 0;
			w->out = MemoryContextAlloc(TopMemoryContext,
										sizeof(FmgrInfo *) * Max(desc->natts, 16));
			w->capacity = Max(desc->natts, 16);
		}
	}
	else
	{
		w = palloc(sizeof(CacheWire));
		w->capacity = Max(desc->natts, 1);
		w->out = palloc(sizeof(FmgrInfo *) * w->capacity);
	}
	for (i = 0; i < desc->natts; i++)
	{
		Oid			fn = plain_output_function(TupleDescAttr(desc, i)->atttypid);

		if (!OidIsValid(fn))
			return NULL;		/* the spare stays free */
		w->out[i] = plain_out_info(fn);
	}
	if (w == &spare_wire)
		spare_wire_taken = true;
	w->natts = desc->natts;
	w->format = cache_wire_format();
	return w;
}

/* The capture that began w is over (w may be NULL). */
void
cache_wire_end(CacheWire *w)
{
	if (w == &spare_wire)
		spare_wire_taken = false;
}

uint32
cache_wire_format_of(CacheWire *w)
{
	return w ? w->format : 0;
}

/*
 * Replace buf's contents by the DataRow body of the slot's row, as
 * printtup() would send it in text: column count, then each column's
 * length (-1 for NULL) and its text in the client's encoding.  The output
 * functions of plain_output_function()'s types leave at most a detoasted
 * copy of the value behind, in the statement's memory: bounded by what the
 * capture keeps (it stops at perfopt.cache_max_entry_size), so no per-row
 * memory context is needed.
 */
void
cache_wire_row(CacheWire *w, TupleTableSlot *slot, StringInfo buf)
{
	int			i;

	slot_getallattrs(slot);
	resetStringInfo(buf);
	pq_sendint16(buf, w->natts);
	for (i = 0; i < w->natts; i++)
	{
		char	   *text;

		if (slot->tts_isnull[i])
		{
			pq_sendint32(buf, -1);
			continue;
		}
		text = OutputFunctionCall((FmgrInfo *) w->out[i], slot->tts_values[i]);
		pq_sendcountedtext(buf, text, strlen(text), false);
		pfree(text);
	}
}

/* Whether rows stored with text under format may be sent as that text now. */
bool
cache_wire_usable(QueryDesc *queryDesc, uint32 format)
{
	return format != 0 && format == cache_wire_format() && client_reads_text(queryDesc);
}

/* Send one row's stored text to the client. */
void
cache_wire_send(const char *body, uint32 len)
{
	(void) pq_putmessage('D', body, len);
}
