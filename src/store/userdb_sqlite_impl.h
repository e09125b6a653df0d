/* userdb_sqlite_impl (private): what the SQLite backend's two files share. */
#ifndef CURSUS_USERDB_SQLITE_IMPL_H
#define CURSUS_USERDB_SQLITE_IMPL_H

#include <pthread.h>
#include <sqlite3.h>

#include "store/userdb.h"
#include "store/userdb_backend.h"

struct usql {
	sqlite3 *db;
	pthread_mutex_t mu;       /* serialises every use of db */
	char *path;
	int migrated;             /* this open ran migrations: a secret may be made */
};

/* Runs constant SQL text (one or more statements). 0, -1 (sqlite3_errmsg tells). */
int usql_exec(sqlite3 *db, const char *sql);

void *usql_open(const char *path, const struct userdb_options *o, int flags, char **err);
void usql_close(void *impl);
int usql_secret_load(void *impl, unsigned char secret[USERDB_SECRET_LEN], int may_create);
int usql_secret_store(void *impl, void *tx, const unsigned char secret[USERDB_SECRET_LEN],
		      char **err);
int usql_version_get(void *impl, int *have_r, int *want_r, char **err);

#endif
