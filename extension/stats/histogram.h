/*
 * histogram.h
 *		Fixed-size log-linear latency histogram (see histogram.c).
 */
#ifndef PERFOPT_HISTOGRAM_H
#define PERFOPT_HISTOGRAM_H

/*
 * Values are nanoseconds.  Each power of two from 2^HIST_MIN_SHIFT ns (about
 * 0.5 us) up to 2^HIST_MAX_SHIFT ns (about 73 minutes) is split into
 * HIST_SUB_BUCKETS linear sub-buckets, so a bucket is at most 1/16 = 6.25%
 * wide relative to its lower bound and its midpoint is within 3.2% of any
 * value in it.
 */
#define HIST_SUB_BITS		4
#define HIST_SUB_BUCKETS	(1 << HIST_SUB_BITS)
#define HIST_MIN_SHIFT		9
#define HIST_MAX_SHIFT		42
#define HIST_BUCKETS		((HIST_MAX_SHIFT - HIST_MIN_SHIFT + 1) * HIST_SUB_BUCKETS + 1)

typedef struct LatencyHistogram
{
	uint32		counts[HIST_BUCKETS];
} LatencyHistogram;

extern void histogram_add(LatencyHistogram *hist, double elapsed_ms);
extern void histogram_merge(LatencyHistogram *into, const LatencyHistogram *from);
extern double histogram_percentile(const LatencyHistogram *hist, double fraction,
								   double min_ms, double max_ms);

#endif							/* PERFOPT_HISTOGRAM_H */
