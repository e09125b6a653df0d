/* Tests of the credential store (SQLite backend, against a real temporary file) and
 * of the password module, including the SCRAM examples of RFC 5802 and RFC 7677. */
#include "unit.h"
#include "store/password.h"
#include "store/userdb.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];
static char dbpath[128];

static void cleanup(void)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		char p[160];
		snprintf(p, sizeof(p), "%s%s", dbpath, suffix[i]);
		unlink(p);
	}
	rmdir(tmpdir);
}

/* Decodes base64 into out; returns the length, or -1. */
static int b64dec(const char *in, unsigned char *out)
{
	size_t len = strlen(in);
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	if (len >= 1 && in[len - 1] == '=')
		n--;
	if (len >= 2 && in[len - 2] == '=')
		n--;
	return n;
}

/* The server side of SCRAM's final step (RFC 5802 section 3): from the stored keys,
 * the AuthMessage and the client's proof, checks that the proof is right and that
 * our ServerSignature equals the one in the RFC. */
static void check_scram_exchange(const EVP_MD *md, const struct scram_keys *k,
				 const char *auth_message, const char *proof_b64,
				 const char *server_sig_b64)
{
	unsigned char stored[64], server[64], proof[64], want_sig[64];
	unsigned char client_sig[64], client_key[64], h[64], sig[64];
	unsigned int len = 0;
	int hl = EVP_MD_get_size(md);

	CHECK(b64dec(k->stored_key, stored) == hl);
	CHECK(b64dec(k->server_key, server) == hl);
	CHECK(b64dec(proof_b64, proof) == hl);
	CHECK(b64dec(server_sig_b64, want_sig) == hl);
	/* ClientSignature := HMAC(StoredKey, AuthMessage)
	 * ClientKey := ClientProof XOR ClientSignature; StoredKey must be H(ClientKey) */
	HMAC(md, stored, hl, (const unsigned char *)auth_message, strlen(auth_message),
	     client_sig, &len);
	for (int i = 0; i < hl; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	EVP_Digest(client_key, (size_t)hl, h, &len, md, NULL);
	CHECK(memcmp(h, stored, (size_t)hl) == 0);
	/* ServerSignature := HMAC(ServerKey, AuthMessage) */
	HMAC(md, server, hl, (const unsigned char *)auth_message, strlen(auth_message), sig,
	     &len);
	CHECK(memcmp(sig, want_sig, (size_t)hl) == 0);
}

/* Recomputes the keys with OpenSSL alone, independent of GNU SASL. */
static void check_scram_openssl(const EVP_MD *md, const char *password,
				const struct scram_keys *k)
{
	unsigned char salt[64], salted[64], ck[64], sk[64], stored[64], want[64];
	unsigned int len;
	int hl = EVP_MD_get_size(md);
	int sl = b64dec(k->salt, salt);

	CHECK(sl > 0);
	CHECK(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sl, (int)k->iterations,
				md, hl, salted) == 1);
	HMAC(md, salted, hl, (const unsigned char *)"Client Key", 10, ck, &len);
	HMAC(md, salted, hl, (const unsigned char *)"Server Key", 10, sk, &len);
	EVP_Digest(ck, (size_t)hl, stored, &len, md, NULL);
	CHECK(b64dec(k->stored_key, want) == hl);
	CHECK(memcmp(want, stored, (size_t)hl) == 0);
	CHECK(b64dec(k->server_key, want) == hl);
	CHECK(memcmp(want, sk, (size_t)hl) == 0);
}

static void test_scram_vectors(void)
{
	struct scram_keys k;
	unsigned char salt[64];
	int sl;

	/* RFC 5802 section 5: user "user", password "pencil". */
	sl = b64dec("QSXCR+Q6sek8bf92", salt);
	CHECK(sl == 12);
	CHECK(password_scram_derive(PASSWORD_SCRAM_SHA1, "pencil", salt, (size_t)sl, 4096, &k) == 0);
	CHECK_STR(k.salt, "QSXCR+Q6sek8bf92");
	CHECK(k.iterations == 4096);
	check_scram_exchange(EVP_sha1(), &k,
			     "n=user,r=fyko+d2lbbFgONRv9qkxdawL,"
			     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,"
			     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
			     "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
	check_scram_openssl(EVP_sha1(), "pencil", &k);
	password_scram_keys_clear(&k);
	CHECK(k.salt == NULL && k.stored_key == NULL);

	/* RFC 7677 section 3. */
	sl = b64dec("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
	CHECK(sl == 16);
	CHECK(password_scram_derive(PASSWORD_SCRAM_SHA256, "pencil", salt, (size_t)sl, 4096, &k) == 0);
	CHECK_STR(k.salt, "W22ZaJ0SNY7soEsUEjb6gQ==");
	check_scram_exchange(EVP_sha256(), &k,
			     "n=user,r=rOprNGfwEbeRWgbNEkqO,"
			     "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
			     "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
			     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			     "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			     "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	check_scram_openssl(EVP_sha256(), "pencil", &k);
	password_scram_keys_clear(&k);

	/* A fresh salt each time. */
	struct scram_keys a, b;
	CHECK(password_scram_make(PASSWORD_SCRAM_SHA256, "pencil", 4096, &a) == 0);
	CHECK(password_scram_make(PASSWORD_SCRAM_SHA256, "pencil", 4096, &b) == 0);
	CHECK(b64dec(a.salt, salt) == PASSWORD_SCRAM_SALT_LEN);
	CHECK(a.salt && b.salt && strcmp(a.salt, b.salt) != 0);
	check_scram_openssl(EVP_sha256(), "pencil", &a);
	password_scram_keys_clear(&a);
	password_scram_keys_clear(&b);
}

static void test_password(void)
{
	char *h = password_hash("correct horse");
	CHECK(h && strncmp(h, "$y$", 3) == 0);
	CHECK(password_verify(h, "correct horse") == 1);
	CHECK(password_verify(h, "correct hors") == 0);
	CHECK(password_verify(h, "") == 0);
	CHECK(password_verify("garbage", "x") == 0);
	CHECK(password_verify("$y$", "x") == 0);
	CHECK(password_verify(NULL, "x") == 0);
	free(h);
	const char *d = password_dummy_hash();
	CHECK(d && strncmp(d, "$y$", 3) == 0);
	CHECK(d == password_dummy_hash());
	CHECK(password_verify(d, "") == 0);
	CHECK(password_verify(d, "password") == 0);
}

static int add(struct userdb *db, const char *name, const char *pw)
{
	char *err = NULL;
	int rc = userdb_user_add(db, name, pw, &err);
	if (rc < 0) {
		CHECK(err != NULL);
		free(err);
	}
	return rc;
}

static int alias(struct userdb *db, const char *a, const char *t)
{
	char *err = NULL;
	int rc = userdb_alias_add(db, a, t, &err);
	if (rc < 0) {
		CHECK(err != NULL);
		free(err);
	}
	return rc;
}

static void collect(void *arg, const char *name)
{
	char *out = arg;
	strcat(out, name);
	strcat(out, ",");
}

static void collect_alias(void *arg, const char *a, const char *t)
{
	char *out = arg;
	strcat(out, a);
	strcat(out, ">");
	strcat(out, t);
	strcat(out, ",");
}

/* Resolves and joins the mailboxes with ',' (sorted order is not promised, so the
 * cases below are written in the order of resolution). rc goes to *rc_r. */
static const char *resolve(struct userdb *db, const char *addr, int *rc_r)
{
	static char out[512];
	char **list;
	size_t n;
	out[0] = '\0';
	*rc_r = userdb_resolve(db, addr, &list, &n);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, list[i]);
	}
	userdb_free_list(list, n);
	return out;
}

static void test_users(struct userdb *db)
{
	struct user_record rec;
	char *err = NULL;
	char names[512] = "";

	CHECK(add(db, "alice@example.test", "secret") == 0);
	CHECK(add(db, "alice@example.test", "other") < 0);
	CHECK(userdb_user_add(db, "Alice@Example.TEST", "x", &err) < 0);
	CHECK(err && strstr(err, "already exists"));
	free(err);
	err = NULL;
	CHECK(userdb_user_add(db, "bob@example.test", "", &err) < 0);
	CHECK(err && strstr(err, "empty"));
	free(err);
	CHECK(add(db, "Bob@Example.test", "hunter2") == 0);

	CHECK(userdb_user_get(db, "BOB@example.test", &rec) == 1);
	CHECK_STR(rec.name, "bob@example.test");
	CHECK(rec.hash && strncmp(rec.hash, "$y$", 3) == 0);
	CHECK(password_verify(rec.hash, "hunter2") == 1);
	CHECK(password_verify(rec.hash, "hunter3") == 0);
	CHECK(rec.sha1.iterations == PASSWORD_SCRAM_ITERATIONS &&
	      rec.sha256.iterations == PASSWORD_SCRAM_ITERATIONS);
	CHECK(PASSWORD_SCRAM_ITERATIONS > 4096);
	CHECK(rec.sha1.stored_key && strlen(rec.sha1.stored_key) == 28);
	CHECK(rec.sha256.server_key && strlen(rec.sha256.server_key) == 44);
	check_scram_openssl(EVP_sha1(), "hunter2", &rec.sha1);
	check_scram_openssl(EVP_sha256(), "hunter2", &rec.sha256);
	CHECK(rec.created > 1600000000);
	user_record_clear(&rec);
	CHECK(rec.name == NULL);
	CHECK(userdb_user_get(db, "nobody@example.test", &rec) == 0);

	CHECK(userdb_user_passwd(db, "bob@example.test", "new pass", &err) == 0);
	CHECK(userdb_user_get(db, "bob@example.test", &rec) == 1);
	CHECK(password_verify(rec.hash, "new pass") == 1);
	CHECK(password_verify(rec.hash, "hunter2") == 0);
	check_scram_openssl(EVP_sha256(), "new pass", &rec.sha256);
	user_record_clear(&rec);
	err = NULL;
	CHECK(userdb_user_passwd(db, "nobody@example.test", "x", &err) < 0);
	CHECK(err && strstr(err, "no such user"));
	free(err);

	CHECK(add(db, "carol@example.test", "c") == 0);
	CHECK(add(db, "zed@other.test", "z") == 0);
	CHECK(userdb_user_list(db, collect, names, &err) == 0);
	CHECK_STR(names, "alice@example.test,bob@example.test,carol@example.test,zed@other.test,");

	CHECK(userdb_user_del(db, "ZED@other.test", &err) == 0);
	err = NULL;
	CHECK(userdb_user_del(db, "zed@other.test", &err) < 0);
	CHECK(err && strstr(err, "no such user"));
	free(err);
	CHECK(userdb_user_get(db, "zed@other.test", &rec) == 0);
}

static void test_names(struct userdb *db)
{
	static const char *const bad[] = {
		"alice", "@example.test", "alice@", "../x@example.test", ".a@example.test",
		"a.@example.test", "a..b@example.test", "a/b@example.test", "a b@example.test",
		"a@b@example.test", "a@exa/mple.test", "a@..", "a@.example.test",
		"a@example..test", "a@example.test.", "a@-x.test", "a@x-.test", "a@x_y.test",
		"a\n@example.test", "a\xc3\xa9@example.test",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.test",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		int rc = userdb_user_add(db, bad[i], "pw", &err);
		CHECK(rc < 0);
		CHECK(err && strstr(err, "invalid"));
		if (rc == 0)
			fprintf(stderr, "accepted bad name #%zu\n", i);
		free(err);
	}
	CHECK(add(db, "a.b+c_d-e@sub.example-1.test", "pw") == 0);
	CHECK(add(db, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.test", "pw") == 0);
	CHECK(add(db, "root@localhost", "pw") == 0);
}

static void test_aliases(struct userdb *db)
{
	char *err = NULL;
	char list[2048] = "";
	int rc;

	/* users: alice, bob, carol @example.test */
	CHECK_STR(resolve(db, "Alice@EXAMPLE.test", &rc), "example.test/alice");
	CHECK(rc == 1);
	resolve(db, "unknown@example.test", &rc);
	CHECK(rc == 0);
	resolve(db, "alice", &rc);
	CHECK(rc == 0);

	CHECK(alias(db, "postmaster@example.test", "alice@example.test") == 0);
	CHECK(alias(db, "postmaster@example.test", "alice@example.test") < 0);
	CHECK_STR(resolve(db, "postmaster@example.test", &rc), "example.test/alice");
	CHECK(rc == 1);

	CHECK(alias(db, "team@example.test", "alice@example.test") == 0);
	CHECK(alias(db, "team@example.test", "Bob@example.test") == 0);
	CHECK_STR(resolve(db, "team@example.test", &rc), "example.test/alice,example.test/bob");

	/* recursion, and a mailbox reached twice is listed once */
	CHECK(alias(db, "all@example.test", "team@example.test") == 0);
	CHECK(alias(db, "all@example.test", "carol@example.test") == 0);
	CHECK(alias(db, "all@example.test", "postmaster@example.test") == 0);
	CHECK_STR(resolve(db, "all@example.test", &rc),
		  "example.test/carol,example.test/alice,example.test/bob");
	CHECK(rc == 1);
	{
		/* Bounded: three mailboxes fit in 3, not in 2. */
		char **l = NULL;
		size_t n = 0;
		CHECK(userdb_resolve_max(db, "all@example.test", 3, &l, &n) == 1 && n == 3);
		userdb_free_list(l, n);
		CHECK(userdb_resolve_max(db, "all@example.test", 2, &l, &n) == USERDB_RESOLVE_TOO_MANY);
		CHECK(l == NULL && n == 0);
	}

	/* loops end */
	CHECK(alias(db, "loop1@example.test", "loop2@example.test") == 0);
	CHECK(alias(db, "loop2@example.test", "loop1@example.test") == 0);
	resolve(db, "loop1@example.test", &rc);
	CHECK(rc == 0);
	CHECK(alias(db, "loop2@example.test", "carol@example.test") == 0);
	CHECK_STR(resolve(db, "loop1@example.test", &rc), "example.test/carol");
	CHECK(rc == 1);

	/* remote targets are skipped for now */
	CHECK(alias(db, "fwd@example.test", "someone@remote.test") == 0);
	resolve(db, "fwd@example.test", &rc);
	CHECK(rc == 0);

	/* the depth bound: d0 -> d1 -> ... -> d10 -> alice; a target may be 8 hops away */
	for (int i = 0; i < 10; i++) {
		char a[64], t[64];
		snprintf(a, sizeof(a), "d%d@example.test", i);
		snprintf(t, sizeof(t), "d%d@example.test", i + 1);
		CHECK(alias(db, a, t) == 0);
	}
	CHECK(alias(db, "d10@example.test", "alice@example.test") == 0);
	CHECK_STR(resolve(db, "d3@example.test", &rc), "example.test/alice");
	CHECK(rc == 1);
	resolve(db, "d2@example.test", &rc);
	CHECK(rc == 0);

	/* catch-all */
	CHECK(alias(db, "@Example.test", "carol@example.test") == 0);
	CHECK_STR(resolve(db, "whoever@example.test", &rc), "example.test/carol");
	CHECK(rc == 1);
	CHECK_STR(resolve(db, "alice@example.test", &rc), "example.test/alice");
	CHECK_STR(resolve(db, "postmaster@example.test", &rc), "example.test/alice");
	resolve(db, "whoever@other.test", &rc);
	CHECK(rc == 0);
	/* a catch-all pointing into its own domain does not loop */
	CHECK(alias(db, "@loop.test", "x@loop.test") == 0);
	resolve(db, "y@loop.test", &rc);
	CHECK(rc == 0);

	/* validation */
	CHECK(alias(db, "@bad/domain", "alice@example.test") < 0);
	CHECK(alias(db, "@", "alice@example.test") < 0);
	CHECK(alias(db, "x@example.test", "alice") < 0);
	CHECK(alias(db, "x@example.test", "../etc@example.test") < 0);
	CHECK(alias(db, "self@example.test", "SELF@example.test") < 0);

	/* delete */
	CHECK(userdb_alias_del(db, "team@example.test", "bob@example.test", &err) == 0);
	CHECK_STR(resolve(db, "team@example.test", &rc), "example.test/alice");
	CHECK(userdb_alias_del(db, "Team@example.test", NULL, &err) == 0);
	CHECK_STR(resolve(db, "team@example.test", &rc), "example.test/carol"); /* catch-all */
	err = NULL;
	CHECK(userdb_alias_del(db, "team@example.test", NULL, &err) < 0);
	CHECK(err && strstr(err, "no such alias"));
	free(err);
	err = NULL;
	CHECK(userdb_alias_del(db, "all@example.test", "nobody@example.test", &err) < 0);
	CHECK(err != NULL);
	free(err);
	CHECK(userdb_alias_del(db, "@example.test", NULL, &err) == 0);
	resolve(db, "team@example.test", &rc);
	CHECK(rc == 0);

	CHECK(userdb_alias_list(db, collect_alias, list, &err) == 0);
	CHECK(strncmp(list, "@loop.test>x@loop.test,all@example.test>carol@example.test,", 59) == 0);
	CHECK(strstr(list, "postmaster@example.test>alice@example.test,") != NULL);
}

struct worker_arg {
	struct userdb *db;
	int failures;
};

static void *worker(void *p)
{
	struct worker_arg *w = p;
	for (int i = 0; i < 200; i++) {
		char **list;
		size_t n;
		struct user_record rec;
		if (userdb_resolve(w->db, "all@example.test", &list, &n) != 1 || n != 2)
			w->failures++;
		userdb_free_list(list, n);
		if (userdb_user_get(w->db, "alice@example.test", &rec) != 1)
			w->failures++;
		user_record_clear(&rec);
	}
	return NULL;
}

static void test_threads(struct userdb *db)
{
	pthread_t t[4];
	struct worker_arg w[4];
	for (int i = 0; i < 4; i++) {
		w[i].db = db;
		w[i].failures = 0;
		CHECK(pthread_create(&t[i], NULL, worker, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].failures == 0);
	}
}

void unit_main(void)
{
	struct userdb *db;
	char *err = NULL;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cursus-test-userdb.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/users.db", tmpdir);

	test_scram_vectors();
	test_password();

	CHECK(userdb_open(dbpath, 0, &err) == NULL);
	CHECK(err != NULL);
	free(err);
	err = NULL;
	db = userdb_open(dbpath, 1, &err);
	CHECK(db != NULL);
	if (!db) {
		fprintf(stderr, "open: %s\n", err);
		free(err);
		cleanup();
		return;
	}
	test_users(db);
	test_names(db);
	userdb_close(&db);
	CHECK(db == NULL);

	/* reopened without create: the schema is there */
	db = userdb_open(dbpath, 0, &err);
	CHECK(db != NULL);
	if (db) {
		test_aliases(db);
		test_threads(db);
		userdb_close(&db);
	}
	cleanup();
}
