/*
 * normalize.h
 *		Statement texts as perfopt shows them (see normalize.c).
 */
#ifndef PERFOPT_NORMALIZE_H
#define PERFOPT_NORMALIZE_H

#include "utils/queryjumble.h"

extern char *normalize_query_text(const char *source, int location, int length,
								  JumbleState *jstate, int *out_len);
extern char *clip_text(const char *text, int len, int max_len, int *out_len);

#endif							/* PERFOPT_NORMALIZE_H */
