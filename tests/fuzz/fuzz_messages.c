/*
 * fuzz_messages.c: libFuzzer target for protocol message framing once a
 * client is logged in, in both directions: the client's messages (types,
 * lying or oversized lengths, messages split across reads, pipelines,
 * Terminate) and the server's (login answers, ParameterStatus, lying
 * lengths, ReadyForQuery statuses, unexpected messages from an idle
 * server), with either side vanishing at any point.
 *
 * The harness plays PostgreSQL itself: the database's host is a Unix socket
 * directory where the harness listens, so pool.c opens real connections,
 * server.c logs in over them and every byte goes through client.c (included
 * for its statics), server.c and pool.c unchanged.  The pool's user has no
 * password, so a server asking for one ends the login at once (no PBKDF2
 * with a fuzzed iteration count).
 *
 * Input: byte 0 picks pool_mode (bit 0), pool_pre_ping (bit 1) and
 * max_prepared_statements 2 or 0 (bit 2: prepared_rewrite.c's rewriting of
 * named statements and its reply matching); then records "kind, length,
 * bytes": 0 client bytes, 1 bytes from the newest server connection
 * (accepting one first if none), 2 client hangs up, 3 newest server hangs
 * up, 4 accept pending connections and answer their login, 5 answer a
 * pre-ping (EmptyQueryResponse, ReadyForQuery), 6 answer a query
 * (CommandComplete, ReadyForQuery with the record's first byte as status);
 * a kind byte of 252 or 253 is 7: a well-formed message from the client
 * (Parse, Bind, Describe, Close, Execute, Sync, Flush, named "s1".."s3" or
 * unnamed, or SQL DEALLOCATE of one as Query or unnamed Parse, by the
 * record's first two bytes), 254 or 255 is 8:
 * one well-formed reply from the newest server ('1' '2' '3' 't' 'T' 'n' 'C'
 * 'I' 'E' 'Z' by the record's first byte), so the fuzzer reaches the
 * prepared-statement paths without guessing lengths.
 *
 * Checked after each input, once every socket is closed: no client, no
 * server connection, no waiter and no socket is left, each pool's counters
 * match its lists, and no prepared statement is left in the registry.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "client.c"
#include "fuzz_common.h"
#include "txn/prepared.h"

#define MAXPEERS 16

static char sockdir[64];
static char sockpath[108];
static int	listen_fd = -1;
static pool *fpool;
static int	base_socks = -1;
static int	speer[MAXPEERS];
static int	nspeer;

static void
cleanup_dir(void)
{
	unlink(sockpath);
	rmdir(sockdir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un un = {0};
	int			n = snprintf(sockdir, sizeof(sockdir), "/tmp/perfopt-fuzz.");

	/* mkdtemp's template ends in six 'X', which it replaces by a unique name */
	memset(sockdir + n, 'X', 6);
	sockdir[n + 6] = '\0';
	if (!mkdtemp(sockdir))
		fuzz_fail("mkdtemp", __FILE__, __LINE__);
	snprintf(sockpath, sizeof(sockpath), "%s/.s.PGSQL.1", sockdir);
	atexit(cleanup_dir);
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", sockpath);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *) &un, sizeof(un)) < 0 ||
		listen(listen_fd, 64) < 0)
		fuzz_fail("listen", __FILE__, __LINE__);
	fuzz_init_pooler(sockdir);
	cfg.auth_type = AUTH_TRUST;
	fpool = fuzz_ready_pool("fuzzer", "appdb");
	return 0;
}

static void
write_all(int fd, const void *data, size_t n)
{
	const char *p = data;

	while (fd >= 0 && n > 0)
	{
		ssize_t		w = write(fd, p, n);

		if (w <= 0)
			return;
		p += w;
		n -= w;
	}
}

static void
put_msg(struct evbuffer *b, char type, const void *body, size_t len)
{
	put_msg_start(b, type, len);
	evbuffer_add(b, body, len);
}

static void
send_buf(int fd, struct evbuffer *b)
{
	write_all(fd, evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_drain(b, evbuffer_get_length(b));
}

static void
accept_pending(bool login)
{
	int			fd;

	while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
	{
		if (nspeer == MAXPEERS)
		{
			close(fd);
			continue;
		}
		speer[nspeer++] = fd;
		if (login)
		{
			static const char *const params[][2] = {
				{"server_version", "15.8"}, {"client_encoding", "UTF8"},
				{"DateStyle", "ISO, MDY"}, {"TimeZone", "UTC"},
				{"standard_conforming_strings", "on"}, {"application_name", ""},
				{"IntervalStyle", "postgres"}
			};
			struct evbuffer *b = evbuffer_new();

			send_auth(b, 0, NULL, 0);
			for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
				send_param_status(b, params[i][0], params[i][1]);
			send_key_data(b, 4242 + nspeer, 777);
			send_rfq(b, 'I');
			send_buf(fd, b);
			evbuffer_free(b);
		}
	}
}

/* kind 7: one extended-protocol message, well formed, from two fuzz bytes */
static void
client_message(struct evbuffer *b, const uint8_t *p, size_t n)
{
	static const char *const names[] = {"", "s1", "s2", "s3"};
	int			which = n > 0 ? p[0] % 9 : 0;
	const char *name = names[n > 1 ? p[1] % 4 : 0];
	size_t		nl = strlen(name) + 1;
	char		query[32];
	unsigned char zero4[4] = {0};

	snprintf(query, sizeof(query), "select %d", n > 1 ? p[1] : 0);
	switch (which)
	{
		case 0:
			put_msg_start(b, 'P', nl + strlen(query) + 1 + 2);
			evbuffer_add(b, name, nl);
			evbuffer_add(b, query, strlen(query) + 1);
			evbuffer_add(b, zero4, 2);
			break;
		case 1:
			put_msg_start(b, 'B', 1 + nl + 6);
			evbuffer_add(b, "", 1);
			evbuffer_add(b, name, nl);
			evbuffer_add(b, zero4, 4);
			evbuffer_add(b, zero4, 2);
			break;
		case 2:
		case 3:
			put_msg_start(b, which == 2 ? 'D' : 'C', 1 + nl);
			evbuffer_add(b, n > 0 && (p[0] & 0x80) ? "P" : "S", 1);
			evbuffer_add(b, name, nl);
			break;
		case 4:
			put_msg_start(b, 'E', 5);
			evbuffer_add(b, zero4, 4);
			evbuffer_add(b, "", 1);
			break;
		case 7:
		case 8:
			/* SQL DEALLOCATE, as a simple query or an unnamed Parse */
			snprintf(query, sizeof(query), "DEALLOCATE %s", *name ? name : "ALL");
			if (which == 8)
			{
				send_query(b, query);
				break;
			}
			put_msg_start(b, 'P', 1 + strlen(query) + 1 + 2);
			evbuffer_add(b, "", 1);
			evbuffer_add(b, query, strlen(query) + 1);
			evbuffer_add(b, zero4, 2);
			break;
		default:
			put_msg_start(b, which == 5 ? 'S' : 'H', 0);
	}
}

/* kind 8: one well-formed server reply */
static void
server_reply(struct evbuffer *b, const uint8_t *p, size_t n)
{
	static const char types[] = "123tTnCIEZ";
	char		t = types[n > 0 ? p[0] % 10 : 0];
	unsigned char zero2[2] = {0};

	switch (t)
	{
		case 't':
		case 'T':
			put_msg(b, t, zero2, 2);
			break;
		case 'C':
			put_msg(b, 'C', n > 1 && (p[1] & 1) ? "DISCARD ALL" : "SELECT 1", n > 1 && (p[1] & 1) ? 12 : 9);
			break;
		case 'E':
			send_error(b, "ERROR", "42601", "fuzz error");
			break;
		case 'Z':
			send_rfq(b, n > 1 && (p[1] & 1) ? 'T' : 'I');
			break;
		default:
			put_msg(b, t, NULL, 0);
	}
}

static void
drain_all(int cpeer)
{
	if (cpeer >= 0)
		fuzz_drain(cpeer, NULL);
	for (int i = 0; i < nspeer; i++)
		fuzz_drain(speer[i], NULL);
}

static int
list_len_servers(struct server_list *l, bool idle)
{
	server	   *s;
	int			n = 0;

	if (idle)
		TAILQ_FOREACH(s, l, ilink) n++;
	else
		TAILQ_FOREACH(s, l, link) n++;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int			ours,
				cpeer;
	struct evbuffer *b;
	client	   *c;
	size_t		i;

	if (size < 1)
		return 0;
	if (base_socks < 0)
		base_socks = fuzz_count_sockets();
	fpool->db->ps.pool_mode = (data[0] & 1) ? MODE_SESSION : MODE_TRANSACTION;
	fpool->db->ps.pool_pre_ping = (data[0] & 2) != 0;
	cfg.max_prepared_statements = (data[0] & 4) ? 2 : 0;

	/* a client logs in (trust; the pool already knows the server's parameters) */
	b = evbuffer_new();
	fuzz_socketpair(&ours, &cpeer);
	client_accept(ours, false);
	{
		static const char body[] = "\0\3\0\0user\0fuzzer\0database\0appdb\0";
		uint32_t	len = htonl(sizeof(body) + 4);

		evbuffer_add(b, &len, 4);
		evbuffer_add(b, body, sizeof(body));	/* with the final terminator */
		send_buf(cpeer, b);
	}
	fuzz_run_loop();
	fuzz_drain(cpeer, NULL);
	c = TAILQ_LAST(&all_clients, client_list);
	FUZZ_ASSERT(c && c->state == C_IDLE);

	for (i = 1; i + 2 <= size;)
	{
		int			kind = data[i] >= 252 ? 7 + (data[i] >= 254) : data[i] % 7;
		size_t		len = data[i + 1];

		i += 2;
		if (len > size - i)
			len = size - i;
		switch (kind)
		{
			case 0:
				write_all(cpeer, data + i, len);
				break;
			case 1:
				if (nspeer == 0)
					accept_pending(false);
				if (nspeer > 0)
					write_all(speer[nspeer - 1], data + i, len);
				break;
			case 2:
				if (cpeer >= 0)
					close(cpeer);
				cpeer = -1;
				break;
			case 3:
				if (nspeer > 0)
					close(speer[--nspeer]);
				break;
			case 4:
				accept_pending(true);
				break;
			case 5:
				if (nspeer > 0)
				{
					put_msg(b, 'I', NULL, 0);
					send_rfq(b, 'I');
					send_buf(speer[nspeer - 1], b);
				}
				break;
			case 6:
				if (nspeer > 0)
				{
					put_msg(b, 'C', "SELECT 1", 9);
					send_rfq(b, len > 0 ? (char) data[i] : 'I');
					send_buf(speer[nspeer - 1], b);
				}
				break;
			case 7:
				client_message(b, data + i, len);
				send_buf(cpeer, b);
				break;
			case 8:
				if (nspeer > 0)
				{
					server_reply(b, data + i, len);
					send_buf(speer[nspeer - 1], b);
				}
				break;
		}
		i += len;
		fuzz_run_loop();
		drain_all(cpeer);
	}
	evbuffer_free(b);

	/* everyone hangs up: nothing may be left behind */
	if (cpeer >= 0)
		close(cpeer);
	accept_pending(false);
	while (nspeer > 0)
		close(speer[--nspeer]);
	fuzz_run_loop();
	/* clients that stopped reading (waiting for a login) are freed by hand */
	while ((c = TAILQ_FIRST(&all_clients)) != NULL)
		client_free(c);
	fuzz_run_loop();
	accept_pending(false);
	while (nspeer > 0)
		close(speer[--nspeer]);
	fuzz_run_loop();

	FUZZ_ASSERT(client_count == 0);
	FUZZ_ASSERT(fpool->n_waiting == 0 && TAILQ_EMPTY(&fpool->waiting));
	FUZZ_ASSERT(TAILQ_EMPTY(&fpool->login_wait));
	FUZZ_ASSERT(fpool->n_servers == list_len_servers(&fpool->servers, false));
	FUZZ_ASSERT(fpool->n_idle == list_len_servers(&fpool->idle, true));
	FUZZ_ASSERT(fpool->n_servers == 0);
	FUZZ_ASSERT(fpool->n_connecting == 0);
	FUZZ_ASSERT(fuzz_count_sockets() == base_socks);
	FUZZ_ASSERT(prepared_stmt_count() == 0);
	return 0;
}
