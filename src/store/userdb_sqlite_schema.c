/* userdb_sqlite_schema: opening the SQLite user database and keeping its schema current.
 * Promises: the schema is a list of steps, userdb_migrations[v] taking a database
 * from PRAGMA user_version v to v + 1, each run in one IMMEDIATE transaction, so a
 * database made by any earlier release is brought up to date on open and a crash
 * mid-way leaves the old version whole; a database newer than this program is
 * refused, never written; the per-database secret comes from OpenSSL's generator. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/userdb_sqlite_impl.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define USERDB_SCHEMA_VERSION 5
#define USERDB_BUSY_TIMEOUT_DEFAULT_MS 5000

/* The schema as a list of steps: userdb_migrations[v] takes a database from
 * PRAGMA user_version v to v + 1, so a new database runs them all and an old one
 * only those it lacks. Never edit a step that has shipped: add one. */
static const char userdb_schema_v1_sql[] =
	"CREATE TABLE IF NOT EXISTS users ("
	" name TEXT PRIMARY KEY NOT NULL,"
	" hash TEXT NOT NULL,"
	" scram1_salt TEXT, scram1_iter INTEGER, scram1_stored TEXT, scram1_server TEXT,"
	" scram256_salt TEXT, scram256_iter INTEGER, scram256_stored TEXT,"
	" scram256_server TEXT,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS aliases ("
	" address TEXT NOT NULL,"
	" target TEXT NOT NULL,"
	" PRIMARY KEY (address, target));";

/* Version 2: what SMTP AUTH needs beyond the password. */
static const char userdb_schema_v2_sql[] =
	/* The password-equivalent for CRAM-MD5/DIGEST-MD5; NULL unless enabled. */
	"ALTER TABLE users ADD COLUMN legacy_secret TEXT;"
	"CREATE TABLE grants ("
	" user TEXT NOT NULL,"
	" kind TEXT NOT NULL CHECK (kind IN ('act-as', 'send-as')),"
	" value TEXT NOT NULL,"
	" PRIMARY KEY (user, kind, value));"
	"CREATE INDEX grants_value ON grants (kind, value);"
	"CREATE TABLE app_passwords ("
	" user TEXT NOT NULL,"
	" label TEXT NOT NULL,"
	" hash TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" last_used INTEGER,"
	" PRIMARY KEY (user, label));"
	/* One certificate maps to one user, so "match" is the key. */
	"CREATE TABLE certs ("
	" user TEXT NOT NULL,"
	" \"match\" TEXT PRIMARY KEY NOT NULL);"
	"CREATE INDEX certs_user ON certs (user);"
	"CREATE TABLE meta ("
	" key TEXT PRIMARY KEY NOT NULL,"
	" value BLOB NOT NULL);";

/* Version 3: what cursus sends to a smart host (`cursus relay-auth`). The password
 * is kept as given because it must be sent; sender '' is the next hop's default, so
 * the key is one plain PRIMARY KEY (a NULL would never conflict). */
static const char userdb_schema_v3_sql[] =
	"CREATE TABLE relay_auth ("
	" nexthop TEXT NOT NULL,"
	" sender TEXT NOT NULL DEFAULT '',"
	" user TEXT NOT NULL,"
	" password TEXT NOT NULL,"
	" PRIMARY KEY (nexthop, sender));";

/* Version 4: a credential generation per user, so an authenticated session can
 * tell cheaply (one indexed read) that the credentials it logged in with are gone.
 * Triggers change it on every write that withdraws a credential, whoever writes;
 * random() rather than a counter, so a user deleted and added again under the same
 * name never matches an old session's value. */
static const char userdb_schema_v4_sql[] =
	"ALTER TABLE users ADD COLUMN cred_gen INTEGER NOT NULL DEFAULT 0;"
	"CREATE TRIGGER users_cred_new AFTER INSERT ON users BEGIN"
	" UPDATE users SET cred_gen = random() WHERE name = NEW.name; END;"
	"CREATE TRIGGER users_cred_changed AFTER UPDATE OF hash, legacy_secret ON users BEGIN"
	" UPDATE users SET cred_gen = random() WHERE name = NEW.name; END;"
	"CREATE TRIGGER app_password_gone AFTER DELETE ON app_passwords BEGIN"
	" UPDATE users SET cred_gen = random() WHERE name = OLD.user; END;"
	"CREATE TRIGGER cert_gone AFTER DELETE ON certs BEGIN"
	" UPDATE users SET cred_gen = random() WHERE name = OLD.user; END;";

/* Version 5: OAuth 2 relay credentials (docs/relay-oauth.md). A row with oauth_url
 * set is one: cursus gets its access tokens from that token endpoint with the
 * oauth_grant (refresh_token or client_credentials) and sends them with oauth_mech
 * (XOAUTH2 or OAUTHBEARER); its password is ''. The client secret and the refresh
 * token are kept as given, like the password, because they must be sent; the refresh
 * token is replaced when the endpoint rotates it. */
static const char userdb_schema_v5_sql[] =
	"ALTER TABLE relay_auth ADD COLUMN oauth_url TEXT;"
	"ALTER TABLE relay_auth ADD COLUMN oauth_client_id TEXT;"
	"ALTER TABLE relay_auth ADD COLUMN oauth_client_secret TEXT;"
	"ALTER TABLE relay_auth ADD COLUMN oauth_refresh_token TEXT;"
	"ALTER TABLE relay_auth ADD COLUMN oauth_scope TEXT;"
	"ALTER TABLE relay_auth ADD COLUMN oauth_mech TEXT;"
	"ALTER TABLE relay_auth ADD COLUMN oauth_grant TEXT;";

static const char *const userdb_migrations[USERDB_SCHEMA_VERSION] = {
	userdb_schema_v1_sql,
	userdb_schema_v2_sql,
	userdb_schema_v3_sql,
	userdb_schema_v4_sql,
	userdb_schema_v5_sql,
};

/* PRAGMA user_version, or -1. */
static int usql_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int version = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version;", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return version;
}

int usql_version_get(void *impl, int *have_r, int *want_r, char **err)
{
	struct usql *s = impl;
	pthread_mutex_lock(&s->mu);
	*have_r = usql_version(s->db);
	pthread_mutex_unlock(&s->mu);
	*want_r = USERDB_SCHEMA_VERSION;
	if (*have_r < 0) {
		*err = xasprintf("user database %s: cannot read its version", s->path);
		return -1;
	}
	return 0;
}

/* 1 with the secret, 0 when there is none, -1 failure. Lock held. */
static int usql_secret_read(struct usql *s, unsigned char secret[USERDB_SECRET_LEN])
{
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'scram_fake_secret'", -1,
			       &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == USERDB_SECRET_LEN) {
		memcpy(secret, sqlite3_column_blob(st, 0), USERDB_SECRET_LEN);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	}
	sqlite3_finalize(st);
	return ret;
}

/* Replaces the secret. Lock held. 0, -1. */
static int usql_secret_write(struct usql *s, const unsigned char secret[USERDB_SECRET_LEN])
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta (key, value) "
			       "VALUES ('scram_fake_secret', ?1)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_blob(st, 1, secret, USERDB_SECRET_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int usql_secret_load(void *impl, unsigned char secret[USERDB_SECRET_LEN], int may_create)
{
	struct usql *s = impl;
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = usql_secret_read(s, secret);
	if (rc == 0 && (may_create || s->migrated) && usql_exec(s->db, "BEGIN IMMEDIATE;") == 0) {
		/* Read again inside: another process may have made it meanwhile. OpenSSL's
		 * generator, not SQLite's randomblob(): this one is a key. */
		rc = usql_secret_read(s, secret);
		if (rc == 0)
			rc = RAND_bytes(secret, USERDB_SECRET_LEN) == 1 &&
					     usql_secret_write(s, secret) == 0 ? 1 : -1;
		if (usql_exec(s->db, rc == 1 ? "COMMIT;" : "ROLLBACK;") < 0)
			rc = -1;
	}
	pthread_mutex_unlock(&s->mu);
	return rc == 1 ? 0 : -1;
}

int usql_secret_store(void *impl, void *tx, const unsigned char secret[USERDB_SECRET_LEN],
		      char **err)
{
	struct usql *s = impl;
	int rc;

	if (!tx)
		pthread_mutex_lock(&s->mu);
	rc = usql_secret_write(s, secret);
	if (rc < 0)
		*err = xstrdup(sqlite3_errmsg(s->db));
	if (!tx)
		pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Brings the schema from its version to USERDB_SCHEMA_VERSION. 0 ok, -1 with *err. */
static int usql_migrate(sqlite3 *db, const char *path, char **err)
{
	int version;

	/* IMMEDIATE so two processes migrating at once serialise here; the version is
	 * read again inside, as the other one may have done the work meanwhile. */
	if (usql_exec(db, "BEGIN IMMEDIATE;") < 0) {
		*err = xasprintf("user database %s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	version = usql_version(db);
	for (int v = version < 0 ? USERDB_SCHEMA_VERSION : version; v < USERDB_SCHEMA_VERSION; v++) {
		if (usql_exec(db, userdb_migrations[v]) < 0) {
			*err = xasprintf("cannot bring %s to schema version %d: %s", path, v + 1,
					 sqlite3_errmsg(db));
			goto fail;
		}
	}
	/* PRAGMA takes no parameters; the number is ours, not data. */
	char pragma[64];
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d;", USERDB_SCHEMA_VERSION);
	if (version < 0 || usql_exec(db, pragma) < 0 || usql_exec(db, "COMMIT;") < 0) {
		*err = xasprintf("user database %s: %s", path, sqlite3_errmsg(db));
		goto fail;
	}
	if (version > 0 && version < USERDB_SCHEMA_VERSION)
		log_info("userdb migrated path=%s from=%d to=%d", path, version,
			 USERDB_SCHEMA_VERSION);
	return 0;
fail:
	usql_exec(db, "ROLLBACK;");
	return -1;
}

/* The file holds hashes, SCRAM keys and legacy secrets: owner only, whoever makes it
 * (SQLite gives its -wal and -shm files the same mode). */
static int usql_protect(const char *path, int create, char **err)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (fd < 0) {
		*err = xasprintf("cannot open user database %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		log_warnx("userdb path=%s mode=%03o event=tightened to 600", path, (unsigned)(st.st_mode & 0777));
		if (fchmod(fd, 0600) < 0)
			log_warn("userdb chmod %s", path);
	}
	close(fd);
	return 0;
}

void *usql_open(const char *path, const struct userdb_options *o, int flags, char **err)
{
	int create = flags & USERDB_CREATE;
	int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
	struct usql *s;
	sqlite3 *db = NULL;
	int version;

	if (create)
		oflags |= SQLITE_OPEN_CREATE;
	if (usql_protect(path, create, err) < 0)
		return NULL;
	if (sqlite3_open_v2(path, &db, oflags, NULL) != SQLITE_OK) {
		*err = xasprintf("cannot open user database %s: %s", path,
				 db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, o->timeout_ms ? (int)o->timeout_ms : USERDB_BUSY_TIMEOUT_DEFAULT_MS);
	/* WAL lets the daemon's readers go on while the cursus tool writes;
	 * secure_delete overwrites a removed hash or legacy secret instead of leaving
	 * it in a free page. */
	if (usql_exec(db, "PRAGMA journal_mode = WAL;") < 0 ||
	    usql_exec(db, "PRAGMA secure_delete = ON;") < 0)
		goto sqlfail;
	if ((version = usql_version(db)) < 0)
		goto sqlfail;
	if (version == 0 && !create) {
		*err = xasprintf("%s is not a cursus user database (no schema; "
				 "`cursus user add` creates it)", path);
		goto fail;
	}
	if (version > USERDB_SCHEMA_VERSION) {
		*err = xasprintf("%s has schema version %d; this program knows up to %d", path,
				 version, USERDB_SCHEMA_VERSION);
		goto fail;
	}
	if (version < USERDB_SCHEMA_VERSION && usql_migrate(db, path, err) < 0)
		goto fail;
	s = xcalloc(1, sizeof(*s));
	s->migrated = version < USERDB_SCHEMA_VERSION;
	s->db = db;
	s->path = xstrdup(path);
	pthread_mutex_init(&s->mu, NULL);
	return s;

sqlfail:
	*err = xasprintf("user database %s: %s", path, sqlite3_errmsg(db));
fail:
	sqlite3_close(db);
	return NULL;
}

void usql_close(void *impl)
{
	struct usql *s = impl;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
}
