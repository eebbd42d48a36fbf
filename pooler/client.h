/*
 * client.h: the clients' entry points (client.c: state, input,
 * forwarding, timeouts; client_login.c: startup, authentication, welcome)
 * and the console operations a console plugs in.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include "pooler.h"

/* C_ROUTING clients, oldest first: no host of their database fits them yet */
extern struct client_list routing_queue;

/*
 * The only way a client's state changes.  A pool's queues follow the
 * state: C_WAITING clients are on its wait queue, C_LOGIN_WAIT ones on its
 * login queue, C_ROUTING ones on the routing queue, and nobody else is.  A
 * client sent back to the queue from a server (its pre-ping found the
 * server dead) goes first again: it had already waited its turn.  Inline:
 * it runs twice per transaction.
 */
static inline void
client_set_state(client *c, enum client_state state)
{
	enum client_state old = c->state;
	pool	   *p = c->pool;

	if (old == state)
		return;
	if (old == C_WAITING)
	{
		TAILQ_REMOVE(&p->waiting, c, wlink);
		p->n_waiting--;
	}
	else if (old == C_LOGIN_WAIT)
		TAILQ_REMOVE(&p->login_wait, c, wlink);
	else if (old == C_ROUTING)
		TAILQ_REMOVE(&routing_queue, c, wlink);
	if (state == C_ROUTING)
		TAILQ_INSERT_TAIL(&routing_queue, c, wlink);
	else if (state == C_WAITING)
	{
		if (old == C_ACTIVE)
			TAILQ_INSERT_HEAD(&p->waiting, c, wlink);
		else
			TAILQ_INSERT_TAIL(&p->waiting, c, wlink);
		p->n_waiting++;
	}
	else if (state == C_LOGIN_WAIT)
		TAILQ_INSERT_TAIL(&p->login_wait, c, wlink);
	c->state = state;
}

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
extern int	client_count;
extern struct client_list all_clients;

/*
 * A console: a client of the virtual database ADMIN_DB that the pooler
 * answers itself.  client.c calls it only through these operations, so
 * the console (ops/admin.c) sits above the clients, not in a circle with
 * them.
 */
typedef struct console_ops
{
	bool		(*login) (client *c);	/* authenticated: may it use the console? (else closed) */
	void		(*send_params) (client *c); /* its ParameterStatus messages */
	int			(*process) (client *c); /* its input; -1: the client said Terminate */
	void		(*gone) (client *c);	/* about to be freed */
} console_ops;
extern const console_ops *client_console;	/* NULL: no console */

/* between client.c (input, timeouts) and client_login.c (startup, auth, welcome) */
void		client_process(client *c);
void		client_tlist_set(client *c, char which, double secs);
int			client_startup_input(client *c);
int			client_auth_input(client *c);

#endif
