/*
 * fuzz_startup.c: libFuzzer target for everything a client sends before it
 * is logged in: SSLRequest / GSSENCRequest, CancelRequest, the startup
 * packet (lengths, layout, parameters), then the password / SASL messages
 * of trust, md5 and scram-sha-256 (SCRAM client-first and client-final
 * parsing), then the first messages of an idle client.
 *
 * Input: byte 0 picks auth_type (bits 0-1) and the write chunk size (bits
 * 2-7, 0 = all at once) so messages also arrive split; the rest is the
 * byte stream a client writes.  The bytes go through a real socket into
 * the real client.c (included here for its statics), auth.c, scram.c and
 * pool.c; servers point at a socket that cannot exist, so a client that
 * needs one gets the real "server down" path.
 *
 * Checked after each input: everything the pooler wrote back is well-framed
 * backend messages with five-character SQLSTATEs; once the client's socket
 * closes, no client, pool waiter, server or socket is left.
 */
#include "client.c"
#include "fuzz_common.h"

static pool *ready[4];
static int	base_socks = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_pooler("/nonexistent-perfopt-fuzz");
	ready[0] = fuzz_ready_pool("app", "appdb");
	ready[1] = fuzz_ready_pool("md5user", "appdb");
	ready[2] = fuzz_ready_pool("scramuser", "appdb");
	ready[3] = fuzz_ready_pool("app", "postgres");
	return 0;
}

static void
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0)
	{
		ssize_t		w = write(fd, p, n);

		if (w <= 0)
			return;				/* the pooler closed on us: fine */
		p += w;
		n -= w;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int			ours,
				peer;
	size_t		chunk;
	struct evbuffer *out;
	client	   *c;

	if (size < 1)
		return 0;
	if (base_socks < 0)
		base_socks = fuzz_count_sockets();
	cfg.auth_type = (data[0] & 3) == 1 ? AUTH_MD5 : (data[0] & 3) == 2 ? AUTH_SCRAM : AUTH_TRUST;
	chunk = data[0] >> 2;
	data++, size--;
	if (chunk == 0)
		chunk = size ? size : 1;

	out = evbuffer_new();
	fuzz_socketpair(&ours, &peer);
	client_accept(ours, false);
	for (size_t off = 0; off < size; off += chunk)
	{
		write_all(peer, data + off, size - off < chunk ? size - off : chunk);
		fuzz_run_loop();
		fuzz_drain(peer, out);
	}
	fuzz_run_loop();
	fuzz_drain(peer, out);
	fuzz_check_backend_stream(evbuffer_pullup(out, -1), evbuffer_get_length(out), "REKSZ");
	evbuffer_free(out);

	/* the client hangs up: it and everything it held must go */
	close(peer);
	fuzz_run_loop();
	/* a client parked in a state that does not read (login wait) is freed by hand */
	while ((c = TAILQ_FIRST(&all_clients)) != NULL)
		client_free(c);
	fuzz_run_loop();
	FUZZ_ASSERT(client_count == 0);
	for (int i = 0; i < 4; i++)
	{
		FUZZ_ASSERT(ready[i]->n_waiting == 0 && TAILQ_EMPTY(&ready[i]->waiting));
		FUZZ_ASSERT(TAILQ_EMPTY(&ready[i]->login_wait));
		FUZZ_ASSERT(ready[i]->n_servers == 0 && TAILQ_EMPTY(&ready[i]->servers));
	}
	FUZZ_ASSERT(fuzz_count_sockets() == base_socks);
	return 0;
}
