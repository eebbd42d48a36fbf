/*
 * pooler.h: the types every part of perfopt-pooler shares: settings,
 * connections, credentials, clients, servers and pools, with their typed
 * states.  Types only: each module's entry points are in its own header
 * (client.h, server.h, pool.h, ..., net/net.h, txn/txn.h, ops/ops.h), so a
 * file's #include lines say whom it uses.  Ownership: a client's state
 * changes only in client.c (client_set_state), a server's only in server.c
 * (server_set_state); pool.c is the only place that matches the two.
 */
#ifndef POOLER_H
#define POOLER_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/buffer.h>

#define POOLER_VERSION "1.0.0"

/* bytes queued for one side past which the other side's reading pauses */
#define BACKLOG_HIGH (1024 * 1024)

/* ---- interned, refcounted strings for parameter values (strpool.h) ---- */
typedef struct pstr
{
	int			refs;
	unsigned	hash;
	struct pstr *next;
	char		s[];
} pstr;

/*
 * The session settings the server reports with ParameterStatus that
 * transaction mode carries from one server connection to the next.
 */
enum { P_CLIENT_ENCODING, P_DATESTYLE, P_TIMEZONE, P_SCS, P_APPNAME, P_INTERVALSTYLE, NPARAMS };

/* ---- settings (config.h) ---- */
enum pool_mode { MODE_SESSION, MODE_TRANSACTION };
enum auth_type { AUTH_TRUST, AUTH_MD5, AUTH_SCRAM };
enum client_tls_mode { CLIENT_TLS_DISABLE, CLIENT_TLS_ALLOW, CLIENT_TLS_REQUIRE };
enum session_state_mode { SESSION_STATE_PIN, SESSION_STATE_ERROR };
enum server_tls_mode { SERVER_TLS_DISABLE, SERVER_TLS_PREFER, SERVER_TLS_REQUIRE, SERVER_TLS_VERIFY_CA, SERVER_TLS_VERIFY_FULL };

/* a file named in the configuration, with its line for errors found when loading it */
typedef struct cfg_file
{
	char	   *path;			/* NULL: not set */
	int			line;
} cfg_file;

typedef struct pool_settings
{
	enum pool_mode pool_mode;
	int			pool_size;
	int			max_overflow;
	int			min_pool_size;
	double		pool_timeout;
	double		pool_recycle;
	bool		pool_pre_ping;
	double		pre_ping_interval;
	double		overflow_idle_timeout;
	double		overflow_wait;	/* a client waits this long before overflow opens */
	double		connect_timeout;
} pool_settings;

/* ---- several hosts per database (replica/replica.h) ---- */
#define MAX_HOSTS 16

/* libpq's target_session_attrs: what a host must be to serve a request */
enum target_attrs
{
	TSA_ANY, TSA_READ_WRITE, TSA_READ_ONLY, TSA_PRIMARY, TSA_STANDBY, TSA_PREFER_STANDBY
};
enum host_role { ROLE_UNKNOWN, ROLE_PRIMARY, ROLE_STANDBY };
enum causal_reads { CAUSAL_OFF, CAUSAL_SESSION, CAUSAL_USER };
enum host_health { HEALTH_UNKNOWN, HEALTH_UP, HEALTH_DOWN };

/*
 * One host of a database line.  The address comes from the configuration;
 * the rest is what the health check (replica/health.c) last learned, and
 * only it writes them.
 */
typedef struct db_host
{
	char	   *name;			/* IP, host name or Unix socket directory */
	int			port;
	struct sockaddr_storage addr;
	socklen_t	addrlen;
	struct database *db;
	int			ix;				/* its place in db->hosts */
	enum host_role role;
	enum host_health health;
	bool		read_only;		/* its default_transaction_read_only is on */
	bool		reports_commit_lsn;	/* its logins report perfopt.commit_lsn (the extension) */
	bool		want_fresh;		/* a read waits for its replay: check again at once */
	bool		lsn_known;
	uint64_t	lsn;			/* primary: pg_current_wal_lsn(); standby: pg_last_wal_replay_lsn() */
	int64_t		lag;			/* standby: bytes behind the primary's last known lsn; -1 unknown */
	double		checked_at;		/* its last answer */
	double		check_sent;		/* a check (or the probe's login) is under way since; 0 none */
	double		last_sent;		/* when the last check went out */
	double		retry_at;		/* down: when to try again */
	int			fail_count;		/* failures in a row: the backoff */
	uint64_t	failures;		/* every time it was taken out */
	char		last_error[192];
	struct pool *probe;			/* the health check's own connection (replica/health.c) */
} db_host;

typedef struct database
{
	char	   *name;			/* what clients ask for; "*" matches any */
	int			nhosts;
	db_host		hosts[MAX_HOSTS];
	char	   *dbname;			/* NULL: the client's name */
	char	   *user;			/* NULL: the client's user */
	char	   *password;
	pool_settings ps;
	unsigned	ps_set;			/* which of ps the line set itself */
	enum target_attrs tsa;		/* target_session_attrs */
	bool		load_balance;	/* load_balance_hosts = random */
	int			read_only_routing;	/* -1 while parsing: [pooler]'s */
	long long	max_replica_lag;	/* bytes, 0: no limit; -1 while parsing: [pooler]'s */
	int			causal_reads;	/* enum causal_reads; -1 while parsing: [pooler]'s */
	double		causal_read_timeout;	/* seconds; -1 while parsing: [pooler]'s */
	bool		causal_warned;	/* logged once: its primary reports no commit positions */
	bool		routed;			/* hosts chosen per request by their role (replica/route.c) */
	bool		removed;		/* dropped by a reload: no new logins (reload.c) */
	struct database *next;
} database;

typedef struct settings
{
	char	   *config_file;
	char	   *listen_addr;
	int			listen_port;
	char	   *unix_socket_dir;
	pool_settings ps;			/* defaults for every database */
	enum auth_type auth_type;
	char	   *auth_file;
	int			max_client_conn;
	char	   *server_reset_query;
	int			max_packet_size;
	int			max_prepared_statements;	/* per server connection; 0: off */
	bool		defer_begin;	/* transaction mode: plain BEGIN answered here (deferred_begin.c) */
	bool		io_uring;		/* end-of-batch writes in one submission (write_batch.c) */
	int			session_state_mode; /* transaction mode: pin or refuse session state (txn/session_state.c) */
	double		startup_timeout;
	char	   *ignore_startup_parameters;
	char	   *logfile;
	int			verbose;
	int			metrics_port;	/* 0: no Prometheus endpoint */
	char	   *metrics_addr;
	char	   *admin_users;	/* comma-separated: full admin console */
	char	   *stats_users;	/* comma-separated: SHOW commands only */
	double		shutdown_timeout;	/* SIGINT: seconds running transactions get */
	bool		read_only_routing;	/* default of the databases' read_only_routing */
	long long	max_replica_lag;	/* default of the databases' max_replica_lag (bytes) */
	int			causal_reads;	/* default of the databases' causal_reads */
	double		causal_read_timeout;	/* default of the databases' causal_read_timeout */
	double		health_check_period;	/* seconds between two checks of a host */
	database   *databases;
	enum client_tls_mode client_tls_mode;
	cfg_file	client_tls_cert_file;
	cfg_file	client_tls_key_file;
	enum server_tls_mode server_tls_mode;
	cfg_file	server_tls_ca_file;
} settings;

/* ---- a buffered non-blocking socket (net/net.h) ---- */
typedef struct conn
{
	int			fd;
	/* bit-fields: an idle client's struct stays as small as before */
	bool		reading:1;
	bool		writing:1;
	bool		flush_pending:1;	/* on the end-of-batch flush list */
	bool		bulk:1;			/* last read filled READ_CHUNK: read in place, no copy */
	bool		tls_read_wants_write:1; /* SSL_read needs the socket writable */
	bool		tls_write_wants_read:1; /* SSL_write needs the socket readable */
	struct event rev;
	struct event *wev;			/* made on first need: most writes never block */
	event_callback_fn wcb;
	void	   *arg;
	struct evbuffer *in;		/* NULL while parked (idle client) */
	struct evbuffer *out;
	struct ssl_st *ssl;			/* NULL unless this connection speaks TLS */
} conn;

/*
 * An input buffer seen for parsing: its length and its first chunk, where
 * message headers nearly always are, read in place.  Load it again after
 * anything drains or rewrites the buffer.
 */
typedef struct bufview
{
	struct evbuffer *b;
	const unsigned char *first;
	size_t		first_len;
	size_t		len;
} bufview;

/* ---- credentials (auth.h) ---- */
typedef struct scram_keys
{
	int			iterations;
	unsigned char salt[32];
	int			saltlen;
	unsigned char stored_key[32];
	unsigned char server_key[32];
} scram_keys;

typedef struct user_cred
{
	char	   *name;
	char	   *password;		/* plain text, or NULL */
	char		md5[36];		/* "md5" + 32 hex, or "" */
	bool		has_scram;
	scram_keys scram;
	/* ClientKey learned from a client's SCRAM proof: lets us log in to the
	 * server with the same secret when no plain password is known */
	bool		has_client_key;
	unsigned char client_key[32];
	struct user_cred *next;
} user_cred;

/* ---- clients (client.h) ---- */
typedef struct client_prep client_prep;	/* prepared.c: a client's statement names */
typedef struct server_prep server_prep;	/* prepared.c: what a server has prepared */

enum client_state
{
	C_STARTUP,					/* reading the startup packet */
	C_AUTH,						/* password exchange */
	C_LOGIN_WAIT,				/* authenticated, waiting for the pool's first server */
	C_IDLE,						/* logged in, no server */
	C_WAITING,					/* wants a server, queued in its pool */
	C_ROUTING,					/* wants a server no host fits yet (replica/route.c) */
	C_ACTIVE,					/* linked to a server */
	C_SETTING,					/* linked; its startup settings are checked there first, input waits */
	C_DISCARDING,				/* canceled while queued: dropping to its sync point */
	C_CLOSING					/* flushing a last message, then gone */
};

typedef struct client
{
	conn		c;
	enum client_state state;	/* written by client_set_state() only */
	struct pool *pool;			/* set once authenticated */
	struct database *db;		/* the pool to join after authentication */
	struct server *server;
	user_cred  *cred;
	char	   *user;
	char	   *dbname;
	pstr	   *params[NPARAMS];
	pstr	   *startup_params[NPARAMS];
	uint32_t	cancel_pid;
	uint32_t	cancel_key;
	uint32_t	pass_remaining; /* bytes of a message being streamed through */
	bool		in_batch;		/* extended-protocol messages sent, no Sync yet */
	bool		dropping_sync;	/* C_DISCARDING: the message being dropped ends the request */
	bool		shut;			/* closing: our side shut down, awaiting EOF */
	bool		tcp;			/* not a Unix socket: client_tls_mode applies */
	double		wait_start;
	double		deadline;		/* on a timeout list: when to act */
	char		tlist;			/* which: 0 none, 1 startup, 2 closing */
	char		admin;			/* admin console: an admin_level and ADMIN_* flags */
	/*
	 * The pool_mode at login, kept for the client's life: a RELOAD that
	 * switches the database's mode must not strand the named statements a
	 * transaction-mode client has under pooler names, nor release a
	 * session-mode client's server (and its session state) mid-session.
	 */
	char		pool_mode;
	bool		begin_failed;	/* the deferred transaction failed: 25P02 until its end */
	char		want;			/* the target_attrs its request asks of a host (replica/route.c) */
	bool		route_login;	/* C_ROUTING for its login, not for a transaction */
	uint64_t	commit_lsn;		/* end of its last commit's WAL record (causal_reads = session) */
	uint64_t	need_lsn;		/* its read waits for a standby replayed this far; 0: none */
	void	   *auth_state;
	client_prep *prep;			/* NULL until its first named statement */
	pstr	   *begin_text;		/* a deferred BEGIN no server has confirmed yet */
	/* startup settings beyond params[] (txn/startup_settings.c); NULL: none */
	pstr	   *settings;
	bool		settings_checked;	/* a server accepted them once: later SETs are pipelined */
	char		settings_phase; /* SETTINGS_*: the answer to the SETs sent for it */
	char	   *settings_error; /* "SQLSTATE message" of a refused SET, until acted on */
	unsigned char md5_salt[4];
	uint32_t	id;				/* C-<id> in logs and SHOW CLIENTS */
	double		connected;
	TAILQ_ENTRY(client) link;	/* every client */
	TAILQ_ENTRY(client) wlink;	/* its pool's queue: C_WAITING or C_LOGIN_WAIT */
	TAILQ_ENTRY(client) tlink;	/* startup or closing timeout list */
} client;
TAILQ_HEAD(client_list, client);

/* client.admin: the console's level and flags (ops/admin.c) */
#define ADMIN_DB "perfopt"
enum admin_level { ADMIN_ASKED = 1, ADMIN_STATS, ADMIN_FULL };
#define ADMIN_LEVEL 0x0f
#define ADMIN_WAITING 0x10		/* a PAUSE not complete yet: input waits */
#define ADMIN_SKIP 0x20			/* after an extended-protocol error: until Sync */

/* ---- servers (server.h) ---- */
enum server_state
{
	S_CONNECTING,
	S_LOGIN,
	S_IDLE,
	S_ACTIVE,
	S_RESETTING,
	S_CANCELING,				/* released, kept from others until a cancel sent for it is spent */
	S_CLOSED					/* being freed: in no list, counted nowhere */
};

typedef struct server
{
	conn		c;
	enum server_state state;	/* written by server_set_state() only */
	struct pool *pool;
	client	   *client;
	pstr	   *params[NPARAMS];
	uint32_t	be_pid;
	uint32_t	be_key;
	/* where it was opened: a RELOAD may move the database, its cancels must not follow */
	struct sockaddr_storage addr;
	socklen_t	addrlen;
	double		created;
	double		last_used;
	int			expect_rfq;		/* sync points sent, ReadyForQuery not yet seen */
	int			swallow_rfq;	/* of those, answers to our own queries */
	char		txstatus;
	bool		in_copy_out;
	bool		ping_unconfirmed;	/* pre-ping sent, its answer not seen yet */
	bool		begin_absorb;	/* a deferred BEGIN sent, its answer not seen yet */
	bool		close_needed;	/* its database's address changed: close at release */
	uint32_t	id;				/* S-<id> in logs and SHOW SERVERS */
	bool		tls_answer_pending; /* SSLRequest sent, its one-byte answer not read */
	struct evbuffer *replay;	/* client bytes sent behind that pre-ping */
	struct evbuffer *retry;		/* client bytes of a batch that may re-run (txn/prepared_replies.c) */
	uint32_t	pass_remaining;
	bool		pass_drop;
	struct event timer;
	struct scram_client *scram;
	struct cancel_req *cancels; /* CancelRequests for it still in flight */
	bool		cancel_sent;	/* one was forwarded: absorb it before reuse */
	server_prep *prep;			/* transaction mode with max_prepared_statements */
	/* the startup settings the pooler applied here (txn/startup_settings.c) */
	pstr	   *settings;		/* confirmed by the server; NULL: its defaults */
	pstr	   *settings_pending;	/* sent, answer not seen yet */
	bool		settings_sent;
	bool		settings_failed;
	/* session state only its client may see (txn/session_state.c): it stays linked */
	unsigned char sstate;		/* kinds the extension reported (perfopt.session_state) */
	unsigned char sstate_text;	/* kinds recognised in statements, without the extension */
	bool		sreport;		/* the extension reports: trust sstate, not the text */
	struct setting_list *observed;	/* settings the linked client changed, reported this transaction */
	bool		observed_guessed;	/* some recognised from its SET statements (no report) */
	TAILQ_ENTRY(server) link;	/* pool's all-servers list */
	TAILQ_ENTRY(server) ilink;	/* pool's idle list: exactly the S_IDLE servers */
} server;
TAILQ_HEAD(server_list, server);

/* ---- pools (pool.h) and their counters (stats.h) ---- */
#define WAIT_SUB 4				/* histogram sub-buckets per power of two */
#define WAIT_BUCKETS (2 + 32 * WAIT_SUB)	/* < 1 us, then 1 us .. ~71 min */

typedef struct pool_stats
{
	uint64_t	xacts;			/* transactions ended (ReadyForQuery 'I') */
	uint64_t	queries;		/* ReadyForQuery messages passed to clients */
	uint64_t	bytes_in;		/* client to server */
	uint64_t	bytes_out;		/* server to client */
	uint64_t	waits;			/* clients that queued for a server */
	double		wait_time;		/* seconds, summed over those waits */
	double		max_wait;
	uint64_t	wait_hist[WAIT_BUCKETS];
	uint64_t	timeouts;		/* pool_timeout errors sent */
	uint64_t	recycled;		/* closed by pool_recycle */
	uint64_t	ping_failures;	/* dead connections found by pre-ping */
	uint64_t	connect_failures;	/* server connects or logins that failed */
	uint64_t	servers_opened; /* server logins that succeeded */
} pool_stats;

typedef struct pool
{
	database   *db;
	db_host    *host;			/* where its connections go: one of db->hosts */
	struct pool *home;			/* its (database, user)'s pool of the first host: itself there */
	struct pool *by_host[MAX_HOSTS];	/* home only: each host's pool, made on first use */
	bool		probe;			/* a health check's connection (replica/health.c): in no list */
	bool		reap;			/* home of a removed database's family nobody uses (pool_reap_removed) */
	uint64_t	commit_lsn;		/* home: the user's last commit (causal_reads = user) */
	pool_settings *ps;
	char	   *user;			/* client-visible user */
	char	   *dbname;			/* client-visible database */
	char	   *server_user;
	char	   *server_dbname;
	user_cred  *cred;
	struct server_list servers;
	/* the next four follow the states: server_set_state(), client_set_state() */
	struct server_list idle;	/* S_IDLE, most recently released first */
	struct client_list waiting; /* C_WAITING, FIFO */
	struct client_list login_wait;	/* C_LOGIN_WAIT */
	int			n_servers;
	int			n_connecting;	/* S_CONNECTING or S_LOGIN */
	int			n_idle;
	int			n_waiting;
	bool		have_params;
	int			nparams;
	char	  **pnames;
	char	  **pvalues;
	pstr	   *defaults[NPARAMS];
	int			fail_count;
	double		retry_at;
	char		last_error[256];
	char		last_sqlstate[6];
	struct event retry_timer;
	bool		retry_pending;
	pool_stats	st;
	bool		paused;			/* PAUSE: no server handed out, released ones closed */
	double		resumed_at;		/* pool_timeout counts from here after RESUME */
	struct pool *next;
} pool;

#endif
