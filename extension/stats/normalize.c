/*
 * normalize.c
 *		Turns the source text of one statement into the texts perfopt
 *		stores: the normalized form (constants replaced by $n, so that one
 *		row stands for every execution of a statement shape), and any text
 *		clipped to perfopt.max_query_length with a visible marker.
 *
 * The query jumble records where each constant starts but not how long it
 * is; the lengths come from running the core SQL lexer over the text, which
 * is the only way to know where a string literal with escaped quotes or a
 * dollar-quoted constant ends.  The lexer reads from the statement's start
 * to its last constant only: the other statements of a multi-statement
 * string may have been written for settings (standard_conforming_strings)
 * that a statement before this one changed.  Even this statement's own text
 * can fail to scan that way, so the callers run normalization under
 * bookkeeping_try (common/bookkeeping.c): it only allocates memory.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "lib/stringinfo.h"
#include "parser/scansup.h"
#include "parser/scanner.h"

#include "stats/normalize.h"

#define TRUNCATION_MARKER "...[truncated]"

static int
compare_locations(const void *a, const void *b)
{
	int			la = ((const LocationLen *) a)->location;
	int			lb = ((const LocationLen *) b)->location;

	return (la > lb) - (la < lb);
}

/*
 * Fill in the length of every constant, in a sorted and de-duplicated copy
 * of the jumble's locations, scanning from the statement's start at
 * location.  A constant ends where the next token starts, less trailing
 * white space.  A negated constant is located at its minus sign, so the
 * number after it belongs to it too.
 */
static LocationLen *
measure_constants(const char *source, int location, JumbleState *jstate,
				  int *count)
{
	LocationLen *locs;
	int			n = 0;
	int			next = 0;
	int			pending = -1;
	bool		pending_minus = false;
	core_yyscan_t scanner;
	core_yy_extra_type extra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;

	locs = palloc(sizeof(LocationLen) * Max(jstate->clocations_count, 1));
	for (int i = 0; i < jstate->clocations_count; i++)
		if (jstate->clocations[i].location >= location)
			locs[n++] = jstate->clocations[i];
	qsort(locs, n, sizeof(LocationLen), compare_locations);
	for (int i = 0; i < n; i++)
		locs[i].length = -1;

	scanner = scanner_init(source + location, &extra, &ScanKeywords, ScanKeywordTokens);
	/* constants are measured as written; their escapes are not our business */
	extra.escape_string_warning = false;
	for (;;)
	{
		int			tok = core_yylex(&yylval, &yylloc, scanner);
		int			start = location +
			((tok == 0) ? (int) strlen(source + location) : yylloc);

		if (pending >= 0 && pending_minus && tok != 0)
		{
			pending_minus = false;
			continue;
		}
		if (pending >= 0)
		{
			int			end = start;

			while (end > locs[pending].location && scanner_isspace(source[end - 1]))
				end--;
			locs[pending].length = end - locs[pending].location;
			pending = -1;
		}
		if (tok == 0)
			break;
		/* duplicates and locations inside a token stay unmeasured (-1) */
		while (next < n && locs[next].location < start)
			next++;
		if (next < n && locs[next].location == start)
		{
			pending = next;
			pending_minus = (tok == '-');
			while (next < n && locs[next].location == start)
				next++;
		}
		if (pending < 0 && next >= n)
			break;				/* every constant is measured */
	}
	scanner_finish(scanner);
	*count = n;
	return locs;
}

/*
 * The statement at [location, location + length) of source, with each
 * constant replaced by $n; n continues after the highest parameter number
 * the statement already uses.
 */
char *
normalize_query_text(const char *source, int location, int length,
					 JumbleState *jstate, int *out_len)
{
	LocationLen *locs;
	int			nlocs;
	StringInfoData buf;
	int			copied = location;
	int			end = location + length;
	int			param = jstate->highest_extern_param_id;

	locs = measure_constants(source, location, jstate, &nlocs);
	initStringInfo(&buf);
	for (int i = 0; i < nlocs; i++)
	{
		int			loc = locs[i].location;

		if (locs[i].length < 0 || loc < copied || loc >= end)
			continue;
		appendBinaryStringInfo(&buf, source + copied, loc - copied);
		appendStringInfo(&buf, "$%d", ++param);
		copied = Min(loc + locs[i].length, end);
	}
	appendBinaryStringInfo(&buf, source + copied, end - copied);
	pfree(locs);
	*out_len = buf.len;
	return buf.data;
}

/*
 * text cut to at most max_len bytes, on a character boundary, ending with
 * a marker that says it was cut.  Returns a palloc'd copy.
 */
char *
clip_text(const char *text, int len, int max_len, int *out_len)
{
	int			keep;
	char	   *result;

	if (len <= max_len)
	{
		*out_len = len;
		return pnstrdup(text, len);
	}
	keep = pg_mbcliplen(text, len, max_len - (int) strlen(TRUNCATION_MARKER));
	result = palloc(keep + strlen(TRUNCATION_MARKER) + 1);
	memcpy(result, text, keep);
	strcpy(result + keep, TRUNCATION_MARKER);
	*out_len = keep + strlen(TRUNCATION_MARKER);
	return result;
}
