/*
 * txn/prepared.h: the types prepared.c (what is prepared where),
 * prepared_rewrite.c (rewriting client messages) and prepared_replies.c
 * (matching the server's replies) share, and what they call in each other.
 * Nothing else in the pooler looks inside them: txn/txn.h has the entry
 * points.
 */
#ifndef PREPARED_H
#define PREPARED_H

#include "pooler.h"

/* A distinct statement: the Parse body after the name (query, parameter types). */
typedef struct pstmt
{
	int			refs;			/* client names, server sets, replies in flight */
	bool		retired;		/* its plan went stale: out of the registry */
	struct pstmt *successor;	/* retired: the fresh statement of the same text */
	struct pstmt *predecessor;	/* the retired one it replaces, while that lives (no reference) */
	uint64_t	id;
	uint64_t	hash;
	struct pstmt *next;			/* registry chain */
	char		server_name[32];	/* PERFOPT_<id>, up to 20 digits */
	uint32_t	len;
	unsigned char body[];
} pstmt;

typedef struct sentry
{
	pstmt	   *st;
	struct sentry *hnext;
	TAILQ_ENTRY(sentry) lru;
} sentry;

/* How one expected reply is handled when it arrives (or reaches the head). */
enum
{
	SLOT_FORWARD,				/* the client's message: its reply goes to the client */
	SLOT_SWALLOW,				/* ours (a Parse or Close we added): reply dropped */
	SLOT_SYNTH					/* answered by us, in this position, nothing sent */
};

/* what undoing a slot restores when the server skipped or failed it */
enum
{
	UNDO_NONE,
	UNDO_ADDED,					/* st was added (to the server set / a client name) */
	UNDO_REMOVED				/* st was removed */
};

typedef struct pslot
{
	char		kind;			/* message answered: P B C D E S Q F; SYNTH: 1 3 E */
	char		how;
	char		set_undo;
	char		name_undo;
	bool		first;			/* the batch's first reply: it may be re-run (retry_batch) */
	pstmt	   *st;
	char	   *text;			/* client's statement name, or SYNTH error message */
	const char *sqlstate;		/* SYNTH errors */
} pslot;

struct server_prep
{
	sentry	  **buckets;
	unsigned	size;
	int			count;
	TAILQ_HEAD(, sentry) lru;	/* least recently used first */
	pslot	   *ring;			/* replies expected since the last release */
	unsigned	cap;			/* a power of two */
	unsigned	head;
	unsigned	n;
	bool		server_skipping;	/* the server errored: it ignores all until Sync */
	bool		retry_due;		/* a batch was put back in its client's input: forward it */
};

pstmt	   *stmt_get(const unsigned char *body, uint32_t len);
unsigned	prepared_stmt_count(void);
pstmt	   *stmt_ref(pstmt *st);
void		stmt_unref(pstmt *st);
void		stmt_retire(pstmt *st);
pstmt	   *client_stmt_current(client *c, const char *name);

pstmt	   *client_stmt_find(client *c, const char *name);
unsigned	client_stmt_count(client *c);
bool		client_stmt_add(client *c, const char *name, pstmt *st);
pstmt	   *client_stmt_take(client *c, const char *name);
void		client_stmt_clear(client *c);
bool		client_skipping(client *c);
void		client_set_skipping(client *c, bool on);

server_prep *sprep(server *s);
bool		server_has(server_prep *sp, pstmt *st);
bool		server_touch(server_prep *sp, pstmt *st);
bool		server_add(server_prep *sp, pstmt *st);
void		server_remove(server_prep *sp, pstmt *st);
pstmt	   *server_lru(server_prep *sp);
void		server_clear(server_prep *sp);

/* what PostgreSQL says when a prepared plan's result type changed; drivers read the routine */
#define STALE_SQLSTATE "0A000"
#define STALE_ROUTINE "RevalidateCachedQuery"
#define STALE_MESSAGE "cached plan must not change result type"
int			bind_follows_successor(const unsigned char *msg, size_t avail, uint32_t len);

/* a batch's bytes kept while it may have to re-run (prepared_replies.c) */
#define RETRY_MAX 16384
void		retry_start(server *s, client *c, pslot *sl);
void		retry_stop(server *s);

/* the reply FIFO (prepared_replies.c), filled by prepared_rewrite.c */
pslot	   *expect(server *s, char kind, char how);
void		settle(server *s);

#endif
