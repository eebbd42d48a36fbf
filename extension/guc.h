/*
 * guc.h
 *		Every perfopt.* setting, defined in guc.c.
 */
#ifndef PERFOPT_GUC_H
#define PERFOPT_GUC_H

typedef enum PerfoptTrackLevel
{
	PERFOPT_TRACK_NONE,
	PERFOPT_TRACK_TOP,
	PERFOPT_TRACK_ALL
} PerfoptTrackLevel;

/* statistics and slow-query capture */
extern int	perfopt_max_statements;
extern int	perfopt_track;
extern bool perfopt_track_planning;
extern int	perfopt_max_query_length;
extern bool perfopt_save;
extern int	perfopt_slow_query_threshold;
extern int	perfopt_slow_query_max;
extern bool perfopt_slow_query_analyze;

/* result cache (cache_*.c) */

/* index advisor (advisor*.c, hypo_index.c) */

extern void perfopt_define_gucs(void);

#endif							/* PERFOPT_GUC_H */
