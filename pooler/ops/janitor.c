/*
 * janitor.c: the pooler's once-a-second timer.  It owns only the clock:
 * each pool's upkeep (pool_tick: recycling, overflow_idle_timeout,
 * min_pool_size), then the pools and databases a reload removed and nobody
 * uses any more, then, every ten seconds, giving freed memory back.  It sits
 * above the pools and the reload, so neither has to call the other.
 */
#include <malloc.h>

#include "pooler.h"
#include "pool.h"
#include "net/net.h"
#include "ops/ops.h"

static struct event janitor_ev;
static bool janitor_on;

static void
janitor_cb(evutil_socket_t fd, short ev, void *arg)
{
	double		now = now_mono();
	static int	ticks;

	for (pool *p = pools; p; p = p->next)
		pool_tick(p, now);
	pool_reap_removed();
	reload_reap_databases();

	/*
	 * A burst (a server restart queues every client with its buffers) leaves
	 * freed memory in malloc's arenas; hand it back to the kernel every ten
	 * seconds, so that the pooler's RSS follows what it really holds.
	 */
	if (++ticks % 10 == 0)
		malloc_trim(0);
}

void
janitor_start(void)
{
	struct timeval tv = {1, 0};

	event_assign(&janitor_ev, base, -1, EV_PERSIST, janitor_cb, NULL);
	event_add(&janitor_ev, &tv);
	janitor_on = true;
}

void
janitor_stop(void)
{
	if (janitor_on)
		event_del(&janitor_ev);
	janitor_on = false;
}
