/*
 * scram.h: scram.c's entry points: the SCRAM-SHA-256 and MD5 primitives
 * both sides of the pooler use (auth.c checking clients, server_login.c
 * logging in to PostgreSQL), and random bytes for salts, nonces and keys.
 */
#ifndef SCRAM_H
#define SCRAM_H

#include "pooler.h"

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

#endif
