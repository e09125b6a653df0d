/* userdb_private: what the backend-independent parts of the store share (userdb.c:
 * open, users, aliases; userdb_auth.c: the checks SMTP AUTH makes; userdb_grants.c:
 * grants, app passwords, certificates; userdb_relay.c: relay credentials;
 * userdb_alias.c: aliases and resolution; userdb_copy.c: `cursus store copy`). Not for use outside src/store/. */
#ifndef CURSUS_USERDB_PRIVATE_H
#define CURSUS_USERDB_PRIVATE_H

#include <pthread.h>

#include "store/authcache.h"
#include "store/userdb.h"
#include "store/userdb_backend.h"

struct userdb {
	const struct userdb_ops *ops;
	void *impl;
	pthread_mutex_t secret_mu;  /* guards have_secret/secret while it is loaded */
	int have_secret;            /* a lazily opened server may not have given it yet */
	unsigned char secret[USERDB_SECRET_LEN];
	struct authcache *cache;    /* has its own lock */
	unsigned scram_iterations;  /* for keys made now (and unknown users' fake keys) */
	int budgets_set;
	struct userdb_budget budget;
};

/* ops->query outside a transaction. */
int userdb_q(struct userdb *u, const char *sql, const struct userdb_param *p, size_t np,
	     userdb_row_fn fn, void *arg, long long *changes_r, char **err);
/* One row, one text column: 1 with *out_r (malloc'd; NULL for SQL NULL), 0 no row, -1
 * failure (logged as `what`). */
int userdb_q_text(struct userdb *u, const char *what, const char *sql,
		  const struct userdb_param *p, size_t np, char **out_r);
/* 1 when the query returns a row, 0 not, -1 failure (logged as `what`). */
int userdb_q_exists(struct userdb *u, const char *what, const char *sql,
		    const struct userdb_param *p, size_t np);
/* Runs a write with text parameters (NULL ones are SQL NULL); 0 when at least one row
 * changed, -2 when none did, -3 on a uniqueness conflict (no *err), -1 with *err. */
int userdb_write(struct userdb *u, const char *sql, const char *p1, const char *p2,
		 const char *p3, const char *what, char **err);
/* Runs a DELETE with one or two text parameters; 0 when a row went, else *err
 * (missing when none did; it is freed otherwise). */
int userdb_delete(struct userdb *u, const char *sql, const char *p1, const char *p2,
		  char *missing, char **err);
/* "what: why" from a backend message (taken). */
char *userdb_err(const char *what, char *why);
/* "no such WHAT: NAME" with NAME escaped (it is an unvalidated argument). */
char *userdb_missing(const char *what, const char *name);
/* 1 when `name` (already lower case) is a user, 0 not, -1 failure. */
int userdb_user_exists(struct userdb *u, const char *name);
/* The secret, loaded on first need. 0, or -1 (the server is unreachable). */
int userdb_secret(struct userdb *u);
/* Collects rows of text columns: a row_fn whose arg is a struct userdb_rows. */
struct userdb_rows {
	char **v;       /* ncols * nrows strings (NULL for SQL NULL) */
	size_t n, cap;  /* strings */
};
int userdb_rows_add(void *arg, const char *const *cols, size_t n);
void userdb_rows_free(struct userdb_rows *r);

/* A certificate fingerprint in the stored form (64 lower-case hex digits) from hex
 * with or without colons, in either case; NULL (nothing allocated) when s is not one. */
char *userdb_cert_fingerprint(const char *s);
/* The stored form of an app password: "$hmac-sha256$" and the hex HMAC keyed with the
 * database secret (userdb_auth.c). malloc'd; NULL when the secret is unavailable. */
char *userdb_app_digest(struct userdb *u, const char *app_password);

#endif
