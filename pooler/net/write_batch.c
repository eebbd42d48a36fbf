/*
 * write_batch.c: the writes held until the end of the event loop's batch.
 *
 * Answers to clients wait for the end of the batch: what one epoll_wait
 * reported is handled first, then every answer goes out in one burst, so a
 * client program serving several connections per thread (as pgbench -j
 * does) is woken once for several answers rather than once per answer.
 *
 * Where the kernel offers io_uring (setting io_uring, default on), the
 * burst is one system call: a non-blocking send per connection, submitted
 * together.  The system calls saved are half of it.  The other half shows
 * on a busy host: every send wakes the process that reads it (a PostgreSQL
 * backend, a client), and the scheduler often lets that process preempt
 * the pooler on its way out of the send, so that the rest of the batch
 * waits for a whole query to run.  In one submission every wakeup happens
 * before the pooler can be preempted.  Messages to servers then join the
 * burst as well (conn_forward).  Without io_uring (an older kernel, a
 * seccomp profile that forbids it, io_uring = off) each connection writes
 * with its own send() and messages to servers go out at once.
 *
 * After the submission each connection's write callback runs as if its
 * socket had reported writable: it writes what the kernel did not take (a
 * failed or refused send left the bytes in place, and the callback's own
 * send() meets the same condition), then decides: parks an idle client's
 * buffers, resumes a throttled server, finishes a close.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <liburing.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "net/net.h"

#define RING_ENTRIES 256
#define SEND_IOV 8

static conn **pending;
static int	npending,
			pending_cap;

static struct io_uring ring;
static bool ring_on;

/* what a send points at must live until its completion is reaped */
static conn *inflight[RING_ENTRIES];
static struct msghdr msgs[RING_ENTRIES];
static struct iovec iovs[RING_ENTRIES][SEND_IOV];

void
write_batch_start(void)
{
	int			r;

	if (!cfg.io_uring)
		return;
	r = io_uring_queue_init(RING_ENTRIES, &ring, 0);
	if (r < 0)
	{
		log_warn("io_uring unavailable (%s): writes go out one send() each", strerror(-r));
		return;
	}
	ring_on = true;
}

void
write_batch_stop(void)
{
	if (ring_on)
		io_uring_queue_exit(&ring);
	ring_on = false;
}

bool
write_batch_uring(void)
{
	return ring_on;
}

void
conn_flush_later(conn *c)
{
	if (c->flush_pending)
		return;
	if (npending == pending_cap)
	{
		int			cap = pending_cap ? pending_cap * 2 : 64;
		conn	  **n = realloc(pending, sizeof(*pending) * cap);

		if (!n)
		{
			conn_kick_write(c);
			return;
		}
		pending = n;
		pending_cap = cap;
	}
	pending[npending++] = c;
	c->flush_pending = true;
}

void
write_batch_forget(conn *c)
{
	for (int i = 0; i < npending; i++)
		if (pending[i] == c)
			pending[i] = NULL;
	c->flush_pending = false;
}

/* A connection whose write callback would write now, in plain text (a closed one left the list). */
static bool
submittable(const conn *c)
{
	return c && !c->ssl && !c->writing && buflen(c->out) > 0;
}

static void
prep_send(struct io_uring_sqe *sqe, conn *c, int slot)
{
	struct evbuffer_iovec v[SEND_IOV];
	int			nv = evbuffer_peek(c->out, -1, NULL, v, SEND_IOV);

	if (nv > SEND_IOV)
		nv = SEND_IOV;
	if (nv == 1)
		io_uring_prep_send(sqe, c->fd, v[0].iov_base, v[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
	else
	{
		for (int k = 0; k < nv; k++)
		{
			iovs[slot][k].iov_base = v[k].iov_base;
			iovs[slot][k].iov_len = v[k].iov_len;
		}
		memset(&msgs[slot], 0, sizeof(msgs[slot]));
		msgs[slot].msg_iov = iovs[slot];
		msgs[slot].msg_iovlen = nv;
		io_uring_prep_sendmsg(sqe, c->fd, &msgs[slot], MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	/* no callback runs before the completion is reaped: c stays alive */
	inflight[slot] = c;
	io_uring_sqe_set_data(sqe, (void *) (uintptr_t) slot);
}

/*
 * The ring failed while sends were in flight: whether the kernel wrote
 * their bytes is unknown, and sending them again could repeat a message.
 * Those connections are shut down (their read side then closes them the
 * usual way: a client's server is rolled back or closed, a server's client
 * gets an error), everybody else goes on with send().
 */
static void
abandon_inflight(int nsub, int err)
{
	for (int k = 0; k < nsub; k++)
	{
		conn	   *c = inflight[k];

		if (!c)
			continue;
		evbuffer_drain(c->out, buflen(c->out));
		shutdown(c->fd, SHUT_RDWR);
		inflight[k] = NULL;
	}
	log_error("io_uring failed (%s): connections with a write in flight closed, writes go out one send() each from now on",
			  strerror(err));
	write_batch_stop();
}

/*
 * Reap the completions of slots 0..nsub-1.  MSG_DONTWAIT makes every send
 * complete inside the submission (a full socket answers -EAGAIN instead of
 * being polled), so the completions are already there and no wait sleeps.
 */
static void
reap(int nsub)
{
	for (int left = nsub; left > 0;)
	{
		struct io_uring_cqe *cqe;
		int			r = io_uring_wait_cqe(&ring, &cqe);
		int			slot;

		if (r == -EINTR)
			continue;
		if (r < 0)
		{
			abandon_inflight(nsub, -r);
			return;
		}
		slot = (int) (uintptr_t) io_uring_cqe_get_data(cqe);
		if (cqe->res > 0)
			evbuffer_drain(inflight[slot]->out, cqe->res);
		inflight[slot] = NULL;
		io_uring_cqe_seen(&ring, cqe);
		left--;
	}
}

/* One submission for up to RING_ENTRIES connections from pending[from]. */
static int
submit_from(int from)
{
	int			i,
				nsub = 0,
				done;

	for (i = from; i < npending && nsub < RING_ENTRIES; i++)
	{
		struct io_uring_sqe *sqe;

		if (!submittable(pending[i]))
			continue;
		sqe = io_uring_get_sqe(&ring);
		if (!sqe)
			break;
		prep_send(sqe, pending[i], nsub++);
	}
	if (nsub == 0)
		return i > from ? i : npending;	/* no entry to be had: give up here */
	do
		done = io_uring_submit(&ring);
	while (done == -EINTR);
	if (done < nsub)
	{
		/*
		 * The kernel took only the first `done` sends (it takes them in
		 * order): those are reaped, the others never left and stay in their
		 * buffers for the callbacks' send().
		 */
		reap(done > 0 ? done : 0);
		for (int k = 0; k < nsub; k++)
			inflight[k] = NULL;
		log_warn("io_uring submission refused (%s): writes go out one send() each from now on",
				 strerror(done < 0 ? -done : EAGAIN));
		write_batch_stop();
		return npending;
	}
	reap(nsub);
	return i;
}

void
conn_flush_pending(void)
{
	for (int from = 0; ring_on && from < npending;)
		from = submit_from(from);
	/* a callback may add connections: they are handled in this loop too */
	for (int i = 0; i < npending; i++)
	{
		conn	   *c = pending[i];

		if (!c)
			continue;
		c->flush_pending = false;
		/* a write event already waits for room: it will run the callback */
		if (!c->writing)
			c->wcb(c->fd, EV_WRITE, c->arg);
	}
	npending = 0;
}
