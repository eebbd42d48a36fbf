/*
 * proto.c: building the few protocol-3 messages the pooler writes itself
 * (errors, authentication requests, parameter reports, internal queries)
 * and reading fields out of ErrorResponse.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pooler.h"
#include "proto.h"

uint32_t
get_u32(const unsigned char *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

void
put_msg_start(struct evbuffer *b, char type, size_t bodylen)
{
	unsigned char h[5];
	uint32_t	n = htonl((uint32_t) bodylen + 4);

	h[0] = type;
	memcpy(h + 1, &n, 4);
	evbuffer_add(b, h, 5);
}

/* An ErrorResponse; routine (the R field, which some drivers read) may be NULL. */
void
send_error_routine(struct evbuffer *b, const char *severity, const char *sqlstate, const char *routine,
				   const char *msg)
{
	char		body[800];
	size_t		len = 0;

	len += snprintf(body + len, sizeof(body) - len, "S%s", severity) + 1;
	len += snprintf(body + len, sizeof(body) - len, "V%s", severity) + 1;
	len += snprintf(body + len, sizeof(body) - len, "C%s", sqlstate) + 1;
	len += snprintf(body + len, sizeof(body) - len, "M%.511s", msg) + 1;
	if (routine)
		len += snprintf(body + len, sizeof(body) - len, "R%.63s", routine) + 1;
	body[len++] = '\0';
	put_msg_start(b, 'E', len);
	evbuffer_add(b, body, len);
}

void
send_error(struct evbuffer *b, const char *severity, const char *sqlstate, const char *fmt, ...)
{
	char		msg[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_error_routine(b, severity, sqlstate, NULL, msg);
}

void
send_auth(struct evbuffer *b, uint32_t code, const void *data, size_t len)
{
	uint32_t	n = htonl(code);

	put_msg_start(b, 'R', 4 + len);
	evbuffer_add(b, &n, 4);
	if (len)
		evbuffer_add(b, data, len);
}

void
send_param_status(struct evbuffer *b, const char *name, const char *value)
{
	size_t		a = strlen(name) + 1,
				v = strlen(value) + 1;

	put_msg_start(b, 'S', a + v);
	evbuffer_add(b, name, a);
	evbuffer_add(b, value, v);
}

void
send_key_data(struct evbuffer *b, uint32_t pid, uint32_t key)
{
	uint32_t	v[2] = {htonl(pid), htonl(key)};

	put_msg_start(b, 'K', 8);
	evbuffer_add(b, v, 8);
}

void
send_rfq(struct evbuffer *b, char status)
{
	put_msg_start(b, 'Z', 1);
	evbuffer_add(b, &status, 1);
}

/* CommandComplete */
void
send_complete(struct evbuffer *b, const char *tag)
{
	put_msg_start(b, 'C', strlen(tag) + 1);
	evbuffer_add(b, tag, strlen(tag) + 1);
}

void
send_query(struct evbuffer *b, const char *sql)
{
	size_t		n = strlen(sql) + 1;

	put_msg_start(b, 'Q', n);
	evbuffer_add(b, sql, n);
}

/* The value of one field ('C' code, 'M' message...) of an ErrorResponse body. */
const char *
error_field(const char *body, size_t len, char field)
{
	size_t		i = 0;

	while (i < len && body[i])
	{
		const char *v = body + i + 1;
		size_t		vl = strnlen(v, len - i - 1);

		if (body[i] == field && i + 1 + vl < len)
			return v;
		i += 2 + vl;
	}
	return "";
}
