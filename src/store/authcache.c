/* authcache: the success cache of password checks (see authcache.h).
 * Promises: bounded memory (AUTHCACHE_ENTRIES slots, allocated once); entries
 * expire after AUTHCACHE_TTL seconds of the monotonic clock; a key is a digest that
 * includes the stored hash, so it cannot outlive a password change; comparisons are
 * constant-time; the digest input, which holds the password, is wiped. */
#include "store/authcache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/xmalloc.h"

/* Set-associative: the key (a uniformly distributed digest) picks a set of WAYS
 * slots, so a lookup compares at most WAYS keys. */
#define AUTHCACHE_WAYS 4
#define AUTHCACHE_SETS (AUTHCACHE_ENTRIES / AUTHCACHE_WAYS)

struct authcache_slot {
	unsigned char key[AUTHCACHE_KEY_LEN];
	long long expiry;         /* monotonic seconds; 0 = empty */
};

struct authcache {
	pthread_mutex_t mu;
	struct authcache_slot *slots;
};

static long long authcache_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* +1 so that no live entry ever has expiry 0, the empty mark. */
	return (long long)ts.tv_sec + 1;
}

struct authcache *authcache_create(void)
{
	struct authcache *c = xcalloc(1, sizeof(*c));
	c->slots = xcalloc(AUTHCACHE_ENTRIES, sizeof(*c->slots));
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void authcache_destroy(struct authcache **cp)
{
	struct authcache *c = *cp;
	if (!c)
		return;
	explicit_bzero(c->slots, AUTHCACHE_ENTRIES * sizeof(*c->slots));
	free(c->slots);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

void authcache_key(const char *name, const char *password, const char *hash,
		   unsigned char key_r[AUTHCACHE_KEY_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;

	/* The NULs keep ("ab","c") and ("a","bc") apart. */
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, name, strlen(name) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, password, strlen(password) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, hash, strlen(hash)) != 1 ||
	    EVP_DigestFinal_ex(ctx, key_r, &len) != 1 || len != AUTHCACHE_KEY_LEN)
		fatalx("authcache: SHA-256 failed");
	/* EVP_MD_CTX_free cleanses the context, which saw the password. */
	EVP_MD_CTX_free(ctx);
}

static struct authcache_slot *authcache_set(struct authcache *c,
					    const unsigned char key[AUTHCACHE_KEY_LEN])
{
	unsigned idx = ((unsigned)key[0] << 8 | key[1]) % AUTHCACHE_SETS;
	return &c->slots[idx * AUTHCACHE_WAYS];
}

int authcache_lookup(struct authcache *c, const unsigned char key[AUTHCACHE_KEY_LEN])
{
	long long now = authcache_now();
	int hit = 0;

	pthread_mutex_lock(&c->mu);
	struct authcache_slot *set = authcache_set(c, key);
	for (int i = 0; i < AUTHCACHE_WAYS; i++) {
		if (set[i].expiry == 0)
			continue;
		if (set[i].expiry <= now) {
			explicit_bzero(&set[i], sizeof(set[i]));
			continue;
		}
		if (CRYPTO_memcmp(set[i].key, key, AUTHCACHE_KEY_LEN) == 0)
			hit = 1;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void authcache_store(struct authcache *c, const unsigned char key[AUTHCACHE_KEY_LEN])
{
	long long now = authcache_now();
	struct authcache_slot *victim = NULL;

	pthread_mutex_lock(&c->mu);
	struct authcache_slot *set = authcache_set(c, key);
	for (int i = 0; i < AUTHCACHE_WAYS; i++) {
		/* The same key again: renew it rather than hold it twice. */
		if (set[i].expiry > now && CRYPTO_memcmp(set[i].key, key, AUTHCACHE_KEY_LEN) == 0) {
			victim = &set[i];
			break;
		}
		if (!victim || set[i].expiry < victim->expiry)
			victim = &set[i];
	}
	memcpy(victim->key, key, AUTHCACHE_KEY_LEN);
	victim->expiry = now + AUTHCACHE_TTL;
	pthread_mutex_unlock(&c->mu);
}
