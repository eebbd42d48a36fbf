/*
 * metrics.c: the Prometheus endpoint.  When metrics_port is set, libevent's
 * evhttp serves GET/HEAD /metrics on metrics_addr from the same event loop
 * as everything else: per-pool gauges read from the pool itself, per-pool
 * counters and the wait-time histogram kept by stats.c, and a few
 * process-wide gauges, in the Prometheus text exposition format 0.0.4.
 * A scrape only reads: it never blocks the loop and never changes a pool.
 */
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "client.h"
#include "stats.h"
#include "pool.h"
#include "net/net.h"
#include "ops/ops.h"
#include "txn/session_state.h"

#define METRICS_TIMEOUT_SECS 10
#define METRICS_MAX_HEADERS 8192

static struct evhttp *http;
static double started_at;

/* Label values may hold any byte but backslash, quote and newline are escaped. */
static void
add_label_value(struct evbuffer *out, const char *v)
{
	for (; *v; v++)
	{
		if (*v == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*v == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

/* host="name:port": a database with several hosts has one pool per host */
static void
add_host_label(struct evbuffer *out, const db_host *h)
{
	evbuffer_add_printf(out, "host=\"");
	add_label_value(out, h->name);
	evbuffer_add_printf(out, ":%d\"", h->port);
}

static void
add_pool_labels(struct evbuffer *out, const pool *p)
{
	evbuffer_add_printf(out, "database=\"");
	add_label_value(out, p->dbname);
	evbuffer_add_printf(out, "\",user=\"");
	add_label_value(out, p->user);
	evbuffer_add(out, "\"", 1);
	if (p->db->nhosts > 1)
	{
		evbuffer_add(out, ",", 1);
		add_host_label(out, p->host);
	}
}

static void
add_header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP perfopt_pooler_%s %s\n# TYPE perfopt_pooler_%s %s\n",
						name, help, name, type);
}

/* Per-pool values of one family, read from each pool by `get`. */
typedef double (*pool_value) (const pool *p);

static void
add_pool_family(struct evbuffer *out, const char *name, const char *type, const char *help, pool_value get)
{
	add_header(out, name, type, help);
	for (const pool *p = pools; p; p = p->next)
	{
		evbuffer_add_printf(out, "perfopt_pooler_%s{", name);
		add_pool_labels(out, p);
		evbuffer_add_printf(out, "} %.17g\n", get(p));
	}
}

static int
count_servers_in(const pool *p, int state)
{
	int			n = 0;
	const server *s;

	TAILQ_FOREACH(s, &p->servers, link)
		if (s->state == state)
		n++;
	return n;
}

static int
count_login_waiters(const pool *p)
{
	int			n = 0;
	const client *c;

	TAILQ_FOREACH(c, &p->login_wait, wlink)
		n++;
	return n;
}

static double g_servers(const pool *p) { return p->n_servers; }
static double g_active(const pool *p) { return count_servers_in(p, S_ACTIVE); }
static double g_idle(const pool *p) { return p->n_idle; }
static double g_connecting(const pool *p) { return p->n_connecting; }
/* resetting, or held until a forwarded cancel is spent: the rest of server_connections */
static double g_tested(const pool *p) { return count_servers_in(p, S_RESETTING) + count_servers_in(p, S_CANCELING); }
static double g_paused(const pool *p) { return p->paused; }
static double g_overflow(const pool *p) { return p->n_servers > p->ps->pool_size ? p->n_servers - p->ps->pool_size : 0; }
static double g_pool_size(const pool *p) { return p->ps->pool_size; }
static double g_max_overflow(const pool *p) { return p->ps->max_overflow; }
/* a server linked to a client is that client's: one active client per active server */
static double g_clients_active(const pool *p) { return count_servers_in(p, S_ACTIVE); }
static double g_clients_waiting(const pool *p) { return p->n_waiting + count_login_waiters(p); }
static double g_clients_pinned(const pool *p) { return session_state_pinned(p); }
static double c_xacts(const pool *p) { return p->st.xacts; }
static double c_queries(const pool *p) { return p->st.queries; }
static double c_bytes_in(const pool *p) { return p->st.bytes_in; }
static double c_bytes_out(const pool *p) { return p->st.bytes_out; }
static double c_waits(const pool *p) { return p->st.waits; }
static double c_timeouts(const pool *p) { return p->st.timeouts; }
static double c_recycled(const pool *p) { return p->st.recycled; }
static double c_ping_failures(const pool *p) { return p->st.ping_failures; }
static double c_connect_failures(const pool *p) { return p->st.connect_failures; }
static double c_opened(const pool *p) { return p->st.servers_opened; }

static const struct
{
	const char *name;
	const char *type;
	const char *help;
	pool_value	get;
}			pool_families[] = {
	{"server_connections", "gauge", "Server connections open or opening.", g_servers},
	{"server_connections_active", "gauge", "Server connections linked to a client.", g_active},
	{"server_connections_idle", "gauge", "Server connections idle in the pool.", g_idle},
	{"server_connections_connecting", "gauge", "Server connections connecting or logging in.", g_connecting},
	{"server_connections_tested", "gauge", "Server connections being reset, or held until a forwarded cancel is spent.", g_tested},
	{"server_connections_overflow", "gauge", "Server connections beyond pool_size (max_overflow in use).", g_overflow},
	{"pool_size", "gauge", "The pool_size setting.", g_pool_size},
	{"pool_max_overflow", "gauge", "The max_overflow setting.", g_max_overflow},
	{"pool_paused", "gauge", "1 while PAUSE (or a graceful shutdown) holds the pool.", g_paused},
	{"clients_active", "gauge", "Clients linked to a server connection.", g_clients_active},
	{"clients_waiting", "gauge", "Clients queued for a server connection.", g_clients_waiting},
	{"clients_pinned", "gauge", "Clients kept on their server connection by session state (transaction_mode_session_state = pin).", g_clients_pinned},
	{"transactions_total", "counter", "Transactions ended (ReadyForQuery idle).", c_xacts},
	{"queries_total", "counter", "Queries answered (ReadyForQuery passed to a client).", c_queries},
	{"received_bytes_total", "counter", "Bytes from clients to servers.", c_bytes_in},
	{"sent_bytes_total", "counter", "Bytes from servers to clients.", c_bytes_out},
	{"waits_total", "counter", "Clients that queued for a server connection and got one.", c_waits},
	{"wait_timeouts_total", "counter", "Clients refused after pool_timeout (SQLSTATE 53300).", c_timeouts},
	{"recycled_total", "counter", "Server connections closed by pool_recycle.", c_recycled},
	{"pre_ping_failures_total", "counter", "Dead server connections found by pool_pre_ping.", c_ping_failures},
	{"server_connect_failures_total", "counter", "Server connects or logins that failed.", c_connect_failures},
	{"server_logins_total", "counter", "Server logins that succeeded.", c_opened},
};

/*
 * stats.c's buckets are a quarter of a power of two wide; printing every
 * second power of two (1 us, 4 us, 16 us, ... ~72 min) keeps a scrape short.
 * Bucket WAIT_SUB * e ends exactly at 2^e us, and the last bucket (which
 * also holds everything longer) is only ever counted in +Inf.
 */
static bool
printed_bucket(int b)
{
	return b == 0 || (b % (2 * WAIT_SUB) == 0 && b < WAIT_BUCKETS - 1);
}

static void
add_wait_histogram(struct evbuffer *out)
{
	add_header(out, "wait_seconds", "histogram", "Time clients waited for a server connection.");
	for (const pool *p = pools; p; p = p->next)
	{
		uint64_t	cumulative = 0;

		for (int b = 0; b < WAIT_BUCKETS; b++)
		{
			cumulative += p->st.wait_hist[b];
			if (!printed_bucket(b))
				continue;
			evbuffer_add_printf(out, "perfopt_pooler_wait_seconds_bucket{");
			add_pool_labels(out, p);
			evbuffer_add_printf(out, ",le=\"%.10g\"} %llu\n", stats_wait_bucket_upper(b),
								(unsigned long long) cumulative);
		}
		evbuffer_add_printf(out, "perfopt_pooler_wait_seconds_bucket{");
		add_pool_labels(out, p);
		evbuffer_add_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long) p->st.waits);
		evbuffer_add_printf(out, "perfopt_pooler_wait_seconds_sum{");
		add_pool_labels(out, p);
		evbuffer_add_printf(out, "} %.9f\n", p->st.wait_time);
		evbuffer_add_printf(out, "perfopt_pooler_wait_seconds_count{");
		add_pool_labels(out, p);
		evbuffer_add_printf(out, "} %llu\n", (unsigned long long) p->st.waits);
	}
}

/* ---- per host of a routed database (replica/health.c's view) ---- */
typedef bool (*host_value) (const db_host *h, double *v);	/* false: no value to export */

static bool h_up(const db_host *h, double *v) { *v = h->health == HEALTH_UP; return true; }
static bool h_standby(const db_host *h, double *v) { *v = h->role == ROLE_STANDBY; return h->role != ROLE_UNKNOWN; }
static bool h_lag(const db_host *h, double *v) { *v = (double) h->lag; return h->lag >= 0; }
static bool h_lsn(const db_host *h, double *v) { *v = (double) h->lsn; return h->lsn_known; }
static bool h_failures(const db_host *h, double *v) { *v = (double) h->failures; return true; }

static const struct
{
	const char *name;
	const char *type;
	const char *help;
	host_value	get;
}			host_families[] = {
	{"host_up", "gauge", "1 while the host passes its health check.", h_up},
	{"host_standby", "gauge", "1 for a standby (in recovery), 0 for a primary.", h_standby},
	{"host_replay_lag_bytes", "gauge", "A standby's replay position behind the primary's WAL position, in bytes.", h_lag},
	{"host_wal_lsn_bytes", "gauge", "The WAL position the last check saw (primary: written, standby: replayed).", h_lsn},
	{"host_failures_total", "counter", "Times the host was taken out.", h_failures},
};

static void
add_host_families(struct evbuffer *out)
{
	double		v;

	for (size_t f = 0; f < sizeof(host_families) / sizeof(host_families[0]); f++)
	{
		add_header(out, host_families[f].name, host_families[f].type, host_families[f].help);
		for (const database *db = cfg.databases; db; db = db->next)
			for (int i = 0; db->routed && i < db->nhosts; i++)
			{
				if (!host_families[f].get(&db->hosts[i], &v))
					continue;
				evbuffer_add_printf(out, "perfopt_pooler_%s{database=\"", host_families[f].name);
				add_label_value(out, db->name);
				evbuffer_add(out, "\",", 2);
				add_host_label(out, &db->hosts[i]);
				evbuffer_add_printf(out, "} %.17g\n", v);
			}
	}
}

static void
add_process_gauges(struct evbuffer *out)
{
	int			npools = 0;

	for (const pool *p = pools; p; p = p->next)
		npools++;
	add_header(out, "info", "gauge", "Always 1; the version is a label.");
	evbuffer_add_printf(out, "perfopt_pooler_info{version=\"%s\"} 1\n", POOLER_VERSION);
	add_header(out, "clients", "gauge", "Client connections, logged in or not.");
	evbuffer_add_printf(out, "perfopt_pooler_clients %d\n", client_count);
	add_header(out, "max_client_conn", "gauge", "The max_client_conn setting.");
	evbuffer_add_printf(out, "perfopt_pooler_max_client_conn %d\n", cfg.max_client_conn);
	add_header(out, "pools", "gauge", "Pools, one per (database, user) seen.");
	evbuffer_add_printf(out, "perfopt_pooler_pools %d\n", npools);
	add_header(out, "uptime_seconds", "gauge", "Seconds since the pooler started.");
	evbuffer_add_printf(out, "perfopt_pooler_uptime_seconds %.3f\n", now_mono() - started_at);
}

static void
metrics_request_cb(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct evbuffer *out;

	if (!path || strcmp(path, "/metrics") != 0)
	{
		evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is served here");
		return;
	}
	out = evbuffer_new();
	if (!out)
	{
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD)
	{
		/* evhttp_send_error would drop the Allow header */
		evhttp_add_header(headers, "Allow", "GET, HEAD");
		evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
		evbuffer_add_printf(out, "only GET and HEAD\n");
		evhttp_send_reply(req, 405, "Method Not Allowed", out);
		evbuffer_free(out);
		return;
	}
	add_process_gauges(out);
	for (size_t i = 0; i < sizeof(pool_families) / sizeof(pool_families[0]); i++)
		add_pool_family(out, pool_families[i].name, pool_families[i].type,
						pool_families[i].help, pool_families[i].get);
	add_wait_histogram(out);
	add_host_families(out);
	evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	if (method == EVHTTP_REQ_HEAD)
	{
		/* evhttp drops a HEAD reply's body and, with it, the length GET would have */
		char		len[24];

		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(out));
		evhttp_add_header(headers, "Content-Length", len);
	}
	evhttp_send_reply(req, HTTP_OK, "OK", out);
	evbuffer_free(out);
}

int
metrics_start(void)
{
	started_at = now_mono();
	if (cfg.metrics_port <= 0)
		return 0;
	http = evhttp_new(base);
	if (!http)
	{
		log_error("metrics: cannot create the HTTP server");
		return -1;
	}
	/* every method reaches the callback, which answers 405 with Allow itself */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
							   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
							   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_timeout(http, METRICS_TIMEOUT_SECS);
	evhttp_set_max_headers_size(http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_gencb(http, metrics_request_cb, NULL);
	if (!evhttp_bind_socket_with_handle(http, cfg.metrics_addr, (ev_uint16_t) cfg.metrics_port))
	{
		log_error("metrics: cannot listen on %s port %d (metrics_addr, metrics_port)",
				  cfg.metrics_addr, cfg.metrics_port);
		evhttp_free(http);
		http = NULL;
		return -1;
	}
	log_info("metrics: Prometheus endpoint on http://%s:%d/metrics", cfg.metrics_addr, cfg.metrics_port);
	return 0;
}

void
metrics_stop(void)
{
	if (http)
		evhttp_free(http);
	http = NULL;
}
