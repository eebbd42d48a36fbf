/*
 * advisor_params.h
 *		One set of a statement's bind values, kept to re-plan it with them
 *		(advisor_params.c).
 */
#ifndef PERFOPT_ADVISOR_PARAMS_H
#define PERFOPT_ADVISOR_PARAMS_H

#include "nodes/params.h"

#define ADVISOR_PARAMS_LEN 1024

extern int	advisor_params_encode(ParamListInfo params, char *buf, int bufsize);
extern ParamListInfo advisor_params_decode(const char *buf, int len,
										   const Oid *types, int ntypes);

#endif							/* PERFOPT_ADVISOR_PARAMS_H */
