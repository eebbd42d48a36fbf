/*
 * proto.h: proto.c's entry points: reading and writing PostgreSQL
 * protocol messages.
 */
#ifndef PROTO_H
#define PROTO_H

#include "pooler.h"

uint32_t	get_u32(const unsigned char *p);
void		put_msg_start(struct evbuffer *b, char type, size_t bodylen);
void		send_error(struct evbuffer *b, const char *severity, const char *sqlstate,
					   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void		send_error_routine(struct evbuffer *b, const char *severity, const char *sqlstate,
							   const char *routine, const char *msg);
void		send_auth(struct evbuffer *b, uint32_t code, const void *data, size_t len);
void		send_param_status(struct evbuffer *b, const char *name, const char *value);
void		send_key_data(struct evbuffer *b, uint32_t pid, uint32_t key);
void		send_rfq(struct evbuffer *b, char status);
void		send_complete(struct evbuffer *b, const char *tag);
void		send_query(struct evbuffer *b, const char *sql);
const char *error_field(const char *body, size_t len, char field);

#endif
