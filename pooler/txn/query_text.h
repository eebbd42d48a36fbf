/*
 * txn/query_text.h: one look at the SQL text of a Query or Parse message a
 * transaction-mode client sends (query_text.c), shared by everything that
 * reads it: session state (session_state.c) and the SETs that follow the
 * client (startup_settings.c).  The text is read in place where the input
 * holds it in one piece (nearly always) and its first keyword classified
 * once, so most statements are judged by that word alone.
 */
#ifndef QUERY_TEXT_H
#define QUERY_TEXT_H

#include "pooler.h"

/* the text looked at in one message: the statements it is read for start short */
#define QUERY_PEEK_MAX 8192

/* a statement's first keyword, as far as anyone reading the text cares */
enum query_keyword
{
	QK_OTHER,
	QK_SET,
	QK_RESET,
	QK_LISTEN,
	QK_PREPARE,
	QK_DECLARE,
	QK_DISCARD,
	QK_CREATE
};

typedef struct query_text
{
	char		type;			/* 'Q' or 'P' */
	uint32_t	body_len;		/* the message's length less its length word */
	size_t		want;			/* what is looked at once arrived: min(body_len, QUERY_PEEK_MAX) */
	size_t		seen;			/* of that, what has arrived */
	bool		complete;		/* the whole message has arrived */
	const char *sql;			/* its SQL text (past a Parse's name); NULL: none seen */
	const char *end;			/* the text's end: its NUL, or the end of what was seen */
	const char *start;			/* the first statement's first word (past space and comments) */
	const char *name;			/* a Parse's statement name (NUL-terminated) */
	enum query_keyword first;	/* the first statement's first keyword */
	char		copy[QUERY_PEEK_MAX + 1];	/* the text when the input splits it */
} query_text;

void		query_text_load(query_text *q, const bufview *in, size_t off, const unsigned char *hdr,
							uint32_t len);
const char *query_skip_space(const char *p, const char *end);
const char *query_word(const char *p, const char *end, const char *w);
enum query_keyword query_keyword_at(const char *p, const char *end);

#endif
