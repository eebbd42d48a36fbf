/*
 * fuzz_common.c: the shared half of the fuzz harnesses (see fuzz_common.h).
 * It also replaces getaddrinfo() for the whole harness process: a fuzzed
 * host name must never turn into a DNS query leaving the machine, so only
 * numeric addresses resolve.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "fuzz_common.h"

struct event_base *base;

void
fuzz_fail(const char *what, const char *file, int line)
{
	DIR		   *d = opendir("/proc/self/fd");
	struct dirent *e;

	fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\nopen files:\n", what, file, line);
	while (d && (e = readdir(d)) != NULL)
	{
		char		p[300],
					t[300];
		ssize_t		n;

		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		if (e->d_name[0] != '.' && (n = readlink(p, t, sizeof(t) - 1)) > 0)
			fprintf(stderr, "  %s -> %.*s\n", e->d_name, (int) n, t);
	}
	if (d)
		closedir(d);
	abort();
}

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
			struct addrinfo **res)
{
	static int	(*real) (const char *, const char *, const struct addrinfo *, struct addrinfo **);
	struct addrinfo h = {0};

	if (!real)
		real = dlsym(RTLD_NEXT, "getaddrinfo");
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return real(node, service, &h, res);
}

int
fuzz_memfile(const void *data, size_t len, char path[64])
{
	int			fd = memfd_create("fuzz", MFD_CLOEXEC);
	const char *p = data;

	if (fd < 0)
		fuzz_fail("memfd_create", __FILE__, __LINE__);
	while (len > 0)
	{
		ssize_t		n = write(fd, p, len);

		if (n <= 0)
			fuzz_fail("write memfd", __FILE__, __LINE__);
		p += n;
		len -= n;
	}
	snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

void
fuzz_memfile_close(int fd)
{
	close(fd);
}

int
fuzz_quiet_stderr(void)
{
	int			saved = dup(2),
				nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

	fflush(stderr);
	dup2(nul, 2);
	close(nul);
	return saved;
}

void
fuzz_restore_stderr(int saved)
{
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
}

void
fuzz_init_base(void)
{
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (!base)
		fuzz_fail("event_base_new", __FILE__, __LINE__);
	/* warnings about fuzzed input would drown libFuzzer's own output */
	log_open("/dev/null");
}

/*
 * The databases point at a Unix socket directory: one that cannot exist
 * (a server connection fails at once, ENOENT, and takes the real failure
 * path) or one where the harness itself plays PostgreSQL.  No traffic
 * leaves the process.
 */
static const char std_ini[] =
	"[databases]\n"
	"appdb = host=%s port=1 dbname=appdb\n"
	"postgres = host=%s port=1\n"
	"[pooler]\n"
	"listen_port = 1\n"
	"pool_size = 2\n"
	"max_overflow = 1\n"
	"max_packet_size = 65536\n"
	"auth_type = trust\n";

/*
 * app: plain password; md5user: md5 secret; scramuser: a SCRAM secret
 * (password "scram-secret", 4096 iterations, as PostgreSQL stores it).
 */
static const char std_users[] =
	"; fuzz users\n"
	"\"app\" \"app-secret\"\n"
	"\"md5user\" \"md5d2e9fbdbc3ec9b9e4b8d1a26b0d0b7e4\"\n"
	"\"scramuser\" \"SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$ZQOJmaNlMNTc0CCs1Pm8rMcxC+1ZTY9H9ngHtxpfQiA=:Uj5dHbtaYhPlNjOaN0YymRBDHiaeZjxmWQpwBm2ieGI=\"\n";

void
fuzz_init_pooler(const char *host)
{
	char		path[64],
				ini[1024];
	int			fd;

	fuzz_init_base();
	snprintf(ini, sizeof(ini), std_ini, host, host);
	fd = fuzz_memfile(ini, strlen(ini), path);
	if (config_load(path) < 0)
		fuzz_fail("standard config does not load", __FILE__, __LINE__);
	fuzz_memfile_close(fd);
	fd = fuzz_memfile(std_users, sizeof(std_users) - 1, path);
	cfg.auth_file = strdup(path);
	if (userlist_load(path) < 0)
		fuzz_fail("standard userlist does not load", __FILE__, __LINE__);
	fuzz_memfile_close(fd);
	cfg.verbose = -1;
	client_console = &admin_console;	/* as main.c plugs it in */
}

pool *
fuzz_ready_pool(const char *user, const char *dbname)
{
	static const char *const names[] = {
		"server_version", "client_encoding", "DateStyle", "TimeZone",
		"standard_conforming_strings", "application_name", "IntervalStyle", "integer_datetimes"
	};
	static const char *const values[] = {
		"15.8", "UTF8", "ISO, MDY", "UTC", "on", "", "postgres", "on"
	};
	pool	   *p = pool_get(config_find_database(dbname), user, dbname, userlist_find(user));
	int			n = sizeof(names) / sizeof(names[0]);

	if (p->have_params)
		return p;
	p->have_params = true;
	p->nparams = n;
	p->pnames = calloc(n, sizeof(char *));
	p->pvalues = calloc(n, sizeof(char *));
	for (int i = 0; i < n; i++)
	{
		int			t = tracked_param_index(names[i]);

		p->pnames[i] = strdup(names[i]);
		p->pvalues[i] = strdup(values[i]);
		if (t >= 0)
		{
			pstr	   *v = pstr_get(values[i]);

			pstr_set(&p->defaults[t], v);
			pstr_unref(v);
		}
	}
	return p;
}

void
fuzz_socketpair(int *ours, int *peer)
{
	int			sv[2],
				big = 1 << 20;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		fuzz_fail("socketpair", __FILE__, __LINE__);
	for (int i = 0; i < 2; i++)
	{
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	*ours = sv[0];
	*peer = sv[1];
}

size_t
fuzz_drain(int peer, struct evbuffer *out)
{
	char		buf[16384];
	size_t		total = 0;
	ssize_t		n;

	while ((n = read(peer, buf, sizeof(buf))) > 0)
	{
		if (out)
			evbuffer_add(out, buf, n);
		total += n;
	}
	return total;
}

void
fuzz_run_loop(void)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

/*
 * Sockets only: the sanitizers open pipes to their symbolizer whenever
 * libFuzzer prints a new function, and those are not ours to count.
 */
int
fuzz_count_sockets(void)
{
	DIR		   *d = opendir("/proc/self/fd");
	struct dirent *e;
	int			n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
	{
		char		p[300],
					t[64];
		ssize_t		len;

		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		if (e->d_name[0] != '.' && (len = readlink(p, t, sizeof(t) - 1)) > 0 &&
			len >= 7 && memcmp(t, "socket:", 7) == 0)
			n++;
	}
	closedir(d);
	return n;
}

void
fuzz_check_backend_stream(const unsigned char *p, size_t len, const char *types)
{
	size_t		i = 0;

	while (i < len && p[i] == 'N')
		i++;
	while (i < len)
	{
		uint32_t	ml;

		FUZZ_ASSERT(len - i >= 5);
		FUZZ_ASSERT(p[i] != 0 && strchr(types, p[i]) != NULL);
		ml = get_u32(p + i + 1);
		FUZZ_ASSERT(ml >= 4 && ml - 4 <= len - i - 5);
		/* an ErrorResponse carries a SQLSTATE of five characters */
		if (p[i] == 'E')
		{
			const char *code = error_field((const char *) p + i + 5, ml - 4, 'C');

			FUZZ_ASSERT(strlen(code) == 5);
		}
		i += 1 + ml;
	}
}
