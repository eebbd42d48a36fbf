/*
 * txn/query_text.c: the SQL text of a client's Query or Parse, looked at
 * once per message.  Owns finding the text in the input (in place when the
 * input's first chunk holds it, copied only when the input splits it),
 * its bounds (a Parse's name, the terminating NUL) and the first keyword
 * of its first statement, which session_state.c and startup_settings.c
 * both judge by: a SELECT needs nothing more from either.
 *
 * Every reader here is bounded by the text's end, never by a NUL it
 * assumes, so the text is never copied just to terminate it.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "net/net.h"
#include "txn/query_text.h"

/* Past white space and comments ("--" to the line's end, one level of slash-star). */
const char *
query_skip_space(const char *p, const char *end)
{
	for (;;)
	{
		while (p < end && isspace((unsigned char) *p))
			p++;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
		{
			const char *nl = memchr(p, '\n', end - p);

			p = nl ? nl : end;
		}
		else if (end - p >= 2 && p[0] == '/' && p[1] == '*')
		{
			const char *e = p + 2;

			while (e < end && !(e[0] == '*' && e + 1 < end && e[1] == '/'))
				e++;
			p = e < end ? e + 2 : end;
		}
		else
			return p;
	}
}

/* If the text at p is the keyword w (any case, a whole word), the text after it; else NULL. */
const char *
query_word(const char *p, const char *end, const char *w)
{
	size_t		n = strlen(w);

	if (!p || (size_t) (end - p) < n || strncasecmp(p, w, n) != 0)
		return NULL;
	if (p + n < end && (isalnum((unsigned char) p[n]) || p[n] == '_'))
		return NULL;
	return query_skip_space(p + n, end);
}

/* The keyword a statement starting at p (past its white space) starts with. */
enum query_keyword
query_keyword_at(const char *p, const char *end)
{
	if (p >= end)
		return QK_OTHER;
	/* the first letter picks the only words worth comparing */
	switch (*p | 0x20)
	{
		case 's':
			return query_word(p, end, "set") ? QK_SET : QK_OTHER;
		case 'r':
			return query_word(p, end, "reset") ? QK_RESET : QK_OTHER;
		case 'l':
			return query_word(p, end, "listen") ? QK_LISTEN : QK_OTHER;
		case 'p':
			return query_word(p, end, "prepare") ? QK_PREPARE : QK_OTHER;
		case 'd':
			return query_word(p, end, "declare") ? QK_DECLARE :
				query_word(p, end, "discard") ? QK_DISCARD : QK_OTHER;
		case 'c':
			return query_word(p, end, "create") ? QK_CREATE : QK_OTHER;
		default:
			return QK_OTHER;
	}
}

/*
 * The message of `len` at `off` (type hdr[0], 'Q' or 'P'): its text as
 * far as it has arrived, at most QUERY_PEEK_MAX bytes of its body.
 */
void
query_text_load(query_text *q, const bufview *in, size_t off, const unsigned char *hdr, uint32_t len)
{
	size_t		avail = in->len - off - 5;
	const char *body,
			   *end,
			   *nul;

	q->type = (char) hdr[0];
	q->body_len = len - 4;
	q->want = q->body_len < QUERY_PEEK_MAX ? q->body_len : QUERY_PEEK_MAX;
	q->seen = avail < q->want ? avail : q->want;
	q->complete = avail >= q->body_len;
	q->sql = q->end = q->start = q->name = NULL;
	q->first = QK_OTHER;
	if (off + 5 + q->seen <= in->first_len)
		body = (const char *) in->first + off + 5;
	else
	{
		bufview_peek(in, off + 5, q->copy, q->seen);
		q->copy[q->seen] = '\0';
		body = q->copy;
	}
	end = body + q->seen;
	if (q->type == 'P')
	{
		if ((nul = memchr(body, '\0', q->seen)) == NULL)
			return;				/* the name is cut: no text seen */
		q->name = body;
		body = nul + 1;
	}
	nul = memchr(body, '\0', end - body);
	q->sql = body;
	q->end = nul ? nul : end;
	q->start = query_skip_space(q->sql, q->end);
	q->first = query_keyword_at(q->start, q->end);
}
