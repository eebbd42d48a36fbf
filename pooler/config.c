/*
 * config.c: the INI configuration (parsed by libinih), mapped onto
 * `settings`.  Every error names the file, the line and the key, and makes
 * the pooler exit non-zero before it listens anywhere; during a reload the
 * errors go to the log instead and the running configuration stays
 * (reload.c).  The table of [pooler] settings that SHOW CONFIG and the
 * reload walk is config_keys.c.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <ini.h>

#include "pooler.h"
#include "log.h"
#include "config.h"

settings	cfg;
bool		config_reloading;
char		config_error[1024];

/* At start: stderr, before anything listens.  During a reload: the log. */
void
config_report(const char *fmt, ...)
{
	char		msg[1024];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!config_reloading)
	{
		fprintf(stderr, "perfopt-pooler: %s\n", msg);
		return;
	}
	log_error("%s", msg);
	if (!config_error[0])
		snprintf(config_error, sizeof(config_error), "%s", msg);
}

static int	word_index(const char *v, const char *const *words);

typedef struct parse_ctx
{
	const char *file;
	FILE	   *fp;
	int			line;
	int			errors;
	database  **tail;
	unsigned	db_set;			/* which per-database pool keys the line set */
	int			client_tls_mode_line;	/* for "needs a certificate" errors */
	int			server_tls_mode_line;
} parse_ctx;

static void
cfg_error(parse_ctx *ctx, const char *section, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
cfg_error(parse_ctx *ctx, const char *section, const char *key, const char *fmt, ...)
{
	char		msg[768];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	config_report("%s:%d: key \"%s\" in [%s]: %s", ctx->file, ctx->line, key, section, msg);
	ctx->errors++;
}

static bool
parse_int(const char *v, int min, int max, int *out)
{
	char	   *end;
	long		n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return false;
	*out = (int) n;
	return true;
}

static bool
parse_seconds(const char *v, double *out)
{
	char	   *end;
	double		d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || d < 0 || !isfinite(d))
		return false;
	*out = d;
	return true;
}

static bool
parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
		*out = false;
	else
		return false;
	return true;
}

/* bytes, with PostgreSQL's units: 16MB, 512kB, 1GB (1024-based), or a plain number */
static bool
parse_bytes(const char *v, long long *out)
{
	static const struct
	{
		const char *unit;
		long long	mult;
	}			units[] = {{"", 1}, {"B", 1}, {"kB", 1024}, {"MB", 1024 * 1024}, {"GB", 1024LL * 1024 * 1024},
	{"TB", 1024LL * 1024 * 1024 * 1024}};
	char	   *end;
	long long	n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || n < 0)
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0)
		{
			if (n > INT64_MAX / units[i].mult)
				return false;
			*out = n * units[i].mult;
			return true;
		}
	return false;
}

static const char *const causal_names[] = {"off", "session", "user", NULL};

const char *
config_causal_name(int c)
{
	return causal_names[c];
}

/* libpq's target_session_attrs names */
static const char *const tsa_names[] = {
	"any", "read-write", "read-only", "primary", "standby", "prefer-standby", NULL
};

const char *
config_tsa_name(enum target_attrs t)
{
	return tsa_names[t];
}

enum
{
	K_MODE = 1, K_SIZE = 2, K_OVERFLOW = 4, K_MIN = 8, K_TIMEOUT = 16, K_RECYCLE = 32,
	K_PING = 64, K_PINGINT = 128, K_OIDLE = 256, K_CONNTO = 512, K_OWAIT = 1024
};

/* One pool setting, shared by [pooler] and per-database options. 1 ok, 0 bad value, -1 unknown key */
static int
set_pool_key(pool_settings *ps, const char *key, const char *v, unsigned *set, const char **expect)
{
	struct
	{
		const char *name;
		unsigned	bit;
	}			keys[] = {
		{"pool_mode", K_MODE}, {"pool_size", K_SIZE}, {"max_overflow", K_OVERFLOW},
		{"min_pool_size", K_MIN}, {"pool_timeout", K_TIMEOUT}, {"pool_recycle", K_RECYCLE},
		{"pool_pre_ping", K_PING}, {"pre_ping_interval", K_PINGINT},
		{"overflow_idle_timeout", K_OIDLE}, {"connect_timeout", K_CONNTO},
		{"overflow_wait", K_OWAIT}
	};
	unsigned	bit = 0;
	bool		ok = false;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i].name) == 0)
			bit = keys[i].bit;
	if (!bit)
		return -1;
	switch (bit)
	{
		case K_MODE:
			*expect = "session or transaction";
			ok = true;
			if (!strcmp(v, "session"))
				ps->pool_mode = MODE_SESSION;
			else if (!strcmp(v, "transaction"))
				ps->pool_mode = MODE_TRANSACTION;
			else
				ok = false;
			break;
		case K_SIZE:
			*expect = "an integer from 1 to 10000";
			ok = parse_int(v, 1, 10000, &ps->pool_size);
			break;
		case K_OVERFLOW:
			*expect = "an integer from 0 to 10000";
			ok = parse_int(v, 0, 10000, &ps->max_overflow);
			break;
		case K_MIN:
			*expect = "an integer from 0 to 10000";
			ok = parse_int(v, 0, 10000, &ps->min_pool_size);
			break;
		case K_PING:
			*expect = "on or off";
			ok = parse_bool(v, &ps->pool_pre_ping);
			break;
		default:
			*expect = "a number of seconds >= 0";
			ok = parse_seconds(v, bit == K_TIMEOUT ? &ps->pool_timeout :
							   bit == K_RECYCLE ? &ps->pool_recycle :
							   bit == K_PINGINT ? &ps->pre_ping_interval :
							   bit == K_OIDLE ? &ps->overflow_idle_timeout :
							   bit == K_OWAIT ? &ps->overflow_wait :
							   &ps->connect_timeout);
			break;
	}
	if (ok)
		*set |= bit;
	return ok ? 1 : 0;
}

/* One host's address: a Unix socket directory (starts with '/') or a name to resolve. */
static bool
resolve_host(parse_ctx *ctx, const char *name, db_host *h)
{
	struct addrinfo hints = {0},
			   *res;
	char		port[8];
	int			rc;

	if (h->name[0] == '/')
	{
		struct sockaddr_un *un = (struct sockaddr_un *) &h->addr;

		un->sun_family = AF_UNIX;
		h->addrlen = sizeof(*un);
		if ((size_t) snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d",
							  h->name, h->port) < sizeof(un->sun_path))
			return true;
		cfg_error(ctx, "databases", name, "socket path too long: %s", h->name);
		return false;
	}
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", h->port);
	if ((rc = getaddrinfo(h->name, port, &hints, &res)) != 0)
	{
		cfg_error(ctx, "databases", name, "cannot resolve host \"%s\": %s", h->name, gai_strerror(rc));
		return false;
	}
	memcpy(&h->addr, res->ai_addr, res->ai_addrlen);
	h->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

/* Split a comma-separated list in place (libpq's host=h1,h2 port=p1,p2); its count, -1 if too long. */
static int
split_list(char *list, char **items, int max)
{
	int			n = 0;

	for (char *p = list;; p++)
	{
		if (n == max)
			return -1;
		items[n++] = p;
		p = strchr(p, ',');
		if (!p)
			return n;
		*p = '\0';
	}
}

/*
 * host= and port= of a line, as libpq reads them: one port for every host,
 * or one per host.  The first host is the one a single-host line always had.
 */
static void
parse_hosts(parse_ctx *ctx, database *db, char *hosts, char *ports)
{
	char	   *hv[MAX_HOSTS + 1],
			   *pv[MAX_HOSTS + 1];
	int			nh = split_list(hosts, hv, MAX_HOSTS),
				np = split_list(ports, pv, MAX_HOSTS);

	if (nh < 0)
	{
		cfg_error(ctx, "databases", db->name, "more than %d hosts", MAX_HOSTS);
		return;
	}
	if (np < 0 || (np != 1 && np != nh))
	{
		cfg_error(ctx, "databases", db->name, "%d ports for %d hosts: give one port for all, or one per host",
				  np < 0 ? MAX_HOSTS + 1 : np, nh);
		return;
	}
	for (int i = 0; i < nh; i++)
	{
		db_host    *h = &db->hosts[i];
		const char *pt = pv[np == 1 ? 0 : i];

		if (!hv[i][0])
		{
			cfg_error(ctx, "databases", db->name, "empty host name in \"host\" (entry %d)", i + 1);
			return;
		}
		h->name = strdup(hv[i]);
		h->db = db;
		h->ix = i;
		h->lag = -1;
		db->nhosts = i + 1;
		if (!parse_int(pt, 1, 65535, &h->port))
		{
			cfg_error(ctx, "databases", db->name, "port must be 1..65535, not \"%s\"", pt);
			return;
		}
		if (!resolve_host(ctx, db->name, h))
			return;
	}
}

/* The keys of several hosts and their roles: 1 handled, 0 bad value, -1 not one of them. */
static int
set_replica_key(database *db, const char *key, const char *v, const char **expect)
{
	static const char *const balance[] = {"disable", "random", NULL};
	int			i;
	bool		b;

	if (!strcmp(key, "target_session_attrs"))
	{
		*expect = "any, read-write, read-only, primary, standby or prefer-standby";
		if ((i = word_index(v, tsa_names)) < 0)
			return 0;
		db->tsa = i;
	}
	else if (!strcmp(key, "load_balance_hosts"))
	{
		*expect = "disable or random";
		if ((i = word_index(v, balance)) < 0)
			return 0;
		db->load_balance = i == 1;
	}
	else if (!strcmp(key, "read_only_routing"))
	{
		*expect = "on or off";
		if (!parse_bool(v, &b))
			return 0;
		db->read_only_routing = b;
	}
	else if (!strcmp(key, "max_replica_lag"))
	{
		*expect = "bytes of WAL (16MB, 512kB, 0: no limit)";
		if (!parse_bytes(v, &db->max_replica_lag))
			return 0;
	}
	else if (!strcmp(key, "causal_reads"))
	{
		*expect = "off, session or user";
		if ((i = word_index(v, causal_names)) < 0)
			return 0;
		db->causal_reads = i;
	}
	else if (!strcmp(key, "causal_read_timeout"))
	{
		*expect = "a number of seconds >= 0";
		if (!parse_seconds(v, &db->causal_read_timeout))
			return 0;
	}
	else
		return -1;
	return 1;
}

/* "host=... port=... dbname=... pool_size=30" with optional 'quoted values' */
static void
parse_database(parse_ctx *ctx, const char *name, const char *def)
{
	database   *db = calloc(1, sizeof(*db));
	const char *p = def;
	char		key[64],
				val[512],
				hosts[512] = "127.0.0.1",
				ports[512] = "5432";

	db->name = strdup(name);
	db->read_only_routing = -1;
	db->max_replica_lag = -1;
	db->causal_reads = -1;
	db->causal_read_timeout = -1;
	/* linked at once: whatever goes wrong below, config_free reaches it */
	*ctx->tail = db;
	ctx->tail = &db->next;
	if (strcmp(name, ADMIN_DB) == 0)
		cfg_error(ctx, "databases", name, "\"%s\" is the admin console's database name (reserved)", ADMIN_DB);
	db->ps = cfg.ps;
	ctx->db_set = 0;
	while (*p)
	{
		size_t		kl = 0,
					vl = 0;
		const char *expect;
		int			r;

		while (isspace((unsigned char) *p))
			p++;
		if (!*p)
			break;
		while (*p && *p != '=' && !isspace((unsigned char) *p) && kl < sizeof(key) - 1)
			key[kl++] = *p++;
		key[kl] = '\0';
		while (isspace((unsigned char) *p))
			p++;
		if (*p != '=')
		{
			cfg_error(ctx, "databases", name, "expected key=value at \"%s\"", key);
			return;
		}
		p++;
		while (isspace((unsigned char) *p))
			p++;
		if (*p == '\'')
		{
			p++;
			while (*p && vl < sizeof(val) - 1)
			{
				if (*p == '\'' && p[1] == '\'')
					p++;
				else if (*p == '\'')
					break;
				val[vl++] = *p++;
			}
			if (*p != '\'')
			{
				cfg_error(ctx, "databases", name, "unterminated quote in value of %s", key);
				return;
			}
			p++;
		}
		else
			while (*p && !isspace((unsigned char) *p) && vl < sizeof(val) - 1)
				val[vl++] = *p++;
		val[vl] = '\0';
		if (!strcmp(key, "host"))
			snprintf(hosts, sizeof(hosts), "%s", val);
		else if (!strcmp(key, "port"))
			snprintf(ports, sizeof(ports), "%s", val);
		else if ((r = set_replica_key(db, key, val, &expect)) == 0)
			cfg_error(ctx, "databases", name, "%s must be %s, not \"%s\"", key, expect, val);
		else if (r > 0)
			;
		else if (!strcmp(key, "dbname"))
			free(db->dbname), db->dbname = strdup(val);
		else if (!strcmp(key, "user"))
			free(db->user), db->user = strdup(val);
		else if (!strcmp(key, "password"))
			free(db->password), db->password = strdup(val);
		else if ((r = set_pool_key(&db->ps, key, val, &ctx->db_set, &expect)) == 0)
			cfg_error(ctx, "databases", name, "%s must be %s, not \"%s\"", key, expect, val);
		else if (r < 0)
			cfg_error(ctx, "databases", name, "unknown option \"%s\"", key);
	}
	parse_hosts(ctx, db, hosts, ports);
	/* remember which keys to take from [pooler] once the whole file is read */
	db->ps_set = ctx->db_set;
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
}

static void
set_file(cfg_file *dst, const char *v, int line)
{
	free(dst->path);
	dst->path = *v ? strdup(v) : NULL;
	dst->line = line;
}

/* v's index in the NULL-terminated words, or -1 */
static int
word_index(const char *v, const char *const *words)
{
	for (int i = 0; words[i]; i++)
		if (!strcmp(v, words[i]))
			return i;
	return -1;
}

/* client_tls_* and server_tls_*: 1 handled, 0 not a TLS key */
static int
tls_key(parse_ctx *ctx, const char *section, const char *key, const char *v)
{
	static const char *const client_modes[] = {"disable", "allow", "require", NULL};
	static const char *const server_modes[] = {"disable", "prefer", "require", "verify-ca", "verify-full", NULL};
	int			i;

	if (!strcmp(key, "client_tls_mode"))
	{
		if ((i = word_index(v, client_modes)) < 0)
			cfg_error(ctx, section, key, "must be disable, allow or require, not \"%s\"", v);
		else
			cfg.client_tls_mode = i;
		ctx->client_tls_mode_line = ctx->line;
	}
	else if (!strcmp(key, "server_tls_mode"))
	{
		if ((i = word_index(v, server_modes)) < 0)
			cfg_error(ctx, section, key, "must be disable, prefer, require, verify-ca or verify-full, not \"%s\"", v);
		else
			cfg.server_tls_mode = i;
		ctx->server_tls_mode_line = ctx->line;
	}
	else if (!strcmp(key, "client_tls_cert_file"))
		set_file(&cfg.client_tls_cert_file, v, ctx->line);
	else if (!strcmp(key, "client_tls_key_file"))
		set_file(&cfg.client_tls_key_file, v, ctx->line);
	else if (!strcmp(key, "server_tls_ca_file"))
		set_file(&cfg.server_tls_ca_file, v, ctx->line);
	else
		return 0;
	return 1;
}

/* The files the TLS modes need are named (tls.c loads them). */
static int
check_tls_files(parse_ctx *ctx)
{
	if (cfg.client_tls_mode != CLIENT_TLS_DISABLE &&
		(!cfg.client_tls_cert_file.path || !cfg.client_tls_key_file.path))
	{
		fprintf(stderr, "perfopt-pooler: %s:%d: key \"client_tls_mode\" in [pooler]: %s needs client_tls_cert_file and client_tls_key_file\n",
				ctx->file, ctx->client_tls_mode_line,
				cfg.client_tls_mode == CLIENT_TLS_ALLOW ? "allow" : "require");
		return -1;
	}
	if (cfg.server_tls_mode >= SERVER_TLS_VERIFY_CA && !cfg.server_tls_ca_file.path)
	{
		fprintf(stderr, "perfopt-pooler: %s:%d: key \"server_tls_mode\" in [pooler]: %s needs server_tls_ca_file\n",
				ctx->file, ctx->server_tls_mode_line,
				cfg.server_tls_mode == SERVER_TLS_VERIFY_CA ? "verify-ca" : "verify-full");
		return -1;
	}
	return 0;
}

static int
handler(void *user, const char *section, const char *key, const char *v)
{
	parse_ctx  *ctx = user;
	unsigned	dummy = 0;
	const char *expect;
	int			r;

	if (!strcmp(section, "databases"))
	{
		parse_database(ctx, key, v);
		return 1;
	}
	if (strcmp(section, "pooler") != 0)
	{
		cfg_error(ctx, section, key, "unknown section [%s] (expected [databases] or [pooler])", section);
		return 1;
	}
	if (!strcmp(key, "listen_addr"))
		set_str(&cfg.listen_addr, v);
	else if (!strcmp(key, "listen_port"))
	{
		if (!parse_int(v, 1, 65535, &cfg.listen_port))
			cfg_error(ctx, section, key, "must be a port number 1..65535, not \"%s\"", v);
	}
	else if (!strcmp(key, "unix_socket_dir"))
		set_str(&cfg.unix_socket_dir, v);
	else if (!strcmp(key, "auth_type"))
	{
		if (!strcmp(v, "trust"))
			cfg.auth_type = AUTH_TRUST;
		else if (!strcmp(v, "md5"))
			cfg.auth_type = AUTH_MD5;
		else if (!strcmp(v, "scram-sha-256"))
			cfg.auth_type = AUTH_SCRAM;
		else
			cfg_error(ctx, section, key, "must be trust, md5 or scram-sha-256, not \"%s\"", v);
	}
	else if (!strcmp(key, "auth_file"))
		set_str(&cfg.auth_file, v);
	else if (!strcmp(key, "max_client_conn"))
	{
		if (!parse_int(v, 1, 1000000, &cfg.max_client_conn))
			cfg_error(ctx, section, key, "must be an integer 1..1000000, not \"%s\"", v);
	}
	else if (!strcmp(key, "server_reset_query"))
		set_str(&cfg.server_reset_query, v);
	else if (!strcmp(key, "max_packet_size"))
	{
		if (!parse_int(v, 1024, 1 << 30, &cfg.max_packet_size))
			cfg_error(ctx, section, key, "must be bytes from 1024 to 1073741824, not \"%s\"", v);
	}
	else if (!strcmp(key, "max_prepared_statements"))
	{
		if (!parse_int(v, 0, 100000, &cfg.max_prepared_statements))
			cfg_error(ctx, section, key, "must be an integer from 0 to 100000, not \"%s\"", v);
	}
	else if (!strcmp(key, "defer_begin"))
	{
		if (!parse_bool(v, &cfg.defer_begin))
			cfg_error(ctx, section, key, "must be on or off, not \"%s\"", v);
	}
	else if (!strcmp(key, "transaction_mode_session_state"))
	{
		if (!strcasecmp(v, "pin") || !strcasecmp(v, "error"))
			cfg.session_state_mode = !strcasecmp(v, "pin") ? SESSION_STATE_PIN : SESSION_STATE_ERROR;
		else
			cfg_error(ctx, section, key, "must be pin or error, not \"%s\"", v);
	}
	else if (!strcmp(key, "io_uring"))
	{
		if (!parse_bool(v, &cfg.io_uring))
			cfg_error(ctx, section, key, "must be on or off, not \"%s\"", v);
	}
	else if (!strcmp(key, "startup_timeout"))
	{
		if (!parse_seconds(v, &cfg.startup_timeout))
			cfg_error(ctx, section, key, "must be a number of seconds >= 0, not \"%s\"", v);
	}
	else if (!strcmp(key, "ignore_startup_parameters"))
		set_str(&cfg.ignore_startup_parameters, v);
	else if (!strcmp(key, "logfile"))
		set_str(&cfg.logfile, v);
	else if (!strcmp(key, "verbose"))
	{
		if (!parse_int(v, -1, 3, &cfg.verbose))
			cfg_error(ctx, section, key, "must be -1, 0, 1, 2 or 3, not \"%s\"", v);
	}
	else if (!strcmp(key, "metrics_port"))
	{
		if (!parse_int(v, 0, 65535, &cfg.metrics_port))
			cfg_error(ctx, section, key, "must be a port number 1..65535 (0: no metrics endpoint), not \"%s\"", v);
	}
	else if (!strcmp(key, "metrics_addr"))
		set_str(&cfg.metrics_addr, v);
	else if (!strcmp(key, "admin_users"))
		set_str(&cfg.admin_users, v);
	else if (!strcmp(key, "stats_users"))
		set_str(&cfg.stats_users, v);
	else if (!strcmp(key, "shutdown_timeout"))
	{
		if (!parse_seconds(v, &cfg.shutdown_timeout))
			cfg_error(ctx, section, key, "must be a number of seconds >= 0, not \"%s\"", v);
	}
	else if (!strcmp(key, "read_only_routing"))
	{
		if (!parse_bool(v, &cfg.read_only_routing))
			cfg_error(ctx, section, key, "must be on or off, not \"%s\"", v);
	}
	else if (!strcmp(key, "max_replica_lag"))
	{
		if (!parse_bytes(v, &cfg.max_replica_lag))
			cfg_error(ctx, section, key, "must be bytes of WAL (16MB, 512kB, 0: no limit), not \"%s\"", v);
	}
	else if (!strcmp(key, "causal_reads"))
	{
		int			i = word_index(v, causal_names);

		if (i < 0)
			cfg_error(ctx, section, key, "must be off, session or user, not \"%s\"", v);
		else
			cfg.causal_reads = i;
	}
	else if (!strcmp(key, "causal_read_timeout"))
	{
		if (!parse_seconds(v, &cfg.causal_read_timeout))
			cfg_error(ctx, section, key, "must be a number of seconds >= 0, not \"%s\"", v);
	}
	else if (!strcmp(key, "health_check_period"))
	{
		if (!parse_seconds(v, &cfg.health_check_period) || cfg.health_check_period < 0.05)
			cfg_error(ctx, section, key, "must be a number of seconds >= 0.05, not \"%s\"", v);
	}
	else if (tls_key(ctx, section, key, v))
		;
	else if ((r = set_pool_key(&cfg.ps, key, v, &dummy, &expect)) == 0)
		cfg_error(ctx, section, key, "must be %s, not \"%s\"", expect, v);
	else if (r < 0)
		cfg_error(ctx, section, key, "unknown setting");
	return 1;
}

static char *
reader(char *str, int num, void *stream)
{
	parse_ctx  *ctx = stream;
	char	   *r = fgets(str, num, ctx->fp);

	if (r)
		ctx->line++;
	return r;
}

void
config_defaults(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.listen_addr = strdup("127.0.0.1");
	cfg.listen_port = 6432;
	cfg.unix_socket_dir = strdup("/tmp");
	cfg.ps.pool_mode = MODE_TRANSACTION;
	cfg.ps.pool_size = 20;
	cfg.ps.max_overflow = 10;
	cfg.ps.min_pool_size = 0;
	cfg.ps.pool_timeout = 30;
	cfg.ps.pool_recycle = 3600;
	cfg.ps.pool_pre_ping = true;
	cfg.ps.pre_ping_interval = 1;
	cfg.ps.overflow_idle_timeout = 10;
	cfg.ps.overflow_wait = 1;
	cfg.ps.connect_timeout = 5;
	cfg.auth_type = AUTH_TRUST;
	cfg.max_client_conn = 1000;
	cfg.server_reset_query = strdup("DISCARD ALL");
	cfg.max_packet_size = 64 * 1024 * 1024;
	cfg.max_prepared_statements = 200;
	cfg.defer_begin = true;
	cfg.io_uring = true;
	cfg.session_state_mode = SESSION_STATE_PIN;
	cfg.startup_timeout = 10;
	cfg.ignore_startup_parameters = strdup("extra_float_digits");
	cfg.verbose = 0;
	cfg.metrics_port = 0;
	cfg.metrics_addr = strdup("127.0.0.1");
	cfg.shutdown_timeout = 30;
	cfg.read_only_routing = false;
	cfg.max_replica_lag = 0;
	cfg.health_check_period = 1;
	cfg.causal_reads = CAUSAL_OFF;
	cfg.causal_read_timeout = 1;
}

/*
 * Routing keys not on the line come from [pooler].  read_only_routing sends
 * the other transactions to the writable host: a line that also asks for
 * standbys only contradicts itself (inherited from [pooler], routing just
 * stays off there: all its traffic goes to standbys anyway).
 */
static int
replica_settings(const char *file, database *db)
{
	bool		inherited = db->read_only_routing < 0;

	if (inherited)
		db->read_only_routing = cfg.read_only_routing;
	if (db->max_replica_lag < 0)
		db->max_replica_lag = cfg.max_replica_lag;
	if (db->causal_reads < 0)
		db->causal_reads = cfg.causal_reads;
	if (db->causal_read_timeout < 0)
		db->causal_read_timeout = cfg.causal_read_timeout;
	if (db->read_only_routing && db->tsa != TSA_ANY && db->tsa != TSA_READ_WRITE && db->tsa != TSA_PRIMARY)
	{
		if (!inherited)
		{
			config_report("%s: database \"%s\": read_only_routing needs target_session_attrs any, read-write or primary (its writes' route), not %s",
						  file, db->name, tsa_names[db->tsa]);
			return -1;
		}
		db->read_only_routing = false;
	}
	db->routed = db->nhosts > 1 || db->tsa != TSA_ANY || db->read_only_routing;
	return 0;
}

int
config_load(const char *file)
{
	parse_ctx	ctx = {0};
	int			rc;

	config_defaults();
	cfg.config_file = strdup(file);
	ctx.file = file;
	ctx.tail = &cfg.databases;
	ctx.fp = fopen(file, "r");
	if (!ctx.fp)
	{
		config_report("cannot open config file %s: %s", file, strerror(errno));
		return -1;
	}
	rc = ini_parse_stream(reader, &ctx, handler, &ctx);
	fclose(ctx.fp);
	if (rc > 0 && ctx.errors == 0)
	{
		config_report("%s:%d: syntax error (expected [section] or key = value)", file, rc);
		return -1;
	}
	if (ctx.errors)
		return -1;
	/* per-database keys not given on the line come from [pooler] */
	for (database *db = cfg.databases; db; db = db->next)
	{
		unsigned	set = db->ps_set;
		pool_settings own = db->ps;

		db->ps = cfg.ps;
		if (set & K_MODE)
			db->ps.pool_mode = own.pool_mode;
		if (set & K_SIZE)
			db->ps.pool_size = own.pool_size;
		if (set & K_OVERFLOW)
			db->ps.max_overflow = own.max_overflow;
		if (set & K_MIN)
			db->ps.min_pool_size = own.min_pool_size;
		if (set & K_TIMEOUT)
			db->ps.pool_timeout = own.pool_timeout;
		if (set & K_RECYCLE)
			db->ps.pool_recycle = own.pool_recycle;
		if (set & K_PING)
			db->ps.pool_pre_ping = own.pool_pre_ping;
		if (set & K_PINGINT)
			db->ps.pre_ping_interval = own.pre_ping_interval;
		if (set & K_OIDLE)
			db->ps.overflow_idle_timeout = own.overflow_idle_timeout;
		if (set & K_CONNTO)
			db->ps.connect_timeout = own.connect_timeout;
		if (set & K_OWAIT)
			db->ps.overflow_wait = own.overflow_wait;
		if (db->ps.min_pool_size > db->ps.pool_size)
		{
			config_report("%s: database \"%s\": min_pool_size (%d) exceeds pool_size (%d)",
						  file, db->name, db->ps.min_pool_size, db->ps.pool_size);
			return -1;
		}
		if (replica_settings(file, db) < 0)
			return -1;
	}
	if (!cfg.databases)
	{
		config_report("%s: no [databases] entries: nothing to pool", file);
		return -1;
	}
	if (cfg.auth_type != AUTH_TRUST && !cfg.auth_file)
	{
		config_report("%s: key \"auth_file\" in [pooler]: required when auth_type is not trust", file);
		return -1;
	}
	return check_tls_files(&ctx);
}

database *
config_find_database(const char *name)
{
	database   *star = NULL;

	for (database *db = cfg.databases; db; db = db->next)
	{
		if (strcmp(db->name, name) == 0)
			return db;
		if (strcmp(db->name, "*") == 0)
			star = db;
	}
	return star;
}

/* One [databases] entry (also one that a reload dropped or replaced). */
void
config_free_database(database *db)
{
	free(db->name);
	for (int i = 0; i < db->nhosts; i++)
		free(db->hosts[i].name);
	free(db->dbname);
	free(db->user);
	free(db->password);
	free(db);
}

/* Everything a settings struct owns (a failed reload's, or the replaced one). */
void
config_free(settings *s)
{
	database   *db,
			   *next;

	for (db = s->databases; db; db = next)
	{
		next = db->next;
		config_free_database(db);
	}
	free(s->config_file);
	free(s->listen_addr);
	free(s->unix_socket_dir);
	free(s->auth_file);
	free(s->server_reset_query);
	free(s->ignore_startup_parameters);
	free(s->logfile);
	free(s->admin_users);
	free(s->stats_users);
	free(s->metrics_addr);
	free(s->client_tls_cert_file.path);
	free(s->client_tls_key_file.path);
	free(s->server_tls_ca_file.path);
	memset(s, 0, sizeof(*s));
}
