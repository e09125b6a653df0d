/* userdb: the credential and address store, behind one narrow interface so other
 * backends (PostgreSQL, LDAP, Dovecot auth) can sit beside SQLite. Every call blocks:
 * the daemon calls it only from worker threads. Handles are safe to share between
 * threads.
 *
 * Names: a user is a full address, "alice@example.test", stored lower case. Its
 * mailbox is "<domain>/<local-part>". An alias maps an address, or "@domain" for the
 * domain's catch-all, to one or more target addresses. */
#ifndef CURSUS_USERDB_H
#define CURSUS_USERDB_H

#include <stddef.h>

struct userdb;

/* SCRAM keys for one hash (RFC 5802), as stored: base64 strings. */
struct scram_keys {
	char *salt;
	unsigned iterations;
	char *stored_key;
	char *server_key;
};

struct user_record {
	char *name;
	char *hash;               /* yescrypt, "$y$..." */
	struct scram_keys sha1, sha256;
	long long created;
};

/* Opens (creating the schema when create is set). On error returns NULL and sets
 * *err to a malloc'd message. */
struct userdb *userdb_open(const char *path, int create, char **err);
void userdb_close(struct userdb **db);

/* Resolves a recipient for local delivery: the user itself, its aliases (recursively,
 * bounded depth), else the domain's catch-all. Fills *mailboxes_r with malloc'd
 * "domain/local-part" strings (free with userdb_free_list).
 * Returns 1 found, 0 no such recipient, -1 store failure. */
int userdb_resolve(struct userdb *db, const char *address, char ***mailboxes_r, size_t *n_r);
void userdb_free_list(char **list, size_t n);

/* Fetches a user's record. 1 found, 0 not found, -1 failure. */
int userdb_user_get(struct userdb *db, const char *name, struct user_record *rec_r);
void user_record_clear(struct user_record *rec);

/* Administration (the cursus tool). Each returns 0 on success, -1 with *err set.
 * The password is hashed here (yescrypt) and the SCRAM-SHA-1/256 keys derived. */
int userdb_user_add(struct userdb *db, const char *name, const char *password, char **err);
int userdb_user_passwd(struct userdb *db, const char *name, const char *password, char **err);
int userdb_user_del(struct userdb *db, const char *name, char **err);
/* Calls fn for each user name in order. */
int userdb_user_list(struct userdb *db, void (*fn)(void *arg, const char *name), void *arg, char **err);
int userdb_alias_add(struct userdb *db, const char *address, const char *target, char **err);
int userdb_alias_del(struct userdb *db, const char *address, const char *target, char **err);
int userdb_alias_list(struct userdb *db, void (*fn)(void *arg, const char *address, const char *target),
		      void *arg, char **err);

#endif
