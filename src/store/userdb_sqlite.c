/* userdb_sqlite: the SQLite backend of userdb_backend.h, for one machine. Its schema
 * and opening are userdb_sqlite_schema.c.
 * Promises: one connection per handle, opened SQLITE_OPEN_FULLMUTEX and further
 * serialised by the handle's mutex, so any number of threads may share a handle (a
 * transaction holds the mutex from begin to end); parameters are bound by their
 * "$n" names, whatever order a statement names them in; WAL mode and a busy timeout
 * so the cursus tool can write while the daemon reads. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/userdb_sqlite_impl.h"
#include "util/xmalloc.h"

int usql_exec(sqlite3 *db, const char *sql)
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

/* Binds p[n - 1] to every parameter named "$n". 0, or -1 for a name with no value. */
static int usql_bind(sqlite3_stmt *st, const struct userdb_param *p, size_t np)
{
	int count = sqlite3_bind_parameter_count(st);
	for (int i = 1; i <= count; i++) {
		const char *name = sqlite3_bind_parameter_name(st, i);
		unsigned long k = name && name[0] == '$' ? strtoul(name + 1, NULL, 10) : 0;
		if (k == 0 || k > np)
			return -1;
		const struct userdb_param *v = &p[k - 1];
		if (v->type == UP_INT)
			sqlite3_bind_int64(st, i, v->i);
		else if (v->s)
			sqlite3_bind_text(st, i, v->s, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, i);
	}
	return 0;
}

static int usql_query(void *impl, void *tx, const char *sql, const struct userdb_param *p,
		      size_t np, userdb_row_fn fn, void *arg, long long *changes_r, char **err)
{
	struct usql *s = impl;
	sqlite3_stmt *st = NULL;
	const char *cols[24];
	int rc, ret = -1;

	if (!tx)
		pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK && usql_bind(st, p, np) == 0) {
		int nc = sqlite3_column_count(st), stop = 0;
		if (nc > (int)(sizeof(cols) / sizeof(cols[0])))
			nc = (int)(sizeof(cols) / sizeof(cols[0]));
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (stop || !fn)
				continue;
			for (int c = 0; c < nc; c++)
				cols[c] = sqlite3_column_type(st, c) == SQLITE_NULL
						  ? NULL : (const char *)sqlite3_column_text(st, c);
			stop = fn(arg, cols, (size_t)nc);
		}
		if (rc == SQLITE_DONE) {
			ret = 0;
			if (changes_r)
				*changes_r = sqlite3_changes(s->db);
		} else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
			ret = USERDB_CONFLICT;
		}
	}
	if (ret == -1 && err)
		*err = xstrdup(sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	if (!tx)
		pthread_mutex_unlock(&s->mu);
	return ret;
}

static void *usql_begin(void *impl, char **err)
{
	struct usql *s = impl;
	pthread_mutex_lock(&s->mu);
	if (usql_exec(s->db, "BEGIN IMMEDIATE;") == 0)
		return s;
	if (err)
		*err = xstrdup(sqlite3_errmsg(s->db));
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int usql_end(void *impl, void *tx, int commit, char **err)
{
	struct usql *s = impl;
	int rc = 0;
	if (commit && usql_exec(s->db, "COMMIT;") < 0) {
		if (err)
			*err = xstrdup(sqlite3_errmsg(s->db));
		rc = -1;
	}
	if (!commit || rc < 0)
		usql_exec(s->db, "ROLLBACK;");
	pthread_mutex_unlock(&s->mu);
	return rc;
}

const struct userdb_ops userdb_sqlite_ops = {
	.name = "sqlite",
	.open = usql_open,
	.close = usql_close,
	.secret_load = usql_secret_load,
	.secret_store = usql_secret_store,
	.query = usql_query,
	.begin = usql_begin,
	.end = usql_end,
	.version = usql_version_get,
};
