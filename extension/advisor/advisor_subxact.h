/*
 * advisor_subxact.h
 *		A piece of the advisor's work that may fail alone (advisor_subxact.c).
 */
#ifndef PERFOPT_ADVISOR_SUBXACT_H
#define PERFOPT_ADVISOR_SUBXACT_H

typedef void (*advisor_work) (void *arg);

extern bool advisor_try_subxact(advisor_work work, void *arg, bool keep_locks);

#endif							/* PERFOPT_ADVISOR_SUBXACT_H */
