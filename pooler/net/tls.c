/*
 * tls.c: TLS on both sides of the pooler, with OpenSSL.  Owns the two
 * contexts (toward clients: our certificate and key; toward PostgreSQL:
 * the CA and the host-name check) and the glue that lets conn.c read and
 * write through an SSL object instead of the raw socket.
 *
 * Nothing blocks: a handshake advances whenever conn_fill or conn_flush
 * runs, and OpenSSL's need for the other direction (a read that must
 * first write, a write that must first read) becomes the matching libevent
 * event.  Bytes OpenSSL has already taken off the socket wake no epoll, so
 * whoever leaves some behind schedules the read callback itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "net/net.h"

#define READ_CHUNK 16384
#define READS_PER_CALL 4		/* then other connections get their turn */
#define WRITE_CHUNK 16384		/* one TLS record per SSL_write */

static SSL_CTX *client_ctx;		/* we are the TLS server of our clients */
static SSL_CTX *server_ctx;		/* we are a TLS client of PostgreSQL */
static char last_error[256];

/* A key file with a passphrase would make OpenSSL prompt on the terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	return 0;
}

static const char *
openssl_reason(void)
{
	unsigned long e = ERR_peek_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unknown OpenSSL error";
}

static int
file_error(const char *key, const cfg_file *f, const char *what)
{
	fprintf(stderr, "perfopt-pooler: %s:%d: key \"%s\" in [pooler]: %s \"%s\": %s\n",
			cfg.config_file, f->line, key, what, f->path, openssl_reason());
	ERR_clear_error();
	return -1;
}

static SSL_CTX *
new_ctx(const SSL_METHOD *method)
{
	SSL_CTX    *ctx = SSL_CTX_new(method);

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/*
	 * No renegotiation: a write then never needs a read after the
	 * handshake.  Sessions are not resumed (PostgreSQL does not either),
	 * and an EOF without close_notify is an ordinary EOF.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
						SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* idle connections give their record buffers back */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
					 SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	return ctx;
}

static int
load_client_side(void)
{
	client_ctx = new_ctx(TLS_server_method());
	if (!client_ctx)
		return file_error("client_tls_cert_file", &cfg.client_tls_cert_file, "cannot create a TLS context for");
	SSL_CTX_set_num_tickets(client_ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(client_ctx, cfg.client_tls_cert_file.path) != 1)
		return file_error("client_tls_cert_file", &cfg.client_tls_cert_file, "cannot load certificate");
	if (SSL_CTX_use_PrivateKey_file(client_ctx, cfg.client_tls_key_file.path, SSL_FILETYPE_PEM) != 1)
		return file_error("client_tls_key_file", &cfg.client_tls_key_file, "cannot load private key");
	if (SSL_CTX_check_private_key(client_ctx) != 1)
		return file_error("client_tls_key_file", &cfg.client_tls_key_file,
						  "private key does not match client_tls_cert_file");
	return 0;
}

static int
load_server_side(void)
{
	server_ctx = new_ctx(TLS_client_method());
	if (!server_ctx)
	{
		fprintf(stderr, "perfopt-pooler: cannot create a TLS context: %s\n", openssl_reason());
		return -1;
	}
	if (cfg.server_tls_ca_file.path &&
		SSL_CTX_load_verify_locations(server_ctx, cfg.server_tls_ca_file.path, NULL) != 1)
		return file_error("server_tls_ca_file", &cfg.server_tls_ca_file, "cannot load CA certificates");
	return 0;
}

/* At start, after the configuration: load what the TLS settings name. */
int
tls_init(void)
{
	if (cfg.client_tls_mode != CLIENT_TLS_DISABLE && load_client_side() < 0)
		return -1;
	if (cfg.server_tls_mode != SERVER_TLS_DISABLE && load_server_side() < 0)
		return -1;
	return 0;
}

void
tls_shutdown(void)
{
	SSL_CTX_free(client_ctx);
	SSL_CTX_free(server_ctx);
	client_ctx = server_ctx = NULL;
}

/* Answer a client's SSLRequest with 'S'? */
bool
tls_client_offered(void)
{
	return client_ctx != NULL;
}

/* Ask this server for TLS?  PostgreSQL has none on Unix sockets. */
bool
tls_server_wanted(const db_host *h)
{
	return server_ctx != NULL && h->addr.ss_family != AF_UNIX;
}

const char *
tls_last_error(void)
{
	return last_error[0] ? last_error : "TLS error";
}

/* Remember why a TLS call failed; the connection is done for. */
static void
note_failure(conn *c, int err, const char *during)
{
	unsigned long e = ERR_peek_error();
	const char *side = SSL_is_server(c->ssl) ? "client" : "server";

	if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
		snprintf(last_error, sizeof(last_error), "%s with %s failed: certificate verify failed: %s",
				 during, side, X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
	else if (err == SSL_ERROR_SYSCALL && !e)
		snprintf(last_error, sizeof(last_error), "%s with %s failed: %s", during, side,
				 errno ? strerror(errno) : "connection closed");
	else
		snprintf(last_error, sizeof(last_error), "%s with %s failed: %s", during, side, openssl_reason());
	ERR_clear_error();
	/* never send close_notify after a fatal error */
	SSL_set_quiet_shutdown(c->ssl, 1);
	/* a server's failure is logged by the pool; a client's only here */
	if (SSL_is_server(c->ssl) && strcmp(during, "TLS handshake") == 0)
		log_info("%s", last_error);
	else
		log_debug("%s", last_error);
}

static SSL *
new_ssl(SSL_CTX *ctx, conn *c)
{
	SSL		   *ssl = SSL_new(ctx);

	if (!ssl || SSL_set_fd(ssl, c->fd) != 1)
	{
		SSL_free(ssl);
		snprintf(last_error, sizeof(last_error), "cannot start TLS: %s", openssl_reason());
		ERR_clear_error();
		return NULL;
	}
	return ssl;
}

/* We answered 'S': the client's handshake comes next. */
int
tls_accept(conn *c)
{
	SSL		   *ssl = new_ssl(client_ctx, c);

	if (!ssl)
		return -1;
	SSL_set_accept_state(ssl);
	c->ssl = ssl;
	return 0;
}

static bool
is_ip_literal(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The server answered 'S': our handshake starts at the next conn_flush. */
int
tls_connect(conn *c, const db_host *h)
{
	SSL		   *ssl = new_ssl(server_ctx, c);
	bool		ip = is_ip_literal(h->name);

	if (!ssl)
		return -1;
	SSL_set_connect_state(ssl);
	if (!ip)
		SSL_set_tlsext_host_name(ssl, h->name);	/* SNI, as libpq sends it */
	if (cfg.server_tls_mode >= SERVER_TLS_VERIFY_CA)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	if (cfg.server_tls_mode == SERVER_TLS_VERIFY_FULL)
	{
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		int			ok;

		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, h->name) : X509_VERIFY_PARAM_set1_host(param, h->name, 0);
		if (ok != 1)
		{
			snprintf(last_error, sizeof(last_error), "cannot check the server's certificate for \"%s\"", h->name);
			ERR_clear_error();
			SSL_free(ssl);
			return -1;
		}
	}
	c->ssl = ssl;
	return 0;
}

/* 1 done, 0 waiting for the socket (its event is armed), -1 failed */
static int
handshake(conn *c)
{
	int			r,
				err;

	if (SSL_is_init_finished(c->ssl))
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1)
	{
		log_debug("TLS with %s: %s, %s", SSL_is_server(c->ssl) ? "client" : "server",
				  SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
		return 1;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ)
	{
		conn_read_on(c);
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE)
	{
		conn_want_write(c);
		return 0;
	}
	note_failure(c, err, "TLS handshake");
	return -1;
}

/* The read callback must run again: OpenSSL holds bytes the socket no longer shows. */
static void
wake_reader_if_pending(conn *c)
{
	if (c->reading && SSL_has_pending(c->ssl))
		event_active(&c->rev, EV_READ, 0);
}

/* conn_fill through TLS: >0 bytes, 0 EOF, -1 error, -2 nothing yet */
int
tls_fill(conn *c)
{
	int			total = 0,
				hs;

	if (c->tls_write_wants_read)
	{
		/* the socket was readable: the stalled write may go on */
		c->tls_write_wants_read = false;
		conn_want_write(c);
	}
	hs = handshake(c);
	if (hs <= 0)
		return hs < 0 ? -1 : -2;
	/* output queued behind the handshake (our startup packet) */
	if (buflen(c->out) > 0 && !c->writing && tls_flush(c) < 0)
		return -1;
	for (int i = 0; i < READS_PER_CALL; i++)
	{
		struct evbuffer_iovec v;
		size_t		got = 0;
		int			r,
					err;

		if (evbuffer_reserve_space(conn_in(c), READ_CHUNK, &v, 1) < 1)
		{
			snprintf(last_error, sizeof(last_error), "out of memory for a TLS read");
			return -1;
		}
		ERR_clear_error();
		r = SSL_read_ex(c->ssl, v.iov_base, v.iov_len, &got);
		v.iov_len = r == 1 ? got : 0;
		evbuffer_commit_space(c->in, &v, 1);
		if (r == 1)
		{
			total += (int) got;
			/* OpenSSL read all the socket had: epoll reports what comes next */
			if (!SSL_has_pending(c->ssl))
				return total;
			continue;
		}
		err = SSL_get_error(c->ssl, r);
		if (err == SSL_ERROR_WANT_READ)
			return total ? total : -2;
		if (err == SSL_ERROR_WANT_WRITE)
		{
			c->tls_read_wants_write = true;
			conn_want_write(c);
			return total ? total : -2;
		}
		if (err == SSL_ERROR_ZERO_RETURN)
			return total;		/* EOF; seen again at the next call if data came first */
		note_failure(c, err, "TLS read");
		return total ? total : -1;
	}
	wake_reader_if_pending(c);
	return total;
}

/* conn_flush through TLS: 0 ok (maybe pending), -1 error */
int
tls_flush(conn *c)
{
	int			hs;

	if (c->tls_read_wants_write)
	{
		/* the socket was writable: the stalled read may go on */
		c->tls_read_wants_write = false;
		if (c->reading)
			event_active(&c->rev, EV_READ, 0);
	}
	hs = handshake(c);
	if (hs <= 0)
		return hs;
	while (buflen(c->out) > 0)
	{
		/*
		 * A retried SSL_write must offer at least the bytes it offered
		 * before: nothing is drained until it succeeds, so the front of the
		 * buffer only grows, and the cap keeps the length from shrinking.
		 */
		size_t		n = buflen(c->out) < WRITE_CHUNK ? buflen(c->out) : WRITE_CHUNK;
		const unsigned char *p = evbuffer_pullup(c->out, n);
		int			w,
					err;

		ERR_clear_error();
		w = SSL_write(c->ssl, p, (int) n);
		if (w > 0)
		{
			evbuffer_drain(c->out, w);
			continue;
		}
		err = SSL_get_error(c->ssl, w);
		if (err == SSL_ERROR_WANT_WRITE)
			break;
		if (err == SSL_ERROR_WANT_READ)
		{
			c->tls_write_wants_read = true;
			conn_read_on(c);
			break;
		}
		note_failure(c, err, "TLS write");
		return -1;
	}
	if (buflen(c->out) > 0 && !c->tls_write_wants_read)
		conn_want_write(c);
	else if (c->writing)
	{
		event_del(c->wev);
		c->writing = false;
	}
	wake_reader_if_pending(c);
	return 0;
}

bool
tls_has_pending(conn *c)
{
	return SSL_has_pending(c->ssl) == 1;
}

/* Best effort, never waiting: a full socket just loses the close_notify. */
void
tls_close_notify(conn *c)
{
	if (SSL_is_init_finished(c->ssl) && !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
	{
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
}

void
tls_free(conn *c)
{
	tls_close_notify(c);
	SSL_free(c->ssl);
	c->ssl = NULL;
}
