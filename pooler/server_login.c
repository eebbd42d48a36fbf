/*
 * server_login.c: the pooler's own non-blocking login to PostgreSQL:
 * SSLRequest and its one-byte answer when server_tls_mode asks for TLS (the
 * handshake itself runs inside conn_flush/conn_fill, see tls.c), then
 * StartupMessage, then whatever authentication the server asks for
 * (trust, cleartext, md5, SCRAM-SHA-256), ParameterStatus, BackendKeyData
 * (the real cancel key, which libpq would keep private), ReadyForQuery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "pooler.h"
#include "config.h"
#include "proto.h"
#include "scram.h"
#include "server.h"
#include "pool.h"
#include "net/net.h"

static const char *
server_password(pool *p)
{
	if (p->db->password)
		return p->db->password;
	if (p->cred && p->cred->password)
		return p->cred->password;
	return NULL;
}

#define SSL_REQUEST_CODE 80877103

static void queue_startup(server *s);

/* Connected: ask for TLS first when server_tls_mode wants it, else log in. */
void
server_send_startup(server *s)
{
	uint32_t	req[2] = {htonl(8), htonl(SSL_REQUEST_CODE)};

	if (!tls_server_wanted(s->pool->host))
	{
		queue_startup(s);
		return;
	}
	evbuffer_add(s->c.out, req, 8);
	s->tls_answer_pending = true;
}

/*
 * The server's answer to our SSLRequest: 'S' starts TLS, 'N' means it has
 * none (enough only for prefer).  False when s is gone or must wait.
 */
static bool
take_tls_answer(server *s)
{
	unsigned char answer;
	char		m[160];

	if (!conn_peek(s->c.in, 0, &answer, 1))
		return false;
	evbuffer_drain(s->c.in, 1);
	s->tls_answer_pending = false;
	if (answer == 'S')
	{
		/* anything already here came before TLS: an injection, not the server */
		if (buflen(s->c.in) > 0)
			snprintf(m, sizeof(m), "received unencrypted data after the server's SSL response");
		else if (tls_connect(&s->c, s->pool->host) < 0)
			snprintf(m, sizeof(m), "%s", tls_last_error());
		else
		{
			queue_startup(s);	/* sent once the handshake is done */
			if (conn_flush(&s->c) == 0)
				return true;
			snprintf(m, sizeof(m), "%s", tls_last_error());
		}
	}
	else if (answer == 'N' && cfg.server_tls_mode == SERVER_TLS_PREFER)
	{
		queue_startup(s);
		return true;
	}
	else if (answer == 'N')
		snprintf(m, sizeof(m), "server refused TLS (its ssl is off) and server_tls_mode requires it");
	else
		snprintf(m, sizeof(m), "invalid answer to SSLRequest from server (byte %d)", answer);
	server_login_failed(s, "08006", m);
	return false;
}

/*
 * In transaction mode the server is asked to report every setting a
 * client changes (perfopt's extension, txn/startup_settings.c); a server
 * without it keeps the name as a placeholder and reports nothing more.
 */
#define REPORT_ASK "perfopt.report_settings\0on"

/*
 * With causal_reads, each commit's WAL end is asked for too
 * (replica/route.c), but only of a host whose logins already report
 * perfopt.commit_lsn: where the extension reserves perfopt.* without that
 * setting, asking would fail the login.  The health check logs in first.
 */
#define LSN_ASK "perfopt.report_commit_lsn\0on"

static void
queue_startup(server *s)
{
	pool	   *p = s->pool;
	struct evbuffer *b = s->c.out;
	bool		ask = p->ps->pool_mode == MODE_TRANSACTION;
	bool		ask_lsn = p->db->causal_reads != CAUSAL_OFF && p->host->reports_commit_lsn && !p->probe;
	uint32_t	len = 4 + 4 + 5 + strlen(p->server_user) + 1 + 9 + strlen(p->server_dbname) + 1 + 1 +
		(ask ? sizeof(REPORT_ASK) : 0) + (ask_lsn ? sizeof(LSN_ASK) : 0);
	uint32_t	v[2] = {htonl(len), htonl(196608)};

	evbuffer_add(b, v, 8);
	evbuffer_add(b, "user", 5);
	evbuffer_add(b, p->server_user, strlen(p->server_user) + 1);
	evbuffer_add(b, "database", 9);
	evbuffer_add(b, p->server_dbname, strlen(p->server_dbname) + 1);
	if (ask)
		evbuffer_add(b, REPORT_ASK, sizeof(REPORT_ASK));
	if (ask_lsn)
		evbuffer_add(b, LSN_ASK, sizeof(LSN_ASK));
	evbuffer_add(b, "", 1);
}

static void
send_password(server *s, const char *data, size_t len)
{
	put_msg_start(s->c.out, 'p', len);
	evbuffer_add(s->c.out, data, len);
}

/* One authentication request from the server; false when login must stop. */
static bool
login_auth(server *s, const unsigned char *body, size_t len)
{
	pool	   *p = s->pool;
	const char *pw = server_password(p);
	uint32_t	code;
	const char *err;
	char	   *msg;

	if (len < 4)
		return false;
	code = get_u32(body);
	switch (code)
	{
		case 0:
			return true;
		case 3:
			if (!pw)
				goto nopw;
			send_password(s, pw, strlen(pw) + 1);
			return true;
		case 5:
			{
				char		inner[36],
							buf[40],
							hex[33],
							out[36];

				if (len < 8)
					return false;
				if (pw)
				{
					char		tmp[1100];

					snprintf(tmp, sizeof(tmp), "%s%s", pw, p->server_user);
					md5_hex(tmp, strlen(tmp), hex);
					memcpy(inner, hex, 32);
				}
				else if (p->cred && p->cred->md5[0] && strcmp(p->server_user, p->cred->name) == 0)
					memcpy(inner, p->cred->md5 + 3, 32);
				else
					goto nopw;
				memcpy(buf, inner, 32);
				memcpy(buf + 32, body + 4, 4);
				md5_hex(buf, 36, hex);
				snprintf(out, sizeof(out), "md5%s", hex);
				send_password(s, out, 36);
				return true;
			}
		case 10:
			{
				bool		has = false;

				for (size_t i = 4; i < len && body[i]; i += strlen((const char *) body + i) + 1)
					if (strcmp((const char *) body + i, "SCRAM-SHA-256") == 0)
						has = true;
				if (!has)
				{
					server_login_failed(s, "28000", "server offers no SASL mechanism the pooler knows");
					return false;
				}
				if (!pw && !(p->cred && p->cred->has_client_key))
					goto nopw;
				s->scram = scram_client_new(pw, p->cred && p->cred->has_client_key ? p->cred->client_key : NULL,
											p->cred ? &p->cred->scram : NULL);
				msg = scram_client_first(s->scram);
				{
					uint32_t	n = htonl(strlen(msg));

					put_msg_start(s->c.out, 'p', 14 + 4 + strlen(msg));
					evbuffer_add(s->c.out, "SCRAM-SHA-256", 14);
					evbuffer_add(s->c.out, &n, 4);
					evbuffer_add(s->c.out, msg, strlen(msg));
				}
				free(msg);
				return true;
			}
		case 11:
			if (!s->scram)
				return false;
			msg = scram_client_final(s->scram, (const char *) body + 4, len - 4, &err);
			if (!msg)
			{
				server_login_failed(s, "28P01", err);
				return false;
			}
			send_password(s, msg, strlen(msg));
			free(msg);
			return true;
		case 12:
			if (!s->scram || !scram_client_verify(s->scram, (const char *) body + 4, len - 4))
			{
				server_login_failed(s, "28P01", "server's SCRAM signature did not verify");
				return false;
			}
			scram_client_free(s->scram);
			s->scram = NULL;
			return true;
		default:
			{
				char		m[96];

				snprintf(m, sizeof(m), "server asks for an unsupported authentication method (%u)", code);
				server_login_failed(s, "28000", m);
				return false;
			}
	}
nopw:
	server_login_failed(s, "28P01", "no password known for the server login: set password= in [databases] or a plain password in auth_file");
	return false;
}

void
server_login_process(server *s)
{
	unsigned char hdr[5];
	const unsigned char *body;
	uint32_t	len;

	if (s->tls_answer_pending && !take_tls_answer(s))
		return;
	while (conn_peek(s->c.in, 0, hdr, 5))
	{
		len = get_u32(hdr + 1);
		if (len < 4 || len > 65536 || (hdr[0] == 'Z' && len != 5))
		{
			server_login_failed(s, "08P01", "invalid message from server during login");
			return;
		}
		if (evbuffer_get_length(s->c.in) < len + 1)
			break;
		body = evbuffer_pullup(s->c.in, len + 1) + 5;
		switch (hdr[0])
		{
			case 'R':
				if (!login_auth(s, body, len - 4))
					return;		/* s is gone */
				break;
			case 'E':
				{
					char		m[256];

					snprintf(m, sizeof(m), "server login failed: %s",
							 error_field((const char *) body, len - 4, 'M'));
					server_login_failed(s, error_field((const char *) body, len - 4, 'C'), m);
					return;
				}
			case 'S':
				server_note_param(s, body, len - 4, true);
				break;
			case 'K':
				if (len == 12)
				{
					s->be_pid = get_u32(body);
					s->be_key = get_u32(body + 4);
				}
				break;
			case 'Z':
				s->txstatus = body[0];
				evbuffer_drain(s->c.in, len + 1);
				evtimer_del(&s->timer);
				s->created = s->last_used = now_mono();
				pool_server_ready(s);	/* places it: S_IDLE, linked or closed */
				return;
			default:
				break;			/* notices, NegotiateProtocolVersion */
		}
		evbuffer_drain(s->c.in, len + 1);
	}
	conn_flush(&s->c);
}
