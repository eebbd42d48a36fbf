/*
 * pooler.h: the types every part of perfopt-pooler shares (settings,
 * connections, clients, servers, pools) and the entry points each file
 * offers the others.  Ownership: client.c owns client state, server.c owns
 * server state, pool.c is the only place that matches the two.
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

/* ---- logging (log.c) ---- */
enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void log_open(const char *file);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (cfg.verbose >= 2) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
/* logins, disconnections, server connections opened and closed: verbose >= 1 */
#define log_verbose(...) do { if (cfg.verbose >= 1) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
struct client;
struct server;
const char *client_tag(const struct client *c);	/* "C-12 app@appdb 127.0.0.1:40312" */
const char *server_tag(const struct server *s);	/* "S-3 app@appdb pid 4242" */
void		sock_addr(int fd, bool peer, char *buf, size_t len, int *port);

/* ---- interned, refcounted strings for parameter values (strpool.c) ---- */
typedef struct pstr
{
	int			refs;
	unsigned	hash;
	struct pstr *next;
	char		s[];
} pstr;
pstr	   *pstr_get(const char *s);
void		pstr_unref(pstr *p);
void		pstr_set(pstr **slot, pstr *v);	/* takes a new reference to v */

/*
 * The session settings the server reports with ParameterStatus that
 * transaction mode carries from one server connection to the next.
 */
enum { P_CLIENT_ENCODING, P_DATESTYLE, P_TIMEZONE, P_SCS, P_APPNAME, P_INTERVALSTYLE, NPARAMS };
extern const char *const tracked_params[NPARAMS];
int			tracked_param_index(const char *name);

/* ---- settings (config.c) ---- */
enum pool_mode { MODE_SESSION, MODE_TRANSACTION };
enum auth_type { AUTH_TRUST, AUTH_MD5, AUTH_SCRAM };
enum client_tls_mode { CLIENT_TLS_DISABLE, CLIENT_TLS_ALLOW, CLIENT_TLS_REQUIRE };
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
	double		connect_timeout;
} pool_settings;

typedef struct database
{
	char	   *name;			/* what clients ask for; "*" matches any */
	char	   *host;			/* IP, host name or Unix socket directory */
	int			port;
	char	   *dbname;			/* NULL: the client's name */
	char	   *user;			/* NULL: the client's user */
	char	   *password;
	struct sockaddr_storage addr;
	socklen_t	addrlen;
	pool_settings ps;
	unsigned	ps_set;			/* which of ps the line set itself */
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
	double		startup_timeout;
	char	   *ignore_startup_parameters;
	char	   *logfile;
	int			verbose;
	int			metrics_port;	/* 0: no Prometheus endpoint */
	char	   *metrics_addr;
	char	   *admin_users;	/* comma-separated: full admin console */
	char	   *stats_users;	/* comma-separated: SHOW commands only */
	double		shutdown_timeout;	/* SIGINT: seconds running transactions get */
	database   *databases;
	enum client_tls_mode client_tls_mode;
	cfg_file	client_tls_cert_file;
	cfg_file	client_tls_key_file;
	enum server_tls_mode server_tls_mode;
	cfg_file	server_tls_ca_file;
} settings;

extern settings cfg;
int			config_load(const char *file);
database   *config_find_database(const char *name);
void		config_defaults(void);	/* cfg as no file sets it */
void		config_free(settings *s);
void		config_free_database(database *db);
void		config_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* config_keys.c */
void		config_show(void (*row) (void *arg, const char *key, const char *value,
									 const char *dflt, bool changeable), void *arg);
void		config_keep_fixed(settings *now, const settings *running);
extern bool config_reloading;	/* errors go to the log and config_error */
extern char config_error[1024];	/* the first error of the last reload */

/* ---- buffered non-blocking socket (conn.c) ---- */
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

extern struct event_base *base;
double		now_mono(void);
void		conn_init(conn *c, int fd, event_callback_fn rcb, event_callback_fn wcb, void *arg, bool lazy);
struct evbuffer *conn_in(conn *c);
struct evbuffer *conn_out(conn *c);
void		conn_park(conn *c);
void		conn_want_write(conn *c);
void		conn_kick_write(conn *c);
size_t		buflen(struct evbuffer *b);
struct evbuffer *conn_buf_get(void);
void		conn_buf_put(struct evbuffer *b);
int			conn_fill(conn *c);		/* >0 bytes, 0 EOF, -1 error, -2 nothing yet */
int			conn_flush(conn *c);	/* 0 ok (maybe pending), -1 error */
void		conn_flush_later(conn *c);	/* write_batch.c */
void		conn_flush_pending(void);
void		write_batch_forget(conn *c);
void		write_batch_start(void);
void		write_batch_stop(void);
bool		write_batch_uring(void);
int			conn_forward(conn *dst, struct evbuffer *src, size_t n);	/* move n bytes and write */
void		conn_read_on(conn *c);
void		conn_read_off(conn *c);
void		conn_destroy(conn *c);
void		conn_shut_write(conn *c);
bool		conn_peek(struct evbuffer *b, size_t off, void *dst, size_t n);

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
void		bufview_load(bufview *v, struct evbuffer *b);

static inline bool
bufview_peek(const bufview *v, size_t off, void *dst, size_t n)
{
	if (off + n <= v->first_len)
	{
		__builtin_memcpy(dst, v->first + off, n);
		return true;
	}
	return off + n <= v->len && conn_peek(v->b, off, dst, n);
}
void		set_nodelay(int fd);

/* ---- TLS on either side of the pooler (tls.c) ---- */
int			tls_init(void);
void		tls_shutdown(void);
bool		tls_client_offered(void);
bool		tls_server_wanted(const database *db);
int			tls_accept(conn *c);
int			tls_connect(conn *c, const database *db);
int			tls_fill(conn *c);
int			tls_flush(conn *c);
bool		tls_has_pending(conn *c);
void		tls_close_notify(conn *c);
void		tls_free(conn *c);
const char *tls_last_error(void);

/* ---- protocol helpers (proto.c) ---- */
uint32_t	get_u32(const unsigned char *p);
void		put_msg_start(struct evbuffer *b, char type, size_t bodylen);
void		send_error(struct evbuffer *b, const char *severity, const char *sqlstate,
					   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void		send_auth(struct evbuffer *b, uint32_t code, const void *data, size_t len);
void		send_param_status(struct evbuffer *b, const char *name, const char *value);
void		send_key_data(struct evbuffer *b, uint32_t pid, uint32_t key);
void		send_rfq(struct evbuffer *b, char status);
void		send_complete(struct evbuffer *b, const char *tag);
void		send_query(struct evbuffer *b, const char *sql);
const char *error_field(const char *body, size_t len, char field);

/* ---- credentials (auth.c, scram.c) ---- */
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

int			userlist_load(const char *file);
user_cred  *userlist_parse(const char *file, bool *ok);
void		userlist_install(user_cred *list);
user_cred  *userlist_find(const char *name);

/* client side of the pooler's login (auth.c): client.c acts on the verdict */
enum auth_verdict
{
	AUTH_MORE,					/* the next password message is awaited */
	AUTH_OK,					/* AuthenticationOk sent: log the client in */
	AUTH_REFUSED				/* close the client with the refusal's error */
};
typedef struct auth_refusal
{
	const char *sqlstate;
	char		msg[512];
} auth_refusal;
struct client;
enum auth_verdict auth_start(struct client *c, auth_refusal *why);
enum auth_verdict auth_message(struct client *c, char type, const unsigned char *body, size_t len,
							   auth_refusal *why);
void		auth_free(struct client *c);

/* SCRAM primitives (scram.c) */
struct scram_server;
struct scram_client;
bool		scram_keys_from_password(const char *password, scram_keys *k, unsigned char client_key[32]);
bool		scram_parse_secret(const char *secret, scram_keys *k);
struct scram_server *scram_server_new(const scram_keys *k);
char	   *scram_server_first(struct scram_server *st, const char *client_first, size_t len, const char **err);
char	   *scram_server_final(struct scram_server *st, const char *client_final, size_t len,
							   unsigned char client_key_out[32], const char **err);
void		scram_server_free(struct scram_server *st);
struct scram_client *scram_client_new(const char *password, const unsigned char *client_key,
									  const scram_keys *known);
char	   *scram_client_first(struct scram_client *st);
char	   *scram_client_final(struct scram_client *st, const char *server_first, size_t len, const char **err);
bool		scram_client_verify(struct scram_client *st, const char *server_final, size_t len);
void		scram_client_free(struct scram_client *st);
void		md5_hex(const void *data, size_t len, char out[33]);
bool		random_bytes(void *buf, size_t n);

/* ---- clients (client.c) ---- */
typedef struct client_prep client_prep;	/* prepared.c: a client's statement names */
typedef struct server_prep server_prep;	/* prepared.c: what a server has prepared */

enum client_state
{
	C_STARTUP,					/* reading the startup packet */
	C_AUTH,						/* password exchange */
	C_LOGIN_WAIT,				/* authenticated, waiting for the pool's first server */
	C_IDLE,						/* logged in, no server */
	C_WAITING,					/* wants a server, queued in its pool */
	C_ACTIVE,					/* linked to a server */
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
	char		admin;			/* admin console: ADMIN_* (admin.c) */
	/*
	 * The pool_mode at login, kept for the client's life: a RELOAD that
	 * switches the database's mode must not strand the named statements a
	 * transaction-mode client has under pooler names, nor release a
	 * session-mode client's server (and its session state) mid-session.
	 */
	char		pool_mode;
	bool		begin_failed;	/* the deferred transaction failed: 25P02 until its end */
	void	   *auth_state;
	client_prep *prep;			/* NULL until its first named statement */
	pstr	   *begin_text;		/* a deferred BEGIN no server has confirmed yet */
	unsigned char md5_salt[4];
	uint32_t	id;				/* C-<id> in logs and SHOW CLIENTS */
	double		connected;
	TAILQ_ENTRY(client) link;	/* every client */
	TAILQ_ENTRY(client) wlink;	/* its pool's queue: C_WAITING or C_LOGIN_WAIT */
	TAILQ_ENTRY(client) tlink;	/* startup or closing timeout list */
} client;
TAILQ_HEAD(client_list, client);

void		client_set_state(client *c, enum client_state state);
void		client_accept(int fd, bool tcp);
void		client_welcome(client *c);
void		client_linked(client *c);
void		client_server_gone(client *c, const char *sqlstate, const char *msg);
void		client_fail(client *c, const char *sqlstate, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void		client_resume(client *c);
void		client_kick(client *c);
void		client_cancel_waiting(client *c);
void		client_wait_timeout(client *c);
void		clients_tick_start(void);
void		client_shutdown_all(void);
client	   *client_find_cancel(uint32_t pid, uint32_t key);
void		client_close_soon(client *c);
void		client_discard_request(client *c);
/* between client.c (input, timeouts) and client_login.c (startup, auth, welcome) */
void		client_process(client *c);
void		client_tlist_set(client *c, char which, double secs);
int			client_startup_input(client *c);
int			client_auth_input(client *c);
extern int	client_count;
extern struct client_list all_clients;

/*
 * A console: a client of the virtual database ADMIN_DB that the pooler
 * answers itself.  client.c calls it only through these operations, so the
 * console (admin.c) sits above the clients instead of in a circle with them.
 */
typedef struct console_ops
{
	bool		(*login) (client *c);	/* authenticated: may it use the console? (else closed) */
	void		(*send_params) (client *c); /* its ParameterStatus messages */
	int			(*process) (client *c); /* its input; -1: the client said Terminate */
	void		(*gone) (client *c);	/* about to be freed */
} console_ops;
extern const console_ops *client_console;	/* NULL: ADMIN_DB is refused */

/* ---- servers (server.c) ---- */
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
	uint32_t	pass_remaining;
	bool		pass_drop;
	struct event timer;
	struct scram_client *scram;
	struct cancel_req *cancels; /* CancelRequests for it still in flight */
	bool		cancel_sent;	/* one was forwarded: absorb it before reuse */
	server_prep *prep;			/* transaction mode with max_prepared_statements */
	TAILQ_ENTRY(server) link;	/* pool's all-servers list */
	TAILQ_ENTRY(server) ilink;	/* pool's idle list: exactly the S_IDLE servers */
} server;
TAILQ_HEAD(server_list, server);

void		server_set_state(server *s, enum server_state state);
void		server_connect(struct pool *p);
void		server_login_failed(server *s, const char *sqlstate, const char *msg);
void		server_login_process(server *s);
void		server_send_startup(server *s);
void		server_note_param(server *s, const unsigned char *body, size_t len, bool login);
void		server_forward(server *s);	/* server_forward.c */
/* bytes queued for one side past which the other side's reading pauses */
#define BACKLOG_HIGH (1024 * 1024)
void		server_close(server *s, const char *why);
void		server_link(server *s, client *c);
void		server_link_checked(server *s, client *c);
void		server_client_left(server *s, bool dirty_input, bool session);
void		server_unlink_for_reuse(server *s);
bool		server_releasable(server *s);
bool		server_hold_for_cancel(server *s);
void		server_cancel_settled(server *s);

/* ---- CancelRequests (cancel.c) ---- */
void		cancel_request(uint32_t pid, uint32_t key);
void		cancel_forget(server *s);
void		cancel_shutdown(void);

/* ---- named prepared statements in transaction mode (prepared*.c) ---- */
enum prep_verdict
{
	PREP_PASS,					/* an ordinary message: forward it as it is */
	PREP_DONE,					/* handled here */
	PREP_WAIT,					/* more bytes needed */
	PREP_NO_MEMORY,				/* client side: close the client (53200) */
	PREP_MALFORMED,				/* client side: close the client (08P01) */
	PREP_MISMATCH				/* server side: the reply matches no request sent; close the server */
};
bool		prepared_tracking(client *c);
enum prep_verdict prepared_client_msg(client *c, const unsigned char *hdr, uint32_t len, size_t *off);
void		prepared_client_sent(server *s, char type);
enum prep_verdict prepared_server_msg(server *s, const unsigned char *hdr, uint32_t len, size_t *off);
void		prepared_flush_synth(server *s);
bool		prepared_quiet(server *s);
bool		prepared_server_reset(server *s);
void		prepared_rollback(server *s, client *c);
void		prepared_server_free(server *s);
void		prepared_client_free(client *c);

/* ---- transaction mode's deferred BEGIN (deferred_begin.c) ---- */
enum defer_verdict
{
	DEFER_SERVER,				/* the message needs a server */
	DEFER_LOCAL,				/* answered here */
	DEFER_WAIT,					/* more bytes needed to tell */
	DEFER_REFUSED				/* 25P02 sent: the client drops its messages to its sync point */
};
/* what the server said to a deferred BEGIN it refused */
typedef struct begin_failure
{
	char		sqlstate[6];
	char		msg[256];
} begin_failure;
bool		defer_begin_on(const client *c);
enum defer_verdict defer_idle(client *c, char type, uint32_t len);
void		defer_send_begin(server *s, client *c);
bool		defer_absorbs(const server *s, char type);
bool		defer_absorb(server *s, char type, const char *body, size_t len, begin_failure *failure);

/* ---- per-pool counters (stats.c) ---- */
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

struct pool;
void		stats_wait_done(struct pool *p, double seconds);
double		stats_wait_percentile(const pool_stats *st, double q);
double		stats_wait_bucket_upper(int b);
void		stats_add(pool_stats *into, const pool_stats *from);
extern pool_stats stats_removed;	/* pools of removed databases, once freed */

/* ---- pools (pool.c) ---- */
typedef struct pool
{
	database   *db;
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

extern pool *pools;				/* every pool, newest first */

/*
 * The first n bytes of the client's input go to its server as they are
 * (kept for replay behind an unconfirmed pre-ping).  Inline: it runs for
 * every forwarded message, from client.c and prepared_rewrite.c.
 */
static inline void
client_pass(client *c, size_t n)
{
	server	   *s = c->server;

	if (!n)
		return;
	if (s->replay)
		evbuffer_add(s->replay, evbuffer_pullup(c->c.in, n), n);
	c->pool->st.bytes_in += n;
	evbuffer_remove_buffer(c->c.in, s->c.out, n);
}

pool	   *pool_get(database *db, const char *user, const char *dbname, user_cred *cred);
void		pool_request(pool *p, client *c);
void		pool_requeue(pool *p, client *c, struct evbuffer *replay);
void		pool_release(server *s);
void		pool_server_ready(server *s);
void		pool_server_failed(pool *p, const char *sqlstate, const char *msg);
void		pool_server_closed(server *s);
void		pool_check_waits(double now);
void		pool_refresh(pool *p);
void		pool_close_idle(pool *p, int keep, const char *why);
void		pool_tick(pool *p, double now);
void		pool_reap_removed(void);
void		pool_shutdown(void);
/* set by lifecycle.c (PAUSE, shutdown); pool.c only reads them */
extern bool shutting_down;		/* graceful shutdown under way: no new transactions */
extern bool (*pool_born_paused) (const char *dbname);	/* a new pool of dbname starts paused */

/* ---- the once-a-second timer (janitor.c) ---- */
void		janitor_start(void);
void		janitor_stop(void);

/* ---- Prometheus endpoint (metrics.c) ---- */
int			metrics_start(void);
void		metrics_stop(void);

/* ---- listener.c ---- */
int			listener_start(void);
void		listener_stop(void);

/* ---- admin console: the virtual database "perfopt" (admin.c) ---- */
#define ADMIN_DB "perfopt"
enum { ADMIN_ASKED = 1, ADMIN_STATS, ADMIN_FULL };
#define ADMIN_LEVEL 0x0f
#define ADMIN_WAITING 0x10		/* a PAUSE not complete yet: input waits */
#define ADMIN_SKIP 0x20			/* after an extended-protocol error: until Sync */
extern const console_ops admin_console;	/* what main.c plugs into client_console */
bool		admin_show(client *c, const char *name);	/* admin_show.c; false: no such SHOW */

/* ---- live operations: reload (reload.c), pause, shutdown (lifecycle.c) ---- */
int			config_reload(char *err, size_t errlen);
void		reload_reap_databases(void);
extern int	verbose_extra;		/* -v on the command line, kept across reloads */
void		lifecycle_start(void (*stop_listening) (void));
void		lifecycle_shutdown(bool immediate);
/* how a PAUSE that had to wait is answered: tag on success, else sqlstate and msg */
typedef void (*pause_answer_fn) (client *c, const char *tag, const char *sqlstate, const char *msg);
int			lifecycle_pause(const char *db, client *admin, pause_answer_fn answer, char *err, size_t errlen);
int			lifecycle_resume(const char *db, char *err, size_t errlen);
bool		lifecycle_db_paused(const char *dbname);
void		lifecycle_client_gone(client *c);

#endif
