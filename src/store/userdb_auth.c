/* userdb_auth: the checks SMTP AUTH asks of the store (any backend): passwords (the
 * account's and its app passwords), SCRAM keys, the legacy secret, authorization
 * (act-as, send-as) and client-certificate mapping.
 * Promises: an unknown user costs a yescrypt computation like a wrong password and
 * gets stable fake SCRAM keys, so neither time nor the exchange tells whether it
 * exists; a password is never stored, cached or logged, and stack copies of what
 * derives from it are wiped; the success cache is keyed by the stored hash that
 * matched, read afresh on every call, so it cannot outlive a password change; the
 * slow hashing runs without the handle's lock. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/authcache.h"
#include "store/password.h"
#include "store/username.h"
#include "store/userdb_private.h"
#include "util/ascii.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* App passwords are 16 characters from [a-z0-9], shown as "abcd-efgh-ijkl-mnop". */
#define USERDB_APP_CHARS 16

/* One stored hash a password may match: the account's (label NULL) or an app
 * password's. */
struct userdb_candidate {
	char *hash;
	char *label;
};

static void userdb_candidates_free(struct userdb_candidate *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		xfree_secret(c[i].hash, strlen(c[i].hash));
		free(c[i].label);
	}
	free(c);
}

/* The user's current hashes, account first. 1 user found, 0 not, -1 failure. */
static int userdb_candidates(struct userdb *u, const char *name, struct userdb_candidate **c_r,
			     size_t *n_r)
{
	struct userdb_param p[] = { UPT(name) };
	struct userdb_rows r = { 0 };
	struct userdb_candidate *c;
	char *err = NULL;
	size_t n;

	*c_r = NULL;
	*n_r = 0;
	if (userdb_q(u, "SELECT hash, NULL FROM users WHERE name = $1 UNION ALL "
			"SELECT hash, label FROM app_passwords WHERE \"user\" = $1 AND "
			"EXISTS (SELECT 1 FROM users WHERE name = $1)", p, 1, userdb_rows_add, &r,
		     NULL, &err) < 0) {
		log_warnx("userdb candidates_failed error=\"%s\"", err ? err : "?");
		free(err);
		for (size_t i = 0; i < r.n; i += 2)
			if (r.v[i])
				explicit_bzero(r.v[i], strlen(r.v[i]));
		userdb_rows_free(&r);
		return -1;
	}
	n = r.n / 2;
	if (n == 0) {
		userdb_rows_free(&r);
		return 0;
	}
	c = xcalloc(n, sizeof(*c));
	for (size_t i = 0; i < n; i++) {
		c[i].hash = r.v[2 * i] ? r.v[2 * i] : xstrdup("");
		c[i].label = r.v[2 * i + 1];
	}
	free(r.v);
	*c_r = c;
	*n_r = n;
	return 1;
}

/* Users type "ABCD EFGH IJKL MNOP" or "abcdefghijklmnop" for an app password;
 * when password has that shape, out gets the canonical "abcd-efgh-ijkl-mnop" (the
 * form that was hashed) and 1 is returned. */
static int userdb_app_canonical(const char *password, char out[USERDB_APP_CHARS + 4])
{
	size_t n = 0, o = 0;

	for (const char *p = password; *p; p++) {
		char ch = ascii_lower(*p);
		if (ch == '-' || ch == ' ')
			continue;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) || n == USERDB_APP_CHARS)
			return 0;
		if (n > 0 && n % 4 == 0)
			out[o++] = '-';
		out[o++] = ch;
		n++;
	}
	out[o] = '\0';
	return n == USERDB_APP_CHARS;
}

static void userdb_app_used(struct userdb *u, const char *user, const char *label)
{
	struct userdb_param p[] = { UPT(user), UPT(label), UPI((long long)time(NULL)) };
	char *err = NULL;

	/* Only bookkeeping: the login itself stands. */
	if (userdb_q(u, "UPDATE app_passwords SET last_used = $3 WHERE \"user\" = $1 AND "
			"label = $2", p, 3, NULL, NULL, NULL, &err) < 0) {
		log_warnx("userdb app_password_used_failed error=\"%s\"", err ? err : "?");
		free(err);
	}
}

/* App passwords are machine-made (about 82 random bits), so a keyed SHA-256 protects
 * them as well as yescrypt would, at a fraction of the cost: a wrong guess then costs
 * one yescrypt (the account's password) however many app passwords there are. */
#define USERDB_APP_DIGEST_PREFIX "$hmac-sha256$"

char *userdb_app_digest(struct userdb *u, const char *app_password)
{
	static const char label[] = "cursus app password v1";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t ll = sizeof(label), pl = strlen(app_password);
	unsigned char *msg;

	if (userdb_secret(u) < 0)
		return NULL;
	msg = xmalloc(ll + pl);
	memcpy(msg, label, ll);
	memcpy(msg + ll, app_password, pl);
	if (!HMAC(EVP_sha256(), u->secret, USERDB_SECRET_LEN, msg, ll + pl, md, &mdlen))
		fatalx("userdb: HMAC-SHA256 failed");
	xfree_secret(msg, ll + pl);
	char *out = xmalloc(sizeof(USERDB_APP_DIGEST_PREFIX) + 2 * mdlen);
	memcpy(out, USERDB_APP_DIGEST_PREFIX, sizeof(USERDB_APP_DIGEST_PREFIX) - 1);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(out + sizeof(USERDB_APP_DIGEST_PREFIX) - 1 + 2 * i, 3, "%02x", md[i]);
	explicit_bzero(md, sizeof(md));
	return out;
}

/* 1 when hash (an app password's stored digest, or an older yescrypt hash) matches. */
static int userdb_app_verify(struct userdb *u, const char *hash, const char *app_password)
{
	size_t n = strlen(USERDB_APP_DIGEST_PREFIX);
	if (strncmp(hash, USERDB_APP_DIGEST_PREFIX, n) != 0)
		return password_verify(hash, app_password);
	char *d = userdb_app_digest(u, app_password);
	if (!d)
		return 0;
	int ok = strlen(d) == strlen(hash) && CRYPTO_memcmp(d, hash, strlen(d)) == 0;
	xfree_secret(d, strlen(d));
	return ok;
}

int userdb_verify_password(struct userdb *u, const char *name, const char *password, char **user_r)
{
	struct userdb_candidate *c = NULL;
	unsigned char key[AUTHCACHE_KEY_LEN];
	char app[USERDB_APP_CHARS + 4];
	char *lname = xstrdup(name);
	size_t n = 0, match = 0;
	int rc, found = 0;

	*user_r = NULL;
	if (!password)
		password = "";
	username_lower(lname);
	rc = userdb_candidates(u, lname, &c, &n);
	if (rc < 0) {
		free(lname);
		return -1;
	}
	if (rc == 0) {
		/* The same work as a wrong password, so the time does not tell. */
		(void)password_verify(password_dummy_hash(), password);
		free(lname);
		return 0;
	}
	int has_app_form = userdb_app_canonical(password, app);
	/* The cache first, keyed by the hashes just read: a hash changed since the
	 * entry was made gives a different key, so nothing stale can match. */
	for (size_t i = 0; i < n && !found; i++) {
		const char *pw = c[i].label && has_app_form ? app : password;
		authcache_key(lname, pw, c[i].hash, key);
		if (authcache_lookup(u->cache, key)) {
			found = 1;
			match = i;
		}
	}
	for (size_t i = 0; i < n && !found; i++) {
		const char *pw = c[i].label && has_app_form ? app : password;
		/* Something that cannot be an app password is not hashed against each one:
		 * that would cost a yescrypt per app password on every wrong guess. */
		if (c[i].label && !has_app_form)
			continue;
		if (c[i].label ? userdb_app_verify(u, c[i].hash, pw) : password_verify(c[i].hash, pw)) {
			authcache_key(lname, pw, c[i].hash, key);
			authcache_store(u->cache, key);
			found = 1;
			match = i;
		}
	}
	explicit_bzero(key, sizeof(key));
	explicit_bzero(app, sizeof(app));
	if (found && c[match].label)
		userdb_app_used(u, lname, c[match].label);
	userdb_candidates_free(c, n);
	if (found)
		*user_r = lname;
	else
		free(lname);
	return found;
}

/* HMAC-SHA256(db secret, label NUL hash NUL name), the first len octets into out. */
static void userdb_fake_bytes(struct userdb *u, const char *label, const char *hash,
			      const char *name, unsigned char *out, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t ll = strlen(label) + 1, hl = strlen(hash) + 1, nl = strlen(name);
	unsigned char *msg = xmalloc(ll + hl + nl);

	memcpy(msg, label, ll);
	memcpy(msg + ll, hash, hl);
	memcpy(msg + ll + hl, name, nl);
	if (!HMAC(EVP_sha256(), u->secret, USERDB_SECRET_LEN, msg, ll + hl + nl, md, &mdlen) ||
	    mdlen < len)
		fatalx("userdb: HMAC-SHA256 failed");
	memcpy(out, md, len);
	explicit_bzero(md, sizeof(md));
	free(msg);
}

static char *userdb_b64(const unsigned char *in, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

/* Keys that look like a real user's and stay the same for the name, but match no
 * password: StoredKey and ServerKey are HMAC outputs nobody can invert. */
static void userdb_fake_keys(struct userdb *u, const char *name, const char *hash,
			     size_t hlen, struct scram_keys *keys_r)
{
	unsigned char salt[PASSWORD_SCRAM_SALT_LEN], k[32];

	userdb_fake_bytes(u, "salt", hash, name, salt, sizeof(salt));
	keys_r->salt = userdb_b64(salt, sizeof(salt));
	keys_r->iterations = u->scram_iterations;
	userdb_fake_bytes(u, "stored-key", hash, name, k, hlen);
	keys_r->stored_key = userdb_b64(k, hlen);
	userdb_fake_bytes(u, "server-key", hash, name, k, hlen);
	keys_r->server_key = userdb_b64(k, hlen);
	explicit_bzero(k, sizeof(k));
}

int userdb_scram_keys(struct userdb *u, const char *name, const char *hash,
		      struct scram_keys *keys_r, int *exists_r)
{
	struct user_record rec;
	struct scram_keys *have;
	size_t hlen;
	char *lname;
	int rc;

	memset(keys_r, 0, sizeof(*keys_r));
	*exists_r = 0;
	if (strcmp(hash, "SHA-1") == 0)
		hlen = 20;
	else if (strcmp(hash, "SHA-256") == 0)
		hlen = 32;
	else
		return -1;
	rc = userdb_user_get(u, name, &rec);
	if (rc < 0 || userdb_secret(u) < 0) {
		user_record_clear(&rec);
		return -1;
	}
	have = hlen == 20 ? &rec.sha1 : &rec.sha256;
	if (rc == 1 && have->salt && have->stored_key && have->server_key && have->iterations) {
		*keys_r = *have;
		memset(have, 0, sizeof(*have));
		*exists_r = 1;
	} else {
		/* Unknown (or, impossibly, keyless): fake keys, so the exchange runs its
		 * course and fails like a wrong password. */
		lname = xstrdup(name);
		username_lower(lname);
		userdb_fake_keys(u, lname, hash, hlen, keys_r);
		free(lname);
	}
	user_record_clear(&rec);
	return 0;
}

/* A one-row, one-text-column query with text parameters $1 and $2 (p2 may be
 * NULL). 1 with *out_r (malloc'd, NULL when the column is NULL), 0 no row, -1 failure. */
static int userdb_query_text(struct userdb *u, const char *sql, const char *p1, const char *p2,
			     char **out_r)
{
	struct userdb_param p[] = { UPT(p1), UPT(p2) };
	return userdb_q_text(u, "query", sql, p, p2 ? 2 : 1, out_r);
}

int userdb_legacy_secret(struct userdb *u, const char *name, char **secret_r)
{
	char *lname = xstrdup(name);
	int rc;

	username_lower(lname);
	rc = userdb_query_text(u, "SELECT legacy_secret FROM users WHERE name = $1", lname, NULL,
			       secret_r);
	free(lname);
	if (rc == 1 && !*secret_r)
		rc = 0;
	return rc;
}

/* Like userdb_query_text when only whether a row exists matters. */
static int userdb_query_exists(struct userdb *u, const char *sql, const char *p1, const char *p2)
{
	char *out = NULL;
	int rc = userdb_query_text(u, sql, p1, p2, &out);
	free(out);
	return rc;
}

int userdb_may_act_as(struct userdb *u, const char *authid, const char *authzid)
{
	char *a = xstrdup(authid), *z = xstrdup(authzid);
	int rc;

	username_lower(a);
	username_lower(z);
	/* Asking to act as oneself asks for nothing more than the login itself. */
	if (strcmp(a, z) == 0)
		rc = 1;
	else
		rc = userdb_query_exists(u, "SELECT 1 FROM grants WHERE \"user\" = $1 AND "
					    "kind = 'act-as' AND value = $2", a, z);
	free(a);
	free(z);
	return rc;
}

int userdb_may_send_as(struct userdb *u, const char *user, const char *address)
{
	char *usr = xstrdup(user), *addr = xstrdup(address), *at;
	int rc;

	username_lower(usr);
	/* Names are stored lower case, local part included, so the whole address is
	 * compared lower-cased. */
	username_lower(addr);
	at = strrchr(addr, '@');
	if (!at || at == addr || !at[1]) {
		/* Not a mailbox (the null sender among others): nothing to own. */
		rc = 0;
	} else if (strcmp(usr, addr) == 0) {
		rc = 1;
	} else {
		/* Only a direct alias: a catch-all targeting the user is delivery, not a
		 * licence to send as every address of the domain (grant "@domain" for that). */
		rc = userdb_query_exists(u, "SELECT 1 FROM aliases WHERE address = $2 AND "
					    "target = $1", usr, addr);
		if (rc == 0)
			rc = userdb_query_exists(u, "SELECT 1 FROM grants WHERE \"user\" = $1 AND "
						    "kind = 'send-as' AND value = $2", usr, addr);
		if (rc == 0)
			rc = userdb_query_exists(u, "SELECT 1 FROM grants WHERE \"user\" = $1 AND "
						    "kind = 'send-as' AND value = $2", usr, at);
	}
	free(usr);
	free(addr);
	return rc;
}

int userdb_credential_gen(struct userdb *u, const char *authid, const char *user, long long *gen_r)
{
	char *a = xstrdup(authid), *z = xstrdup(user), *out = NULL;
	int rc;

	*gen_r = 0;
	username_lower(a);
	username_lower(z);
	rc = userdb_query_text(u, "SELECT cred_gen FROM users WHERE name = $1 AND ($2 = $1 OR ("
				  "EXISTS (SELECT 1 FROM users WHERE name = $2) AND "
				  "EXISTS (SELECT 1 FROM grants WHERE \"user\" = $1 AND "
				  "kind = 'act-as' AND value = $2)))", a, z, &out);
	if (rc == 1)
		*gen_r = out ? strtoll(out, NULL, 10) : 0;
	free(out);
	free(a);
	free(z);
	return rc;
}

int userdb_cert_user(struct userdb *u, const char *fingerprint, const char *subject, char **user_r)
{
	int rc = 0;

	*user_r = NULL;
	if (fingerprint && *fingerprint) {
		char *fp = userdb_cert_fingerprint(fingerprint);
		if (fp) {
			rc = userdb_query_text(u, "SELECT \"user\" FROM certs WHERE \"match\" = $1", fp,
					       NULL, user_r);
			free(fp);
		}
	}
	if (rc == 0 && subject && *subject)
		rc = userdb_query_text(u, "SELECT \"user\" FROM certs WHERE \"match\" = $1", subject,
				       NULL, user_r);
	if (rc == 1 && !*user_r)
		rc = 0;
	return rc;
}
