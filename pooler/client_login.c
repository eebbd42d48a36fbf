/*
 * client_login.c: a client from its startup packet to its first
 * ReadyForQuery: SSLRequest and the TLS handshake, CancelRequest, the
 * startup parameters, authentication (auth.c judges, this file acts on the
 * verdict), joining its (database, user) pool, and the welcome (the
 * server's parameters, our cancel key).  It mirrors server_login.c on the
 * other side; client.c reads the input and calls in here while the client
 * is C_STARTUP or C_AUTH.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pooler.h"
#include "log.h"
#include "strpool.h"
#include "config.h"
#include "proto.h"
#include "auth.h"
#include "scram.h"
#include "client.h"
#include "cancel.h"
#include "pool.h"
#include "net/net.h"
#include "txn/txn.h"
#include "replica/replica.h"

#define STARTUP_MAX 10000
#define PROTO_V3 196608
#define CANCEL_CODE 80877102
#define SSL_CODE 80877103
#define GSS_CODE 80877104

static uint32_t next_cancel_pid;

static void client_login_done(client *c);

static bool
ignored_param(const char *name)
{
	const char *p = cfg.ignore_startup_parameters;
	size_t		n = strlen(name);

	while (p && *p)
	{
		while (*p == ' ' || *p == ',')
			p++;
		if (strncasecmp(p, name, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return true;
		while (*p && *p != ',')
			p++;
	}
	return false;
}

/*
 * SSLRequest answered 'S'; the TLS handshake follows on the same socket.
 * Bytes the client sent behind its SSLRequest would be read as if they had
 * come through TLS, though anyone on the path could have put them there:
 * refuse them.
 */
static void
start_tls(client *c)
{
	if (c->c.ssl)
	{
		client_fail(c, "08P01", "SSLRequest on a connection that already uses TLS");
		return;
	}
	if (buflen(c->c.in) > 0)
	{
		client_fail(c, "08P01", "received unencrypted data after SSL request");
		return;
	}
	evbuffer_add(conn_out(&c->c), "S", 1);
	/* the 'S' must be on the wire before any TLS byte: a one-byte write to a fresh socket */
	if (conn_flush(&c->c) < 0 || buflen(c->c.out) > 0 || tls_accept(&c->c) < 0)
	{
		log_warn("cannot start TLS with a client: %s", tls_last_error());
		client_close_soon(c);
	}
}

/* auth.c has judged the client's last login message */
static void
act_on_auth(client *c, enum auth_verdict verdict, const auth_refusal *why)
{
	if (verdict == AUTH_OK)
		client_login_done(c);
	else if (verdict == AUTH_REFUSED)
		client_fail(c, why->sqlstate, "%s", why->msg);
}

/* replication=database or true asks for a walsender, which a pool cannot give */
static bool
wants_replication(const char *val)
{
	return strcasecmp(val, "false") != 0 && strcasecmp(val, "off") != 0 &&
		strcasecmp(val, "no") != 0 && strcmp(val, "0") != 0;
}

/*
 * One parameter of the startup packet other than user and database into
 * the explicit list (or options, kept for later); false once the client
 * was failed.
 */
static bool
read_param(client *c, const char *name, const char *val, setting_list *l, const char **opts)
{
	const char *bad;

	if (!strcmp(name, "options"))
		*opts = val;
	else if (!strcmp(name, "replication"))
	{
		if (wants_replication(val))
			client_fail(c, "0A000", "unsupported startup parameter \"replication\": perfopt-pooler does not pool replication connections");
	}
	else if (ignored_param(name))
		;						/* ignore_startup_parameters */
	else if (!strncmp(name, "_pq_.", 5))
		client_fail(c, "08P01", "unsupported startup parameter: %s", name);
	else if ((bad = setting_list_put(l, name, val)) != NULL)
		client_fail(c, "22023", "startup parameter \"%s\": %s", name, bad);
	return c->state != C_CLOSING;
}

/*
 * Every setting of the login: options' switches first, then the explicit
 * parameters (which win, as in PostgreSQL).  The six reported ones go to
 * startup_params, ignore_startup_parameters are dropped, the rest become
 * c->settings (txn/startup_settings.c).
 */
static void
route_settings(client *c, setting_list *all)
{
	setting_list rest = {0};
	int			t;

	for (int i = 0; i < all->n; i++)
	{
		if ((t = tracked_param_index(all->names[i])) >= 0)
		{
			pstr_set(&c->startup_params[t], pstr_get(all->values[i]));
			c->startup_params[t]->refs--;
		}
		else if (!ignored_param(all->names[i]))
			setting_list_put(&rest, all->names[i], all->values[i]);
	}
	pstr_unref(c->settings);
	c->settings = setting_list_key(&rest);
	setting_list_free(&rest);
}

/* The startup packet's parameters (p, len: the whole packet); false once the client was failed. */
static bool
read_params(client *c, const unsigned char *p, uint32_t len)
{
	setting_list explicit = {0},
				all = {0};
	const char *opts = NULL,
			   *code = NULL;
	char		why[300];
	bool		good = true;

	for (size_t i = 8; good && i < len - 1;)
	{
		const char *name = (const char *) p + i;
		const char *val = name + strlen(name) + 1;

		if ((const unsigned char *) val >= p + len - 1 && *name)
		{
			client_fail(c, "08P01", "invalid startup packet layout: parameter without value");
			good = false;
			break;
		}
		if (!*name)
			break;
		i = (const unsigned char *) val - p + strlen(val) + 1;
		if (!strcmp(name, "user"))
		{
			free(c->user);
			c->user = strdup(val);
		}
		else if (!strcmp(name, "database"))
		{
			free(c->dbname);
			c->dbname = strdup(val);
		}
		else
			good = read_param(c, name, val, &explicit, &opts);
	}
	if (good && opts && (code = startup_options_parse(opts, &all, why, sizeof(why))) != NULL)
	{
		client_fail(c, code, "%s", why);
		good = false;
	}
	for (int i = 0; good && i < explicit.n; i++)
		setting_list_put(&all, explicit.names[i], explicit.values[i]);
	if (good)
		route_settings(c, &all);
	setting_list_free(&explicit);
	setting_list_free(&all);
	return good;
}

/* The startup packet: 0 wait for more, 1 handled (state may have moved on) */
int
client_startup_input(client *c)
{
	unsigned char hdr[8];
	const unsigned char *p;
	uint32_t	len,
				code;
	database   *db;
	auth_refusal why;

	if (!conn_peek(c->c.in, 0, hdr, 8))
		return 0;
	len = get_u32(hdr);
	code = get_u32(hdr + 4);
	if (len < 8 || len > STARTUP_MAX)
	{
		client_fail(c, "08P01", "invalid length of startup packet");
		return 1;
	}
	if (buflen(c->c.in) < len)
		return 0;
	p = evbuffer_pullup(c->c.in, len);
	if (code == SSL_CODE || code == GSS_CODE)
	{
		if (len != 8)
		{
			client_fail(c, "08P01", "invalid length of encryption request");
			return 1;
		}
		evbuffer_drain(c->c.in, 8);
		if (code == SSL_CODE && c->tcp && tls_client_offered())
		{
			start_tls(c);
			return 1;
		}
		evbuffer_add(conn_out(&c->c), "N", 1);
		conn_flush(&c->c);
		return 1;
	}
	if (code == CANCEL_CODE)
	{
		if (len == 16)
			cancel_request(get_u32(p + 8), get_u32(p + 12));
		evbuffer_drain(c->c.in, len);
		client_close_soon(c);
		return 1;
	}
	if (cfg.client_tls_mode == CLIENT_TLS_REQUIRE && c->tcp && !c->c.ssl)
	{
		client_fail(c, "28000", "SSL required: client_tls_mode = require accepts only TLS connections over TCP");
		return 1;
	}
	if (code != PROTO_V3)
	{
		client_fail(c, "0A000", "unsupported frontend protocol %u.%u: perfopt-pooler speaks 3.0",
					code >> 16, code & 0xffff);
		return 1;
	}
	if (p[len - 1] != '\0')
	{
		client_fail(c, "08P01", "invalid startup packet layout: expected terminator as last byte");
		return 1;
	}
	if (!read_params(c, p, len))
		return 1;
	evbuffer_drain(c->c.in, len);
	if (!c->user || !*c->user)
	{
		client_fail(c, "28000", "no PostgreSQL user name specified in startup packet");
		return 1;
	}
	if (!c->dbname || !*c->dbname)
	{
		free(c->dbname);
		c->dbname = strdup(c->user);
	}
	if (client_count > cfg.max_client_conn)
	{
		client_fail(c, "53300", "sorry, too many clients already (max_client_conn = %d)", cfg.max_client_conn);
		return 1;
	}
	c->cred = cfg.auth_file ? userlist_find(c->user) : NULL;
	if (strcmp(c->dbname, ADMIN_DB) == 0 && client_console)
	{
		/* the admin console: same login, then the console checks the user */
		c->admin = ADMIN_ASKED;
		client_set_state(c, C_AUTH);
		act_on_auth(c, auth_start(c, &why), &why);
		return 1;
	}
	db = config_find_database(c->dbname);
	if (!db)
	{
		client_fail(c, "3D000", "database \"%s\" does not exist", c->dbname);
		return 1;
	}
	/* the pool is joined only once authenticated: see client_login_done */
	c->db = db;
	client_set_state(c, C_AUTH);
	act_on_auth(c, auth_start(c, &why), &why);
	return 1;
}

/* A login message (password, SASL): 0 wait for more, 1 handled */
int
client_auth_input(client *c)
{
	unsigned char hdr[5];
	uint32_t	len;
	unsigned char *msg;
	enum auth_verdict verdict;
	auth_refusal why;

	if (!conn_peek(c->c.in, 0, hdr, 5))
		return 0;
	len = get_u32(hdr + 1);
	if (len < 4 || len > STARTUP_MAX)
	{
		client_fail(c, "08P01", "invalid message length during authentication");
		return 1;
	}
	if (buflen(c->c.in) < len + 1)
		return 0;
	/*
	 * Off the buffer before it is handled: a successful login welcomes the
	 * client at once, which reads whatever follows in the buffer as its
	 * first query (this message must not be there any more).
	 */
	msg = malloc(len + 1);
	if (!msg)
	{
		client_fail(c, "53200", "out of memory");
		return 1;
	}
	evbuffer_remove(c->c.in, msg, len + 1);
	verdict = auth_message(c, hdr[0], msg + 5, len - 4, &why);
	free(msg);
	act_on_auth(c, verdict, &why);
	return 1;
}

/*
 * Authenticated: join the (database, user) pool.  Only now, so that clients
 * that never authenticate, whatever names they send, create no pool.
 */
static void
client_login_done(client *c)
{
	if (c->admin)
	{
		if (client_console->login(c))
			client_welcome(c);
		return;
	}
	if (c->db->removed)
	{
		client_fail(c, "3D000", "database \"%s\" does not exist (removed by a reload)", c->dbname);
		return;
	}
	c->pool = pool_get(c->db, c->user, c->dbname, c->cred);
	c->pool_mode = c->pool->ps->pool_mode;
	/* the pool's copies serve every client of the pool */
	free(c->user);
	free(c->dbname);
	c->user = c->pool->user;
	c->dbname = c->pool->dbname;
	log_verbose("%s: login", client_tag(c));
	if (c->db->routed)
	{
		route_login(c);			/* a host of the database's target (replica/route.c) */
		return;
	}
	if (c->pool->have_params)
	{
		client_welcome(c);
		return;
	}
	client_set_state(c, C_LOGIN_WAIT);
	conn_read_off(&c->c);
	pool_request(c->pool, c);
}

/* AuthenticationOk is out; now the server's parameters, our key, ReadyForQuery. */
void
client_welcome(client *c)
{
	pool	   *p = c->pool;
	char		own[256];

	if (c->admin)
		client_console->send_params(c);
	for (int i = 0; p && i < p->nparams; i++)
	{
		int			t = tracked_param_index(p->pnames[i]);
		const char *v = p->pvalues[i];

		if (!settings_reported_natively(p->pnames[i]))
			continue;			/* reported to the pooler only (txn/startup_settings.c) */
		if (t >= 0)
		{
			pstr_set(&c->params[t], c->startup_params[t] ? c->startup_params[t] : p->defaults[t]);
			v = c->params[t] ? c->params[t]->s : v;
		}
		else if (c->settings && settings_value(c->settings, p->pnames[i], own, sizeof(own)))
			v = own;			/* a reported setting the client chose at login */
		send_param_status(conn_out(&c->c), p->pnames[i], v);
	}
	for (int t = 0; t < NPARAMS; t++)
	{
		pstr_unref(c->startup_params[t]);
		c->startup_params[t] = NULL;
	}
	c->cancel_pid = ++next_cancel_pid & 0x7fffffff;
	random_bytes(&c->cancel_key, sizeof(c->cancel_key));
	send_key_data(conn_out(&c->c), c->cancel_pid, c->cancel_key);
	send_rfq(conn_out(&c->c), 'I');
	client_set_state(c, C_IDLE);
	client_tlist_set(c, 0, 0);
	conn_flush(&c->c);
	conn_read_on(&c->c);
	if (buflen(c->c.in) > 0)
		client_process(c);
	else
		conn_park(&c->c);
}
