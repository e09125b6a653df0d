/* userdb_sqlite: the SQLite backend of userdb.h: users, aliases and passwords
 * (userdb_schema.c opens the database; userdb_sqlite.h lists the other parts).
 * Promises: one connection per handle, opened SQLITE_OPEN_FULLMUTEX and further
 * serialised by the handle's mutex, so any number of threads may share a handle;
 * every query is a prepared statement with bound parameters (no SQL is ever built
 * from data); WAL mode and a 5 s busy timeout so the cursus tool can write while the
 * daemon reads; names are lower-cased and validated before they are stored, because
 * a user name becomes a directory name ("<domain>/<local-part>"). The expensive
 * password hashing happens before the lock is taken. */
#include "store/userdb.h"

#include <pthread.h>
#include <stdint.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/password.h"
#include "store/username.h"
#include "store/userdb_sqlite.h"
#include "util/log.h"
#include "util/strset.h"
#include "util/xmalloc.h"

/* How many alias hops a recipient may take before we stop following. */
#define USERDB_ALIAS_DEPTH 8

char *userdb_sqlerr(sqlite3 *db, const char *what)
{
	return xasprintf("%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

int userdb_exec(sqlite3 *db, const char *sql)
{
	const char *tail = sql;
	while (tail && *tail) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
		if (rc != SQLITE_OK)
			return -1;
		if (!st)
			break;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return 0;
}

sqlite3_stmt *userdb_prepare(struct userdb *u, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(u->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

void userdb_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int userdb_user_exists(struct userdb *u, const char *name)
{
	sqlite3_stmt *st = userdb_prepare(u, "SELECT 1 FROM users WHERE name = ?1");
	int rc;
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The targets of an alias address. 0 ok (possibly none), -1 failure. */
static int userdb_alias_targets(struct userdb *u, const char *address, char ***list_r,
				size_t *n_r)
{
	sqlite3_stmt *st = userdb_prepare(u, "SELECT target FROM aliases WHERE address = ?1 "
					     "ORDER BY target");
	char **list = NULL;
	size_t n = 0;
	int rc;
	*list_r = NULL;
	*n_r = 0;
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		list = xrealloc(list, (n + 1) * sizeof(*list));
		list[n++] = xstrdup(t ? t : "");
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		userdb_free_list(list, n);
		return -1;
	}
	*list_r = list;
	*n_r = n;
	return 0;
}

struct userdb_resolution {
	char **mailboxes;
	size_t n, cap;
	size_t max;               /* more mailboxes than this: stop, USERDB_TOO_MANY */
	struct strset boxes;      /* the mailboxes, for de-duplication without a scan */
	struct strset seen;       /* lookup keys already expanded: loops end here */
};

/* What userdb_resolve_address returns when r->max was passed. */
#define USERDB_TOO_MANY (-2)

static void userdb_mailbox_add(struct userdb_resolution *r, char *mb)
{
	if (!strset_add(&r->boxes, mb)) {
		free(mb);
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 4;
		r->mailboxes = xrealloc(r->mailboxes, r->cap * sizeof(*r->mailboxes));
	}
	r->mailboxes[r->n++] = mb;
}

/* Marks key as expanded; 0 when it already was. */
static int userdb_visit(struct userdb_resolution *r, const char *key)
{
	return strset_add(&r->seen, key);
}

static int userdb_resolve_address(struct userdb *u, struct userdb_resolution *r,
				  const char *address, int depth)
{
	char **targets = NULL;
	size_t n_targets = 0;
	const char *at = strrchr(address, '@');
	int rc;

	if (!at || at == address || !userdb_visit(r, address))
		return 0;
	rc = userdb_user_exists(u, address);
	if (rc != 0) {
		if (rc == 1) {
			userdb_mailbox_add(r, xasprintf("%s/%.*s", at + 1, (int)(at - address), address));
			if (r->n > r->max)
				return USERDB_TOO_MANY;
		}
		return rc < 0 ? -1 : 0;
	}
	if (userdb_alias_targets(u, address, &targets, &n_targets) < 0)
		return -1;
	if (n_targets == 0 && userdb_visit(r, at)) {
		/* No user and no alias: the domain's catch-all, stored as "@domain". */
		if (userdb_alias_targets(u, at, &targets, &n_targets) < 0)
			return -1;
	}
	rc = 0;
	for (size_t i = 0; i < n_targets && rc == 0; i++) {
		if (depth + 1 > USERDB_ALIAS_DEPTH) {
			char esc[LOG_ESCAPE_BUFSZ];
			log_warnx("userdb alias_too_deep address=%s max=%d",
				  log_escape(esc, sizeof(esc), address, strlen(address)),
				  USERDB_ALIAS_DEPTH);
			break;
		}
		/* A target that is neither a user nor an alias nor caught by a catch-all
		 * adds nothing: forwarding to remote addresses is not supported yet. */
		rc = userdb_resolve_address(u, r, targets[i], depth + 1);
	}
	userdb_free_list(targets, n_targets);
	return rc;
}

int userdb_resolve_max(struct userdb *u, const char *address, size_t max, char ***mailboxes_r,
		       size_t *n_r)
{
	struct userdb_resolution r = { 0 };
	char *addr = xstrdup(address);
	int rc;

	*mailboxes_r = NULL;
	*n_r = 0;
	r.max = max;
	username_lower(addr);
	pthread_mutex_lock(&u->mu);
	rc = userdb_resolve_address(u, &r, addr, 0);
	if (rc == -1)
		log_warnx("userdb resolve_failed error=\"%s\"", sqlite3_errmsg(u->db));
	pthread_mutex_unlock(&u->mu);
	free(addr);
	strset_clear(&r.seen);
	strset_clear(&r.boxes);
	if (rc < 0 || r.n == 0) {
		userdb_free_list(r.mailboxes, r.n);
		return rc == USERDB_TOO_MANY ? USERDB_RESOLVE_TOO_MANY : rc < 0 ? -1 : 0;
	}
	*mailboxes_r = r.mailboxes;
	*n_r = r.n;
	return 1;
}

int userdb_resolve(struct userdb *u, const char *address, char ***mailboxes_r, size_t *n_r)
{
	return userdb_resolve_max(u, address, SIZE_MAX, mailboxes_r, n_r);
}

char *userdb_column_dup(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	return s ? xstrdup(s) : NULL;
}

int userdb_user_get(struct userdb *u, const char *name, struct user_record *rec_r)
{
	sqlite3_stmt *st;
	char *key = xstrdup(name);
	int rc, ret = -1;

	memset(rec_r, 0, sizeof(*rec_r));
	username_lower(key);
	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "SELECT name, hash, scram1_salt, scram1_iter, scram1_stored, "
			       "scram1_server, scram256_salt, scram256_iter, scram256_stored, "
			       "scram256_server, created FROM users WHERE name = ?1");
	if (st) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			rec_r->name = userdb_column_dup(st, 0);
			rec_r->hash = userdb_column_dup(st, 1);
			rec_r->sha1.salt = userdb_column_dup(st, 2);
			rec_r->sha1.iterations = (unsigned)sqlite3_column_int64(st, 3);
			rec_r->sha1.stored_key = userdb_column_dup(st, 4);
			rec_r->sha1.server_key = userdb_column_dup(st, 5);
			rec_r->sha256.salt = userdb_column_dup(st, 6);
			rec_r->sha256.iterations = (unsigned)sqlite3_column_int64(st, 7);
			rec_r->sha256.stored_key = userdb_column_dup(st, 8);
			rec_r->sha256.server_key = userdb_column_dup(st, 9);
			rec_r->created = sqlite3_column_int64(st, 10);
			ret = 1;
		} else if (rc == SQLITE_DONE) {
			ret = 0;
		}
		sqlite3_finalize(st);
	}
	if (ret < 0)
		log_warnx("userdb user_get_failed error=\"%s\"", sqlite3_errmsg(u->db));
	pthread_mutex_unlock(&u->mu);
	free(key);
	return ret;
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

/* What we store for a password, derived before any lock is taken. */
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

/* Binds the secrets as parameters ?2..?11 in the column order of the schema. */
static void userdb_bind_secrets(sqlite3_stmt *st, const struct userdb_secrets *s)
{
	sqlite3_bind_text(st, 2, s->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, s->sha1.salt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, s->sha1.iterations);
	sqlite3_bind_text(st, 5, s->sha1.stored_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, s->sha1.server_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, s->sha256.salt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, s->sha256.iterations);
	sqlite3_bind_text(st, 9, s->sha256.stored_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, s->sha256.server_key, -1, SQLITE_STATIC);
}

int userdb_step_write(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc;
}

char *userdb_missing(const char *what, const char *name)
{
	char esc[LOG_ESCAPE_BUFSZ];
	return xasprintf("no such %s: %s", what, log_escape(esc, sizeof(esc), name, strlen(name)));
}

int userdb_user_add(struct userdb *u, const char *name, const char *password, char **err)
{
	struct userdb_secrets s;
	sqlite3_stmt *st;
	char *key = username_normalize(name, "user name", err);
	int rc, ret = -1;

	if (!key)
		return -1;
	if (userdb_secrets_make(u, password, &s, err) < 0) {
		free(key);
		return -1;
	}
	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "INSERT INTO users (name, hash, scram1_salt, scram1_iter, "
			       "scram1_stored, scram1_server, scram256_salt, scram256_iter, "
			       "scram256_stored, scram256_server, created) "
			       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
	if (!st) {
		*err = userdb_sqlerr(u->db, "cannot add user");
	} else {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		userdb_bind_secrets(st, &s);
		sqlite3_bind_int64(st, 11, (sqlite3_int64)time(NULL));
		rc = userdb_step_write(st);
		if (rc == SQLITE_DONE)
			ret = 0;
		else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			*err = xasprintf("user %s already exists", key);
		else
			*err = userdb_sqlerr(u->db, "cannot add user");
	}
	pthread_mutex_unlock(&u->mu);
	userdb_secrets_clear(&s);
	free(key);
	return ret;
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
	sqlite3_stmt *st;
	char *key = xstrdup(name);
	int ret = -1;

	username_lower(key);
	if (userdb_secrets_make(u, password, &s, err) < 0) {
		free(key);
		return -1;
	}
	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "UPDATE users SET hash = ?2, scram1_salt = ?3, scram1_iter = ?4, "
			       "scram1_stored = ?5, scram1_server = ?6, scram256_salt = ?7, "
			       "scram256_iter = ?8, scram256_stored = ?9, scram256_server = ?10, "
			       "legacy_secret = ?11 WHERE name = ?1");
	if (!st) {
		*err = userdb_sqlerr(u->db, "cannot change password");
	} else {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		userdb_bind_secrets(st, &s);
		/* Without legacy, NULL: any earlier password-equivalent goes. */
		if (legacy)
			sqlite3_bind_text(st, 11, password, -1, SQLITE_STATIC);
		if (userdb_step_write(st) != SQLITE_DONE)
			*err = userdb_sqlerr(u->db, "cannot change password");
		else if (sqlite3_changes(u->db) == 0)
			*err = userdb_missing("user", key);
		else
			ret = 0;
	}
	pthread_mutex_unlock(&u->mu);
	userdb_secrets_clear(&s);
	free(key);
	return ret;
}

int userdb_write(struct userdb *u, const char *sql, const char *p1, const char *p2,
		 const char *p3, const char *what, char **err)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, sql);
	if (!st) {
		*err = userdb_sqlerr(u->db, what);
	} else {
		sqlite3_bind_text(st, 1, p1, -1, SQLITE_STATIC);
		if (p2)
			sqlite3_bind_text(st, 2, p2, -1, SQLITE_STATIC);
		if (p3)
			sqlite3_bind_text(st, 3, p3, -1, SQLITE_STATIC);
		rc = userdb_step_write(st);
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			ret = -3;
		else if (rc != SQLITE_DONE)
			*err = userdb_sqlerr(u->db, what);
		else
			ret = sqlite3_changes(u->db) == 0 ? -2 : 0;
	}
	pthread_mutex_unlock(&u->mu);
	return ret;
}

/* Runs a DELETE with one or two text parameters; 0 when a row went, else *err
 * (missing when none did; it is freed otherwise). */
static int userdb_delete(struct userdb *u, const char *sql, const char *p1, const char *p2,
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
		"DELETE FROM grants WHERE user = ?1",
		"DELETE FROM grants WHERE kind = 'act-as' AND value = ?1",
		"DELETE FROM app_passwords WHERE user = ?1",
		"DELETE FROM certs WHERE user = ?1",
		"DELETE FROM users WHERE name = ?1",
	};
	char *key = xstrdup(name);
	int rc = 0, changed = 0;

	username_lower(key);
	pthread_mutex_lock(&u->mu);
	if (userdb_exec(u->db, "BEGIN IMMEDIATE;") < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *st = userdb_prepare(u, sql[i]);
		if (!st) {
			rc = -1;
			break;
		}
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (userdb_step_write(st) != SQLITE_DONE)
			rc = -1;
		changed = sqlite3_changes(u->db);
	}
	if (rc == 0 && changed == 0) {
		*err = userdb_missing("user", key);
		rc = -2;
	}
	if (rc == 0 && userdb_exec(u->db, "COMMIT;") < 0)
		rc = -1;
	if (rc == -1)
		*err = userdb_sqlerr(u->db, "cannot delete user");
	if (rc < 0)
		userdb_exec(u->db, "ROLLBACK;");
	pthread_mutex_unlock(&u->mu);
	free(key);
	return rc < 0 ? -1 : 0;
}

int userdb_user_list(struct userdb *u, void (*fn)(void *arg, const char *name), void *arg,
		     char **err)
{
	sqlite3_stmt *st;
	int rc = SQLITE_ERROR;

	/* fn runs with the lock held: it must not call back into this handle. */
	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "SELECT name FROM users ORDER BY name");
	if (st) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			fn(arg, (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		*err = userdb_sqlerr(u->db, "cannot list users");
	pthread_mutex_unlock(&u->mu);
	return rc == SQLITE_DONE ? 0 : -1;
}

int userdb_alias_add(struct userdb *u, const char *address, const char *target, char **err)
{
	sqlite3_stmt *st;
	char *addr, *tgt;
	int rc, ret = -1;

	if (!(addr = username_normalize_alias(address, err)))
		return -1;
	if (!(tgt = username_normalize(target, "alias target", err))) {
		free(addr);
		return -1;
	}
	if (strcmp(addr, tgt) == 0) {
		*err = xasprintf("alias %s points at itself", addr);
		goto out;
	}
	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "INSERT INTO aliases (address, target) VALUES (?1, ?2)");
	if (!st) {
		*err = userdb_sqlerr(u->db, "cannot add alias");
	} else {
		sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, tgt, -1, SQLITE_STATIC);
		rc = userdb_step_write(st);
		if (rc == SQLITE_DONE)
			ret = 0;
		else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			*err = xasprintf("alias %s -> %s already exists", addr, tgt);
		else
			*err = userdb_sqlerr(u->db, "cannot add alias");
	}
	pthread_mutex_unlock(&u->mu);
out:
	free(addr);
	free(tgt);
	return ret;
}

int userdb_alias_del(struct userdb *u, const char *address, const char *target, char **err)
{
	char *addr = xstrdup(address), *tgt = target ? xstrdup(target) : NULL;
	int rc;

	username_lower(addr);
	if (tgt) {
		char *both;
		username_lower(tgt);
		both = xasprintf("%s -> %s", addr, tgt);
		rc = userdb_delete(u, "DELETE FROM aliases WHERE address = ?1 AND target = ?2",
				   addr, tgt, userdb_missing("alias", both), err);
		free(both);
	} else {
		rc = userdb_delete(u, "DELETE FROM aliases WHERE address = ?1", addr, NULL,
				   userdb_missing("alias", addr), err);
	}
	free(addr);
	free(tgt);
	return rc;
}

int userdb_alias_list(struct userdb *u,
		      void (*fn)(void *arg, const char *address, const char *target), void *arg,
		      char **err)
{
	sqlite3_stmt *st;
	int rc = SQLITE_ERROR;

	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "SELECT address, target FROM aliases ORDER BY address, target");
	if (st) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			fn(arg, (const char *)sqlite3_column_text(st, 0),
			   (const char *)sqlite3_column_text(st, 1));
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		*err = userdb_sqlerr(u->db, "cannot list aliases");
	pthread_mutex_unlock(&u->mu);
	return rc == SQLITE_DONE ? 0 : -1;
}
