/* userdb_sqlite (private): what the SQLite backend's files share. Not for use
 * outside src/store/: everyone else goes through userdb.h. The backend is split by
 * concern: userdb_schema.c (open, schema and migrations), userdb_sqlite.c (users,
 * aliases, passwords), userdb_auth.c (the checks SMTP AUTH makes), userdb_grants.c
 * (administration of grants, app passwords and certificates), userdb_relay.c (the
 * credentials cursus sends to smart hosts). */
#ifndef CURSUS_USERDB_SQLITE_H
#define CURSUS_USERDB_SQLITE_H

#include <pthread.h>
#include <sqlite3.h>

#include "store/authcache.h"
#include "store/userdb.h"

/* Octets of the per-database secret that fake SCRAM keys are derived from. */
#define USERDB_SECRET_LEN 32

struct userdb {
	sqlite3 *db;
	pthread_mutex_t mu;       /* serialises every use of db */
	unsigned char secret[USERDB_SECRET_LEN];
	struct authcache *cache;  /* has its own lock */
	unsigned scram_iterations; /* for keys made now (and unknown users' fake keys) */
};

/* "what: sqlite's message". */
char *userdb_sqlerr(sqlite3 *db, const char *what);
/* Runs constant SQL text (one or more statements), stepping each to completion.
 * 0 ok, -1 failure (sqlite3_errmsg tells). */
int userdb_exec(sqlite3 *db, const char *sql);
/* A prepared statement for constant SQL, or NULL. Lock held. */
sqlite3_stmt *userdb_prepare(struct userdb *u, const char *sql);
/* Steps a write statement and finalizes it; returns sqlite's result code. */
int userdb_step_write(sqlite3_stmt *st);
/* "no such WHAT: NAME" with NAME escaped (it is an unvalidated argument). */
char *userdb_missing(const char *what, const char *name);
/* A malloc'd copy of a text column, or NULL. */
char *userdb_column_dup(sqlite3_stmt *st, int col);
/* 1 when `name` (already lower case) is a user, 0 not, -1 failure. Lock held. */
int userdb_user_exists(struct userdb *u, const char *name);
/* Runs a statement with up to three text parameters (NULL ones are not bound);
 * 0 when at least one row changed, -2 when none did, -3 on a uniqueness conflict
 * (no *err), -1 with *err set on other failures. Takes the lock. */
int userdb_write(struct userdb *u, const char *sql, const char *p1, const char *p2,
		 const char *p3, const char *what, char **err);

/* A certificate fingerprint in the stored form (64 lower-case hex digits) from
 * hex with or without colons, in either case; NULL (nothing allocated) when s is
 * not one. */
char *userdb_cert_fingerprint(const char *s);

/* The stored form of an app password: "$hmac-sha256$" and the hex HMAC keyed with the
 * database secret (userdb_auth.c). malloc'd. */
char *userdb_app_digest(struct userdb *u, const char *app_password);

#endif
