/*
 * listener.c: the pooler's listening sockets, TCP (listen_addr:listen_port)
 * and Unix (unix_socket_dir/.s.PGSQL.<port>), each accepted connection
 * handed to client.c.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <event2/listener.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "client.h"
#include "net/net.h"

#define MAX_LISTENERS 8

static struct evconnlistener *listeners[MAX_LISTENERS];
static bool is_tcp[MAX_LISTENERS];
static int	nlisteners;
static char unix_path[108];

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
	client_accept(fd, *(bool *) arg);
}

static struct event resume_ev;
static bool resume_pending;

static void
resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	resume_pending = false;
	for (int i = 0; i < nlisteners; i++)
		evconnlistener_enable(listeners[i]);
}

/*
 * EMFILE and friends: the pending connection stays in the backlog and would
 * wake us again at once, so stop accepting for a moment instead of spinning.
 */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval tv = {0, 200000};

	log_warn("accept failed: %s; pausing accepts for 200 ms", strerror(errno));
	for (int i = 0; i < nlisteners; i++)
		evconnlistener_disable(listeners[i]);
	if (!resume_pending)
	{
		evtimer_assign(&resume_ev, base, resume_cb, NULL);
		evtimer_add(&resume_ev, &tv);
		resume_pending = true;
	}
}

static int
add_listener(int fd, bool tcp)
{
	struct evconnlistener *l;

	is_tcp[nlisteners] = tcp;
	l = evconnlistener_new(base, accept_cb, &is_tcp[nlisteners],
						   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 4096, fd);
	if (!l)
		return -1;
	evconnlistener_set_error_cb(l, accept_error_cb);
	listeners[nlisteners++] = l;
	return 0;
}

static int
listen_tcp(void)
{
	struct addrinfo hints = {0},
			   *res,
			   *ai;
	char		port[8];
	const char *host = cfg.listen_addr;
	int			rc,
				n = 0;

	if (!host || !*host)
		return 0;
	if (strcmp(host, "*") == 0)
		host = NULL;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", cfg.listen_port);
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
	{
		log_error("listen_addr \"%s\": %s", cfg.listen_addr, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai && nlisteners < MAX_LISTENERS - 1; ai = ai->ai_next)
	{
		int			fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
					one = 1;

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0 || add_listener(fd, true) < 0)
		{
			log_error("cannot listen on %s port %d: %s", cfg.listen_addr, cfg.listen_port, strerror(errno));
			close(fd);
			freeaddrinfo(res);
			return -1;
		}
		n++;
	}
	freeaddrinfo(res);
	return n > 0 ? 0 : -1;
}

static int
listen_unix(void)
{
	struct sockaddr_un un = {0};
	int			fd;

	if (!cfg.unix_socket_dir || !*cfg.unix_socket_dir)
		return 0;
	un.sun_family = AF_UNIX;
	if ((size_t) snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d",
						  cfg.unix_socket_dir, cfg.listen_port) >= sizeof(un.sun_path))
	{
		log_error("unix_socket_dir too long: %s", cfg.unix_socket_dir);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* a socket file left by a crashed pooler: refuse if someone still listens */
	if (connect(fd, (struct sockaddr *) &un, sizeof(un)) == 0 || errno == EAGAIN)
	{
		log_error("another server listens on %s", un.sun_path);
		close(fd);
		return -1;
	}
	unlink(un.sun_path);
	if (bind(fd, (struct sockaddr *) &un, sizeof(un)) < 0 || listen(fd, 4096) < 0)
	{
		log_error("cannot listen on %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	chmod(un.sun_path, 0777);
	snprintf(unix_path, sizeof(unix_path), "%s", un.sun_path);
	return add_listener(fd, false);
}

int
listener_start(void)
{
	if (listen_tcp() < 0 || listen_unix() < 0)
		return -1;
	if (nlisteners == 0)
	{
		log_error("nothing to listen on: set listen_addr or unix_socket_dir");
		return -1;
	}
	return 0;
}

/* Stop accepting (graceful shutdown, then exit): callable twice. */
void
listener_stop(void)
{
	if (resume_pending)
		evtimer_del(&resume_ev);
	resume_pending = false;
	for (int i = 0; i < nlisteners; i++)
		evconnlistener_free(listeners[i]);
	nlisteners = 0;
	if (unix_path[0])
		unlink(unix_path);
	unix_path[0] = '\0';
}
