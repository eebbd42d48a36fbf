/*
 * txn/txn.h: the transaction-mode features client.c and the server side
 * call: named prepared statements kept across server connections
 * (prepared*.c) and the deferred BEGIN (deferred_begin.c).  Each judges a
 * message and returns a verdict; the caller acts on it.
 */
#ifndef TXN_H
#define TXN_H

#include "pooler.h"

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
bool		prepared_retry_due(server *s);
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

/* ---- a BEGIN's transaction modes, for read-only routing (begin_options.c) ---- */
typedef struct begin_modes
{
	signed char read_only;		/* 1 READ ONLY, 0 READ WRITE, -1 not said */
	signed char serializable;	/* 1 ISOLATION LEVEL SERIALIZABLE, 0 another level, -1 not said */
} begin_modes;
bool		begin_statement_modes(const char *sql, size_t n, begin_modes *m);
bool		begin_request_modes(client *c, begin_modes *m);
/* the text of the client's prepared statement of that name, or NULL (prepared.c) */
const char *prepared_statement_text(client *c, const char *name);

/* ---- startup settings carried to every server connection (startup_settings.c) ---- */
enum { SETTINGS_NONE, SETTINGS_HELD, SETTINGS_ANSWERED };	/* client.settings_phase */
/* a client's settings while its startup packet is read: name/value pairs, names lower case */
typedef struct setting_list
{
	int			n;
	int			cap;
	char	  **names;
	char	  **values;
} setting_list;
const char *setting_list_put(setting_list *l, const char *name, const char *value);
const char *startup_options_parse(const char *opts, setting_list *l, char *why, size_t whylen);
pstr	   *setting_list_key(setting_list *l);
void		setting_list_free(setting_list *l);
bool		settings_value(const pstr *key, const char *name, char *out, size_t outlen);
bool		settings_send(server *s, client *c);
bool		settings_error_answer(server *s, client *c, const char *body, size_t len);
void		settings_rfq(server *s, client *c);
void		settings_server_reset(server *s);
void		settings_server_free(server *s);
void		settings_client_free(client *c);
bool		settings_reported_natively(const char *name);
void		settings_observe(server *s, const char *name, const char *value);
void		settings_learn(server *s, client *c);
struct query_text;
void		settings_note_query(server *s, client *c, const struct query_text *q);
void		settings_error_seen(server *s);

#endif
