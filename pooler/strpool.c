/*
 * strpool.c: interned, reference-counted strings for session parameter
 * values.  Every client and server holds six of them; interning makes
 * "does this server already have the client's settings" a pointer compare
 * and keeps an idle client's memory to a few pointers.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "strpool.h"

#define NBUCKETS 1024

static pstr *buckets[NBUCKETS];

const char *const tracked_params[NPARAMS] = {
	"client_encoding", "DateStyle", "TimeZone", "standard_conforming_strings",
	"application_name", "IntervalStyle"
};

int
tracked_param_index(const char *name)
{
	for (int i = 0; i < NPARAMS; i++)
		if (strcasecmp(name, tracked_params[i]) == 0)
			return i;
	return -1;
}

static unsigned
hash_str(const char *s)
{
	unsigned	h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 16777619u;
	return h;
}

pstr *
pstr_get(const char *s)
{
	unsigned	h = hash_str(s);
	pstr	   *p;
	size_t		n;

	for (p = buckets[h % NBUCKETS]; p; p = p->next)
		if (p->hash == h && strcmp(p->s, s) == 0)
		{
			p->refs++;
			return p;
		}
	n = strlen(s);
	p = malloc(sizeof(pstr) + n + 1);
	if (!p)
		abort();
	p->refs = 1;
	p->hash = h;
	memcpy(p->s, s, n + 1);
	p->next = buckets[h % NBUCKETS];
	buckets[h % NBUCKETS] = p;
	return p;
}

void
pstr_unref(pstr *p)
{
	pstr	  **pp;

	if (!p || --p->refs > 0)
		return;
	for (pp = &buckets[p->hash % NBUCKETS]; *pp; pp = &(*pp)->next)
		if (*pp == p)
		{
			*pp = p->next;
			break;
		}
	free(p);
}

void
pstr_set(pstr **slot, pstr *v)
{
	if (*slot == v)
		return;
	if (v)
		v->refs++;
	pstr_unref(*slot);
	*slot = v;
}
