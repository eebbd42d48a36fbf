/*
 * fuzz_common.h: what the perfopt-pooler fuzz harnesses share: the event
 * base main.c would own, configuration and auth files fed from memory
 * (memfd, no temporary files), socket pairs standing in for clients and
 * servers, and the invariants every harness checks after each input.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "strpool.h"
#include "proto.h"
#include "auth.h"
#include "client.h"
#include "pool.h"
#include "net/net.h"
#include "ops/ops.h"

/* Abort (a libFuzzer crash with a stack) when an invariant breaks. */
#define FUZZ_ASSERT(cond) \
	do { if (!(cond)) fuzz_fail(#cond, __FILE__, __LINE__); } while (0)
void		fuzz_fail(const char *what, const char *file, int line) __attribute__((noreturn));

/* An in-memory file for config_load / userlist_load; close with fuzz_memfile_close. */
int			fuzz_memfile(const void *data, size_t len, char path[64]);
void		fuzz_memfile_close(int fd);

/* Parse errors go to stderr by design: silence them around a parse. */
int			fuzz_quiet_stderr(void);
void		fuzz_restore_stderr(int saved);

/* Event base, quiet log, SIGPIPE ignored; the standard config and auth file loaded. */
void		fuzz_init_base(void);
void		fuzz_init_pooler(const char *host);	/* Unix socket dir of the databases */

/* A pool that already knows the server's parameters (clients get to idle). */
pool	   *fuzz_ready_pool(const char *user, const char *dbname);

/* A non-blocking socket pair: *ours goes to the pooler object, *peer stays here. */
void		fuzz_socketpair(int *ours, int *peer);
/* Read what the pooler wrote to a peer; returns bytes appended to out (may be NULL). */
size_t		fuzz_drain(int peer, struct evbuffer *out);
/* Run every callback that is ready now, a few rounds (deferred closes, kicks). */
void		fuzz_run_loop(void);
/* Open sockets of this process: the harness checks none leak. */
int			fuzz_count_sockets(void);
/* Every byte is a complete, well-framed backend message (after leading 'N's). */
void		fuzz_check_backend_stream(const unsigned char *p, size_t len, const char *types);

#endif
