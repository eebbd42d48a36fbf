/*
 * histogram.c
 *		Log-linear latency histograms: where a duration falls, and which
 *		duration a percentile corresponds to.
 *
 * This is the HdrHistogram idea reduced to what a per-statement counter in
 * shared memory can afford: a fixed array of 32-bit counts, updated under the
 * statement's spinlock with a single increment.  The relative error of a
 * reported percentile is bounded by half a sub-bucket (about 3.2%), which
 * meets the 5% promised for 10 us .. 1 h.
 */
#include "postgres.h"

#include <math.h>

#include "port/pg_bitutils.h"

#include "stats/histogram.h"

static int
bucket_for_ns(uint64 ns)
{
	int			shift;
	int			sub;

	if (ns < ((uint64) 1 << HIST_MIN_SHIFT))
		return 0;
	shift = pg_leftmost_one_pos64(ns);
	if (shift > HIST_MAX_SHIFT)
		return HIST_BUCKETS - 1;
	sub = (int) ((ns >> (shift - HIST_SUB_BITS)) & (HIST_SUB_BUCKETS - 1));
	return 1 + (shift - HIST_MIN_SHIFT) * HIST_SUB_BUCKETS + sub;
}

/* Midpoint of a bucket, in nanoseconds. */
static double
bucket_midpoint_ns(int bucket)
{
	int			shift;
	int			sub;
	double		width;

	if (bucket == 0)
		return (double) ((uint64) 1 << HIST_MIN_SHIFT) / 2.0;
	if (bucket >= HIST_BUCKETS - 1)
		return ldexp(1.0, HIST_MAX_SHIFT + 1);
	shift = HIST_MIN_SHIFT + (bucket - 1) / HIST_SUB_BUCKETS;
	sub = (bucket - 1) % HIST_SUB_BUCKETS;
	width = ldexp(1.0, shift - HIST_SUB_BITS);
	return ldexp(1.0, shift) + width * sub + width / 2.0;
}

/*
 * Count one duration.  When a count would overflow, halve every count: the
 * shape, and so every percentile, stays the same.
 */
void
histogram_add(LatencyHistogram *hist, double elapsed_ms)
{
	int			bucket;

	if (elapsed_ms < 0)
		elapsed_ms = 0;
	bucket = bucket_for_ns((uint64) (elapsed_ms * 1000000.0));
	if (unlikely(hist->counts[bucket] == PG_UINT32_MAX))
	{
		for (int i = 0; i < HIST_BUCKETS; i++)
			hist->counts[i] >>= 1;
	}
	hist->counts[bucket]++;
}

void
histogram_merge(LatencyHistogram *into, const LatencyHistogram *from)
{
	for (int i = 0; i < HIST_BUCKETS; i++)
	{
		uint64		sum = (uint64) into->counts[i] + from->counts[i];

		into->counts[i] = (uint32) Min(sum, PG_UINT32_MAX);
	}
}

/*
 * The duration (ms) below which `fraction` of the counted durations fall.
 * The answer is clamped to the exact minimum and maximum seen, which makes
 * p0 and p100 exact and keeps a single-valued statement exact.
 */
double
histogram_percentile(const LatencyHistogram *hist, double fraction,
					 double min_ms, double max_ms)
{
	uint64		total = 0;
	uint64		rank;
	uint64		seen = 0;
	double		value_ms = max_ms;

	for (int i = 0; i < HIST_BUCKETS; i++)
		total += hist->counts[i];
	if (total == 0)
		return 0.0;

	rank = (uint64) ceil(fraction * (double) total);
	if (rank < 1)
		rank = 1;
	for (int i = 0; i < HIST_BUCKETS; i++)
	{
		seen += hist->counts[i];
		if (seen >= rank)
		{
			value_ms = bucket_midpoint_ns(i) / 1000000.0;
			break;
		}
	}
	return Max(min_ms, Min(max_ms, value_ms));
}
