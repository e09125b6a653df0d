/* authcache: a small, bounded, in-memory record of recent successful password
 * checks, so a client that logs in every minute does not pay (and make the server
 * pay) a yescrypt computation each time. It holds only SHA-256 digests of
 * (user, password, the stored hash that matched) and an expiry: never a password.
 * Because the stored hash is part of the digest, a changed password or a revoked
 * app password can never be answered from the cache. Thread-safe. */
#ifndef CURSUS_AUTHCACHE_H
#define CURSUS_AUTHCACHE_H

#include <stddef.h>

#define AUTHCACHE_KEY_LEN 32
/* Entries kept at most, and how long one lives (seconds). */
#define AUTHCACHE_ENTRIES 4096
#define AUTHCACHE_TTL 300

struct authcache;

struct authcache *authcache_create(void);
void authcache_destroy(struct authcache **c);

/* key_r := SHA-256(name || NUL || password || NUL || hash). */
void authcache_key(const char *name, const char *password, const char *hash,
		   unsigned char key_r[AUTHCACHE_KEY_LEN]);
/* 1 when key was stored and has not expired, else 0. */
int authcache_lookup(struct authcache *c, const unsigned char key[AUTHCACHE_KEY_LEN]);
/* Stores key for AUTHCACHE_TTL seconds, evicting the entry nearest to expiry in its
 * set when the set is full. */
void authcache_store(struct authcache *c, const unsigned char key[AUTHCACHE_KEY_LEN]);

#endif
