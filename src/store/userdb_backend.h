/* userdb_backend (private to src/store): the table of functions a storage engine
 * provides to userdb.h. Everything that is policy (name validation, password
 * verification, the verification cache, alias resolution, fake SCRAM keys, app
 * password digests, what a deletion takes with it) is written once, in userdb.c and
 * its siblings, as SQL over this table; a backend only runs that SQL and keeps its
 * schema. Two backends: SQLite (userdb_sqlite.c, one file, one machine) and
 * PostgreSQL (userdb_pg.c, shared by many nodes).
 *
 * The common SQL is written in PostgreSQL's dialect where the two differ only in
 * spelling: parameters are $1..$n (SQLite binds "$n" by name), "user" is always
 * quoted (a reserved word in PostgreSQL), rows are keyed by columns, never rowid. */
#ifndef CURSUS_USERDB_BACKEND_H
#define CURSUS_USERDB_BACKEND_H

#include <stddef.h>

/* Octets of the per-database secret that fake SCRAM keys and app password digests
 * are keyed with. It moves with the data (`cursus store copy`). */
#define USERDB_SECRET_LEN 32

/* A query's return besides 0 (ok) and -1 (failure, *err set when err is given). */
#define USERDB_CONFLICT (-3)   /* a uniqueness constraint refused the write */

enum userdb_ptype {
	UP_TEXT,  /* s (NULL: SQL NULL) */
	UP_INT,   /* i */
	UP_ANY,   /* s, typed by the column it meets (the copy, which moves text) */
};

struct userdb_param {
	enum userdb_ptype type;
	const char *s;
	long long i;
};

#define UPT(str) ((struct userdb_param){ .type = UP_TEXT, .s = (str) })
#define UPI(num) ((struct userdb_param){ .type = UP_INT, .i = (num) })

/* One row: n columns as text, NULL for SQL NULL. Return nonzero to stop reading. */
typedef int (*userdb_row_fn)(void *arg, const char *const *cols, size_t n);

/* What cursus-auth and the tool tell a backend at open. */
struct userdb_options {
	unsigned timeout_ms;   /* store_timeout: connecting and each statement */
	unsigned connections;  /* store_connections: the pool's size (PostgreSQL) */
};

/* The failure budgets the shared table enforces (authlimit.h's, across nodes). */
struct userdb_budget {
	unsigned addr_budget, account_budget, window, cooldown;
};

struct userdb_ops {
	const char *name;                  /* "sqlite", "postgresql" */
	/* target: the part after "sqlite:" / "postgresql:"; flags: USERDB_CREATE,
	 * USERDB_LAZY (userdb.h). NULL with *err. */
	void *(*open)(const char *target, const struct userdb_options *o, int flags, char **err);
	void (*close)(void *impl);
	/* The secret, made and stored when the database has none (and may_create). */
	int (*secret_load)(void *impl, unsigned char secret[USERDB_SECRET_LEN], int may_create);
	int (*secret_store)(void *impl, void *tx, const unsigned char secret[USERDB_SECRET_LEN],
			    char **err);
	/* Runs one statement; fn (may be NULL) sees every row. *changes_r (may be NULL):
	 * rows a write changed. 0, USERDB_CONFLICT, or -1 with *err (err may be NULL). */
	int (*query)(void *impl, void *tx, const char *sql, const struct userdb_param *p, size_t np,
		     userdb_row_fn fn, void *arg, long long *changes_r, char **err);
	/* A transaction: statements given its handle run in it, on one connection. */
	void *(*begin)(void *impl, char **err);
	int (*end)(void *impl, void *tx, int commit, char **err);
	/* The schema version the database has, and the one this program writes. */
	int (*version)(void *impl, int *have_r, int *want_r, char **err);
	/* Shared failure budgets; NULL when the backend is one machine's (SQLite: the
	 * daemon's own counters are the whole truth). blocked: seconds still refused
	 * (0: not), or -1 on failure. failure: 0, or -1. account may be NULL. */
	long (*budget_blocked)(void *impl, const struct userdb_budget *b, const char *addr,
			       const char *account);
	int (*budget_failure)(void *impl, const struct userdb_budget *b, const char *addr,
			      const char *account);
};

extern const struct userdb_ops userdb_sqlite_ops;
extern const struct userdb_ops userdb_pg_ops;

#endif
