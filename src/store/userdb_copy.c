/* userdb_copy: `cursus store copy FROM TO`, moving an installation between backends
 * (SQLite to PostgreSQL and back).
 * Promises: every table the store keeps is listed here with every column, read
 * from one store and written to the other as text (each backend types it by its
 * column), NULLs kept; all of it in one transaction on the target, so a failure
 * leaves it as it was; the per-database secret goes too, or app passwords (keyed
 * digests) and unknown users' fake SCRAM keys would change. A target that already
 * holds data is refused rather than merged. The credential generations are not
 * copied: the target's triggers give fresh ones, which only ends sessions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/userdb_private.h"
#include "store/userdb_relay.h"
#include "util/xmalloc.h"

struct userdb_copy_table {
	const char *name;
	const char *columns;
};

static const struct userdb_copy_table userdb_copy_tables[] = {
	{ "users", "name, hash, scram1_salt, scram1_iter, scram1_stored, scram1_server, "
		   "scram256_salt, scram256_iter, scram256_stored, scram256_server, created, "
		   "legacy_secret" },
	{ "aliases", "address, target" },
	{ "grants", "\"user\", kind, value" },
	{ "app_passwords", "\"user\", label, hash, created, last_used" },
	{ "certs", "\"user\", \"match\"" },
	{ "relay_auth", NULL }, /* userdb_relay.c's columns */
};
#define USERDB_COPY_N (sizeof(userdb_copy_tables) / sizeof(userdb_copy_tables[0]))

static size_t userdb_copy_count(const char *columns)
{
	size_t n = 1;
	for (const char *p = columns; *p; p++)
		n += *p == ',';
	return n;
}

/* 1 when the target holds anything, 0 not, -1 failure. */
static int userdb_copy_nonempty(struct userdb *to, char **err)
{
	char *out = NULL;
	int rc = userdb_q_text(to, "copy_check", "SELECT 1 WHERE EXISTS (SELECT 1 FROM users) OR "
			       "EXISTS (SELECT 1 FROM aliases) OR EXISTS (SELECT 1 FROM relay_auth)",
			       NULL, 0, &out);
	free(out);
	if (rc < 0)
		*err = xstrdup("cannot read the target store");
	return rc;
}

static int userdb_copy_table(struct userdb *from, struct userdb *to, void *tx,
			     const char *table, const char *columns, long long *rows_r, char **err)
{
	size_t ncols = userdb_copy_count(columns);
	struct userdb_rows r = { 0 };
	char *sel = xasprintf("SELECT %s FROM %s", columns, table), *why = NULL;
	char *ins = NULL, *vals = xstrdup("");
	struct userdb_param *p = xcalloc(ncols, sizeof(*p));
	int rc;

	for (size_t i = 0; i < ncols; i++) {
		char *v = xasprintf("%s%s$%zu", vals, i ? ", " : "", i + 1);
		free(vals);
		vals = v;
	}
	/* Table and column names are this file's constants, never data. */
	ins = xasprintf("INSERT INTO %s (%s) VALUES (%s)", table, columns, vals);
	rc = userdb_q(from, sel, NULL, 0, userdb_rows_add, &r, NULL, &why);
	if (rc < 0)
		*err = userdb_err(table, why);
	for (size_t i = 0; rc == 0 && i + ncols <= r.n; i += ncols) {
		for (size_t k = 0; k < ncols; k++)
			p[k] = (struct userdb_param){ .type = UP_ANY, .s = r.v[i + k] };
		rc = to->ops->query(to->impl, tx, ins, p, ncols, NULL, NULL, NULL, &why);
		if (rc < 0)
			*err = userdb_err(table, rc == USERDB_CONFLICT ? xstrdup("duplicate row") : why);
	}
	*rows_r = (long long)(r.n / ncols);
	for (size_t i = 0; i < r.n; i++)
		if (r.v[i])
			explicit_bzero(r.v[i], strlen(r.v[i]));
	userdb_rows_free(&r);
	free(p);
	free(sel);
	free(ins);
	free(vals);
	return rc < 0 ? -1 : 0;
}

int userdb_copy(struct userdb *from, struct userdb *to,
		void (*fn)(void *arg, const char *table, long long rows), void *arg, char **err)
{
	long long counts[USERDB_COPY_N] = { 0 };
	char *why = NULL;
	void *tx;
	int rc;

	if (userdb_secret(from) < 0) {
		*err = xstrdup("cannot read the source store's secret");
		return -1;
	}
	if ((rc = userdb_copy_nonempty(to, err)) != 0) {
		if (rc > 0)
			*err = xstrdup("the target store already holds users, aliases or relay "
				       "credentials: copy into an empty one");
		return -1;
	}
	if (!(tx = to->ops->begin(to->impl, &why))) {
		*err = userdb_err("cannot write the target store", why);
		return -1;
	}
	rc = to->ops->secret_store(to->impl, tx, from->secret, &why);
	if (rc < 0)
		*err = userdb_err("cannot store the secret", why);
	for (size_t i = 0; rc == 0 && i < USERDB_COPY_N; i++) {
		const struct userdb_copy_table *t = &userdb_copy_tables[i];
		rc = userdb_copy_table(from, to, tx, t->name,
				       t->columns ? t->columns : userdb_relay_copy_columns,
				       &counts[i], err);
	}
	if (to->ops->end(to->impl, tx, rc == 0, rc == 0 ? &why : NULL) < 0 && rc == 0) {
		*err = userdb_err("cannot commit", why);
		rc = -1;
	}
	if (rc < 0)
		return -1;
	/* The target's handle goes on with the copied secret. */
	pthread_mutex_lock(&to->secret_mu);
	memcpy(to->secret, from->secret, USERDB_SECRET_LEN);
	to->have_secret = 1;
	pthread_mutex_unlock(&to->secret_mu);
	for (size_t i = 0; fn && i < USERDB_COPY_N; i++)
		fn(arg, userdb_copy_tables[i].name, counts[i]);
	return 0;
}
