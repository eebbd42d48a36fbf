/*
 * stats.c: per-pool counters and the wait-time histogram that SHOW STATS,
 * SHOW POOLS and the Prometheus endpoint report.  Counters only grow (a
 * scraper computes rates from their differences); gauges such as active or
 * idle servers are read from the pool itself, not kept here.
 *
 * Waits are recorded in a base-2 histogram of microseconds with four
 * sub-buckets per power of two, so a percentile read from it is within
 * about 19% of the true value from 1 microsecond up to ~1 hour, and a
 * Prometheus scrape can print cumulative buckets from the same array.
 */
#include <math.h>
#include <string.h>

#include "pooler.h"
#include "stats.h"

pool_stats	stats_removed;

static int
wait_bucket(double seconds)
{
	double		us = seconds * 1e6;
	int			exp;
	double		frac;
	int			b;

	if (us < 1.0)
		return 0;
	frac = frexp(us, &exp);		/* us = frac * 2^exp, frac in [0.5, 1) */
	b = 1 + (exp - 1) * WAIT_SUB + (int) ((frac - 0.5) * 2 * WAIT_SUB);
	return b >= WAIT_BUCKETS ? WAIT_BUCKETS - 1 : b;
}

double
stats_wait_bucket_upper(int b)
{
	if (b <= 0)
		return 1e-6;
	b--;
	return ldexp(1.0 + (double) (b % WAIT_SUB + 1) / WAIT_SUB, b / WAIT_SUB) * 1e-6;
}

void
stats_wait_done(pool *p, double seconds)
{
	if (seconds < 0)
		seconds = 0;
	p->st.waits++;
	p->st.wait_time += seconds;
	if (seconds > p->st.max_wait)
		p->st.max_wait = seconds;
	p->st.wait_hist[wait_bucket(seconds)]++;
}

/* A percentile of the waits so far, as the upper bound of its bucket. */
double
stats_wait_percentile(const pool_stats *st, double q)
{
	uint64_t	rank,
				seen = 0;

	if (st->waits == 0)
		return 0;
	rank = (uint64_t) ceil(q * st->waits);
	for (int b = 0; b < WAIT_BUCKETS; b++)
	{
		seen += st->wait_hist[b];
		if (seen >= rank)
		{
			double		up = stats_wait_bucket_upper(b);

			return up < st->max_wait ? up : st->max_wait;
		}
	}
	return st->max_wait;
}

/* Fold a removed pool's counters into the totals line (used by RELOAD). */
void
stats_add(pool_stats *into, const pool_stats *from)
{
	into->xacts += from->xacts;
	into->queries += from->queries;
	into->bytes_in += from->bytes_in;
	into->bytes_out += from->bytes_out;
	into->waits += from->waits;
	into->wait_time += from->wait_time;
	if (from->max_wait > into->max_wait)
		into->max_wait = from->max_wait;
	into->timeouts += from->timeouts;
	into->recycled += from->recycled;
	into->ping_failures += from->ping_failures;
	into->connect_failures += from->connect_failures;
	into->servers_opened += from->servers_opened;
	for (int b = 0; b < WAIT_BUCKETS; b++)
		into->wait_hist[b] += from->wait_hist[b];
}
