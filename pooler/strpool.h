/*
 * strpool.h: strpool.c's entry points: interned parameter values and the
 * names of the session settings transaction mode carries.
 */
#ifndef STRPOOL_H
#define STRPOOL_H

#include "pooler.h"

pstr	   *pstr_get(const char *s);
void		pstr_unref(pstr *p);
void		pstr_set(pstr **slot, pstr *v);	/* takes a new reference to v */
extern const char *const tracked_params[NPARAMS];
int			tracked_param_index(const char *name);

#endif
