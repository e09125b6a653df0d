/* userdb_grants: administration of what a user may do beyond logging in with its
 * password, in the store (any backend): act-as and send-as grants, app passwords and
 * client-certificate mappings.
 * Promises: every name and address is validated and lower-cased like the users
 * table's; a grant, app password or certificate is only ever attached to an
 * existing user; an app password comes from OpenSSL's generator, is stored only as
 * a keyed SHA-256 digest (userdb_app_digest) and is handed back once; nothing here
 * logs a secret. */
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/password.h"
#include "store/username.h"
#include "store/userdb_private.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define USERDB_LABEL_MAX 64
#define USERDB_SUBJECT_MAX 1024

/* Normalises user and checks it exists. Returns the malloc'd name, or NULL with *err. */
static char *userdb_existing_user(struct userdb *u, const char *user, char **err)
{
	char *key = username_normalize(user, "user name", err);
	int rc;

	if (!key)
		return NULL;
	rc = userdb_user_exists(u, key);
	if (rc < 0)
		*err = xstrdup("cannot read the user database");
	if (rc == 0)
		*err = userdb_missing("user", key);
	if (rc != 1) {
		free(key);
		return NULL;
	}
	return key;
}

/* Inserts a row whose parameters are all validated; -3 from userdb_write becomes
 * the "already" message. */
static int userdb_insert(struct userdb *u, const char *sql, const char *p1, const char *p2,
			 const char *p3, const char *already, char **err)
{
	int rc = userdb_write(u, sql, p1, p2, p3, "cannot store", err);
	if (rc == -3)
		*err = xstrdup(already);
	return rc == 0 ? 0 : -1;
}

int userdb_grant_act_as(struct userdb *u, const char *user, const char *other, char **err)
{
	char *usr, *oth = NULL, *already;
	int rc = -1;

	if (!(usr = userdb_existing_user(u, user, err)))
		return -1;
	if ((oth = userdb_existing_user(u, other, err)) != NULL) {
		if (strcmp(usr, oth) == 0) {
			*err = xasprintf("%s may always act as itself", usr);
		} else {
			already = xasprintf("%s may already act as %s", usr, oth);
			rc = userdb_insert(u, "INSERT INTO grants (\"user\", kind, value) "
					      "VALUES ($1, 'act-as', $2)", usr, oth, NULL,
					   already, err);
			free(already);
		}
	}
	free(usr);
	free(oth);
	return rc;
}

int userdb_grant_send_as(struct userdb *u, const char *user, const char *address, char **err)
{
	char *usr, *addr, *already;
	int rc = -1;

	if (!(usr = userdb_existing_user(u, user, err)))
		return -1;
	/* An address, or "@domain" for every address of the domain. */
	if ((addr = username_normalize_alias(address, err)) != NULL) {
		already = xasprintf("%s may already send as %s", usr, addr);
		rc = userdb_insert(u, "INSERT INTO grants (\"user\", kind, value) "
				      "VALUES ($1, 'send-as', $2)", usr, addr, NULL, already, err);
		free(already);
	}
	free(usr);
	free(addr);
	return rc;
}

int userdb_revoke(struct userdb *u, const char *user, const char *what, char **err)
{
	const char *kind = NULL, *value = what;
	char *usr = xstrdup(user), *val, *missing;
	int rc;

	if (strncmp(what, "act-as:", 7) == 0) {
		kind = "act-as";
		value = what + 7;
	} else if (strncmp(what, "send-as:", 8) == 0) {
		kind = "send-as";
		value = what + 8;
	}
	val = xstrdup(value);
	username_lower(usr);
	username_lower(val);
	missing = xasprintf("%s has no %s%sgrant for %s", usr, kind ? kind : "", kind ? " " : "",
			    val);
	if (kind)
		rc = userdb_write(u, "DELETE FROM grants WHERE \"user\" = $1 AND kind = $3 AND value = $2",
				  usr, val, kind, "cannot revoke", err);
	else
		rc = userdb_write(u, "DELETE FROM grants WHERE \"user\" = $1 AND value = $2", usr, val,
				  NULL, "cannot revoke", err);
	if (rc == -2)
		*err = missing;
	else
		free(missing);
	free(usr);
	free(val);
	return rc == 0 ? 0 : -1;
}

int userdb_grant_list(struct userdb *u, const char *user,
		      void (*fn)(void *arg, const char *kind, const char *value), void *arg,
		      char **err)
{
	char *usr = xstrdup(user), *why = NULL;
	struct userdb_param p[] = { UPT(usr) };
	struct userdb_rows r = { 0 };
	int rc;

	username_lower(usr);
	rc = userdb_q(u, "SELECT kind, value FROM grants WHERE \"user\" = $1 ORDER BY kind, value",
		      p, 1, userdb_rows_add, &r, NULL, &why);
	if (rc < 0)
		*err = userdb_err("cannot list grants", why);
	for (size_t i = 0; rc == 0 && i + 1 < r.n; i += 2)
		fn(arg, r.v[i], r.v[i + 1]);
	userdb_rows_free(&r);
	free(usr);
	return rc < 0 ? -1 : 0;
}

/* A label is shown back to the administrator: printable, short, not empty. */
static int userdb_label_ok(const char *label, char **err)
{
	size_t n = strlen(label);

	if (n == 0 || n > USERDB_LABEL_MAX) {
		*err = xasprintf("an app password label is 1 to %d octets", USERDB_LABEL_MAX);
		return 0;
	}
	for (const unsigned char *p = (const unsigned char *)label; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*err = xstrdup("an app password label holds no control characters");
			return 0;
		}
	}
	return 1;
}

/* 16 characters from [a-z0-9] as "abcd-efgh-ijkl-mnop": about 82 bits. */
static char *userdb_app_generate(void)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[64];
	char *out = xmalloc(20);
	size_t n = 0, o = 0;

	while (n < 16) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			fatalx("RAND_bytes failed");
		for (size_t i = 0; i < sizeof(rnd) && n < 16; i++) {
			/* 252 = 7 * 36: rejecting the rest keeps every character equally likely. */
			if (rnd[i] >= 252)
				continue;
			if (n > 0 && n % 4 == 0)
				out[o++] = '-';
			out[o++] = alphabet[rnd[i] % 36];
			n++;
		}
	}
	out[o] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	return out;
}

char *userdb_app_password_add(struct userdb *u, const char *user, const char *label, char **err)
{
	char *usr, *pw, *hash, *why = NULL;
	int rc;

	if (!userdb_label_ok(label, err) || !(usr = userdb_existing_user(u, user, err)))
		return NULL;
	pw = userdb_app_generate();
	if (!(hash = userdb_app_digest(u, pw))) {
		*err = xstrdup("cannot add the app password: the store's secret is unavailable");
		xfree_secret(pw, strlen(pw));
		free(usr);
		return NULL;
	}
	struct userdb_param p[] = { UPT(usr), UPT(label), UPT(hash), UPI((long long)time(NULL)) };
	rc = userdb_q(u, "INSERT INTO app_passwords (\"user\", label, hash, created, last_used) "
			 "VALUES ($1, $2, $3, $4, NULL)", p, 4, NULL, NULL, NULL, &why);
	if (rc == USERDB_CONFLICT)
		*err = xasprintf("%s already has an app password with that label", usr);
	else if (rc < 0)
		*err = userdb_err("cannot add the app password", why);
	xfree_secret(hash, strlen(hash));
	free(usr);
	if (rc < 0) {
		xfree_secret(pw, strlen(pw));
		return NULL;
	}
	return pw;
}

int userdb_app_password_revoke(struct userdb *u, const char *user, const char *label, char **err)
{
	char *usr = xstrdup(user);
	int rc;

	username_lower(usr);
	rc = userdb_write(u, "DELETE FROM app_passwords WHERE \"user\" = $1 AND label = $2", usr, label,
			  NULL, "cannot revoke the app password", err);
	if (rc == -2)
		*err = xasprintf("%s has no app password with that label", usr);
	free(usr);
	return rc == 0 ? 0 : -1;
}

int userdb_app_password_list(struct userdb *u, const char *user,
			     void (*fn)(void *arg, const char *label, long long created,
					long long last_used),
			     void *arg, char **err)
{
	char *usr = xstrdup(user), *why = NULL;
	struct userdb_param p[] = { UPT(usr) };
	struct userdb_rows r = { 0 };
	int rc;

	username_lower(usr);
	rc = userdb_q(u, "SELECT label, created, last_used FROM app_passwords "
			 "WHERE \"user\" = $1 ORDER BY label", p, 1, userdb_rows_add, &r, NULL, &why);
	if (rc < 0)
		*err = userdb_err("cannot list app passwords", why);
	/* NULL last_used (never) reads as 0. */
	for (size_t i = 0; rc == 0 && i + 2 < r.n; i += 3)
		fn(arg, r.v[i], r.v[i + 1] ? strtoll(r.v[i + 1], NULL, 10) : 0,
		   r.v[i + 2] ? strtoll(r.v[i + 2], NULL, 10) : 0);
	userdb_rows_free(&r);
	free(usr);
	return rc < 0 ? -1 : 0;
}

char *userdb_cert_fingerprint(const char *s)
{
	char out[65];
	size_t n = 0;

	for (; *s; s++) {
		char ch = *s;
		if (ch == ':')
			continue;
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) || n == 64)
			return NULL;
		out[n++] = ch;
	}
	if (n != 64)
		return NULL;
	out[n] = '\0';
	return xstrdup(out);
}

/* The stored form of a certificate match: a normalised fingerprint, else the
 * subject as given. NULL with *err when it is neither. */
static char *userdb_cert_match(const char *what, char **err)
{
	char *fp = userdb_cert_fingerprint(what);
	size_t n = strlen(what);

	if (fp)
		return fp;
	if (n == 0 || n > USERDB_SUBJECT_MAX) {
		*err = xasprintf("a certificate subject is 1 to %d octets", USERDB_SUBJECT_MAX);
		return NULL;
	}
	for (const unsigned char *p = (const unsigned char *)what; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*err = xstrdup("a certificate subject holds no control characters");
			return NULL;
		}
	}
	return xstrdup(what);
}

int userdb_cert_add(struct userdb *u, const char *user, const char *fingerprint_or_subject,
		    char **err)
{
	char *usr, *match;
	int rc;

	if (!(match = userdb_cert_match(fingerprint_or_subject, err)))
		return -1;
	if (!(usr = userdb_existing_user(u, user, err))) {
		free(match);
		return -1;
	}
	rc = userdb_insert(u, "INSERT INTO certs (\"user\", \"match\") VALUES ($1, $2)", usr, match,
			   NULL, "that certificate is already mapped to a user", err);
	free(usr);
	free(match);
	return rc;
}

int userdb_cert_del(struct userdb *u, const char *user, const char *fingerprint_or_subject,
		    char **err)
{
	char *usr = xstrdup(user), *match = userdb_cert_fingerprint(fingerprint_or_subject);
	int rc;

	username_lower(usr);
	if (!match)
		match = xstrdup(fingerprint_or_subject);
	rc = userdb_write(u, "DELETE FROM certs WHERE \"user\" = $1 AND \"match\" = $2", usr, match,
			  NULL, "cannot delete the certificate mapping", err);
	if (rc == -2)
		*err = xasprintf("no such certificate mapping for %s", usr);
	free(usr);
	free(match);
	return rc == 0 ? 0 : -1;
}

int userdb_cert_list(struct userdb *u, const char *user, void (*fn)(void *arg, const char *match),
		     void *arg, char **err)
{
	char *usr = xstrdup(user), *why = NULL;
	struct userdb_param p[] = { UPT(usr) };
	struct userdb_rows r = { 0 };
	int rc;

	username_lower(usr);
	rc = userdb_q(u, "SELECT \"match\" FROM certs WHERE \"user\" = $1 ORDER BY \"match\"", p, 1,
		      userdb_rows_add, &r, NULL, &why);
	if (rc < 0)
		*err = userdb_err("cannot list certificates", why);
	for (size_t i = 0; rc == 0 && i < r.n; i++)
		fn(arg, r.v[i]);
	userdb_rows_free(&r);
	free(usr);
	return rc < 0 ? -1 : 0;
}
