/*
 * config_keys.c: every [pooler] setting as one table (name, type, where it
 * lives in `settings`, whether a reload may change it), walked by SHOW
 * CONFIG (value and default, as text) and by the reload, which keeps the
 * running value of a setting that needs a restart.  Parsing is config.c.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "log.h"
#include "config.h"

/*
 * Every [pooler] setting, for SHOW CONFIG and for the reload: those not
 * changeable need a restart (the sockets are bound once).
 */
enum { T_STR, T_INT, T_SECS, T_BOOL, T_SSTATE, T_MODE, T_AUTH, T_CLIENT_TLS, T_SERVER_TLS, T_FILE, T_BYTES, T_CAUSAL };
static const struct
{
	const char *key;
	char		type;
	bool		changeable;
	size_t		off;
}			show_keys[] = {
	{"listen_addr", T_STR, false, offsetof(settings, listen_addr)},
	{"listen_port", T_INT, false, offsetof(settings, listen_port)},
	{"unix_socket_dir", T_STR, false, offsetof(settings, unix_socket_dir)},
	{"pool_mode", T_MODE, true, offsetof(settings, ps.pool_mode)},
	{"pool_size", T_INT, true, offsetof(settings, ps.pool_size)},
	{"max_overflow", T_INT, true, offsetof(settings, ps.max_overflow)},
	{"pool_timeout", T_SECS, true, offsetof(settings, ps.pool_timeout)},
	{"pool_recycle", T_SECS, true, offsetof(settings, ps.pool_recycle)},
	{"pool_pre_ping", T_BOOL, true, offsetof(settings, ps.pool_pre_ping)},
	{"pre_ping_interval", T_SECS, true, offsetof(settings, ps.pre_ping_interval)},
	{"overflow_idle_timeout", T_SECS, true, offsetof(settings, ps.overflow_idle_timeout)},
	{"overflow_wait", T_SECS, true, offsetof(settings, ps.overflow_wait)},
	{"min_pool_size", T_INT, true, offsetof(settings, ps.min_pool_size)},
	{"connect_timeout", T_SECS, true, offsetof(settings, ps.connect_timeout)},
	{"server_reset_query", T_STR, true, offsetof(settings, server_reset_query)},
	{"defer_begin", T_BOOL, true, offsetof(settings, defer_begin)},
	{"transaction_mode_session_state", T_SSTATE, true, offsetof(settings, session_state_mode)},
	{"auth_type", T_AUTH, true, offsetof(settings, auth_type)},
	{"auth_file", T_STR, true, offsetof(settings, auth_file)},
	{"admin_users", T_STR, true, offsetof(settings, admin_users)},
	{"stats_users", T_STR, true, offsetof(settings, stats_users)},
	{"max_client_conn", T_INT, true, offsetof(settings, max_client_conn)},
	{"max_packet_size", T_INT, true, offsetof(settings, max_packet_size)},
	{"startup_timeout", T_SECS, true, offsetof(settings, startup_timeout)},
	{"ignore_startup_parameters", T_STR, true, offsetof(settings, ignore_startup_parameters)},
	{"shutdown_timeout", T_SECS, true, offsetof(settings, shutdown_timeout)},
	{"read_only_routing", T_BOOL, true, offsetof(settings, read_only_routing)},
	{"max_replica_lag", T_BYTES, true, offsetof(settings, max_replica_lag)},
	{"health_check_period", T_SECS, true, offsetof(settings, health_check_period)},
	{"causal_reads", T_CAUSAL, true, offsetof(settings, causal_reads)},
	{"causal_read_timeout", T_SECS, true, offsetof(settings, causal_read_timeout)},
	{"logfile", T_STR, true, offsetof(settings, logfile)},
	{"verbose", T_INT, true, offsetof(settings, verbose)},
	{"metrics_addr", T_STR, false, offsetof(settings, metrics_addr)},
	{"metrics_port", T_INT, false, offsetof(settings, metrics_port)},
	/* the ring is set up once, at start */
	{"io_uring", T_BOOL, false, offsetof(settings, io_uring)},
	/* clients' statement names are mapped from their first Parse on */
	{"max_prepared_statements", T_INT, false, offsetof(settings, max_prepared_statements)},
	/* tls.c loads the certificates once, at start */
	{"client_tls_mode", T_CLIENT_TLS, false, offsetof(settings, client_tls_mode)},
	{"client_tls_cert_file", T_FILE, false, offsetof(settings, client_tls_cert_file)},
	{"client_tls_key_file", T_FILE, false, offsetof(settings, client_tls_key_file)},
	{"server_tls_mode", T_SERVER_TLS, false, offsetof(settings, server_tls_mode)},
	{"server_tls_ca_file", T_FILE, false, offsetof(settings, server_tls_ca_file)},
};

static void
show_value(const settings *s, int k, char *buf, size_t len)
{
	const char *p = (const char *) s + show_keys[k].off;

	switch (show_keys[k].type)
	{
		case T_STR:
			snprintf(buf, len, "%s", *(char *const *) p ? *(char *const *) p : "");
			break;
		case T_INT:
			snprintf(buf, len, "%d", *(const int *) p);
			break;
		case T_SECS:
			snprintf(buf, len, "%g", *(const double *) p);
			break;
		case T_BOOL:
			snprintf(buf, len, "%s", *(const bool *) p ? "on" : "off");
			break;
		case T_SSTATE:
			snprintf(buf, len, "%s", *(const int *) p == SESSION_STATE_PIN ? "pin" : "error");
			break;
		case T_MODE:
			snprintf(buf, len, "%s", *(const int *) p == MODE_SESSION ? "session" : "transaction");
			break;
		case T_AUTH:
			snprintf(buf, len, "%s", *(const int *) p == AUTH_TRUST ? "trust" :
					 *(const int *) p == AUTH_MD5 ? "md5" : "scram-sha-256");
			break;
		case T_CLIENT_TLS:
			{
				static const char *const names[] = {"disable", "allow", "require"};

				snprintf(buf, len, "%s", names[*(const int *) p]);
			}
			break;
		case T_SERVER_TLS:
			{
				static const char *const names[] = {"disable", "prefer", "require", "verify-ca", "verify-full"};

				snprintf(buf, len, "%s", names[*(const int *) p]);
			}
			break;
		case T_FILE:
			snprintf(buf, len, "%s", ((const cfg_file *) p)->path ? ((const cfg_file *) p)->path : "");
			break;
		case T_CAUSAL:
			snprintf(buf, len, "%s", config_causal_name(*(const int *) p));
			break;
		case T_BYTES:
			snprintf(buf, len, "%lld", *(const long long *) p);
			break;
	}
}

void
config_show(void (*row) (void *arg, const char *key, const char *value, const char *dflt, bool changeable),
			void *arg)
{
	settings	running = cfg,
				def;
	char		v[1024],
				d[1024];

	config_defaults();
	def = cfg;
	cfg = running;
	for (size_t k = 0; k < sizeof(show_keys) / sizeof(show_keys[0]); k++)
	{
		show_value(&running, k, v, sizeof(v));
		show_value(&def, k, d, sizeof(d));
		row(arg, show_keys[k].key, v, d, show_keys[k].changeable);
	}
	config_free(&def);
}

/*
 * A reload read `now`; settings that need a restart keep their running
 * values (a warning says so), so SHOW CONFIG tells what is in effect.
 */
void
config_keep_fixed(settings *now, const settings *running)
{
	char		a[1024],
				b[1024];

	for (size_t k = 0; k < sizeof(show_keys) / sizeof(show_keys[0]); k++)
	{
		char	   *np = (char *) now + show_keys[k].off;
		const char *rp = (const char *) running + show_keys[k].off;

		if (show_keys[k].changeable)
			continue;
		show_value(now, k, a, sizeof(a));
		show_value(running, k, b, sizeof(b));
		if (strcmp(a, b) == 0)
			continue;
		log_warn("%s: %s changed to \"%s\": not changeable without a restart, keeping \"%s\"",
				 running->config_file, show_keys[k].key, a, b);
		if (show_keys[k].type == T_STR)
		{
			free(*(char **) np);
			*(char **) np = *(char *const *) rp ? strdup(*(char *const *) rp) : NULL;
		}
		else if (show_keys[k].type == T_FILE)
		{
			cfg_file   *nf = (cfg_file *) np;
			const cfg_file *rf = (const cfg_file *) rp;

			free(nf->path);
			nf->path = rf->path ? strdup(rf->path) : NULL;
		}
		else
			*(int *) np = *(const int *) rp;
	}
}
