/*
 * scram.c: SCRAM-SHA-256 (RFC 5802, RFC 7677) for both ends of the pooler:
 * the server side that checks clients against auth_file secrets, and the
 * client side that logs the pooler in to PostgreSQL.  Also MD5 and
 * randomness.  Built on OpenSSL's EVP digests, HMAC and PBKDF2; proofs are
 * compared in constant time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pooler.h"
#include "scram.h"

/* PostgreSQL uses 4096 by default (scram_iterations in 16+) */
#define SCRAM_MAX_SERVER_ITERATIONS 100000

#define KEYLEN 32
#define NONCE_RAW 18
#define DEFAULT_ITER 4096

struct scram_server
{
	scram_keys	k;
	char		gs2[8];			/* "n,," or "y,," */
	char	   *client_first_bare;
	char	   *server_first;
	char	   *nonce;
};

struct scram_client
{
	char	   *password;
	bool		have_client_key;
	unsigned char client_key[KEYLEN];
	scram_keys	known;
	bool		have_known;
	char		cnonce[40];
	char	   *client_first_bare;
	unsigned char server_sig[KEYLEN];
};

bool
random_bytes(void *buf, size_t n)
{
	return RAND_bytes(buf, (int) n) == 1;
}

static void
sha256(const void *d, size_t n, unsigned char out[KEYLEN])
{
	unsigned int ol = KEYLEN;

	EVP_Digest(d, n, out, &ol, EVP_sha256(), NULL);
}

static void
hmac(const unsigned char *key, const void *d, size_t n, unsigned char out[KEYLEN])
{
	unsigned int ol = KEYLEN;

	HMAC(EVP_sha256(), key, KEYLEN, d, n, out, &ol);
}

void
md5_hex(const void *data, size_t len, char out[33])
{
	unsigned char d[16];
	unsigned int dl = 16;

	EVP_Digest(data, len, d, &dl, EVP_md5(), NULL);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static char *
b64_encode(const unsigned char *d, int n)
{
	char	   *out = malloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *) out, d, n);
	return out;
}

/* Decoded length, or -1; handles the padding EVP_DecodeBlock leaves in. */
static int
b64_decode(const char *s, size_t n, unsigned char *out, int max)
{
	unsigned char tmp[256];
	int			len;

	if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(tmp))
		return -1;
	len = EVP_DecodeBlock(tmp, (const unsigned char *) s, (int) n);
	if (len < 0)
		return -1;
	if (s[n - 1] == '=')
		len--;
	if (s[n - 2] == '=')
		len--;
	if (len > max)
		return -1;
	memcpy(out, tmp, len);
	return len;
}

static void
keys_from_salted(const unsigned char sp[KEYLEN], unsigned char ck[KEYLEN], scram_keys *k)
{
	hmac(sp, "Client Key", 10, ck);
	sha256(ck, KEYLEN, k->stored_key);
	hmac(sp, "Server Key", 10, k->server_key);
}

/* A small cache: PBKDF2 costs milliseconds and would stall the loop. */
static struct
{
	unsigned char pwhash[KEYLEN];
	unsigned char salt[32];
	int			saltlen;
	int			iter;
	unsigned char ck[KEYLEN];
	scram_keys	k;
}			kcache[8];
static int	kcache_next;

static void
derive(const char *password, const unsigned char *salt, int saltlen, int iter,
	   unsigned char ck[KEYLEN], scram_keys *k)
{
	unsigned char pwh[KEYLEN],
				sp[KEYLEN];

	sha256(password, strlen(password), pwh);
	for (int i = 0; i < 8; i++)
		if (kcache[i].iter == iter && kcache[i].saltlen == saltlen &&
			memcmp(kcache[i].salt, salt, saltlen) == 0 &&
			CRYPTO_memcmp(kcache[i].pwhash, pwh, KEYLEN) == 0)
		{
			memcpy(ck, kcache[i].ck, KEYLEN);
			*k = kcache[i].k;
			return;
		}
	PKCS5_PBKDF2_HMAC(password, (int) strlen(password), salt, saltlen, iter, EVP_sha256(), KEYLEN, sp);
	k->iterations = iter;
	memcpy(k->salt, salt, saltlen);
	k->saltlen = saltlen;
	keys_from_salted(sp, ck, k);
	memcpy(kcache[kcache_next].pwhash, pwh, KEYLEN);
	memcpy(kcache[kcache_next].salt, salt, saltlen);
	kcache[kcache_next].saltlen = saltlen;
	kcache[kcache_next].iter = iter;
	memcpy(kcache[kcache_next].ck, ck, KEYLEN);
	kcache[kcache_next].k = *k;
	kcache_next = (kcache_next + 1) % 8;
}

bool
scram_keys_from_password(const char *password, scram_keys *k, unsigned char client_key[KEYLEN])
{
	unsigned char salt[16];

	if (!random_bytes(salt, sizeof(salt)))
		return false;
	derive(password, salt, sizeof(salt), DEFAULT_ITER, client_key, k);
	return true;
}

/* SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey> */
bool
scram_parse_secret(const char *secret, scram_keys *k)
{
	const char *p,
			   *colon,
			   *dollar,
			   *colon2;

	if (strncmp(secret, "SCRAM-SHA-256$", 14) != 0)
		return false;
	p = secret + 14;
	k->iterations = atoi(p);
	colon = strchr(p, ':');
	dollar = colon ? strchr(colon, '$') : NULL;
	colon2 = dollar ? strchr(dollar, ':') : NULL;
	if (k->iterations <= 0 || !colon2)
		return false;
	k->saltlen = b64_decode(colon + 1, dollar - colon - 1, k->salt, sizeof(k->salt));
	if (k->saltlen <= 0)
		return false;
	if (b64_decode(dollar + 1, colon2 - dollar - 1, k->stored_key, KEYLEN) != KEYLEN)
		return false;
	if (b64_decode(colon2 + 1, strlen(colon2 + 1), k->server_key, KEYLEN) != KEYLEN)
		return false;
	return true;
}

/* The value of attribute "x=" in a comma-separated SCRAM message. */
static char *
attr(const char *msg, size_t len, char name)
{
	size_t		i = 0;

	while (i + 1 < len)
	{
		size_t		j = i;

		while (j < len && msg[j] != ',')
			j++;
		if (msg[i] == name && msg[i + 1] == '=')
			return strndup(msg + i + 2, j - i - 2);
		i = j + 1;
	}
	return NULL;
}

struct scram_server *
scram_server_new(const scram_keys *k)
{
	struct scram_server *st = calloc(1, sizeof(*st));

	st->k = *k;
	return st;
}

char *
scram_server_first(struct scram_server *st, const char *msg, size_t len, const char **err)
{
	const char *bare;
	char	   *cnonce,
			   *salt,
			   *snonce;
	unsigned char raw[NONCE_RAW];
	size_t		n;

	*err = "malformed SCRAM message";
	if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
	{
		if (len > 0 && msg[0] == 'p')
			*err = "channel binding is not supported";
		return NULL;
	}
	bare = memchr(msg + 2, ',', len - 2);
	if (!bare)
		return NULL;
	bare++;
	n = bare - msg;
	if (n >= sizeof(st->gs2))
		return NULL;
	memcpy(st->gs2, msg, n);
	st->gs2[n] = '\0';
	st->client_first_bare = strndup(bare, len - n);
	cnonce = attr(st->client_first_bare, strlen(st->client_first_bare), 'r');
	if (!cnonce || !*cnonce || !random_bytes(raw, sizeof(raw)))
	{
		free(cnonce);
		return NULL;
	}
	snonce = b64_encode(raw, sizeof(raw));
	n = strlen(cnonce) + strlen(snonce) + 1;
	st->nonce = malloc(n);
	snprintf(st->nonce, n, "%s%s", cnonce, snonce);
	salt = b64_encode(st->k.salt, st->k.saltlen);
	n = strlen(st->nonce) + strlen(salt) + 32;
	st->server_first = malloc(n);
	snprintf(st->server_first, n, "r=%.255s,s=%.255s,i=%d", st->nonce, salt, st->k.iterations);
	free(cnonce);
	free(snonce);
	free(salt);
	*err = NULL;
	return strdup(st->server_first);
}

char *
scram_server_final(struct scram_server *st, const char *msg, size_t len,
				   unsigned char client_key_out[KEYLEN], const char **err)
{
	char	   *cb = attr(msg, len, 'c'),
			   *nonce = attr(msg, len, 'r'),
			   *proof = attr(msg, len, 'p'),
			   *gs2 = b64_encode((unsigned char *) st->gs2, (int) strlen(st->gs2)),
			   *authmsg = NULL,
			   *out = NULL,
			   *sig64;
	const char *pp;
	unsigned char p[KEYLEN],
				csig[KEYLEN],
				ck[KEYLEN],
				h[KEYLEN],
				ssig[KEYLEN];
	size_t		wl;

	*err = "malformed SCRAM message";
	if (!cb || !nonce || !proof || !st->nonce)
		goto done;
	if (strcmp(cb, gs2) != 0 || strcmp(nonce, st->nonce) != 0)
	{
		*err = "SCRAM nonce or channel binding mismatch";
		goto done;
	}
	if (b64_decode(proof, strlen(proof), p, KEYLEN) != KEYLEN)
		goto done;
	pp = NULL;
	for (size_t i = 0; i + 2 < len; i++)
		if (msg[i] == ',' && msg[i + 1] == 'p' && msg[i + 2] == '=')
			pp = msg + i;
	if (!pp)
		goto done;
	wl = pp - msg;
	authmsg = malloc(strlen(st->client_first_bare) + strlen(st->server_first) + wl + 3);
	sprintf(authmsg, "%s,%s,%.*s", st->client_first_bare, st->server_first, (int) wl, msg);
	hmac(st->k.stored_key, authmsg, strlen(authmsg), csig);
	for (int i = 0; i < KEYLEN; i++)
		ck[i] = p[i] ^ csig[i];
	sha256(ck, KEYLEN, h);
	if (CRYPTO_memcmp(h, st->k.stored_key, KEYLEN) != 0)
	{
		*err = NULL;			/* wrong password: the caller says so */
		goto done;
	}
	memcpy(client_key_out, ck, KEYLEN);
	hmac(st->k.server_key, authmsg, strlen(authmsg), ssig);
	sig64 = b64_encode(ssig, KEYLEN);
	out = malloc(strlen(sig64) + 3);
	sprintf(out, "v=%s", sig64);
	free(sig64);
	*err = NULL;
done:
	free(cb);
	free(nonce);
	free(proof);
	free(gs2);
	free(authmsg);
	return out;
}

void
scram_server_free(struct scram_server *st)
{
	if (!st)
		return;
	free(st->client_first_bare);
	free(st->server_first);
	free(st->nonce);
	OPENSSL_cleanse(&st->k, sizeof(st->k));
	free(st);
}

struct scram_client *
scram_client_new(const char *password, const unsigned char *client_key, const scram_keys *known)
{
	struct scram_client *st = calloc(1, sizeof(*st));
	unsigned char raw[NONCE_RAW];
	char	   *n;

	if (password)
		st->password = strdup(password);
	if (client_key && known)
	{
		st->have_client_key = true;
		memcpy(st->client_key, client_key, KEYLEN);
		st->known = *known;
		st->have_known = true;
	}
	random_bytes(raw, sizeof(raw));
	n = b64_encode(raw, sizeof(raw));
	snprintf(st->cnonce, sizeof(st->cnonce), "%s", n);
	free(n);
	return st;
}

char *
scram_client_first(struct scram_client *st)
{
	char	   *out = malloc(strlen(st->cnonce) + 16);

	st->client_first_bare = malloc(strlen(st->cnonce) + 8);
	sprintf(st->client_first_bare, "n=,r=%s", st->cnonce);
	sprintf(out, "n,,%s", st->client_first_bare);
	return out;
}

char *
scram_client_final(struct scram_client *st, const char *msg, size_t len, const char **err)
{
	char	   *nonce = attr(msg, len, 'r'),
			   *salt64 = attr(msg, len, 's'),
			   *iter = attr(msg, len, 'i'),
			   *authmsg = NULL,
			   *out = NULL,
			   *proof64,
			   *without;
	unsigned char salt[32],
				ck[KEYLEN],
				csig[KEYLEN],
				proof[KEYLEN];
	scram_keys	k;
	int			saltlen,
				it;

	*err = "malformed SCRAM message from server";
	if (!nonce || !salt64 || !iter || strncmp(nonce, st->cnonce, strlen(st->cnonce)) != 0)
		goto done;
	saltlen = b64_decode(salt64, strlen(salt64), salt, sizeof(salt));
	it = atoi(iter);
	if (saltlen <= 0 || it <= 0)
		goto done;
	/* the key is derived on the event loop: a huge count would stall every client */
	if (it > SCRAM_MAX_SERVER_ITERATIONS)
	{
		*err = "server asks for more SCRAM iterations than the pooler allows (100000)";
		goto done;
	}
	if (st->password)
		derive(st->password, salt, saltlen, it, ck, &k);
	else if (st->have_client_key && st->known.iterations == it &&
			 st->known.saltlen == saltlen && memcmp(st->known.salt, salt, saltlen) == 0)
	{
		memcpy(ck, st->client_key, KEYLEN);
		k = st->known;
	}
	else
	{
		*err = "no password for the server: put a plain password or the server's own SCRAM secret in auth_file, or password= in [databases]";
		goto done;
	}
	without = malloc(strlen(nonce) + 16);
	sprintf(without, "c=biws,r=%s", nonce);
	authmsg = malloc(strlen(st->client_first_bare) + len + strlen(without) + 3);
	sprintf(authmsg, "%s,%.*s,%s", st->client_first_bare, (int) len, msg, without);
	hmac(k.stored_key, authmsg, strlen(authmsg), csig);
	for (int i = 0; i < KEYLEN; i++)
		proof[i] = ck[i] ^ csig[i];
	hmac(k.server_key, authmsg, strlen(authmsg), st->server_sig);
	proof64 = b64_encode(proof, KEYLEN);
	out = malloc(strlen(without) + strlen(proof64) + 4);
	sprintf(out, "%s,p=%s", without, proof64);
	free(proof64);
	free(without);
	*err = NULL;
done:
	free(nonce);
	free(salt64);
	free(iter);
	free(authmsg);
	return out;
}

bool
scram_client_verify(struct scram_client *st, const char *msg, size_t len)
{
	char	   *v = attr(msg, len, 'v');
	unsigned char sig[KEYLEN];
	bool		ok;

	ok = v && b64_decode(v, strlen(v), sig, KEYLEN) == KEYLEN &&
		CRYPTO_memcmp(sig, st->server_sig, KEYLEN) == 0;
	free(v);
	return ok;
}

void
scram_client_free(struct scram_client *st)
{
	if (!st)
		return;
	if (st->password)
	{
		OPENSSL_cleanse(st->password, strlen(st->password));
		free(st->password);
	}
	free(st->client_first_bare);
	OPENSSL_cleanse(st, sizeof(*st));
	free(st);
}
