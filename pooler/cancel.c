/*
 * cancel.c: forwarding a client's CancelRequest, with the real backend
 * key, on a fresh connection to the server (fire and forget).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "pooler.h"

/* CancelRequest on a fresh connection, with the backend's real key. */
typedef struct cancel_req
{
	int			fd;
	unsigned char pkt[16];
} cancel_req;

static void
cancel_cb(evutil_socket_t fd, short ev, void *arg)
{
	cancel_req *r = arg;

	if (ev & EV_WRITE)
	{
		ssize_t		n = write(r->fd, r->pkt, 16);

		if (n != 16)
			log_warn("cancel request not delivered");
	}
	close(r->fd);
	free(r);
}

void
send_cancel(database *db, uint32_t pid, uint32_t key)
{
	cancel_req *r = malloc(sizeof(*r));
	uint32_t	v[4] = {htonl(16), htonl(80877102), htonl(pid), htonl(key)};
	struct timeval tv = {5, 0};

	if (!r)
		return;
	memcpy(r->pkt, v, 16);
	r->fd = socket(db->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0 ||
		(connect(r->fd, (struct sockaddr *) &db->addr, db->addrlen) < 0 && errno != EINPROGRESS))
	{
		if (r->fd >= 0)
			close(r->fd);
		free(r);
		return;
	}
	event_base_once(base, r->fd, EV_WRITE, cancel_cb, r, &tv);
}
