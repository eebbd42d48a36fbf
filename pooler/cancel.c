/*
 * cancel.c: a client's CancelRequest.  A client running on a server has
 * the request forwarded, with the backend's real key, on a fresh
 * connection to PostgreSQL; that server is kept from every other client
 * until PostgreSQL has closed the connection (its signal is sent by then)
 * and server.c has absorbed any late signal, so a cancel never lands on
 * the next client's statement.  A client still queued has nothing on a
 * server yet: client.c cancels its request itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "pooler.h"
#include "log.h"
#include "client.h"
#include "server.h"
#include "cancel.h"
#include "net/net.h"

#define CANCEL_CODE 80877102
#define CANCEL_TIMEOUT_SECS 5

/* One CancelRequest on its way to PostgreSQL. */
typedef struct cancel_req
{
	int			fd;
	unsigned char pkt[16];
	server	   *server;			/* NULL once that server is gone */
	struct event ev;
	double		deadline;
	struct cancel_req *next;	/* the server's other requests in flight */
	TAILQ_ENTRY(cancel_req) link;	/* every request in flight */
} cancel_req;

static TAILQ_HEAD(, cancel_req) in_flight = TAILQ_HEAD_INITIALIZER(in_flight);

static void
detach(cancel_req *r)
{
	server	   *s = r->server;
	cancel_req **pp;

	if (!s)
		return;
	for (pp = &s->cancels; *pp; pp = &(*pp)->next)
		if (*pp == r)
		{
			*pp = r->next;
			break;
		}
	r->server = NULL;
	if (!s->cancels)
		server_cancel_settled(s);
}

static void
finish(cancel_req *r)
{
	close(r->fd);
	TAILQ_REMOVE(&in_flight, r, link);
	detach(r);
	free(r);
}

static void
wait_event(cancel_req *r, short what, event_callback_fn cb)
{
	double		left = r->deadline - now_mono();
	struct timeval tv;

	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t) left;
	tv.tv_usec = (suseconds_t) ((left - tv.tv_sec) * 1e6);
	event_assign(&r->ev, base, r->fd, what, cb, r);
	event_add(&r->ev, &tv);
}

/* PostgreSQL answers a CancelRequest by closing the connection once it has signalled. */
static void
closed_cb(evutil_socket_t fd, short ev, void *arg)
{
	cancel_req *r = arg;
	char		buf[64];
	ssize_t		n;

	if (ev & EV_TIMEOUT)
	{
		log_warn("cancel request: no answer from the server within %d s", CANCEL_TIMEOUT_SECS);
		finish(r);
		return;
	}
	while ((n = read(r->fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
	{
		wait_event(r, EV_READ, closed_cb);
		return;
	}
	finish(r);
}

static void
connected_cb(evutil_socket_t fd, short ev, void *arg)
{
	cancel_req *r = arg;

	if ((ev & EV_TIMEOUT) || write(r->fd, r->pkt, sizeof(r->pkt)) != (ssize_t) sizeof(r->pkt))
	{
		log_warn("cancel request not delivered");
		finish(r);
		return;
	}
	wait_event(r, EV_READ, closed_cb);
}

static void
forward_cancel(server *s)
{
	cancel_req *r = calloc(1, sizeof(*r));
	uint32_t	v[4] = {htonl(16), htonl(CANCEL_CODE), htonl(s->be_pid), htonl(s->be_key)};

	if (!r)
		return;
	memcpy(r->pkt, v, sizeof(r->pkt));
	/* to the server s was opened on, wherever a RELOAD has moved its database since */
	r->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0 ||
		(connect(r->fd, (struct sockaddr *) &s->addr, s->addrlen) < 0 && errno != EINPROGRESS))
	{
		log_warn("cancel request not delivered: %s", strerror(errno));
		if (r->fd >= 0)
			close(r->fd);
		free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&in_flight, r, link);
	r->server = s;
	r->next = s->cancels;
	s->cancels = r;
	s->cancel_sent = true;
	r->deadline = now_mono() + CANCEL_TIMEOUT_SECS;
	wait_event(r, EV_WRITE, connected_cb);
}

void
cancel_request(uint32_t pid, uint32_t key)
{
	client	   *target = client_find_cancel(pid, key);

	if (!target)
		return;
	if (target->server && target->server->state == S_ACTIVE)
		forward_cancel(target->server);
	else if (target->state == C_WAITING || (target->state == C_ROUTING && !target->route_login))
		client_cancel_waiting(target);
}

/* The client of s vanished in the middle of a statement: stop it. */
void
cancel_server(server *s)
{
	if (s->be_pid)
		forward_cancel(s);
}

/* The server is being freed: its requests go on without anyone to tell. */
void
cancel_forget(server *s)
{
	for (cancel_req *r = s->cancels; r; r = r->next)
		r->server = NULL;
	s->cancels = NULL;
}

/* Shutdown: requests still in flight are abandoned. */
void
cancel_shutdown(void)
{
	cancel_req *r;

	while ((r = TAILQ_FIRST(&in_flight)) != NULL)
	{
		event_del(&r->ev);
		r->server = NULL;
		finish(r);
	}
}
