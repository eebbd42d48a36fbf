/*
 * log.c: the pooler's log lines, to stderr or to logfile, each with its
 * level, and the tags that name a client (C-<id> user@db addr:port) or a
 * server connection (S-<id> user@db pid <backend pid>) in them.  Nothing
 * here ever receives a password: callers log names and reasons only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/time.h>
#include <sys/socket.h>

#include "pooler.h"
#include "log.h"
#include "config.h"

static FILE *logfp;

/* Also on every reload, so that a rotated logfile is let go. */
void
log_open(const char *file)
{
	if (logfp && logfp != stderr)
		fclose(logfp);
	logfp = NULL;
	if (file && *file)
	{
		FILE	   *f = fopen(file, "a");

		if (f)
		{
			setvbuf(f, NULL, _IOLBF, 0);
			logfp = f;
			return;
		}
		fprintf(stderr, "perfopt-pooler: cannot open logfile %s, logging to stderr\n", file);
	}
	logfp = stderr;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"ERROR", "WARNING", "LOG", "DEBUG"};
	char		ts[32];
	struct timeval tv;
	struct tm	tm;
	va_list		ap;

	if (!logfp)
		logfp = stderr;
	if (level == LOG_INFO && cfg.verbose < 0)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(logfp, "%s.%03d %s ", ts, (int) (tv.tv_usec / 1000), names[level]);
	va_start(ap, fmt);
	vfprintf(logfp, fmt, ap);
	va_end(ap);
	fputc('\n', logfp);
}

/* The peer's (or our own) address of a socket: "127.0.0.1" and the port, "unix" and 0. */
void
sock_addr(int fd, bool peer, char *buf, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t	sl = sizeof(ss);

	*port = 0;
	snprintf(buf, len, "-");
	if (fd < 0 || (peer ? getpeername(fd, (struct sockaddr *) &ss, &sl) :
				   getsockname(fd, (struct sockaddr *) &ss, &sl)) < 0)
		return;
	if (ss.ss_family == AF_INET)
	{
		struct sockaddr_in *in = (struct sockaddr_in *) &ss;

		inet_ntop(AF_INET, &in->sin_addr, buf, len);
		*port = ntohs(in->sin_port);
	}
	else if (ss.ss_family == AF_INET6)
	{
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, buf, len);
		*port = ntohs(in6->sin6_port);
	}
	else if (ss.ss_family == AF_UNIX)
		snprintf(buf, len, "unix");
}

/* A few rotating buffers: one log line may name a client and a server. */
static char *
tag_buf(void)
{
	static char bufs[4][192];
	static unsigned next;

	return bufs[next++ % 4];
}

const char *
client_tag(const client *c)
{
	char	   *b = tag_buf(),
				addr[64];
	int			port;

	sock_addr(c->c.fd, true, addr, sizeof(addr), &port);
	if (port)
		snprintf(b, 192, "C-%u %s@%s %s:%d", c->id, c->user ? c->user : "?",
				 c->dbname ? c->dbname : "?", addr, port);
	else
		snprintf(b, 192, "C-%u %s@%s %s", c->id, c->user ? c->user : "?",
				 c->dbname ? c->dbname : "?", addr);
	return b;
}

const char *
server_tag(const server *s)
{
	char	   *b = tag_buf();

	snprintf(b, 192, "S-%u %s@%s pid %u", s->id, s->pool->server_user, s->pool->server_dbname, s->be_pid);
	return b;
}
