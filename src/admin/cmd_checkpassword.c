/* cursus checkpassword: the checkpassword interface (qmail's, as Dovecot's passdb driver
 * "checkpassword" runs it) over cursus's own user database, so that an IMAP server
 * accepts exactly the passwords and app passwords SMTP AUTH accepts, with no copy of
 * the users.
 * Protocol: "user NUL password NUL timestamp NUL" (at most 512 octets) arrives on
 * fd 3; on success the program execs the rest of its arguments (Dovecot's
 * checkpassword-reply) with USER set to the canonical name. Exit 1: wrong password,
 * unknown or deleted user, revoked app password; 3: unknown user in a lookup without
 * a password (AUTHORIZED=1: Dovecot's static userdb asking whether a user exists, for
 * LMTP or doveadm); 111: the store cannot answer, or a mechanism asked for a
 * password-equivalent (CRAM-MD5 and the like), which is not given out. A SCRAM
 * mechanism's lookup (SCHEME=SCRAM-SHA-1/-256) is answered with the stored SCRAM keys,
 * which are not the password.
 * Promises: the password comes on fd 3, never from argv or the environment, and is
 * wiped before the program exits (an exec discards it with the image); nothing is cached from one run to the
 * next, so a change made by `cursus user` applies to the next login; a store failure
 * is 111, never 1, so an outage is not taken for a wrong password; the database is
 * opened, never created; an unknown user costs the same hashing as a known one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "config/config.h"
#include "store/password.h"
#include "store/username.h"
#include "util/xmalloc.h"

/* Dovecot sends at most this much (CHECKPASSWORD_MAX_REQUEST_LEN), as qmail did. */
#define CHECKPW_MAX_INPUT 512
#define CHECKPW_INPUT_FD 3

#define CHECKPW_EXIT_FAIL 1
#define CHECKPW_EXIT_USAGE 2
#define CHECKPW_EXIT_NOUSER 3
#define CHECKPW_EXIT_TEMPFAIL 111

/* Reads fd 3 to its end into buf (NUL-terminated). Returns the length, or -1 after
 * printing why (not run as a checkpassword program, or more than the protocol allows). */
static ssize_t checkpw_read_input(char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		ssize_t n = read(CHECKPW_INPUT_FD, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			admin_error("checkpassword: cannot read fd %d: %s (this program is run by an "
				    "IMAP server's checkpassword passdb)", CHECKPW_INPUT_FD,
				    strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size - 1) {
			admin_error("checkpassword: input longer than %d octets", CHECKPW_MAX_INPUT);
			return -1;
		}
	}
	buf[len] = '\0';
	close(CHECKPW_INPUT_FD);
	return (ssize_t)len;
}

/* The database named by the configuration, opened (never created). NULL after
 * printing why. */
static struct userdb *checkpw_open(const char *config_path)
{
	struct config *cfg = config_load(config_path, stderr);
	struct userdb *db = NULL;
	char *err = NULL;

	if (!cfg)
		return NULL;
	if (!(db = userdb_open_opts(cfg->user_store, 0, cfg->store_timeout_ms, 1, &err))) {
		admin_error("%s", err);
		free(err);
	}
	config_free(&cfg);
	return db;
}

/* What Dovecot asks for. */
enum checkpw_request {
	CHECKPW_VERIFY,         /* a password to check: a login */
	CHECKPW_EXISTS,         /* AUTHORIZED=1 with no scheme: does the user exist? */
	CHECKPW_SCRAM_SHA1,     /* AUTHORIZED=1, CREDENTIALS_LOOKUP for a SCRAM mechanism */
	CHECKPW_SCRAM_SHA256,
	CHECKPW_UNSUPPORTED,    /* any other scheme (CRAM-MD5, DIGEST-MD5, PLAIN, ...) */
};

static enum checkpw_request checkpw_request_kind(void)
{
	const char *authorized = getenv("AUTHORIZED"), *scheme = getenv("SCHEME");

	if (!authorized || strcmp(authorized, "1") != 0)
		return CHECKPW_VERIFY;
	if (!getenv("CREDENTIALS_LOOKUP") || !scheme || !*scheme)
		return CHECKPW_EXISTS;
	if (strcmp(scheme, "SCRAM-SHA-1") == 0)
		return CHECKPW_SCRAM_SHA1;
	if (strcmp(scheme, "SCRAM-SHA-256") == 0)
		return CHECKPW_SCRAM_SHA256;
	return CHECKPW_UNSUPPORTED;
}

/* 1 when the user exists (*user_r its stored name), 0 not, -1 failure. */
static int checkpw_exists(struct userdb *db, const char *name, char **user_r)
{
	struct user_record rec;
	int rc = userdb_user_get(db, name, &rec);

	*user_r = rc == 1 ? xstrdup(rec.name) : NULL;
	user_record_clear(&rec);
	return rc;
}

/* The SCRAM keys as Dovecot's scheme has them, "{SCRAM-SHA-256}iter,salt,stored,server",
 * into *field_r. An unknown user gets the store's fake keys (stable for the name, match
 * no password), as on SMTP: the exchange then fails like a wrong password instead of
 * telling that the user does not exist. 1, or -1 on store failure. */
static int checkpw_scram(struct userdb *db, const char *name, enum checkpw_request kind,
			 char **user_r, char **field_r)
{
	int sha1 = kind == CHECKPW_SCRAM_SHA1, exists;
	struct scram_keys keys;

	if (userdb_scram_keys(db, name, sha1 ? "SHA-1" : "SHA-256", &keys, &exists) < 0)
		return -1;
	*field_r = xasprintf("{SCRAM-SHA-%s}%u,%s,%s,%s", sha1 ? "1" : "256", keys.iterations,
			     keys.salt, keys.stored_key, keys.server_key);
	password_scram_keys_clear(&keys);
	*user_r = xstrdup(name);
	username_lower(*user_r);
	return 1;
}

/* Hands over to the reply program: USER, and for a lookup AUTHORIZED=2 and the
 * fields Dovecot needs (EXTRA names them). Returns only on failure. */
static int checkpw_exec(char **reply_argv, enum checkpw_request kind, const char *user,
			const char *password_field)
{
	int ok = setenv("USER", user, 1) == 0;

	if (kind != CHECKPW_VERIFY)
		ok = ok && setenv("AUTHORIZED", "2", 1) == 0;
	/* Dovecot's static userdb checks existence with a credentials lookup for no
	 * scheme, and takes a reply without a password as "cannot tell" unless it says
	 * nopassword. No login rests on such a lookup: a login gives a password (checked
	 * here) or names a scheme (a SCRAM one, answered with its keys; others refused). */
	if (kind == CHECKPW_EXISTS && getenv("CREDENTIALS_LOOKUP"))
		ok = ok && setenv("EXTRA", "NOPASSWORD", 1) == 0 && setenv("NOPASSWORD", "y", 1) == 0;
	if (password_field)
		ok = ok && setenv("EXTRA", "PASSWORD", 1) == 0 &&
		     setenv("PASSWORD", password_field, 1) == 0;
	if (!ok)
		return CHECKPW_EXIT_TEMPFAIL;
	/* The home comes from the IMAP server's userdb, not from whatever HOME we inherited. */
	unsetenv("HOME");
	execv(reply_argv[0], reply_argv);
	admin_error("checkpassword: cannot run %s: %s", reply_argv[0], strerror(errno));
	return CHECKPW_EXIT_TEMPFAIL;
}

/* Answers one request whose input is name and password (both within the caller's
 * buffer, which the caller wipes). Returns the exit code, or does not return (exec). */
static int checkpw_answer(const char *config_path, char **reply_argv, enum checkpw_request kind,
			  const char *name, const char *password)
{
	char *user = NULL, *field = NULL;
	struct userdb *db;
	int rc, ret;

	if (kind == CHECKPW_UNSUPPORTED) {
		/* CRAM-MD5 and friends want a password-equivalent: not given out here. */
		admin_error("checkpassword: no credentials for scheme %s; allow only PLAIN, "
			    "LOGIN, SCRAM-SHA-1 and SCRAM-SHA-256 (auth_mechanisms)", getenv("SCHEME"));
		return CHECKPW_EXIT_TEMPFAIL;
	}
	if (kind == CHECKPW_VERIFY)
		/* An unknown user makes userdb_verify_password derive its dummy hash (one
		 * yescrypt) before the check: pay that here in every case, so the time of
		 * a failure does not tell whether the user exists. */
		(void)password_dummy_hash();
	if (!(db = checkpw_open(config_path)))
		return CHECKPW_EXIT_TEMPFAIL;
	if (kind == CHECKPW_VERIFY)
		rc = userdb_verify_password(db, name, password, &user);
	else if (kind == CHECKPW_EXISTS)
		rc = checkpw_exists(db, name, &user);
	else
		rc = checkpw_scram(db, name, kind, &user, &field);
	userdb_close(&db);
	if (rc < 0) {
		admin_error("checkpassword: the user database cannot answer");
		ret = CHECKPW_EXIT_TEMPFAIL;
	} else if (rc == 0) {
		ret = kind == CHECKPW_VERIFY ? CHECKPW_EXIT_FAIL : CHECKPW_EXIT_NOUSER;
	} else {
		ret = checkpw_exec(reply_argv, kind, user, field);
	}
	if (field)
		xfree_secret(field, strlen(field));
	free(user);
	return ret;
}

int cmd_checkpassword(const char *config_path, int argc, char **argv)
{
	char buf[CHECKPW_MAX_INPUT + 2];
	const char *password;
	ssize_t len;
	int ret = CHECKPW_EXIT_USAGE;

	if (argc < 2 || argv[1][0] != '/') {
		admin_error("usage: cursus checkpassword /path/to/checkpassword-reply "
			    "(run by Dovecot's passdb checkpassword, input on fd 3)");
		return CHECKPW_EXIT_USAGE;
	}
	if ((len = checkpw_read_input(buf, sizeof(buf))) >= 0) {
		/* user NUL password NUL ...: two terminators at least, and a user. */
		password = memchr(buf, '\0', (size_t)len);
		if (!password || !buf[0] ||
		    !memchr(password + 1, '\0', (size_t)(buf + len - password - 1)))
			ret = CHECKPW_EXIT_FAIL;
		else
			ret = checkpw_answer(config_path, argv + 1, checkpw_request_kind(), buf,
					     password + 1);
	}
	/* The exec, on success, replaced this image; every other way out passes here. */
	explicit_bzero(buf, sizeof(buf));
	return ret;
}
