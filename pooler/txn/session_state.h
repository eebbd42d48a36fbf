/*
 * txn/session_state.h: session state in transaction mode (session_state.c):
 * what a server connection holds that only its client may see, which keeps
 * that client on it (pin) or is refused (error).
 */
#ifndef SESSION_STATE_H
#define SESSION_STATE_H

#include "pooler.h"

/* the ParameterStatus perfopt's extension reports the state with */
#define SESSION_STATE_PARAM "perfopt.session_state"

enum sstate_verdict
{
	SSTATE_PASS,				/* forward the message as it is */
	SSTATE_WAIT,				/* more bytes needed to read its text */
	SSTATE_REWRITTEN			/* replaced in the input by one the server refuses: read it again */
};

void		session_state_note(server *s, const char *name, const char *value);
bool		session_state_pins(const server *s);
void		session_state_forget(server *s);
const char *session_state_describe(const server *s, char *buf, size_t len);
int			session_state_pinned(const pool *p);
struct query_text;
enum sstate_verdict session_state_client_msg(client *c, const struct query_text *q, size_t off);

#endif
