/* Tests of the relay credentials in the user database (SQLite, a real temporary file):
 * set, replace, per-sender entries and their fallback to the default, delete, listing
 * without passwords, OAuth entries, key validation, and the upgrade of version 2 and
 * version 4 databases. With CURSUS_TEST_PG set to a "postgresql:CONNINFO" store (an
 * empty database; tests/integration/test_pgstore.py runs it so), the same tests of the
 * statements run against PostgreSQL too. */
#include "unit.h"
#include "store/userdb.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];

static void remove_db(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		char p[200];
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		unlink(p);
	}
}

/* The listing, one "nexthop|sender|user;" per entry ("-" for no sender). */
static void collect(void *arg, const char *nexthop, const char *sender, const char *user,
		    const char *oauth_mech)
{
	char *buf = arg;
	size_t len = strlen(buf);
	snprintf(buf + len, 1024 - len, "%s|%s|%s%s%s;", nexthop, sender ? sender : "-", user,
		 oauth_mech ? "|" : "", oauth_mech ? oauth_mech : "");
}

/* 1 with the user and password found, else the find's return value. */
static int find(struct userdb *db, const char *nexthop, const char *sender, const char *want_user,
		const char *want_password)
{
	char *user = NULL, *password = NULL;
	int rc = userdb_relay_auth_find(db, nexthop, sender, &user, &password, NULL);
	if (rc == 1) {
		CHECK_STR(user, want_user);
		CHECK_STR(password, want_password);
	} else {
		CHECK(user == NULL && password == NULL);
	}
	free(user);
	free(password);
	return rc;
}

static int set(struct userdb *db, const char *nexthop, const char *sender, const char *user,
	       const char *password)
{
	char *err = NULL;
	int rc = userdb_relay_auth_set(db, nexthop, sender, user, password, &err);
	if (rc < 0) {
		CHECK(err != NULL);
		/* The reason never quotes the password. */
		CHECK(err && (!*password || !strstr(err, password)));
	}
	free(err);
	return rc;
}

static void test_set_find(struct userdb *db)
{
	char list[1024] = "", *err = NULL;

	CHECK(find(db, "[smart.example]:587", NULL, NULL, NULL) == 0);
	CHECK(set(db, "[Smart.Example]:587", NULL, "relay-user", "s3cret pw") == 0);
	CHECK(find(db, "[smart.example]:587", NULL, "relay-user", "s3cret pw") == 1);
	/* Any sender without an entry of its own gets the default. */
	CHECK(find(db, "[smart.example]:587", "carol@example.test", "relay-user", "s3cret pw") == 1);
	CHECK(find(db, "[smart.example]:587", "", "relay-user", "s3cret pw") == 1);
	/* Another port or the unbracketed name is another next hop. */
	CHECK(find(db, "[smart.example]:25", NULL, NULL, NULL) == 0);
	CHECK(find(db, "smart.example:587", NULL, NULL, NULL) == 0);

	/* Setting again replaces. */
	CHECK(set(db, "[smart.example]:587", NULL, "other-user", "new pw") == 0);
	CHECK(find(db, "[smart.example]:587", NULL, "other-user", "new pw") == 1);

	/* A sender's own entry wins for that sender only. */
	CHECK(set(db, "[smart.example]:587", "Alice@Example.Test", "alice-there", "alice pw") == 0);
	CHECK(find(db, "[smart.example]:587", "alice@example.test", "alice-there", "alice pw") == 1);
	CHECK(find(db, "[smart.example]:587", "ALICE@example.test", "alice-there", "alice pw") == 1);
	CHECK(find(db, "[smart.example]:587", "bob@example.test", "other-user", "new pw") == 1);
	CHECK(find(db, "[smart.example]:587", NULL, "other-user", "new pw") == 1);

	CHECK(set(db, "mx.example.org:25", NULL, "u2", "p2") == 0);
	CHECK(userdb_relay_auth_list(db, collect, list, &err) == 0);
	CHECK_STR(list, "[smart.example]:587|-|other-user;"
			"[smart.example]:587|alice@example.test|alice-there;"
			"mx.example.org:25|-|u2;");

	/* Deleting the default leaves the sender's entry, and the others fall back to none. */
	CHECK(userdb_relay_auth_del(db, "[smart.example]:587", NULL, &err) == 1);
	CHECK(userdb_relay_auth_del(db, "[smart.example]:587", NULL, &err) == 0);
	CHECK(find(db, "[smart.example]:587", "bob@example.test", NULL, NULL) == 0);
	CHECK(find(db, "[smart.example]:587", "alice@example.test", "alice-there", "alice pw") == 1);
	CHECK(userdb_relay_auth_del(db, "[SMART.example]:587", "alice@EXAMPLE.test", &err) == 1);
	CHECK(find(db, "[smart.example]:587", "alice@example.test", NULL, NULL) == 0);
	CHECK(userdb_relay_auth_del(db, "mx.example.org:25", NULL, &err) == 1);
	list[0] = '\0';
	CHECK(userdb_relay_auth_list(db, collect, list, &err) == 0);
	CHECK_STR(list, "");
}

/* An OAuth entry: stored, found whole, listed by mechanism, its refresh token
 * rotated by compare and set, and replaced whole by a password entry. */
static void test_oauth(struct userdb *db)
{
	struct userdb_relay_oauth o = {
		.url = "https://login.example/token", .client_id = "cid", .client_secret = "csecret",
		.refresh_token = "rt-1", .scope = "https://outlook.office.com/SMTP.Send offline_access",
		.mech = "XOAUTH2", .grant = "refresh_token",
	}, got;
	char *user = NULL, *password = NULL, *err = NULL, list[1024] = "";

	CHECK(userdb_relay_oauth_set(db, "[SMTP.example]:587", NULL, "me@example.test", &o, &err) == 0);
	CHECK(userdb_relay_auth_find(db, "[smtp.example]:587", NULL, &user, &password, &got) == 1);
	CHECK_STR(user, "me@example.test");
	CHECK_STR(password, "");
	CHECK_STR(got.url, o.url);
	CHECK_STR(got.client_id, "cid");
	CHECK_STR(got.client_secret, "csecret");
	CHECK_STR(got.refresh_token, "rt-1");
	CHECK_STR(got.scope, o.scope);
	CHECK_STR(got.mech, "XOAUTH2");
	CHECK_STR(got.grant, "refresh_token");
	free(user);
	free(password);
	userdb_relay_oauth_clear(&got);
	CHECK(got.url == NULL && got.refresh_token == NULL);

	CHECK(userdb_relay_auth_list(db, collect, list, &err) == 0);
	CHECK_STR(list, "[smtp.example]:587|-|me@example.test|XOAUTH2;");

	/* Rotation replaces only the token it was given. */
	CHECK(userdb_relay_oauth_rotate(db, "[smtp.example]:587", "rt-0", "rt-x") == 0);
	CHECK(userdb_relay_oauth_rotate(db, "[smtp.example]:587", "rt-1", "rt-2") == 1);
	CHECK(userdb_relay_auth_find(db, "[smtp.example]:587", NULL, &user, &password, &got) == 1);
	CHECK_STR(got.refresh_token, "rt-2");
	free(user);
	free(password);
	userdb_relay_oauth_clear(&got);

	/* Refused: http, a missing refresh token, an unknown mechanism; the error never
	 * quotes a secret. */
	o.url = "http://login.example/token";
	CHECK(userdb_relay_oauth_set(db, "[smtp.example]:587", NULL, "me", &o, &err) < 0);
	CHECK(err && !strstr(err, "csecret"));
	free(err);
	err = NULL;
	o.url = "https://login.example/token";
	o.refresh_token = NULL;
	CHECK(userdb_relay_oauth_set(db, "[smtp.example]:587", NULL, "me", &o, &err) < 0);
	free(err);
	err = NULL;
	o.refresh_token = "zq7\nzq8";
	CHECK(userdb_relay_oauth_set(db, "[smtp.example]:587", NULL, "me", &o, &err) < 0);
	CHECK(err && !strstr(err, "zq7"));
	free(err);
	err = NULL;
	o.refresh_token = "rt";
	o.mech = "PLAIN";
	CHECK(userdb_relay_oauth_set(db, "[smtp.example]:587", NULL, "me", &o, &err) < 0);
	free(err);
	err = NULL;
	/* client_credentials needs no refresh token but a secret. */
	o.mech = "OAUTHBEARER";
	o.grant = "client_credentials";
	o.refresh_token = NULL;
	CHECK(userdb_relay_oauth_set(db, "[cc.example]:587", NULL, "svc", &o, &err) == 0);
	o.client_secret = NULL;
	CHECK(userdb_relay_oauth_set(db, "[cc.example]:587", NULL, "svc", &o, &err) < 0);
	free(err);
	err = NULL;

	/* A password replaces the OAuth entry whole. */
	CHECK(set(db, "[smtp.example]:587", NULL, "me", "pw") == 0);
	CHECK(userdb_relay_auth_find(db, "[smtp.example]:587", NULL, &user, &password, &got) == 1);
	CHECK(got.url == NULL && got.refresh_token == NULL);
	CHECK_STR(password, "pw");
	free(user);
	free(password);
	CHECK(userdb_relay_auth_del(db, "[smtp.example]:587", NULL, &err) == 1);
	CHECK(userdb_relay_auth_del(db, "[cc.example]:587", NULL, &err) == 1);
}

static void test_invalid(struct userdb *db)
{
	char *err = NULL, long_hop[400];

	CHECK(set(db, "", NULL, "u", "Pw-XyZ") < 0);
	CHECK(set(db, "bad host:25", NULL, "u", "Pw-XyZ") < 0);
	CHECK(set(db, "host:25\n", NULL, "u", "Pw-XyZ") < 0);
	CHECK(set(db, "host:25", "a b@example.test", "u", "Pw-XyZ") < 0);
	CHECK(set(db, "host:25", "", "u", "Pw-XyZ") < 0);
	CHECK(set(db, "host:25", NULL, "", "p") < 0);
	CHECK(set(db, "host:25", NULL, "u", "") < 0);
	CHECK(set(db, "host:25", NULL, "u", "line\nbreak") < 0);
	memset(long_hop, 'a', sizeof(long_hop) - 1);
	long_hop[sizeof(long_hop) - 1] = '\0';
	CHECK(set(db, long_hop, NULL, "u", "Pw-XyZ") < 0);
	CHECK(userdb_relay_auth_del(db, "", NULL, &err) == -1);
	free(err);
	CHECK(find(db, "host:25", NULL, NULL, NULL) == 0);
}

/* userdb_open, checked; the reason on stderr (never the spec: it may hold a password). */
static struct userdb *open_db(const char *spec, int flags)
{
	char *err = NULL;
	struct userdb *db = userdb_open(spec, flags, &err);
	CHECK(db != NULL);
	if (!db) {
		fprintf(stderr, "open: %s\n", err);
		free(err);
	}
	return db;
}

/* Takes the database at path back to an older schema with sql. */
static void rewind_schema(const char *path, const char *sql)
{
	sqlite3 *s = NULL;
	CHECK(sqlite3_open(path, &s) == SQLITE_OK);
	CHECK(sqlite3_exec(s, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(s);
}

/* A version 2 database (this one, brought back: version 3 only added the table,
 * version 4 a column and its triggers) is upgraded on open, keeping its users. */
static void test_upgrade(void)
{
	char path[160], *err = NULL;
	struct userdb *db;
	sqlite3 *s = NULL;
	sqlite3_stmt *st = NULL;
	int version = -1;

	snprintf(path, sizeof(path), "%s/v2.db", tmpdir);
	if (!(db = open_db(path, USERDB_CREATE)))
		return;
	CHECK(userdb_user_add(db, "olga@example.test", "pw of olga", &err) == 0);
	userdb_close(&db);
	rewind_schema(path, "DROP TRIGGER users_cred_new; DROP TRIGGER users_cred_changed;"
			    "DROP TRIGGER app_password_gone; DROP TRIGGER cert_gone;"
			    "ALTER TABLE users DROP COLUMN cred_gen;"
			    "DROP TABLE relay_auth; PRAGMA user_version = 2;");
	if (!(db = open_db(path, 0)))
		return;
	CHECK(set(db, "[relay.example]:25", NULL, "u", "p") == 0);
	CHECK(find(db, "[relay.example]:25", NULL, "u", "p") == 1);
	CHECK(userdb_verify_password(db, "olga@example.test", "pw of olga", &err) == 1);
	free(err); /* the canonical user name here */
	userdb_close(&db);
	s = NULL;
	if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(s);
	CHECK(version == 5);
	remove_db(path);
}

/* A version 4 database (before OAuth) keeps its password entries through the upgrade,
 * and takes OAuth entries after it. */
static void test_upgrade_v4(void)
{
	struct userdb_relay_oauth o = {
		.url = "https://login.example/token", .client_id = "cid", .client_secret = "cs",
		.mech = "OAUTHBEARER", .grant = "client_credentials",
	}, got;
	char path[160], *err = NULL, *user = NULL, *password = NULL;
	struct userdb *db;

	snprintf(path, sizeof(path), "%s/v4.db", tmpdir);
	if (!(db = open_db(path, USERDB_CREATE)))
		return;
	CHECK(set(db, "[old.example]:587", NULL, "old-user", "old pw") == 0);
	userdb_close(&db);
	rewind_schema(path, "ALTER TABLE relay_auth DROP COLUMN oauth_url;"
			    "ALTER TABLE relay_auth DROP COLUMN oauth_client_id;"
			    "ALTER TABLE relay_auth DROP COLUMN oauth_client_secret;"
			    "ALTER TABLE relay_auth DROP COLUMN oauth_refresh_token;"
			    "ALTER TABLE relay_auth DROP COLUMN oauth_scope;"
			    "ALTER TABLE relay_auth DROP COLUMN oauth_mech;"
			    "ALTER TABLE relay_auth DROP COLUMN oauth_grant;"
			    "PRAGMA user_version = 4;");
	if (!(db = open_db(path, 0)))
		return;
	CHECK(userdb_relay_auth_find(db, "[old.example]:587", NULL, &user, &password, &got) == 1);
	CHECK_STR(user, "old-user");
	CHECK_STR(password, "old pw");
	CHECK(got.url == NULL);
	free(user);
	free(password);
	CHECK(userdb_relay_oauth_set(db, "[new.example]:587", NULL, "svc", &o, &err) == 0);
	CHECK(userdb_relay_auth_find(db, "[new.example]:587", NULL, &user, &password, &got) == 1);
	CHECK_STR(got.grant, "client_credentials");
	CHECK(got.refresh_token == NULL && got.scope == NULL);
	free(user);
	free(password);
	userdb_relay_oauth_clear(&got);
	userdb_close(&db);
	remove_db(path);
}

/* The statements' tests on one store. */
static void test_store(const char *spec)
{
	struct userdb *db = open_db(spec, USERDB_CREATE);
	if (!db)
		return;
	test_set_find(db);
	test_oauth(db);
	test_invalid(db);
	userdb_close(&db);
}

void unit_main(void)
{
	const char *pg = getenv("CURSUS_TEST_PG");
	char path[160];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cursus-relayauth-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/users.db", tmpdir);
	test_store(path);
	remove_db(path);
	test_upgrade();
	test_upgrade_v4();
	/* The same statements on PostgreSQL, when given one (an empty database). */
	if (pg && *pg)
		test_store(pg);
	rmdir(tmpdir);
}
