/* password: the secrets we store for a user, derived from the password once at
 * `cursus user add|passwd` time: a yescrypt hash (libxcrypt) for plain checks, and
 * SCRAM-SHA-1/256 keys (RFC 5802, RFC 7677) so SCRAM never needs the password. */
#ifndef CURSUS_PASSWORD_H
#define CURSUS_PASSWORD_H

#include <stddef.h>

#include "store/userdb.h"

/* RFC 7677 section 4: "the hash iteration-count announced by a server SHOULD be
 * at least 4096"; that floor dates from 2015, so new keys get more by default
 * (scram_iterations). The client pays the same count at every login. */
#define PASSWORD_SCRAM_ITERATIONS_MIN 4096
#define PASSWORD_SCRAM_ITERATIONS 10000
#define PASSWORD_SCRAM_ITERATIONS_MAX 10000000
#define PASSWORD_SCRAM_SALT_LEN 16

enum password_scram_hash { PASSWORD_SCRAM_SHA1, PASSWORD_SCRAM_SHA256 };

/* A fresh yescrypt hash ("$y$...") of password, malloc'd; NULL on failure. */
char *password_hash(const char *password);

/* 1 when password matches hash, else 0 (also for a malformed hash). The final
 * comparison is constant-time. */
int password_verify(const char *hash, const char *password);

/* A fixed, valid yescrypt hash made once per process: verify against it when the
 * user is unknown, so that a miss costs the same time as a wrong password. */
const char *password_dummy_hash(void);

/* Derives SCRAM keys with a fresh random salt (PASSWORD_SCRAM_SALT_LEN octets).
 * Fills *keys_r with malloc'd base64 strings. 0 ok, -1 failure (e.g. the password
 * is refused by SASLprep). */
int password_scram_make(enum password_scram_hash hash, const char *password,
			unsigned iterations, struct scram_keys *keys_r);

/* The same with a given salt (raw octets), for tests and migrations. */
int password_scram_derive(enum password_scram_hash hash, const char *password,
			  const unsigned char *salt, size_t saltlen, unsigned iterations,
			  struct scram_keys *keys_r);

/* Frees the strings of *keys and zeroes it. */
void password_scram_keys_clear(struct scram_keys *keys);

#endif
