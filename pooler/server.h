/*
 * server.h: the server connections' entry points: server.c (connect,
 * link, reset, close), server_forward.c (the server's messages to the
 * client), server_login.c (the pooler's login to PostgreSQL).
 */
#ifndef SERVER_H
#define SERVER_H

#include "pooler.h"

/*
 * The only way a server's state changes.  The state decides its pool's
 * bookkeeping: S_IDLE servers are the pool's idle list (most recently
 * released first, so the least recently used are at the tail for
 * closing), and S_CONNECTING / S_LOGIN ones are its n_connecting (counted
 * in by server_connect, where a server is born S_CONNECTING).  Nothing
 * else touches them, so they can never disagree with the state.  Inline:
 * it runs twice per transaction.
 */
static inline bool
server_state_connecting(enum server_state state)
{
	return state == S_CONNECTING || state == S_LOGIN;
}

static inline void
server_set_state(server *s, enum server_state state)
{
	pool	   *p = s->pool;

	if (s->state == state)
		return;
	if (s->state == S_IDLE)
	{
		TAILQ_REMOVE(&p->idle, s, ilink);
		p->n_idle--;
	}
	else if (server_state_connecting(s->state) && !server_state_connecting(state))
		p->n_connecting--;
	if (state == S_IDLE)
	{
		TAILQ_INSERT_HEAD(&p->idle, s, ilink);
		p->n_idle++;
	}
	s->state = state;
}

void		server_connect(struct pool *p);
void		server_login_failed(server *s, const char *sqlstate, const char *msg);
void		server_login_process(server *s);
void		server_send_startup(server *s);
void		server_note_param(server *s, const unsigned char *body, size_t len, bool login);
void		server_forward(server *s);	/* server_forward.c */
void		server_settings_hold(server *s, client *c);
void		server_close(server *s, const char *why);
void		server_link(server *s, client *c);
void		server_link_checked(server *s, client *c);
void		server_client_left(server *s, bool dirty_input, bool session);
void		server_unlink_for_reuse(server *s);
bool		server_releasable(server *s);
bool		server_hold_for_cancel(server *s);
void		server_cancel_settled(server *s);

#endif
