/* Tests of the SMTP AUTH side of the user store: password checks (account and app
 * passwords, the success cache, unknown users), SCRAM keys real and fake, the
 * legacy secret, act-as and send-as grants, certificate mapping, and migration of
 * a database made with schema version 1. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/password.h"
#include "store/userdb.h"
#include "unit.h"
#include "util/xmalloc.h"

static char tmpdir[64];
static char dbpath[128];

static void cleanup(const char *path)
{
	char p[256];
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		unlink(p);
	}
}

static int ok(int rc, char *err)
{
	if (rc < 0) {
		fprintf(stderr, "  error: %s\n", err ? err : "(none)");
		free(err);
	}
	return rc;
}

/* verify_password, returning its result and checking the canonical name on success. */
static int verify(struct userdb *db, const char *name, const char *pw, const char *want_user)
{
	char *user = NULL;
	int rc = userdb_verify_password(db, name, pw, &user);
	if (rc == 1)
		CHECK_STR(user, want_user);
	else
		CHECK(user == NULL);
	free(user);
	return rc;
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_verify(struct userdb *db)
{
	char *err = NULL;
	double t0, wrong, unknown;

	CHECK(ok(userdb_user_add(db, "alice@example.test", "correct horse", &err), err) == 0);
	CHECK(verify(db, "alice@example.test", "correct horse", "alice@example.test") == 1);
	CHECK(verify(db, "ALICE@Example.Test", "correct horse", "alice@example.test") == 1);
	CHECK(verify(db, "alice@example.test", "correct horsE", NULL) == 0);
	CHECK(verify(db, "alice@example.test", "", NULL) == 0);
	CHECK(verify(db, "nobody@example.test", "correct horse", NULL) == 0);

	/* An unknown user pays for a hash too. Only a loose lower bound on the fastest
	 * of a few runs: a busy machine slows runs down, which cannot make this fail. */
	wrong = unknown = 1e9;
	for (int i = 0; i < 3; i++) {
		t0 = now_sec();
		verify(db, "alice@example.test", "wrong", NULL);
		if (now_sec() - t0 < wrong)
			wrong = now_sec() - t0;
		t0 = now_sec();
		verify(db, "nobody@example.test", "wrong", NULL);
		if (now_sec() - t0 < unknown)
			unknown = now_sec() - t0;
	}
	CHECK(unknown >= 0.3 * wrong);
	if (unknown < 0.3 * wrong)
		fprintf(stderr, "  unknown %.3fs, wrong %.3fs\n", unknown, wrong);
}

static void test_cache(struct userdb *db)
{
	char *err = NULL;
	double t0, first, cached;

	CHECK(ok(userdb_user_add(db, "carol@example.test", "first pass", &err), err) == 0);
	t0 = now_sec();
	CHECK(verify(db, "carol@example.test", "first pass", "carol@example.test") == 1);
	first = now_sec() - t0;
	cached = 1e9;
	for (int i = 0; i < 5; i++) {
		t0 = now_sec();
		CHECK(verify(db, "carol@example.test", "first pass", "carol@example.test") == 1);
		if (now_sec() - t0 < cached)
			cached = now_sec() - t0;
	}
	/* The cache answers without yescrypt: loosely, the fastest of a few cached
	 * checks takes under half the uncached one. */
	CHECK(cached < first / 2);
	/* A cached success does not open the door to another password. */
	CHECK(verify(db, "carol@example.test", "first pas", NULL) == 0);
	CHECK(verify(db, "carol@example.test", "first pass ", NULL) == 0);
	CHECK(verify(db, "other@example.test", "first pass", NULL) == 0);
	/* After passwd the old password fails though it was cached. */
	CHECK(ok(userdb_user_passwd(db, "carol@example.test", "second pass", &err), err) == 0);
	CHECK(verify(db, "carol@example.test", "first pass", NULL) == 0);
	CHECK(verify(db, "carol@example.test", "second pass", "carol@example.test") == 1);
	CHECK(verify(db, "carol@example.test", "second pass", "carol@example.test") == 1);
	/* A deleted user's cached success is gone with it. */
	CHECK(ok(userdb_user_del(db, "carol@example.test", &err), err) == 0);
	CHECK(verify(db, "carol@example.test", "second pass", NULL) == 0);
}

struct app_seen {
	char labels[256];
	long long last_used[4];
	int n;
};

static void app_collect(void *arg, const char *label, long long created, long long last_used)
{
	struct app_seen *s = arg;
	strcat(s->labels, label);
	strcat(s->labels, ",");
	CHECK(created > 0);
	if (s->n < 4)
		s->last_used[s->n] = last_used;
	s->n++;
}

static int is_app_password(const char *p)
{
	if (strlen(p) != 19)
		return 0;
	for (int i = 0; i < 19; i++) {
		if (i % 5 == 4) {
			if (p[i] != '-')
				return 0;
		} else if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9'))) {
			return 0;
		}
	}
	return 1;
}

static void test_app_passwords(struct userdb *db)
{
	struct app_seen seen;
	char *err = NULL, *phone, *laptop, *p;
	char typed[32];

	CHECK(ok(userdb_user_add(db, "dave@example.test", "dave's own", &err), err) == 0);
	phone = userdb_app_password_add(db, "Dave@example.test", "phone", &err);
	CHECK(phone != NULL);
	laptop = userdb_app_password_add(db, "dave@example.test", "laptop", &err);
	CHECK(laptop != NULL);
	if (!phone || !laptop) {
		free(phone);
		free(laptop);
		free(err);
		return;
	}
	CHECK(is_app_password(phone));
	CHECK(is_app_password(laptop));
	CHECK(strcmp(phone, laptop) != 0);
	/* Same label twice, an unknown user, an empty label: refused. */
	CHECK((p = userdb_app_password_add(db, "dave@example.test", "phone", &err)) == NULL);
	free(p);
	free(err);
	CHECK((p = userdb_app_password_add(db, "nobody@example.test", "x", &err)) == NULL);
	free(p);
	free(err);
	CHECK((p = userdb_app_password_add(db, "dave@example.test", "", &err)) == NULL);
	free(p);
	free(err);

	memset(&seen, 0, sizeof(seen));
	CHECK(userdb_app_password_list(db, "dave@example.test", app_collect, &seen, &err) == 0);
	CHECK_STR(seen.labels, "laptop,phone,");
	CHECK(seen.last_used[0] == 0 && seen.last_used[1] == 0);

	CHECK(verify(db, "dave@example.test", phone, "dave@example.test") == 1);
	CHECK(verify(db, "dave@example.test", "dave's own", "dave@example.test") == 1);
	/* Typed the way people type it: capitals, spaces instead of dashes. */
	snprintf(typed, sizeof(typed), "%.4s %.4s %.4s %.4s", laptop, laptop + 5, laptop + 10,
		 laptop + 15);
	for (char *c = typed; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	CHECK(verify(db, "dave@example.test", typed, "dave@example.test") == 1);
	/* An app password of one user is not another's. */
	CHECK(verify(db, "alice@example.test", phone, NULL) == 0);

	memset(&seen, 0, sizeof(seen));
	CHECK(userdb_app_password_list(db, "dave@example.test", app_collect, &seen, &err) == 0);
	CHECK(seen.n == 2);
	CHECK(seen.last_used[0] >= time(NULL) - 60 && seen.last_used[1] >= time(NULL) - 60);

	/* Revoked: fails at once, although its success is cached. */
	CHECK(ok(userdb_app_password_revoke(db, "dave@example.test", "phone", &err), err) == 0);
	CHECK(verify(db, "dave@example.test", phone, NULL) == 0);
	CHECK(verify(db, "dave@example.test", laptop, "dave@example.test") == 1);
	CHECK(userdb_app_password_revoke(db, "dave@example.test", "phone", &err) < 0);
	free(err);
	memset(&seen, 0, sizeof(seen));
	CHECK(userdb_app_password_list(db, "dave@example.test", app_collect, &seen, &err) == 0);
	CHECK_STR(seen.labels, "laptop,");
	xfree_secret(phone, strlen(phone));
	xfree_secret(laptop, strlen(laptop));
}

static void test_scram(struct userdb *db)
{
	struct user_record rec;
	struct scram_keys k, k2, k3;
	int exists = -1;

	CHECK(userdb_user_get(db, "alice@example.test", &rec) == 1);
	CHECK(userdb_scram_keys(db, "Alice@example.test", "SHA-256", &k, &exists) == 0);
	CHECK(exists == 1);
	CHECK_STR(k.salt, rec.sha256.salt);
	CHECK_STR(k.stored_key, rec.sha256.stored_key);
	CHECK_STR(k.server_key, rec.sha256.server_key);
	CHECK(k.iterations == rec.sha256.iterations);
	password_scram_keys_clear(&k);
	CHECK(userdb_scram_keys(db, "alice@example.test", "SHA-1", &k, &exists) == 0);
	CHECK(exists == 1);
	CHECK_STR(k.stored_key, rec.sha1.stored_key);
	CHECK_STR(k.server_key, rec.sha1.server_key);
	CHECK_STR(k.salt, rec.sha1.salt);
	password_scram_keys_clear(&k);
	user_record_clear(&rec);

	CHECK(userdb_scram_keys(db, "ghost@example.test", "SHA-256", &k, &exists) == 0);
	CHECK(exists == 0);
	CHECK(k.iterations == PASSWORD_SCRAM_ITERATIONS);
	CHECK(k.salt && strlen(k.salt) == 24);            /* 16 octets */
	CHECK(k.stored_key && strlen(k.stored_key) == 44); /* 32 octets */
	CHECK(k.server_key && strlen(k.server_key) == 44);
	CHECK(userdb_scram_keys(db, "Ghost@Example.test", "SHA-256", &k2, &exists) == 0);
	CHECK(exists == 0);
	CHECK_STR(k.salt, k2.salt);
	CHECK_STR(k.stored_key, k2.stored_key);
	CHECK_STR(k.server_key, k2.server_key);
	password_scram_keys_clear(&k2);
	CHECK(userdb_scram_keys(db, "spectre@example.test", "SHA-256", &k2, &exists) == 0);
	CHECK(k2.salt && strcmp(k.salt, k2.salt) != 0);
	CHECK(k2.stored_key && strcmp(k.stored_key, k2.stored_key) != 0);
	CHECK(userdb_scram_keys(db, "ghost@example.test", "SHA-1", &k3, &exists) == 0);
	CHECK(k3.stored_key && strlen(k3.stored_key) == 28); /* 20 octets */
	CHECK(k3.salt && strcmp(k3.salt, k.salt) != 0);
	password_scram_keys_clear(&k);
	password_scram_keys_clear(&k2);
	password_scram_keys_clear(&k3);
	CHECK(userdb_scram_keys(db, "alice@example.test", "MD5", &k, &exists) == -1);
}

static void test_legacy(struct userdb *db)
{
	char *err = NULL, *secret = NULL;

	CHECK(userdb_legacy_secret(db, "alice@example.test", &secret) == 0);
	CHECK(secret == NULL);
	CHECK(userdb_legacy_secret(db, "nobody@example.test", &secret) == 0);
	CHECK(ok(userdb_user_set_password(db, "alice@example.test", "legacy pw", 1, &err), err) == 0);
	CHECK(userdb_legacy_secret(db, "ALICE@example.test", &secret) == 1);
	CHECK_STR(secret, "legacy pw");
	if (secret)
		xfree_secret(secret, strlen(secret));
	secret = NULL;
	CHECK(verify(db, "alice@example.test", "legacy pw", "alice@example.test") == 1);
	CHECK(verify(db, "alice@example.test", "correct horse", NULL) == 0);
	/* passwd without the flag removes it. */
	CHECK(ok(userdb_user_passwd(db, "alice@example.test", "correct horse", &err), err) == 0);
	CHECK(userdb_legacy_secret(db, "alice@example.test", &secret) == 0);
	CHECK(secret == NULL);
	CHECK(verify(db, "alice@example.test", "correct horse", "alice@example.test") == 1);
	CHECK(userdb_user_set_password(db, "nobody@example.test", "x", 1, &err) < 0);
	free(err);
}

static void grant_collect(void *arg, const char *kind, const char *value)
{
	char *out = arg;
	strcat(out, kind);
	strcat(out, "=");
	strcat(out, value);
	strcat(out, ",");
}

static void test_grants(struct userdb *db)
{
	char *err = NULL, list[512] = "";

	CHECK(ok(userdb_user_add(db, "bob@example.test", "bob pw", &err), err) == 0);
	CHECK(ok(userdb_user_add(db, "shared@example.test", "shared pw", &err), err) == 0);
	CHECK(ok(userdb_alias_add(db, "sales@example.test", "bob@example.test", &err), err) == 0);
	CHECK(ok(userdb_alias_add(db, "@example.test", "bob@example.test", &err), err) == 0);

	/* act-as */
	CHECK(userdb_may_act_as(db, "bob@example.test", "BOB@example.test") == 1);
	CHECK(userdb_may_act_as(db, "bob@example.test", "shared@example.test") == 0);
	CHECK(ok(userdb_grant_act_as(db, "Bob@example.test", "Shared@example.test", &err), err) == 0);
	CHECK(userdb_may_act_as(db, "bob@example.test", "shared@example.test") == 1);
	CHECK(userdb_may_act_as(db, "BOB@EXAMPLE.TEST", "shared@example.test") == 1);
	CHECK(userdb_may_act_as(db, "shared@example.test", "bob@example.test") == 0);
	CHECK(userdb_may_act_as(db, "alice@example.test", "shared@example.test") == 0);
	CHECK(userdb_grant_act_as(db, "bob@example.test", "shared@example.test", &err) < 0);
	free(err);
	CHECK(userdb_grant_act_as(db, "bob@example.test", "nobody@example.test", &err) < 0);
	free(err);
	CHECK(userdb_grant_act_as(db, "bob@example.test", "bob@example.test", &err) < 0);
	free(err);

	/* send-as: own name, direct alias, granted address, granted @domain */
	CHECK(userdb_may_send_as(db, "bob@example.test", "bob@example.test") == 1);
	CHECK(userdb_may_send_as(db, "bob@example.test", "Bob@Example.TEST") == 1);
	CHECK(userdb_may_send_as(db, "bob@example.test", "sales@example.test") == 1);
	CHECK(userdb_may_send_as(db, "bob@example.test", "SALES@example.test") == 1);
	CHECK(userdb_may_send_as(db, "alice@example.test", "sales@example.test") == 0);
	/* The catch-all delivers to bob but does not let him send as anyone there. */
	CHECK(userdb_may_send_as(db, "bob@example.test", "random@example.test") == 0);
	CHECK(userdb_may_send_as(db, "bob@example.test", "alice@example.test") == 0);
	CHECK(userdb_may_send_as(db, "bob@example.test", "") == 0);
	CHECK(userdb_may_send_as(db, "bob@example.test", "bob") == 0);
	CHECK(ok(userdb_grant_send_as(db, "bob@example.test", "News@Example.test", &err), err) == 0);
	CHECK(userdb_may_send_as(db, "bob@example.test", "news@example.test") == 1);
	CHECK(userdb_may_send_as(db, "bob@example.test", "NEWS@EXAMPLE.TEST") == 1);
	CHECK(userdb_may_send_as(db, "bob@example.test", "any@other.test") == 0);
	CHECK(ok(userdb_grant_send_as(db, "bob@example.test", "@Other.Test", &err), err) == 0);
	CHECK(userdb_may_send_as(db, "bob@example.test", "any@other.test") == 1);
	CHECK(userdb_may_send_as(db, "bob@example.test", "Someone@OTHER.test") == 1);
	CHECK(userdb_may_send_as(db, "bob@example.test", "any@sub.other.test") == 0);
	CHECK(userdb_may_send_as(db, "alice@example.test", "any@other.test") == 0);
	CHECK(userdb_grant_send_as(db, "bob@example.test", "not an address", &err) < 0);
	free(err);
	CHECK(userdb_grant_send_as(db, "nobody@example.test", "x@example.test", &err) < 0);
	free(err);

	CHECK(userdb_grant_list(db, "bob@example.test", grant_collect, list, &err) == 0);
	CHECK_STR(list, "act-as=shared@example.test,send-as=@other.test,send-as=news@example.test,");

	/* revoke */
	CHECK(ok(userdb_revoke(db, "bob@example.test", "send-as:@other.test", &err), err) == 0);
	CHECK(userdb_may_send_as(db, "bob@example.test", "any@other.test") == 0);
	CHECK(userdb_revoke(db, "bob@example.test", "send-as:@other.test", &err) < 0);
	free(err);
	CHECK(userdb_revoke(db, "bob@example.test", "send-as:shared@example.test", &err) < 0);
	free(err);
	CHECK(ok(userdb_revoke(db, "bob@example.test", "act-as:Shared@example.test", &err), err) == 0);
	CHECK(userdb_may_act_as(db, "bob@example.test", "shared@example.test") == 0);

	/* Deleting a user takes its grants, and grants to act as it, along. */
	CHECK(ok(userdb_grant_act_as(db, "bob@example.test", "shared@example.test", &err), err) == 0);
	CHECK(ok(userdb_grant_act_as(db, "shared@example.test", "bob@example.test", &err), err) == 0);
	CHECK(ok(userdb_user_del(db, "shared@example.test", &err), err) == 0);
	CHECK(ok(userdb_user_add(db, "shared@example.test", "new owner", &err), err) == 0);
	CHECK(userdb_may_act_as(db, "bob@example.test", "shared@example.test") == 0);
	CHECK(userdb_may_act_as(db, "shared@example.test", "bob@example.test") == 0);
	CHECK(userdb_may_send_as(db, "bob@example.test", "news@example.test") == 1);
}

static void test_certs(struct userdb *db)
{
	static const char fp[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	static const char fp_colons[] = "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:"
					"01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF";
	char *err = NULL, *user = NULL;

	CHECK(ok(userdb_cert_add(db, "bob@example.test", fp_colons, &err), err) == 0);
	CHECK(ok(userdb_cert_add(db, "alice@example.test", "CN=Alice,O=Example", &err), err) == 0);
	CHECK(userdb_cert_add(db, "alice@example.test", fp, &err) < 0); /* mapped already */
	free(err);
	CHECK(userdb_cert_add(db, "nobody@example.test", "CN=x", &err) < 0);
	free(err);

	CHECK(userdb_cert_user(db, fp, NULL, &user) == 1);
	CHECK_STR(user, "bob@example.test");
	free(user);
	/* The fingerprint wins over the subject. */
	CHECK(userdb_cert_user(db, fp, "CN=Alice,O=Example", &user) == 1);
	CHECK_STR(user, "bob@example.test");
	free(user);
	CHECK(userdb_cert_user(db, "ff", "CN=Alice,O=Example", &user) == 1);
	CHECK_STR(user, "alice@example.test");
	free(user);
	CHECK(userdb_cert_user(db, NULL, "CN=Alice,O=Example", &user) == 1);
	CHECK_STR(user, "alice@example.test");
	free(user);
	CHECK(userdb_cert_user(db, "00" "23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			       "CN=Mallory", &user) == 0);
	CHECK(user == NULL);
	CHECK(userdb_cert_user(db, NULL, NULL, &user) == 0);

	CHECK(ok(userdb_cert_del(db, "bob@example.test", fp, &err), err) == 0);
	CHECK(userdb_cert_user(db, fp, NULL, &user) == 0);
	CHECK(userdb_cert_del(db, "bob@example.test", fp, &err) < 0);
	free(err);
}

/* The schema of version 1, as the previous release created it. */
static const char old_schema[] =
	"PRAGMA journal_mode = WAL;"
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
	" PRIMARY KEY (address, target));"
	"PRAGMA user_version = 1;";

static int pragma_version(const char *path)
{
	sqlite3 *s = NULL;
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(s);
	return v;
}

/* The credential generation: changed by every withdrawal, never reused. */
static void test_credential_gen(struct userdb *db)
{
	const char *u = "gen@example.test", *v = "genv@example.test";
	long long g0 = 0, g1 = 0, g2 = 0, g3 = 0;
	char *err = NULL, *app;

	CHECK(ok(userdb_user_add(db, u, "first pass", &err), err) == 0);
	CHECK(ok(userdb_user_add(db, v, "other pass", &err), err) == 0);
	CHECK(userdb_credential_gen(db, "GEN@example.test", u, &g0) == 1);
	CHECK(userdb_credential_gen(db, u, u, &g1) == 1 && g1 == g0);
	/* Adding an app password or a grant withdraws nothing. */
	app = userdb_app_password_add(db, u, "phone", &err);
	CHECK(app != NULL);
	free(app);
	CHECK(userdb_credential_gen(db, u, u, &g1) == 1 && g1 == g0);
	CHECK(ok(userdb_user_passwd(db, u, "second pass", &err), err) == 0);
	CHECK(userdb_credential_gen(db, u, u, &g1) == 1 && g1 != g0);
	CHECK(ok(userdb_app_password_revoke(db, u, "phone", &err), err) == 0);
	CHECK(userdb_credential_gen(db, u, u, &g2) == 1 && g2 != g1);
	/* Acting as another user needs that user and the grant. */
	CHECK(userdb_credential_gen(db, u, v, &g3) == 0);
	CHECK(ok(userdb_grant_act_as(db, u, v, &err), err) == 0);
	CHECK(userdb_credential_gen(db, u, v, &g3) == 1 && g3 == g2);
	CHECK(ok(userdb_revoke(db, u, "act-as:genv@example.test", &err), err) == 0);
	CHECK(userdb_credential_gen(db, u, v, &g3) == 0);
	/* Deleted: gone; added again: a new generation. */
	CHECK(ok(userdb_user_del(db, u, &err), err) == 0);
	CHECK(userdb_credential_gen(db, u, u, &g3) == 0);
	CHECK(ok(userdb_user_add(db, u, "second pass", &err), err) == 0);
	CHECK(userdb_credential_gen(db, u, u, &g3) == 1 && g3 != g2 && g3 != g1 && g3 != g0);
	CHECK(ok(userdb_user_del(db, u, &err), err) == 0);
	CHECK(ok(userdb_user_del(db, v, &err), err) == 0);
}

/* scram_iterations applies to keys made from then on; older keys keep theirs. */
static void test_scram_iterations(struct userdb *db)
{
	const char *u = "iter@example.test";
	struct user_record rec;
	char *err = NULL;

	userdb_set_scram_iterations(db, 12345);
	CHECK(ok(userdb_user_add(db, u, "pass one", &err), err) == 0);
	CHECK(userdb_user_get(db, u, &rec) == 1 && rec.sha256.iterations == 12345 &&
	      rec.sha1.iterations == 12345);
	user_record_clear(&rec);
	userdb_set_scram_iterations(db, 20000);
	CHECK(userdb_user_get(db, u, &rec) == 1 && rec.sha256.iterations == 12345);
	user_record_clear(&rec);
	CHECK(ok(userdb_user_passwd(db, u, "pass two", &err), err) == 0);
	CHECK(userdb_user_get(db, u, &rec) == 1 && rec.sha256.iterations == 20000);
	user_record_clear(&rec);
	userdb_set_scram_iterations(db, 1000); /* below RFC 7677's floor: raised to it */
	CHECK(ok(userdb_user_passwd(db, u, "pass three", &err), err) == 0);
	CHECK(userdb_user_get(db, u, &rec) == 1 && rec.sha256.iterations == 4096);
	user_record_clear(&rec);
	userdb_set_scram_iterations(db, PASSWORD_SCRAM_ITERATIONS);
	CHECK(ok(userdb_user_del(db, u, &err), err) == 0);
}

static void test_migration(void)
{
	char path[160], *err = NULL, *hash, *sql, *secret = NULL, *p;
	struct scram_keys k1, k256, fake1, fake2;
	struct userdb *db;
	sqlite3 *s = NULL;
	int exists;

	snprintf(path, sizeof(path), "%s/old.db", tmpdir);
	CHECK(sqlite3_open(path, &s) == SQLITE_OK);
	CHECK(sqlite3_exec(s, old_schema, NULL, NULL, NULL) == SQLITE_OK);
	hash = password_hash("old secret");
	CHECK(hash != NULL);
	CHECK(password_scram_make(PASSWORD_SCRAM_SHA1, "old secret", 4096, &k1) == 0);
	CHECK(password_scram_make(PASSWORD_SCRAM_SHA256, "old secret", 4096, &k256) == 0);
	sql = sqlite3_mprintf("INSERT INTO users VALUES ('olga@example.test', %Q, %Q, 4096, %Q, %Q,"
			      " %Q, 4096, %Q, %Q, 1700000000);"
			      "INSERT INTO aliases VALUES ('info@example.test', 'olga@example.test');",
			      hash, k1.salt, k1.stored_key, k1.server_key, k256.salt,
			      k256.stored_key, k256.server_key);
	CHECK(sqlite3_exec(s, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_free(sql);
	sqlite3_close(s);
	free(hash);
	CHECK(pragma_version(path) == 1);

	db = userdb_open(path, 0, &err);
	CHECK(db != NULL);
	if (!db) {
		fprintf(stderr, "  open: %s\n", err);
		free(err);
		return;
	}
	CHECK(pragma_version(path) == 5);
	{
		/* Users from before version 4 have generation 0 until a change. */
		long long g = -1;
		CHECK(userdb_credential_gen(db, "olga@example.test", "olga@example.test", &g) == 1 && g == 0);
	}
	CHECK(verify(db, "olga@example.test", "old secret", "olga@example.test") == 1);
	CHECK(userdb_scram_keys(db, "olga@example.test", "SHA-256", &fake1, &exists) == 0);
	CHECK(exists == 1);
	CHECK_STR(fake1.stored_key, k256.stored_key);
	password_scram_keys_clear(&fake1);
	CHECK(userdb_legacy_secret(db, "olga@example.test", &secret) == 0);
	CHECK(userdb_may_send_as(db, "olga@example.test", "info@example.test") == 1);
	CHECK(ok(userdb_grant_send_as(db, "olga@example.test", "@example.test", &err), err) == 0);
	p = userdb_app_password_add(db, "olga@example.test", "tablet", &err);
	CHECK(p != NULL);
	if (p) {
		CHECK(verify(db, "olga@example.test", p, "olga@example.test") == 1);
		free(p);
	} else {
		free(err);
	}
	CHECK(userdb_scram_keys(db, "nobody@example.test", "SHA-256", &fake1, &exists) == 0);
	userdb_close(&db);

	/* Reopened: already current, and the secret (so the fake keys) is the same. */
	db = userdb_open(path, 0, &err);
	CHECK(db != NULL);
	if (db) {
		CHECK(userdb_scram_keys(db, "nobody@example.test", "SHA-256", &fake2, &exists) == 0);
		CHECK_STR(fake1.salt, fake2.salt);
		CHECK_STR(fake1.stored_key, fake2.stored_key);
		password_scram_keys_clear(&fake2);
		CHECK(userdb_may_send_as(db, "olga@example.test", "x@example.test") == 1);
		userdb_close(&db);
	} else {
		free(err);
	}
	password_scram_keys_clear(&fake1);
	password_scram_keys_clear(&k1);
	password_scram_keys_clear(&k256);
	cleanup(path);
}

void unit_main(void)
{
	struct userdb *db;
	char *err = NULL;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cursus-test-userauth.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/users.db", tmpdir);
	db = userdb_open(dbpath, 1, &err);
	CHECK(db != NULL);
	if (!db) {
		fprintf(stderr, "open: %s\n", err);
		free(err);
		rmdir(tmpdir);
		return;
	}
	test_verify(db);
	test_cache(db);
	test_app_passwords(db);
	test_scram(db);
	test_legacy(db);
	test_grants(db);
	test_certs(db);
	test_credential_gen(db);
	test_scram_iterations(db);
	userdb_close(&db);
	CHECK(pragma_version(dbpath) == 5);
	cleanup(dbpath);
	test_migration();
	rmdir(tmpdir);
}
