/* userdb: the backend-independent core of the store: opening a store by its spec,
 * the query helpers the other parts share, users and passwords, the shared budgets
 * (aliases and recipient resolution: userdb_alias.c).
 * Promises: every query is one of this program's constant statements with bound
 * parameters (no SQL is ever built from data); names are lower-cased and validated
 * before they are stored, because a user name becomes a directory name
 * ("<domain>/<local-part>"); the expensive password hashing happens before any
 * statement runs; a store failure is -1 to the caller and one log line, never a
 * secret. */
#include "store/userdb.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/password.h"
#include "store/username.h"
#include "store/userdb_private.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct userdb *userdb_open_opts(const char *spec, int flags, unsigned timeout_ms,
				unsigned connections, char **err)
{
	struct userdb_options o = { .timeout_ms = timeout_ms, .connections = connections };
	const struct userdb_ops *ops = &userdb_sqlite_ops;
	const char *target = spec;
	struct userdb *u;
	void *impl;

	if (strncmp(spec, "postgresql:", 11) == 0) {
		ops = &userdb_pg_ops;
		target = spec + 11;
	} else if (strncmp(spec, "sqlite:", 7) == 0) {
		target = spec + 7;
	}
	if (!(impl = ops->open(target, &o, flags, err)))
		return NULL;
	u = xcalloc(1, sizeof(*u));
	u->ops = ops;
	u->impl = impl;
	pthread_mutex_init(&u->secret_mu, NULL);
	u->scram_iterations = PASSWORD_SCRAM_ITERATIONS;
	/* A lazily opened server that is down gives its secret later (userdb_secret). */
	if (ops->secret_load(impl, u->secret, flags & USERDB_CREATE) == 0) {
		u->have_secret = 1;
	} else if (!(flags & USERDB_LAZY)) {
		*err = xasprintf("%s store: no secret in its meta table", ops->name);
		ops->close(impl);
		pthread_mutex_destroy(&u->secret_mu);
		free(u);
		return NULL;
	}
	u->cache = authcache_create();
	return u;
}

struct userdb *userdb_open(const char *spec, int flags, char **err)
{
	return userdb_open_opts(spec, flags, USERDB_TIMEOUT_MS_DEFAULT, USERDB_CONNECTIONS_DEFAULT,
				err);
}

void userdb_close(struct userdb **dbp)
{
	struct userdb *u = *dbp;
	if (!u)
		return;
	u->ops->close(u->impl);
	pthread_mutex_destroy(&u->secret_mu);
	authcache_destroy(&u->cache);
	explicit_bzero(u->secret, sizeof(u->secret));
	free(u);
	*dbp = NULL;
}

const char *userdb_backend(const struct userdb *u)
{
	return u->ops->name;
}

int userdb_schema_version(struct userdb *u, int *have_r, int *want_r, char **err)
{
	return u->ops->version(u->impl, have_r, want_r, err);
}

int userdb_secret(struct userdb *u)
{
	int rc = 0;
	pthread_mutex_lock(&u->secret_mu);
	if (!u->have_secret) {
		if (u->ops->secret_load(u->impl, u->secret, 0) == 0)
			u->have_secret = 1;
		else
			rc = -1;
	}
	pthread_mutex_unlock(&u->secret_mu);
	return rc;
}

char *userdb_err(const char *what, char *why)
{
	char *s = xasprintf("%s: %s", what, why ? why : "store failure");
	free(why);
	return s;
}

char *userdb_missing(const char *what, const char *name)
{
	char esc[LOG_ESCAPE_BUFSZ];
	return xasprintf("no such %s: %s", what, log_escape(esc, sizeof(esc), name, strlen(name)));
}

int userdb_q(struct userdb *u, const char *sql, const struct userdb_param *p, size_t np,
	     userdb_row_fn fn, void *arg, long long *changes_r, char **err)
{
	return u->ops->query(u->impl, NULL, sql, p, np, fn, arg, changes_r, err);
}

struct userdb_text {
	char *out;
	int found;
};

static int userdb_text_row(void *arg, const char *const *cols, size_t n)
{
	struct userdb_text *t = arg;
	t->found = 1;
	t->out = n > 0 && cols[0] ? xstrdup(cols[0]) : NULL;
	return 1;
}

int userdb_q_text(struct userdb *u, const char *what, const char *sql,
		  const struct userdb_param *p, size_t np, char **out_r)
{
	struct userdb_text t = { 0 };
	char *err = NULL;

	*out_r = NULL;
	if (userdb_q(u, sql, p, np, userdb_text_row, &t, NULL, &err) < 0) {
		log_warnx("userdb %s_failed error=\"%s\"", what, err ? err : "?");
		free(err);
		free(t.out);
		return -1;
	}
	*out_r = t.out;
	return t.found;
}

int userdb_q_exists(struct userdb *u, const char *what, const char *sql,
		    const struct userdb_param *p, size_t np)
{
	char *out = NULL;
	int rc = userdb_q_text(u, what, sql, p, np, &out);
	free(out);
	return rc;
}

int userdb_rows_add(void *arg, const char *const *cols, size_t n)
{
	struct userdb_rows *r = arg;
	if (r->n + n > r->cap) {
		r->cap = r->cap ? 2 * r->cap + n : 8 * n + 8;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	for (size_t i = 0; i < n; i++)
		r->v[r->n++] = cols[i] ? xstrdup(cols[i]) : NULL;
	return 0;
}

void userdb_rows_free(struct userdb_rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

int userdb_write(struct userdb *u, const char *sql, const char *p1, const char *p2,
		 const char *p3, const char *what, char **err)
{
	struct userdb_param p[3] = { UPT(p1), UPT(p2), UPT(p3) };
	size_t np = p3 ? 3 : p2 ? 2 : 1;
	long long changes = 0;
	char *why = NULL;
	int rc = userdb_q(u, sql, p, np, NULL, NULL, &changes, &why);

	if (rc == USERDB_CONFLICT)
		return -3;
	if (rc < 0) {
		*err = userdb_err(what, why);
		return -1;
	}
	return changes == 0 ? -2 : 0;
}

void userdb_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int userdb_user_exists(struct userdb *u, const char *name)
{
	struct userdb_param p[] = { UPT(name) };
	return userdb_q_exists(u, "user_exists", "SELECT 1 FROM users WHERE name = $1", p, 1);
}

static char *userdb_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static int userdb_user_row(void *arg, const char *const *c, size_t n)
{
	struct user_record *rec = arg;
	rec->name = userdb_dup(c[0]);
	rec->hash = userdb_dup(c[1]);
	rec->sha1.salt = userdb_dup(c[2]);
	rec->sha1.iterations = c[3] ? (unsigned)strtoul(c[3], NULL, 10) : 0;
	rec->sha1.stored_key = userdb_dup(c[4]);
	rec->sha1.server_key = userdb_dup(c[5]);
	rec->sha256.salt = userdb_dup(c[6]);
	rec->sha256.iterations = c[7] ? (unsigned)strtoul(c[7], NULL, 10) : 0;
	rec->sha256.stored_key = userdb_dup(c[8]);
	rec->sha256.server_key = userdb_dup(c[9]);
	rec->created = c[10] ? strtoll(c[10], NULL, 10) : 0;
	return 1;
}

int userdb_user_get(struct userdb *u, const char *name, struct user_record *rec_r)
{
	char *key = xstrdup(name), *err = NULL;
	struct userdb_param p[] = { UPT(key) };
	int rc;

	memset(rec_r, 0, sizeof(*rec_r));
	username_lower(key);
	rc = userdb_q(u, "SELECT name, hash, scram1_salt, scram1_iter, scram1_stored, "
			 "scram1_server, scram256_salt, scram256_iter, scram256_stored, "
			 "scram256_server, created FROM users WHERE name = $1", p, 1,
		      userdb_user_row, rec_r, NULL, &err);
	free(key);
	if (rc < 0) {
		log_warnx("userdb user_get_failed error=\"%s\"", err ? err : "?");
		free(err);
		user_record_clear(rec_r);
		return -1;
	}
	return rec_r->name != NULL;
}

void user_record_clear(struct user_record *rec)
{
	free(rec->name);
	if (rec->hash)
		xfree_secret(rec->hash, strlen(rec->hash));
	password_scram_keys_clear(&rec->sha1);
	password_scram_keys_clear(&rec->sha256);
	memset(rec, 0, sizeof(*rec));
}

/* What we store for a password, derived before any statement runs. */
struct userdb_secrets {
	char *hash;
	struct scram_keys sha1, sha256;
};

static void userdb_secrets_clear(struct userdb_secrets *s)
{
	if (s->hash)
		xfree_secret(s->hash, strlen(s->hash));
	password_scram_keys_clear(&s->sha1);
	password_scram_keys_clear(&s->sha256);
}

static int userdb_secrets_make(struct userdb *u, const char *password, struct userdb_secrets *s,
			       char **err)
{
	memset(s, 0, sizeof(*s));
	if (!password || !*password) {
		*err = xstrdup("empty password refused");
		return -1;
	}
	s->hash = password_hash(password);
	if (!s->hash) {
		*err = xstrdup("cannot hash the password (yescrypt unavailable?)");
		return -1;
	}
	if (password_scram_make(PASSWORD_SCRAM_SHA1, password, u->scram_iterations, &s->sha1) < 0 ||
	    password_scram_make(PASSWORD_SCRAM_SHA256, password, u->scram_iterations,
				&s->sha256) < 0) {
		*err = xstrdup("cannot derive the SCRAM keys: the password contains "
			       "characters SASLprep (RFC 4013) forbids");
		userdb_secrets_clear(s);
		return -1;
	}
	return 0;
}

/* The secrets as parameters $2..$10 in the column order of the schema; $1 is the
 * name, $11 what the statement needs last. */
static void userdb_secret_params(struct userdb_param p[11], const char *name,
				 const struct userdb_secrets *s, struct userdb_param last)
{
	p[0] = UPT(name);
	p[1] = UPT(s->hash);
	p[2] = UPT(s->sha1.salt);
	p[3] = UPI(s->sha1.iterations);
	p[4] = UPT(s->sha1.stored_key);
	p[5] = UPT(s->sha1.server_key);
	p[6] = UPT(s->sha256.salt);
	p[7] = UPI(s->sha256.iterations);
	p[8] = UPT(s->sha256.stored_key);
	p[9] = UPT(s->sha256.server_key);
	p[10] = last;
}

int userdb_user_add(struct userdb *u, const char *name, const char *password, char **err)
{
	struct userdb_secrets s;
	struct userdb_param p[11];
	char *key = username_normalize(name, "user name", err), *why = NULL;
	int rc;

	if (!key)
		return -1;
	if (userdb_secrets_make(u, password, &s, err) < 0) {
		free(key);
		return -1;
	}
	userdb_secret_params(p, key, &s, UPI((long long)time(NULL)));
	rc = userdb_q(u, "INSERT INTO users (name, hash, scram1_salt, scram1_iter, "
			 "scram1_stored, scram1_server, scram256_salt, scram256_iter, "
			 "scram256_stored, scram256_server, created) "
			 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", p, 11, NULL, NULL,
		      NULL, &why);
	if (rc == USERDB_CONFLICT)
		*err = xasprintf("user %s already exists", key);
	else if (rc < 0)
		*err = userdb_err("cannot add user", why);
	userdb_secrets_clear(&s);
	free(key);
	return rc < 0 ? -1 : 0;
}

void userdb_set_scram_iterations(struct userdb *u, unsigned iterations)
{
	if (iterations < PASSWORD_SCRAM_ITERATIONS_MIN)
		iterations = PASSWORD_SCRAM_ITERATIONS_MIN;
	if (iterations > PASSWORD_SCRAM_ITERATIONS_MAX)
		iterations = PASSWORD_SCRAM_ITERATIONS_MAX;
	u->scram_iterations = iterations;
}

int userdb_user_passwd(struct userdb *u, const char *name, const char *password, char **err)
{
	return userdb_user_set_password(u, name, password, 0, err);
}

int userdb_user_set_password(struct userdb *u, const char *name, const char *password, int legacy,
			     char **err)
{
	struct userdb_secrets s;
	struct userdb_param p[11];
	char *key = xstrdup(name), *why = NULL;
	long long changes = 0;
	int rc;

	username_lower(key);
	if (userdb_secrets_make(u, password, &s, err) < 0) {
		free(key);
		return -1;
	}
	/* Without legacy, NULL: any earlier password-equivalent goes. */
	userdb_secret_params(p, key, &s, UPT(legacy ? password : NULL));
	rc = userdb_q(u, "UPDATE users SET hash = $2, scram1_salt = $3, scram1_iter = $4, "
			 "scram1_stored = $5, scram1_server = $6, scram256_salt = $7, "
			 "scram256_iter = $8, scram256_stored = $9, scram256_server = $10, "
			 "legacy_secret = $11 WHERE name = $1", p, 11, NULL, NULL, &changes, &why);
	if (rc < 0)
		*err = userdb_err("cannot change password", why);
	else if (changes == 0)
		*err = userdb_missing("user", key);
	userdb_secrets_clear(&s);
	free(key);
	return rc < 0 || changes == 0 ? -1 : 0;
}

int userdb_delete(struct userdb *u, const char *sql, const char *p1, const char *p2,
			 char *missing, char **err)
{
	int rc = userdb_write(u, sql, p1, p2, NULL, "cannot delete", err);
	if (rc == -2) {
		*err = missing;
		return -1;
	}
	free(missing);
	return rc == 0 ? 0 : -1;
}

int userdb_user_del(struct userdb *u, const char *name, char **err)
{
	/* What hangs off the user goes with it, and so do grants to act as it: a user
	 * added later under the same name must not inherit anyone's rights over it.
	 * Aliases that point at the user stay: they resolve to nothing (or the
	 * catch-all) until the user is added again. */
	static const char *const sql[] = {
		"DELETE FROM grants WHERE \"user\" = $1",
		"DELETE FROM grants WHERE kind = 'act-as' AND value = $1",
		"DELETE FROM app_passwords WHERE \"user\" = $1",
		"DELETE FROM certs WHERE \"user\" = $1",
		"DELETE FROM users WHERE name = $1",
	};
	char *key = xstrdup(name), *why = NULL;
	struct userdb_param p[] = { UPT(key) };
	long long changed = 0;
	void *tx;
	int rc = 0;

	username_lower(key);
	if (!(tx = u->ops->begin(u->impl, &why)))
		rc = -1;
	for (size_t i = 0; rc == 0 && i < sizeof(sql) / sizeof(sql[0]); i++)
		if (u->ops->query(u->impl, tx, sql[i], p, 1, NULL, NULL, &changed, &why) < 0)
			rc = -1;
	if (rc == 0 && changed == 0) {
		*err = userdb_missing("user", key);
		rc = -2;
	}
	if (tx && u->ops->end(u->impl, tx, rc == 0, rc == 0 ? &why : NULL) < 0 && rc == 0)
		rc = -1;
	if (rc == -1)
		*err = userdb_err("cannot delete user", why);
	else
		free(why);
	free(key);
	return rc < 0 ? -1 : 0;
}

int userdb_user_list(struct userdb *u, void (*fn)(void *arg, const char *name), void *arg,
		     char **err)
{
	struct userdb_rows r = { 0 };
	char *why = NULL;
	int rc = userdb_q(u, "SELECT name FROM users ORDER BY name", NULL, 0, userdb_rows_add, &r,
			  NULL, &why);
	if (rc < 0)
		*err = userdb_err("cannot list users", why);
	for (size_t i = 0; rc == 0 && i < r.n; i++)
		fn(arg, r.v[i] ? r.v[i] : "");
	userdb_rows_free(&r);
	return rc < 0 ? -1 : 0;
}

void userdb_set_budgets(struct userdb *u, unsigned addr_budget, unsigned account_budget,
			unsigned window, unsigned cooldown)
{
	u->budget = (struct userdb_budget){ addr_budget, account_budget, window, cooldown };
	u->budgets_set = 1;
}

int userdb_shares_budgets(const struct userdb *u)
{
	return u->ops->budget_blocked != NULL;
}

long userdb_budget_blocked(struct userdb *u, const char *addr, const char *account)
{
	char *acct = account && *account ? xstrdup(account) : NULL;
	long rc;

	if (!u->budgets_set || !u->ops->budget_blocked || !addr)
		return 0;
	if (acct)
		username_lower(acct);
	rc = u->ops->budget_blocked(u->impl, &u->budget, addr, acct);
	free(acct);
	return rc;
}

int userdb_budget_failure(struct userdb *u, const char *addr, const char *account)
{
	char *acct = account && *account ? xstrdup(account) : NULL;
	int rc;

	if (!u->budgets_set || !u->ops->budget_failure || !addr)
		return 0;
	if (acct)
		username_lower(acct);
	rc = u->ops->budget_failure(u->impl, &u->budget, addr, acct);
	free(acct);
	return rc;
}
