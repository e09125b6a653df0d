/* userdb_pg_impl (private): what the PostgreSQL backend's files share: the pool
 * (userdb_pg.c) and the schema, secret and budgets (userdb_pg_schema.c). */
#ifndef CURSUS_USERDB_PG_IMPL_H
#define CURSUS_USERDB_PG_IMPL_H

#include <libpq-fe.h>
#include <pthread.h>

#include "store/userdb.h"
#include "store/userdb_backend.h"

#define UPG_SCHEMA_VERSION 1

struct upg_conn {
	PGconn *pg;     /* NULL: not connected (or dropped after a failure) */
	int busy;
};

struct upg {
	char *conninfo;              /* may hold a password: never logged */
	unsigned timeout_ms;
	int admin;                   /* the tool: a missing or old schema is not refused */
	pthread_mutex_t mu;          /* the pool and the backoff */
	pthread_cond_t cv;
	struct upg_conn *conns;
	unsigned n;
	long long retry_at_ms;       /* no connection attempt before (monotonic ms) */
	unsigned backoff_ms;         /* 0 while the server answers */
};

/* Milliseconds of CLOCK_MONOTONIC. */
long long upg_now_ms(void);
/* A connection of the pool, connected (first use, or again after a failure, unless
 * the backoff says not yet). NULL with *err (may be NULL). */
struct upg_conn *upg_acquire(struct upg *g, char **err);
void upg_release(struct upg *g, struct upg_conn *c);
/* Runs sql (simple protocol: several statements allowed) within the deadline. 0, -1
 * with *err (may be NULL). A connection that failed is dropped. */
int upg_simple(struct upg *g, struct upg_conn *c, const char *sql, char **err);

/* The schema (userdb_pg_schema.c): creates or migrates it on c. 0, -1 with *err. */
int upg_migrate(struct upg *g, struct upg_conn *c, char **err);
/* The version a connection's database has: >= 0, -1 on failure (*err). 0 when it
 * has no schema. */
int upg_schema_have(struct upg *g, struct upg_conn *c, char **err);

int upg_secret_load(void *impl, unsigned char secret[USERDB_SECRET_LEN], int may_create);
int upg_secret_store(void *impl, void *tx, const unsigned char secret[USERDB_SECRET_LEN],
		     char **err);
int upg_version(void *impl, int *have_r, int *want_r, char **err);
long upg_budget_blocked(void *impl, const struct userdb_budget *b, const char *addr,
			const char *account);
int upg_budget_failure(void *impl, const struct userdb_budget *b, const char *addr,
		       const char *account);
/* ops->query (userdb_pg.c). */
int upg_query(void *impl, void *tx, const char *sql, const struct userdb_param *p, size_t np,
	      userdb_row_fn fn, void *arg, long long *changes_r, char **err);

#endif
