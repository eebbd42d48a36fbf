/*
 * prepared.c: what is prepared where, for named prepared statements in
 * transaction mode.  Three maps: the process-wide registry of distinct
 * statements (query text + parameter types, shared by every client that
 * prepares the same one and named PERFOPT_<id> on servers), each client's
 * names for them, and each server connection's set of statements it holds,
 * bounded by max_prepared_statements with the least recently used one
 * closed first.  The protocol side (rewriting messages, ordering replies)
 * is prepared_rewrite.c (client messages) and prepared_replies.c (replies).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pooler.h"
#include "txn/txn.h"
#include "prepared.h"

/* ---- registry of distinct statements ---- */

static pstmt **registry;
static unsigned registry_size;	/* buckets, a power of two */
static unsigned registry_count;
static uint64_t next_stmt_id;

static uint64_t
hash_bytes(const unsigned char *p, size_t n)
{
	uint64_t	h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static void
registry_grow(void)
{
	unsigned	size = registry_size ? registry_size * 2 : 256;
	pstmt	  **b = calloc(size, sizeof(*b));

	if (!b)
		return;					/* longer chains, still correct */
	for (unsigned i = 0; i < registry_size; i++)
		for (pstmt *st = registry[i], *next; st; st = next)
		{
			next = st->next;
			st->next = b[st->hash & (size - 1)];
			b[st->hash & (size - 1)] = st;
		}
	free(registry);
	registry = b;
	registry_size = size;
}

pstmt *
stmt_get(const unsigned char *body, uint32_t len)
{
	uint64_t	h = hash_bytes(body, len);
	pstmt	   *st;

	if (registry_count >= registry_size)
		registry_grow();
	if (!registry)
		return NULL;
	for (st = registry[h & (registry_size - 1)]; st; st = st->next)
		if (st->hash == h && st->len == len && memcmp(st->body, body, len) == 0)
		{
			st->refs++;
			return st;
		}
	st = malloc(sizeof(*st) + len);
	if (!st)
		return NULL;
	st->refs = 1;
	st->retired = false;
	st->successor = NULL;
	st->predecessor = NULL;
	st->id = ++next_stmt_id;
	st->hash = h;
	st->len = len;
	memcpy(st->body, body, len);
	snprintf(st->server_name, sizeof(st->server_name), "PERFOPT_%llu", (unsigned long long) st->id);
	st->next = registry[h & (registry_size - 1)];
	registry[h & (registry_size - 1)] = st;
	registry_count++;
	return st;
}

/* Distinct statements alive: none once every client and server is gone. */
unsigned
prepared_stmt_count(void)
{
	return registry_count;
}

pstmt *
stmt_ref(pstmt *st)
{
	if (st)
		st->refs++;
	return st;
}

void
stmt_unref(pstmt *st)
{
	pstmt	  **pp;

	if (!st || --st->refs > 0)
		return;
	if (!st->retired)
	{
		for (pp = &registry[st->hash & (registry_size - 1)]; *pp != st; pp = &(*pp)->next)
			;
		*pp = st->next;
	}
	registry_count--;
	if (st->successor && st->successor->predecessor == st)
		st->successor->predecessor = NULL;
	stmt_unref(st->successor);
	free(st);
}

/*
 * A server said st's plan must not change result type (the table changed
 * under it): every copy the servers hold is stale.  st leaves the registry,
 * so the next Parse of its text, the client's own re-prepare included, makes
 * a fresh statement under a new server name that every server lacks, and
 * the names clients gave st move to that successor at their next use.  The
 * stale copies stay in the servers' sets until LRU closes them.
 */
void
stmt_retire(pstmt *st)
{
	pstmt	  **pp;

	if (st->retired)
		return;
	for (pp = &registry[st->hash & (registry_size - 1)]; *pp != st; pp = &(*pp)->next)
		;
	*pp = st->next;
	st->retired = true;
	st->successor = stmt_get(st->body, st->len);	/* NULL (no memory): st stays in use */
	if (st->successor)
		st->successor->predecessor = st;
}

/* ---- a client's names ---- */

typedef struct cname
{
	struct cname *next;
	pstmt	   *st;
	uint64_t	hash;
	char		name[];
} cname;

struct client_prep
{
	cname	  **buckets;
	unsigned	size;
	unsigned	count;
	bool		skip_till_sync; /* we answered an error: drop until Sync */
};

static client_prep *
cprep(client *c)
{
	if (!c->prep)
		c->prep = calloc(1, sizeof(client_prep));
	return c->prep;
}

static cname **
cname_slot(client_prep *cp, const char *name, uint64_t h)
{
	cname	  **pp = &cp->buckets[h & (cp->size - 1)];

	while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
		pp = &(*pp)->next;
	return pp;
}

pstmt *
client_stmt_find(client *c, const char *name)
{
	client_prep *cp = c->prep;
	cname	  **pp;

	if (!cp || !cp->count)
		return NULL;
	pp = cname_slot(cp, name, hash_bytes((const unsigned char *) name, strlen(name)));
	return *pp ? (*pp)->st : NULL;
}

/* The text of c's statement of that name (its Parse body starts with it). */
const char *
prepared_statement_text(client *c, const char *name)
{
	pstmt	   *st = client_stmt_find(c, name);

	return st ? (const char *) st->body : NULL;
}

/* c's statement of that name, moved to its successor first if it was retired. */
pstmt *
client_stmt_current(client *c, const char *name)
{
	pstmt	   *st = client_stmt_find(c, name),
			   *cur = st;

	while (cur && cur->successor)
		cur = cur->successor;
	if (cur == st)
		return st;
	st = client_stmt_take(c, name);
	if (!client_stmt_add(c, name, cur))
		cur = NULL;				/* out of memory: the name is gone, as 26000 will say */
	stmt_unref(st);
	return cur;
}

unsigned
client_stmt_count(client *c)
{
	return c->prep ? c->prep->count : 0;
}

static void
client_grow(client_prep *cp)
{
	unsigned	size = cp->size ? cp->size * 2 : 8;
	cname	  **b = calloc(size, sizeof(*b));

	if (!b)
		return;
	for (unsigned i = 0; i < cp->size; i++)
		for (cname *e = cp->buckets[i], *next; e; e = next)
		{
			next = e->next;
			e->next = b[e->hash & (size - 1)];
			b[e->hash & (size - 1)] = e;
		}
	free(cp->buckets);
	cp->buckets = b;
	cp->size = size;
}

/* Name st for c (taking a new reference); false when out of memory. */
bool
client_stmt_add(client *c, const char *name, pstmt *st)
{
	client_prep *cp = cprep(c);
	size_t		n = strlen(name);
	cname	   *e;

	if (!cp)
		return false;
	if (cp->count >= cp->size)
		client_grow(cp);
	if (!cp->buckets || !(e = malloc(sizeof(*e) + n + 1)))
		return false;
	e->hash = hash_bytes((const unsigned char *) name, n);
	e->st = stmt_ref(st);
	memcpy(e->name, name, n + 1);
	e->next = cp->buckets[e->hash & (cp->size - 1)];
	cp->buckets[e->hash & (cp->size - 1)] = e;
	cp->count++;
	return true;
}

/* Forget c's name; returns its statement with the reference the name held. */
pstmt *
client_stmt_take(client *c, const char *name)
{
	client_prep *cp = c->prep;
	cname	  **pp,
			   *e;
	pstmt	   *st;

	if (!cp || !cp->count)
		return NULL;
	pp = cname_slot(cp, name, hash_bytes((const unsigned char *) name, strlen(name)));
	if (!(e = *pp))
		return NULL;
	*pp = e->next;
	st = e->st;
	free(e);
	cp->count--;
	return st;
}

/* DEALLOCATE ALL or DISCARD ALL from the client: all its names are gone. */
void
client_stmt_clear(client *c)
{
	client_prep *cp = c->prep;

	if (!cp)
		return;
	for (unsigned i = 0; i < cp->size; i++)
		for (cname *e = cp->buckets[i], *next; e; e = next)
		{
			next = e->next;
			stmt_unref(e->st);
			free(e);
		}
	if (cp->buckets)
		memset(cp->buckets, 0, sizeof(*cp->buckets) * cp->size);
	cp->count = 0;
}

bool
client_skipping(client *c)
{
	return c->prep && c->prep->skip_till_sync;
}

void
client_set_skipping(client *c, bool on)
{
	if (on || c->prep)
		cprep(c)->skip_till_sync = on;
}

void
prepared_client_free(client *c)
{
	if (!c->prep)
		return;
	client_stmt_clear(c);
	free(c->prep->buckets);
	free(c->prep);
	c->prep = NULL;
}

/* ---- a server connection's set ---- */

static sentry **
sentry_slot(server_prep *sp, pstmt *st)
{
	sentry	  **pp = &sp->buckets[st->id & (sp->size - 1)];

	while (*pp && (*pp)->st != st)
		pp = &(*pp)->hnext;
	return pp;
}

server_prep *
sprep(server *s)
{
	if (!s->prep)
	{
		s->prep = calloc(1, sizeof(server_prep));
		if (s->prep)
			TAILQ_INIT(&s->prep->lru);
	}
	return s->prep;
}

bool
server_has(server_prep *sp, pstmt *st)
{
	return sp->count > 0 && *sentry_slot(sp, st) != NULL;
}

/* A use: st becomes the most recently used.  Returns false if absent. */
bool
server_touch(server_prep *sp, pstmt *st)
{
	sentry	   *e = sp->count ? *sentry_slot(sp, st) : NULL;

	if (!e)
		return false;
	TAILQ_REMOVE(&sp->lru, e, lru);
	TAILQ_INSERT_TAIL(&sp->lru, e, lru);
	return true;
}

static void
server_grow(server_prep *sp)
{
	unsigned	size = sp->size ? sp->size * 2 : 16;
	sentry	  **b = calloc(size, sizeof(*b));

	if (!b)
		return;
	for (unsigned i = 0; i < sp->size; i++)
		for (sentry *e = sp->buckets[i], *next; e; e = next)
		{
			next = e->hnext;
			e->hnext = b[e->st->id & (size - 1)];
			b[e->st->id & (size - 1)] = e;
		}
	free(sp->buckets);
	sp->buckets = b;
	sp->size = size;
}

bool
server_add(server_prep *sp, pstmt *st)
{
	sentry	   *e;

	if (server_touch(sp, st))
		return true;
	if ((unsigned) sp->count >= sp->size)
		server_grow(sp);
	if (!sp->buckets || !(e = malloc(sizeof(*e))))
		return false;
	e->st = stmt_ref(st);
	e->hnext = sp->buckets[st->id & (sp->size - 1)];
	sp->buckets[st->id & (sp->size - 1)] = e;
	TAILQ_INSERT_TAIL(&sp->lru, e, lru);
	sp->count++;
	return true;
}

void
server_remove(server_prep *sp, pstmt *st)
{
	sentry	  **pp,
			   *e;

	if (!sp->count || !(e = *(pp = sentry_slot(sp, st))))
		return;
	*pp = e->hnext;
	TAILQ_REMOVE(&sp->lru, e, lru);
	stmt_unref(e->st);
	free(e);
	sp->count--;
}

pstmt *
server_lru(server_prep *sp)
{
	sentry	   *e = TAILQ_FIRST(&sp->lru);

	return e ? e->st : NULL;
}

/* The server dropped every prepared statement (DISCARD ALL, DEALLOCATE ALL). */
void
server_clear(server_prep *sp)
{
	sentry	   *e;

	while ((e = TAILQ_FIRST(&sp->lru)) != NULL)
		server_remove(sp, e->st);
}

/*
 * A full reset (a session-mode client left) is about to run on s: what it
 * or that client did to our statements is unknown, so the set is emptied.
 * True when it held any: the caller then has the server drop them too.
 */
bool
prepared_server_reset(server *s)
{
	if (!s->prep || !s->prep->count)
		return false;
	server_clear(s->prep);
	return true;
}
