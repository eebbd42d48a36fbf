/*
 * auth.c: who may log in to the pooler.  Loads auth_file (the userlist
 * format poolers share: "user" "secret" per line, secret plain, md5... or
 * SCRAM-SHA-256$...) and runs the trust / md5 / scram-sha-256 exchange with
 * each client.  Wrong passwords end in 28P01; passwords never reach the log.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "proto.h"
#include "auth.h"
#include "scram.h"
#include "net/net.h"

enum { A_MD5, A_SCRAM_INIT, A_SCRAM_FINAL };

typedef struct auth_state
{
	int			stage;
	struct scram_server *ss;
	bool		fake;			/* unknown user: run the exchange, then fail */
} auth_state;

static user_cred *users;
static user_cred *retired_users;	/* dropped by a reload; clients and pools may point here */

/* One "quoted" field with "" as an embedded quote; NULL if malformed. */
static char *
quoted(char **pp)
{
	char	   *p = *pp,
			   *out,
			   *o;

	while (isspace((unsigned char) *p))
		p++;
	if (*p != '"')
		return NULL;
	p++;
	out = o = malloc(strlen(p) + 1);
	for (;;)
	{
		if (!*p)
		{
			free(out);
			return NULL;
		}
		if (*p == '"' && p[1] == '"')
		{
			*o++ = '"';
			p += 2;
			continue;
		}
		if (*p == '"')
			break;
		*o++ = *p++;
	}
	*o = '\0';
	*pp = p + 1;
	return out;
}

static void
cred_free(user_cred *u)
{
	free(u->name);
	if (u->password)
		OPENSSL_cleanse(u->password, strlen(u->password));
	free(u->password);
	OPENSSL_cleanse(u, sizeof(*u));
	free(u);
}

static void
list_free(user_cred *list)
{
	user_cred  *next;

	for (; list; list = next)
	{
		next = list->next;
		cred_free(list);
	}
}

/* The users of an auth_file, newest line first (as userlist_find wants); *ok false on errors. */
user_cred *
userlist_parse(const char *file, bool *ok)
{
	FILE	   *f = fopen(file, "r");
	char		line[4096];
	int			lineno = 0;
	user_cred  *list = NULL;

	*ok = false;
	if (!f)
	{
		config_report("cannot open auth_file %s: %s", file, strerror(errno));
		return NULL;
	}
	while (fgets(line, sizeof(line), f))
	{
		char	   *p = line,
				   *name,
				   *secret;
		user_cred  *u;

		lineno++;
		while (isspace((unsigned char) *p))
			p++;
		if (!*p || *p == ';' || *p == '#')
			continue;
		name = quoted(&p);
		secret = name ? quoted(&p) : NULL;
		if (!secret)
		{
			config_report("%s:%d: expected \"user\" \"password\"", file, lineno);
			free(name);
			fclose(f);
			list_free(list);
			return NULL;
		}
		u = calloc(1, sizeof(*u));
		u->name = name;
		if (strncmp(secret, "SCRAM-SHA-256$", 14) == 0)
		{
			if (!scram_parse_secret(secret, &u->scram))
			{
				config_report("%s:%d: malformed SCRAM secret for user \"%s\"", file, lineno, name);
				free(secret);
				cred_free(u);
				fclose(f);
				list_free(list);
				return NULL;
			}
			u->has_scram = true;
			free(secret);
		}
		else if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35)
		{
			memcpy(u->md5, secret, 36);
			free(secret);
		}
		else
		{
			char		buf[1100],
						hex[33];

			u->password = secret;
			snprintf(buf, sizeof(buf), "%s%s", secret, name);
			md5_hex(buf, strlen(buf), hex);
			snprintf(u->md5, sizeof(u->md5), "md5%s", hex);
			OPENSSL_cleanse(buf, sizeof(buf));
		}
		u->next = list;
		list = u;
	}
	fclose(f);
	*ok = true;
	return list;
}

static user_cred *
take(user_cred **list, const char *name)
{
	for (user_cred **pp = list; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0)
		{
			user_cred  *u = *pp;

			*pp = u->next;
			u->next = NULL;
			return u;
		}
	return NULL;
}

static bool
same_secret(const user_cred *a, const user_cred *b)
{
	if (a->password || b->password)
		return a->password && b->password && strcmp(a->password, b->password) == 0;
	return strcmp(a->md5, b->md5) == 0 && a->has_scram == b->has_scram &&
		(!a->has_scram || memcmp(&a->scram, &b->scram, sizeof(a->scram)) == 0);
}

/*
 * Make `list` the users.  Clients and pools hold user_cred pointers, so a
 * user already known keeps its object, updated in place when its secret
 * changed (and then forgets the SCRAM key learned from a client); a user
 * no longer in the file is kept aside, never freed, so nothing dangles.
 */
void
userlist_install(user_cred *list)
{
	user_cred  *old = users,
			   *n,
			   *next,
			  **tail = &users;

	users = NULL;
	for (n = list; n; n = next)
	{
		user_cred  *o = take(&old, n->name);

		next = n->next;
		if (!o)
			o = take(&retired_users, n->name);
		if (o && same_secret(o, n))
			cred_free(n);
		else if (o)
		{
			if (o->password)
				OPENSSL_cleanse(o->password, strlen(o->password));
			free(o->password);
			o->password = n->password;
			n->password = NULL;
			memcpy(o->md5, n->md5, sizeof(o->md5));
			o->has_scram = n->has_scram;
			o->scram = n->scram;
			o->has_client_key = false;
			OPENSSL_cleanse(o->client_key, sizeof(o->client_key));
			cred_free(n);
		}
		else
			o = n;
		o->next = NULL;
		*tail = o;
		tail = &o->next;
	}
	while ((n = old) != NULL)
	{
		old = n->next;
		n->next = retired_users;
		retired_users = n;
	}
}

int
userlist_load(const char *file)
{
	bool		ok;
	user_cred  *list = userlist_parse(file, &ok);

	if (!ok)
		return -1;
	userlist_install(list);
	return 0;
}

user_cred *
userlist_find(const char *name)
{
	for (user_cred *u = users; u; u = u->next)
		if (strcmp(u->name, name) == 0)
			return u;
	return NULL;
}

static void
start_scram(client *c, auth_state *st, const scram_keys *k)
{
	static const char mech[] = "SCRAM-SHA-256\0";

	st->stage = A_SCRAM_INIT;
	st->ss = scram_server_new(k);
	send_auth(conn_out(&c->c), 10, mech, sizeof(mech));
}

/* The client is refused: why, for client.c to close it with. */
static enum auth_verdict
refuse(auth_refusal *why, const char *sqlstate, const char *fmt, ...)
{
	va_list		ap;

	why->sqlstate = sqlstate;
	va_start(ap, fmt);
	vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
	va_end(ap);
	return AUTH_REFUSED;
}

/* The login starts: AUTH_OK under trust, else AUTH_MORE (or refused at once). */
enum auth_verdict
auth_start(client *c, auth_refusal *why)
{
	auth_state *st;
	user_cred  *u = c->cred;
	scram_keys	fake;
	unsigned char ck[32];

	if (cfg.auth_type == AUTH_TRUST)
	{
		send_auth(conn_out(&c->c), 0, NULL, 0);
		return AUTH_OK;
	}
	st = calloc(1, sizeof(*st));
	c->auth_state = st;
	st->fake = (u == NULL);
	if (cfg.auth_type == AUTH_MD5 && (!u || u->md5[0]))
	{
		st->stage = A_MD5;
		random_bytes(c->md5_salt, 4);
		send_auth(conn_out(&c->c), 5, c->md5_salt, 4);
		return AUTH_MORE;
	}
	if (u && !u->has_scram && u->password)
	{
		/* a plain password: make a SCRAM secret once, with a random salt */
		u->has_scram = scram_keys_from_password(u->password, &u->scram, ck);
		OPENSSL_cleanse(ck, sizeof(ck));
	}
	if (u && u->has_scram)
	{
		start_scram(c, st, &u->scram);
		return AUTH_MORE;
	}
	if (u)
		return refuse(why, "28P01", "user \"%s\" has only an md5 secret in auth_file; scram-sha-256 needs a plain or SCRAM secret", c->user);
	random_bytes(&fake, sizeof(fake));
	fake.iterations = 4096;
	fake.saltlen = 16;
	st->fake = true;
	start_scram(c, st, &fake);
	return AUTH_MORE;
}

static enum auth_verdict
auth_failed(client *c, auth_refusal *why)
{
	log_info("%s: password authentication failed for user \"%s\"", client_tag(c), c->user);
	return refuse(why, "28P01", "password authentication failed for user \"%s\"", c->user);
}

static enum auth_verdict
auth_ok(client *c)
{
	send_auth(conn_out(&c->c), 0, NULL, 0);
	auth_free(c);
	return AUTH_OK;
}

/* A PasswordMessage / SASL message from the client. */
enum auth_verdict
auth_message(client *c, char type, const unsigned char *body, size_t len, auth_refusal *why)
{
	auth_state *st = c->auth_state;
	const char *err = NULL;
	char	   *reply;

	if (type != 'p' || !st)
		return refuse(why, "08P01", "expected a password message, got message type \"%c\"", type);
	if (st->stage == A_MD5)
	{
		char		buf[40],
					expect[36],
					hex[33];

		if (st->fake || len < 36 || body[len - 1] != '\0')
			return auth_failed(c, why);
		memcpy(buf, c->cred->md5 + 3, 32);
		memcpy(buf + 32, c->md5_salt, 4);
		md5_hex(buf, 36, hex);
		snprintf(expect, sizeof(expect), "md5%s", hex);
		if (strlen((const char *) body) != 35 || CRYPTO_memcmp(expect, body, 35) != 0)
			return auth_failed(c, why);
		return auth_ok(c);
	}
	if (st->stage == A_SCRAM_INIT)
	{
		size_t		ml = strnlen((const char *) body, len);
		uint32_t	dl;

		if (ml == len || strcmp((const char *) body, "SCRAM-SHA-256") != 0)
			return refuse(why, "28000", "unsupported SASL mechanism (only SCRAM-SHA-256)");
		if (len < ml + 5 || (dl = get_u32(body + ml + 1)) != len - ml - 5)
			return refuse(why, "08P01", "malformed SASLInitialResponse");
		reply = scram_server_first(st->ss, (const char *) body + ml + 5, dl, &err);
		if (!reply)
			return refuse(why, "08P01", "%s", err);
		send_auth(conn_out(&c->c), 11, reply, strlen(reply));
		free(reply);
		st->stage = A_SCRAM_FINAL;
		return AUTH_MORE;
	}
	{
		unsigned char ck[32];

		reply = scram_server_final(st->ss, (const char *) body, len, ck, &err);
		if (!reply)
		{
			if (err)
				return refuse(why, "08P01", "%s", err);
			return auth_failed(c, why);
		}
		if (st->fake)
		{
			free(reply);
			return auth_failed(c, why);
		}
		send_auth(conn_out(&c->c), 12, reply, strlen(reply));
		free(reply);
		if (!c->cred->password)
		{
			/* lets the pooler log in to a server sharing this SCRAM secret */
			memcpy(c->cred->client_key, ck, 32);
			c->cred->has_client_key = true;
		}
		OPENSSL_cleanse(ck, sizeof(ck));
		return auth_ok(c);
	}
}

void
auth_free(client *c)
{
	auth_state *st = c->auth_state;

	if (!st)
		return;
	scram_server_free(st->ss);
	free(st);
	c->auth_state = NULL;
}
