/* userdb_relay: the credentials cursus sends to a smart host, in the store (any
 * backend), one entry per (next hop, sender) with sender '' for the next hop's default.
 * Everything about the relay_auth table is here: the statements, its PostgreSQL
 * definition (userdb_relay_pg_schema, run by userdb_pg_schema.c) and the columns
 * `cursus store copy` moves (userdb_relay_copy_columns); only the SQLite definition
 * stays with the SQLite migrations (userdb_sqlite_schema.c, version 3).
 * Promises: keys are lower case and free of spaces and control characters, so what the
 * admin stored is what the scheduler looks up; the password is stored as given (it must
 * be sent), is never returned by the listing and never appears in a log or an error
 * message; the copies handed to the caller are theirs to wipe. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
	" PRIMARY KEY (nexthop, sender));";

const char userdb_relay_copy_columns[] = "nexthop, sender, \"user\", password";

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
	char *hop = NULL, *from = NULL, *why = NULL;
	int ret = -1;

	if (!(hop = userdb_relay_key(nexthop, USERDB_NEXTHOP_MAX, "the next hop", err)))
		return -1;
	if (sender && !(from = userdb_relay_key(sender, USERDB_SENDER_MAX, "the sender", err)))
		goto out;
	if (userdb_relay_check_secret(user, password, err) < 0)
		goto out;
	struct userdb_param p[] = { UPT(hop), UPT(from ? from : ""), UPT(user), UPT(password) };
	ret = userdb_q(u, "INSERT INTO relay_auth (nexthop, sender, \"user\", password) "
			  "VALUES ($1, $2, $3, $4) ON CONFLICT (nexthop, sender) DO UPDATE "
			  "SET \"user\" = excluded.\"user\", password = excluded.password", p, 4, NULL,
		       NULL, NULL, &why);
	if (ret < 0)
		*err = userdb_err("cannot store the relay credentials", why);
out:
	free(hop);
	free(from);
	return ret < 0 ? -1 : 0;
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
	rc = userdb_write(u, "DELETE FROM relay_auth WHERE nexthop = $1 AND sender = $2", hop,
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
	/* Rows are copied out first: fn may call back into the store. */
	struct userdb_rows r = { 0 };
	char *why = NULL;
	int rc = userdb_q(u, "SELECT nexthop, sender, \"user\" FROM relay_auth "
			     "ORDER BY nexthop, sender", NULL, 0, userdb_rows_add, &r, NULL, &why);

	if (rc < 0)
		*err = userdb_err("cannot read the relay credentials", why);
	for (size_t i = 0; rc == 0 && i + 2 < r.n; i += 3)
		fn(arg, r.v[i], r.v[i + 1] && *r.v[i + 1] ? r.v[i + 1] : NULL, r.v[i + 2]);
	userdb_rows_free(&r);
	return rc < 0 ? -1 : 0;
}

int userdb_relay_auth_find(struct userdb *u, const char *nexthop, const char *sender,
			   char **user_r, char **password_r)
{
	char *hop = xstrdup(nexthop), *from = xstrdup(sender ? sender : ""), *why = NULL;
	struct userdb_rows r = { 0 };
	int rc, ret = -1;

	*user_r = *password_r = NULL;
	username_lower(hop);
	username_lower(from);
	struct userdb_param p[] = { UPT(hop), UPT(from) };
	/* The sender's own row (sender = '' false) sorts before the default. */
	rc = userdb_q(u, "SELECT \"user\", password FROM relay_auth "
			 "WHERE nexthop = $1 AND sender IN ($2, '') "
			 "ORDER BY sender = '' LIMIT 1", p, 2, userdb_rows_add, &r, NULL, &why);
	if (rc == 0 && r.n == 0)
		ret = 0;
	else if (rc == 0 && r.n == 2 && r.v[0] && r.v[1])
		ret = 1;
	if (ret < 0) {
		/* The next hop is configuration, not a secret; the password is not named. */
		char esc[LOG_ESCAPE_BUFSZ];
		log_warnx("userdb relay_auth_find_failed nexthop=%s error=\"%s\"",
			  log_escape(esc, sizeof(esc), hop, strlen(hop)), why ? why : "?");
	}
	if (ret == 1) {
		*user_r = r.v[0];
		*password_r = r.v[1];
	} else {
		for (size_t i = 0; i < r.n; i++)
			if (r.v[i])
				xfree_secret(r.v[i], strlen(r.v[i]));
	}
	free(r.v);
	free(why);
	free(hop);
	free(from);
	return ret;
}
