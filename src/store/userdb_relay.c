/* userdb_relay: the credentials cursus sends to a smart host, in the SQLite store, one
 * entry per (next hop, sender) with sender '' for the next hop's default.
 * Promises: keys are lower case and free of spaces and control characters, so what the
 * admin stored is what the scheduler looks up; the password is stored as given (it must
 * be sent), is never returned by the listing and never appears in a log or an error
 * message; the copies handed to the caller are theirs to wipe. An OAuth 2 entry keeps
 * its client secret and refresh token under the same rules (schema version 5). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/username.h"
#include "store/userdb_sqlite.h"
#include "util/log.h"
#include "util/xmalloc.h"

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
	char *hop = NULL, *from = NULL;
	sqlite3_stmt *st;
	int ret = -1;

	if (!(hop = userdb_relay_key(nexthop, USERDB_NEXTHOP_MAX, "the next hop", err)))
		return -1;
	if (sender && !(from = userdb_relay_key(sender, USERDB_SENDER_MAX, "the sender", err)))
		goto out;
	if (userdb_relay_check_secret(user, password, err) < 0)
		goto out;
	pthread_mutex_lock(&u->mu);
	/* A password replaces an OAuth entry whole: its OAuth fields go. */
	st = userdb_prepare(u, "INSERT INTO relay_auth (nexthop, sender, user, password) "
			       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (nexthop, sender) DO UPDATE "
			       "SET user = excluded.user, password = excluded.password, "
			       "oauth_url = NULL, oauth_client_id = NULL, oauth_client_secret = NULL, "
			       "oauth_refresh_token = NULL, oauth_scope = NULL, oauth_mech = NULL, "
			       "oauth_grant = NULL");
	if (st) {
		sqlite3_bind_text(st, 1, hop, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, from ? from : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, password, -1, SQLITE_STATIC);
		if (userdb_step_write(st) == SQLITE_DONE)
			ret = 0;
	}
	if (ret < 0)
		*err = userdb_sqlerr(u->db, "cannot store the relay credentials");
	pthread_mutex_unlock(&u->mu);
out:
	free(hop);
	free(from);
	return ret;
}

int userdb_relay_auth_del(struct userdb *u, const char *nexthop, const char *sender, char **err)
{
	char *hop = NULL, *from = NULL;
	int rc;

	if (!(hop = userdb_relay_key(nexthop, USERDB_NEXTHOP_MAX, "the next hop", err)))
		return -1;
	if (sender && !(from = userdb_relay_key(sender, USERDB_SENDER_MAX, "the sender", err))) {
		free(hop);
		return -1;
	}
	rc = userdb_write(u, "DELETE FROM relay_auth WHERE nexthop = ?1 AND sender = ?2", hop,
			  from ? from : "", NULL, "cannot delete the relay credentials", err);
	free(hop);
	free(from);
	return rc == 0 ? 1 : rc == -2 ? 0 : -1;
}

int userdb_relay_auth_list(struct userdb *u,
			   void (*fn)(void *arg, const char *nexthop, const char *sender,
				      const char *user, const char *oauth_mech),
			   void *arg, char **err)
{
	sqlite3_stmt *st;
	int rc = SQLITE_ERROR;
	/* Rows are copied out first: fn may call back into the store. */
	char **rows = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "SELECT nexthop, sender, user, "
			       "CASE WHEN oauth_url IS NULL THEN NULL ELSE oauth_mech END "
			       "FROM relay_auth ORDER BY nexthop, sender");
	if (st) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n + 4 > cap) {
				cap = cap ? cap * 2 : 32;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			for (int c = 0; c < 4; c++)
				rows[n++] = userdb_column_dup(st, c);
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		*err = userdb_sqlerr(u->db, "cannot read the relay credentials");
	pthread_mutex_unlock(&u->mu);
	for (size_t i = 0; rc == SQLITE_DONE && i < n; i += 4)
		fn(arg, rows[i], rows[i + 1] && *rows[i + 1] ? rows[i + 1] : NULL, rows[i + 2],
		   rows[i + 3]);
	for (size_t i = 0; i < n; i++)
		free(rows[i]);
	free(rows);
	return rc == SQLITE_DONE ? 0 : -1;
}

int userdb_relay_auth_find(struct userdb *u, const char *nexthop, const char *sender,
			   char **user_r, char **password_r, struct userdb_relay_oauth *oauth_r)
{
	char *hop = xstrdup(nexthop), *from = xstrdup(sender ? sender : "");
	sqlite3_stmt *st;
	int rc = SQLITE_ERROR, ret = -1;

	*user_r = *password_r = NULL;
	if (oauth_r)
		memset(oauth_r, 0, sizeof(*oauth_r));
	username_lower(hop);
	username_lower(from);
	pthread_mutex_lock(&u->mu);
	/* The sender's own row (sender = '' false) sorts before the default. */
	st = userdb_prepare(u, "SELECT user, password, oauth_url, oauth_client_id, "
			       "oauth_client_secret, oauth_refresh_token, oauth_scope, oauth_mech, "
			       "oauth_grant FROM relay_auth "
			       "WHERE nexthop = ?1 AND sender IN (?2, '') "
			       "ORDER BY sender = '' LIMIT 1");
	if (st) {
		sqlite3_bind_text(st, 1, hop, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*user_r = userdb_column_dup(st, 0);
			*password_r = userdb_column_dup(st, 1);
			ret = *user_r && *password_r ? 1 : -1;
			if (oauth_r && sqlite3_column_type(st, 2) != SQLITE_NULL) {
				char **f[] = { &oauth_r->url, &oauth_r->client_id,
					       &oauth_r->client_secret, &oauth_r->refresh_token,
					       &oauth_r->scope, &oauth_r->mech, &oauth_r->grant };
				for (int c = 0; c < 7; c++)
					*f[c] = userdb_column_dup(st, 2 + c);
				if (!oauth_r->url || !oauth_r->client_id || !oauth_r->mech ||
				    !oauth_r->grant)
					ret = -1;
			}
		} else if (rc == SQLITE_DONE) {
			ret = 0;
		}
		sqlite3_finalize(st);
	}
	if (ret < 0) {
		/* The next hop is configuration, not a secret; the password is not named. */
		char esc[LOG_ESCAPE_BUFSZ];
		log_warnx("userdb relay_auth_find_failed nexthop=%s error=\"%s\"",
			  log_escape(esc, sizeof(esc), hop, strlen(hop)), sqlite3_errmsg(u->db));
	}
	pthread_mutex_unlock(&u->mu);
	if (ret < 0) {
		free(*user_r);
		if (*password_r)
			xfree_secret(*password_r, strlen(*password_r));
		*user_r = *password_r = NULL;
		if (oauth_r)
			userdb_relay_oauth_clear(oauth_r);
	}
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

int userdb_relay_oauth_set(struct userdb *u, const char *nexthop, const char *sender,
			   const char *user, const struct userdb_relay_oauth *o, char **err)
{
	char *hop = NULL, *from = NULL;
	sqlite3_stmt *st;
	int ret = -1;

	if (!(hop = userdb_relay_key(nexthop, USERDB_NEXTHOP_MAX, "the next hop", err)))
		return -1;
	if (sender && !(from = userdb_relay_key(sender, USERDB_SENDER_MAX, "the sender", err)))
		goto out;
	if (userdb_relay_oauth_check(user, o, err) < 0)
		goto out;
	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "INSERT INTO relay_auth (nexthop, sender, user, password, oauth_url, "
			       "oauth_client_id, oauth_client_secret, oauth_refresh_token, oauth_scope, "
			       "oauth_mech, oauth_grant) VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
			       "ON CONFLICT (nexthop, sender) DO UPDATE SET user = excluded.user, "
			       "password = '', oauth_url = excluded.oauth_url, "
			       "oauth_client_id = excluded.oauth_client_id, "
			       "oauth_client_secret = excluded.oauth_client_secret, "
			       "oauth_refresh_token = excluded.oauth_refresh_token, "
			       "oauth_scope = excluded.oauth_scope, oauth_mech = excluded.oauth_mech, "
			       "oauth_grant = excluded.oauth_grant");
	if (st) {
		const char *v[] = { hop, from ? from : "", user, o->url, o->client_id,
				    o->client_secret, o->refresh_token, o->scope, o->mech, o->grant };
		for (int i = 0; i < 10; i++)
			if (v[i] && (i < 3 || *v[i]))
				sqlite3_bind_text(st, i + 1, v[i], -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, i + 1);
		if (userdb_step_write(st) == SQLITE_DONE)
			ret = 0;
	}
	if (ret < 0)
		*err = userdb_sqlerr(u->db, "cannot store the relay credentials");
	pthread_mutex_unlock(&u->mu);
out:
	free(hop);
	free(from);
	return ret;
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
	rc = userdb_write(u, "UPDATE relay_auth SET oauth_refresh_token = ?3 "
			  "WHERE nexthop = ?1 AND oauth_refresh_token = ?2", hop, old_token,
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
