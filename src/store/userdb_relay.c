/* userdb_relay: the credentials cursus sends to a smart host, in the store (any
 * backend), one entry per (next hop, sender) with sender '' for the next hop's default.
 * Everything about the relay_auth table is here: the statements, its PostgreSQL
 * definition (userdb_relay_pg_schema, run by userdb_pg_schema.c) and the columns
 * `cursus store copy` moves (userdb_relay_copy_columns); only the SQLite definition
 * stays with the SQLite migrations (userdb_sqlite_schema.c, versions 3 and 5).
 * Promises: keys are lower case and free of spaces and control characters, so what the
 * admin stored is what the scheduler looks up; the password is stored as given (it must
 * be sent), is never returned by the listing and never appears in a log or an error
 * message; the copies handed to the caller are theirs to wipe. An OAuth 2 entry keeps
 * its client secret and refresh token under the same rules. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/username.h"
#include "store/userdb_private.h"
#include "store/userdb_relay.h"
#include "util/log.h"
#include "util/xmalloc.h"

const char userdb_relay_pg_schema[] =
	"CREATE TABLE relay_auth ("
	" nexthop TEXT NOT NULL,"
	" sender TEXT NOT NULL DEFAULT '',"
	" \"user\" TEXT NOT NULL,"
	" password TEXT NOT NULL,"
	/* OAuth 2 (SQLite's version 5 says what they hold): NULL for a password entry. */
	" oauth_url TEXT, oauth_client_id TEXT, oauth_client_secret TEXT,"
	" oauth_refresh_token TEXT, oauth_scope TEXT, oauth_mech TEXT, oauth_grant TEXT,"
	" PRIMARY KEY (nexthop, sender));";

#define USERDB_OAUTH_COLUMNS "oauth_url, oauth_client_id, oauth_client_secret, " \
	"oauth_refresh_token, oauth_scope, oauth_mech, oauth_grant"

const char userdb_relay_copy_columns[] = "nexthop, sender, \"user\", password, "
	USERDB_OAUTH_COLUMNS;

/* "[" 255-octet host "]:" port, with room to spare; an address is at most 320. */
#define USERDB_NEXTHOP_MAX 300
#define USERDB_SENDER_MAX 320
#define USERDB_RELAY_USER_MAX 512
#define USERDB_RELAY_PASSWORD_MAX 1024
/* Provider refresh tokens run to ~1.5 KiB (Microsoft's); room to spare. */
#define USERDB_OAUTH_VALUE_MAX 8192

/* A lower-cased copy of a key (next hop or sender), or NULL with *err when it is empty,
 * too long, or holds a space or a control character. */
static char *userdb_relay_key(const char *s, size_t max, const char *what, char **err)
{
	size_t len = s ? strlen(s) : 0;
	char *key;

	if (len == 0 || len > max) {
		*err = xasprintf("%s must be 1 to %zu characters", what, max);
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f) {
			*err = xasprintf("%s must not contain spaces or control characters", what);
			return NULL;
		}
	}
	key = xstrdup(s);
	username_lower(key);
	return key;
}

/* An entry's keys, lower-cased: the next hop and the sender ("" for none). */
struct relay_keys {
	char *hop, *from;
};

static int relay_keys_get(struct relay_keys *k, const char *nexthop, const char *sender,
			  char **err)
{
	k->from = NULL;
	if (!(k->hop = userdb_relay_key(nexthop, USERDB_NEXTHOP_MAX, "the next hop", err)))
		return -1;
	if (sender && !(k->from = userdb_relay_key(sender, USERDB_SENDER_MAX, "the sender", err))) {
		free(k->hop);
		k->hop = NULL;
		return -1;
	}
	return 0;
}

static const char *relay_keys_sender(const struct relay_keys *k)
{
	return k->from ? k->from : "";
}

static void relay_keys_free(struct relay_keys *k)
{
	free(k->hop);
	free(k->from);
}

/* Checks the user name and password: both non-empty, bounded, no line breaks (they
 * travel in SASL exchanges, where a NUL or newline would cut them short). The message
 * never quotes the password. */
static int userdb_relay_check_secret(const char *user, const char *password, char **err)
{
	size_t ul = user ? strlen(user) : 0, pl = password ? strlen(password) : 0;

	if (ul == 0 || ul > USERDB_RELAY_USER_MAX || strpbrk(user, "\r\n")) {
		*err = xasprintf("the relay user name must be 1 to %d characters on one line",
				 USERDB_RELAY_USER_MAX);
		return -1;
	}
	if (pl == 0 || pl > USERDB_RELAY_PASSWORD_MAX || strpbrk(password, "\r\n")) {
		*err = xasprintf("the relay password must be 1 to %d characters on one line",
				 USERDB_RELAY_PASSWORD_MAX);
		return -1;
	}
	return 0;
}

int userdb_relay_auth_set(struct userdb *u, const char *nexthop, const char *sender,
			  const char *user, const char *password, char **err)
{
	struct relay_keys k;
	char *why = NULL;
	int ret = -1;

	if (relay_keys_get(&k, nexthop, sender, err) < 0)
		return -1;
	if (userdb_relay_check_secret(user, password, err) < 0)
		goto out;
	struct userdb_param p[] = { UPT(k.hop), UPT(relay_keys_sender(&k)), UPT(user), UPT(password) };
	/* A password replaces an OAuth entry whole: its OAuth fields go. */
	ret = userdb_q(u, "INSERT INTO relay_auth (nexthop, sender, \"user\", password) "
			  "VALUES ($1, $2, $3, $4) ON CONFLICT (nexthop, sender) DO UPDATE "
			  "SET \"user\" = excluded.\"user\", password = excluded.password, "
			  "oauth_url = NULL, oauth_client_id = NULL, oauth_client_secret = NULL, "
			  "oauth_refresh_token = NULL, oauth_scope = NULL, oauth_mech = NULL, "
			  "oauth_grant = NULL", p, 4, NULL, NULL, NULL, &why);
	if (ret < 0)
		*err = userdb_err("cannot store the relay credentials", why);
out:
	relay_keys_free(&k);
	return ret < 0 ? -1 : 0;
}

int userdb_relay_auth_del(struct userdb *u, const char *nexthop, const char *sender, char **err)
{
	struct relay_keys k;
	int rc;

	if (relay_keys_get(&k, nexthop, sender, err) < 0)
		return -1;
	rc = userdb_write(u, "DELETE FROM relay_auth WHERE nexthop = $1 AND sender = $2", k.hop,
			  relay_keys_sender(&k), NULL, "cannot delete the relay credentials", err);
	relay_keys_free(&k);
	return rc == 0 ? 1 : rc == -2 ? 0 : -1;
}

int userdb_relay_auth_list(struct userdb *u,
			   void (*fn)(void *arg, const char *nexthop, const char *sender,
				      const char *user, const char *oauth_mech),
			   void *arg, char **err)
{
	/* Rows are copied out first: fn may call back into the store. */
	struct userdb_rows r = { 0 };
	char *why = NULL;
	int rc = userdb_q(u, "SELECT nexthop, sender, \"user\", "
			     "CASE WHEN oauth_url IS NULL THEN NULL ELSE oauth_mech END "
			     "FROM relay_auth ORDER BY nexthop, sender", NULL, 0, userdb_rows_add, &r,
			  NULL, &why);

	if (rc < 0)
		*err = userdb_err("cannot read the relay credentials", why);
	for (size_t i = 0; rc == 0 && i + 3 < r.n; i += 4)
		fn(arg, r.v[i], r.v[i + 1] && *r.v[i + 1] ? r.v[i + 1] : NULL, r.v[i + 2],
		   r.v[i + 3]);
	userdb_rows_free(&r);
	return rc < 0 ? -1 : 0;
}

int userdb_relay_auth_find(struct userdb *u, const char *nexthop, const char *sender,
			   char **user_r, char **password_r, struct userdb_relay_oauth *oauth_r)
{
	char *hop = xstrdup(nexthop), *from = xstrdup(sender ? sender : ""), *why = NULL;
	struct userdb_rows r = { 0 };
	int rc, ret = -1;

	*user_r = *password_r = NULL;
	if (oauth_r)
		memset(oauth_r, 0, sizeof(*oauth_r));
	username_lower(hop);
	username_lower(from);
	struct userdb_param p[] = { UPT(hop), UPT(from) };
	/* The sender's own row (sender = '' false) sorts before the default. */
	rc = userdb_q(u, "SELECT \"user\", password, " USERDB_OAUTH_COLUMNS " FROM relay_auth "
			 "WHERE nexthop = $1 AND sender IN ($2, '') "
			 "ORDER BY sender = '' LIMIT 1", p, 2, userdb_rows_add, &r, NULL, &why);
	if (rc == 0 && r.n == 0)
		ret = 0;
	else if (rc == 0 && r.n == 9 && r.v[0] && r.v[1])
		/* An OAuth entry (a URL) must have what a fetch needs. */
		ret = !r.v[2] || (r.v[3] && r.v[7] && r.v[8]) ? 1 : -1;
	if (ret < 0) {
		/* The next hop is configuration, not a secret; the password is not named. */
		char esc[LOG_ESCAPE_BUFSZ];
		log_warnx("userdb relay_auth_find_failed nexthop=%s error=\"%s\"",
			  log_escape(esc, sizeof(esc), hop, strlen(hop)),
			  why ? why : rc == 0 ? "incomplete entry" : "?");
	}
	if (ret == 1) {
		*user_r = r.v[0];
		*password_r = r.v[1];
		r.v[0] = r.v[1] = NULL;
		if (oauth_r && r.v[2]) {
			char **f[] = { &oauth_r->url, &oauth_r->client_id, &oauth_r->client_secret,
				       &oauth_r->refresh_token, &oauth_r->scope, &oauth_r->mech,
				       &oauth_r->grant };
			for (int c = 0; c < 7; c++) {
				*f[c] = r.v[2 + c];
				r.v[2 + c] = NULL;
			}
		}
	}
	for (size_t i = 0; i < r.n; i++)
		if (r.v[i])
			xfree_secret(r.v[i], strlen(r.v[i]));
	free(r.v);
	free(why);
	free(hop);
	free(from);
	return ret;
}

/* ---- OAuth 2 ---------------------------------------------------------------------- */

static void userdb_free_secret(char *s)
{
	if (s)
		xfree_secret(s, strlen(s));
}

void userdb_relay_oauth_clear(struct userdb_relay_oauth *o)
{
	free(o->url);
	free(o->client_id);
	userdb_free_secret(o->client_secret);
	userdb_free_secret(o->refresh_token);
	free(o->scope);
	free(o->mech);
	free(o->grant);
	memset(o, 0, sizeof(*o));
}

/* NULL when the value (optional or not) may be stored, else what is wrong with it. */
static const char *userdb_oauth_value_bad(const char *v, int optional)
{
	if (!v || !*v)
		return optional ? NULL : "is required";
	if (strlen(v) > USERDB_OAUTH_VALUE_MAX)
		return "is too long";
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "must be one line without control characters";
	return NULL;
}

static int userdb_relay_oauth_check(const char *user, const struct userdb_relay_oauth *o,
				    char **err)
{
	struct { const char *name, *v; int optional; } f[] = {
		{ "the token endpoint URL", o->url, 0 }, { "the client id", o->client_id, 0 },
		{ "the client secret", o->client_secret, 1 },
		{ "the refresh token", o->refresh_token, 1 }, { "the scope", o->scope, 1 },
	};
	const char *why;
	if (userdb_relay_check_secret(user, "-", err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if ((why = userdb_oauth_value_bad(f[i].v, f[i].optional))) {
			/* Never the value: it may be a secret. */
			*err = xasprintf("%s %s", f[i].name, why);
			return -1;
		}
	/* The secrets go only where TLS protects them. */
	if (strncasecmp(o->url, "https://", 8) != 0 || !o->url[8]) {
		*err = xstrdup("the token endpoint URL must be https://");
		return -1;
	}
	if (!o->mech || (strcmp(o->mech, "XOAUTH2") != 0 && strcmp(o->mech, "OAUTHBEARER") != 0)) {
		*err = xstrdup("the mechanism must be XOAUTH2 or OAUTHBEARER");
		return -1;
	}
	if (!o->grant || (strcmp(o->grant, "refresh_token") != 0 &&
			  strcmp(o->grant, "client_credentials") != 0)) {
		*err = xstrdup("the grant must be refresh_token or client_credentials");
		return -1;
	}
	if (strcmp(o->grant, "refresh_token") == 0 && (!o->refresh_token || !*o->refresh_token)) {
		*err = xstrdup("the refresh_token grant needs a refresh token");
		return -1;
	}
	if (strcmp(o->grant, "client_credentials") == 0 &&
	    (!o->client_secret || !*o->client_secret)) {
		*err = xstrdup("the client_credentials grant needs a client secret");
		return -1;
	}
	return 0;
}

/* An optional value as a parameter: "" is stored as NULL. */
static struct userdb_param userdb_oauth_param(const char *v)
{
	return UPT(v && *v ? v : NULL);
}

int userdb_relay_oauth_set(struct userdb *u, const char *nexthop, const char *sender,
			   const char *user, const struct userdb_relay_oauth *o, char **err)
{
	struct relay_keys k;
	char *why = NULL;
	int ret = -1;

	if (relay_keys_get(&k, nexthop, sender, err) < 0)
		return -1;
	if (userdb_relay_oauth_check(user, o, err) < 0)
		goto out;
	struct userdb_param p[] = {
		UPT(k.hop), UPT(relay_keys_sender(&k)), UPT(user), UPT(o->url), UPT(o->client_id),
		userdb_oauth_param(o->client_secret), userdb_oauth_param(o->refresh_token),
		userdb_oauth_param(o->scope), UPT(o->mech), UPT(o->grant),
	};
	ret = userdb_q(u, "INSERT INTO relay_auth (nexthop, sender, \"user\", password, "
			  USERDB_OAUTH_COLUMNS ") VALUES ($1, $2, $3, '', $4, $5, $6, $7, $8, $9, $10) "
			  "ON CONFLICT (nexthop, sender) DO UPDATE SET \"user\" = excluded.\"user\", "
			  "password = '', oauth_url = excluded.oauth_url, "
			  "oauth_client_id = excluded.oauth_client_id, "
			  "oauth_client_secret = excluded.oauth_client_secret, "
			  "oauth_refresh_token = excluded.oauth_refresh_token, "
			  "oauth_scope = excluded.oauth_scope, oauth_mech = excluded.oauth_mech, "
			  "oauth_grant = excluded.oauth_grant", p, 10, NULL, NULL, NULL, &why);
	if (ret < 0)
		*err = userdb_err("cannot store the relay credentials", why);
out:
	relay_keys_free(&k);
	return ret < 0 ? -1 : 0;
}

int userdb_relay_oauth_rotate(struct userdb *u, const char *nexthop, const char *old_token,
			      const char *new_token)
{
	char *hop = xstrdup(nexthop), *err = NULL;
	int rc;

	username_lower(hop);
	if (userdb_oauth_value_bad(new_token, 0)) {
		free(hop);
		return -1;
	}
	/* Compare and set in one statement: PostgreSQL re-checks the WHERE of a row that a
	 * concurrent writer changed, so an entry replaced meanwhile is left alone. */
	rc = userdb_write(u, "UPDATE relay_auth SET oauth_refresh_token = $3 "
			  "WHERE nexthop = $1 AND oauth_refresh_token = $2", hop, old_token,
			  new_token, "cannot store the rotated refresh token", &err);
	if (rc == -1) {
		char esc[LOG_ESCAPE_BUFSZ];
		log_warnx("userdb relay_oauth_rotate_failed nexthop=%s error=\"%s\"",
			  log_escape(esc, sizeof(esc), hop, strlen(hop)), err);
		free(err);
	}
	free(hop);
	return rc == 0 ? 1 : rc == -2 ? 0 : -1;
}
