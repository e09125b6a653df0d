/* userdb_relay: the credentials cursus sends to a smart host, in the SQLite store, one
 * entry per (next hop, sender) with sender '' for the next hop's default.
 * Promises: keys are lower case and free of spaces and control characters, so what the
 * admin stored is what the scheduler looks up; the password is stored as given (it must
 * be sent), is never returned by the listing and never appears in a log or an error
 * message; the copies handed to the caller are theirs to wipe. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/username.h"
#include "store/userdb_sqlite.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* "[" 255-octet host "]:" port, with room to spare; an address is at most 320. */
#define USERDB_NEXTHOP_MAX 300
#define USERDB_SENDER_MAX 320
#define USERDB_RELAY_USER_MAX 512
#define USERDB_RELAY_PASSWORD_MAX 1024

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
	st = userdb_prepare(u, "INSERT INTO relay_auth (nexthop, sender, user, password) "
			       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (nexthop, sender) DO UPDATE "
			       "SET user = excluded.user, password = excluded.password");
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
				      const char *user),
			   void *arg, char **err)
{
	sqlite3_stmt *st;
	int rc = SQLITE_ERROR;
	/* Rows are copied out first: fn may call back into the store. */
	char **rows = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&u->mu);
	st = userdb_prepare(u, "SELECT nexthop, sender, user FROM relay_auth "
			       "ORDER BY nexthop, sender");
	if (st) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n + 3 > cap) {
				cap = cap ? cap * 2 : 24;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			for (int c = 0; c < 3; c++)
				rows[n++] = userdb_column_dup(st, c);
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		*err = userdb_sqlerr(u->db, "cannot read the relay credentials");
	pthread_mutex_unlock(&u->mu);
	for (size_t i = 0; rc == SQLITE_DONE && i < n; i += 3)
		fn(arg, rows[i], rows[i + 1] && *rows[i + 1] ? rows[i + 1] : NULL, rows[i + 2]);
	for (size_t i = 0; i < n; i++)
		free(rows[i]);
	free(rows);
	return rc == SQLITE_DONE ? 0 : -1;
}

int userdb_relay_auth_find(struct userdb *u, const char *nexthop, const char *sender,
			   char **user_r, char **password_r)
{
	char *hop = xstrdup(nexthop), *from = xstrdup(sender ? sender : "");
	sqlite3_stmt *st;
	int rc = SQLITE_ERROR, ret = -1;

	*user_r = *password_r = NULL;
	username_lower(hop);
	username_lower(from);
	pthread_mutex_lock(&u->mu);
	/* The sender's own row (sender = '' false) sorts before the default. */
	st = userdb_prepare(u, "SELECT user, password FROM relay_auth "
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
	}
	free(hop);
	free(from);
	return ret;
}
