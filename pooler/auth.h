/*
 * auth.h: auth.c's entry points: the userlist of credentials, and the
 * client side of the pooler's login, judged message by message (a verdict
 * that client_login.c acts on).
 */
#ifndef AUTH_H
#define AUTH_H

#include "pooler.h"

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
enum auth_verdict auth_start(struct client *c, auth_refusal *why);
enum auth_verdict auth_message(struct client *c, char type, const unsigned char *body, size_t len,
							   auth_refusal *why);
void		auth_free(struct client *c);

#endif
