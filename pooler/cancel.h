/*
 * cancel.h: cancel.c's entry points: CancelRequests passed to the right
 * server, or answered here for a client still queued.
 */
#ifndef CANCEL_H
#define CANCEL_H

#include "pooler.h"

void		cancel_request(uint32_t pid, uint32_t key);
void		cancel_server(server *s);
void		cancel_forget(server *s);
void		cancel_shutdown(void);

#endif
