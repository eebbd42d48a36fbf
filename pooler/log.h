/*
 * log.h: log.c's entry points: the log file, leveled messages, and the
 * tags that name a client or a server in them.
 */
#ifndef LOG_H
#define LOG_H

#include "pooler.h"
#include "config.h"

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void log_open(const char *file);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (cfg.verbose >= 2) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
/* logins, disconnections, server connections opened and closed: verbose >= 1 */
#define log_verbose(...) do { if (cfg.verbose >= 1) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
const char *client_tag(const struct client *c);	/* "C-12 app@appdb 127.0.0.1:40312" */
const char *server_tag(const struct server *s);	/* "S-3 app@appdb pid 4242" */
void		sock_addr(int fd, bool peer, char *buf, size_t len, int *port);

#endif
