/* cursus checkpassword: the checkpassword interface (qmail's, as Dovecot's passdb driver
 * "checkpassword" runs it) over cursus's own user database, so that an IMAP server
 * accepts exactly the passwords and app passwords SMTP AUTH accepts, with no copy of
 * the users.
 * Protocol: "user NUL password NUL timestamp NUL" (at most 512 octets) arrives on
 * fd 3; on success the program execs the rest of its arguments (Dovecot's
 * checkpassword-reply) with USER set to the canonical name. Exit 1: wrong password,
 * unknown or deleted user, revoked app password; 3: unknown user in a lookup without
 * a password (AUTHORIZED=1: Dovecot's static userdb asking whether a user exists, for
 * LMTP or doveadm); 111: the store cannot answer, or a mechanism asked for the stored
 * secret itself (CRAM-MD5 and the like), which is not given out.
 * Promises: the password comes on fd 3, never from argv or the environment, and is
 * wiped before the program exits or execs; nothing is cached from one run to the
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
	if (!cfg->user_db || !*cfg->user_db) {
		admin_error("%s: no user_db configured", config_path);
	} else if (!(db = userdb_open(cfg->user_db, 0, &err))) {
		admin_error("%s", err);
		free(err);
	}
	config_free(&cfg);
	return db;
}

/* 1 when the user exists (*user_r its stored name), 0 not, -1 failure. */
static int checkpw_lookup(struct userdb *db, const char *name, char **user_r)
{
	struct user_record rec;
	int rc = userdb_user_get(db, name, &rec);

	*user_r = rc == 1 ? xstrdup(rec.name) : NULL;
	user_record_clear(&rec);
	return rc;
}

/* Hands over to the reply program with USER set; returns only on failure. */
static int checkpw_exec(char **reply_argv, const char *user, int lookup, int exists_only)
{
	if (setenv("USER", user, 1) < 0 || (lookup && setenv("AUTHORIZED", "2", 1) < 0))
		return CHECKPW_EXIT_TEMPFAIL;
	/* Dovecot's static userdb checks existence with a credentials lookup for no
	 * scheme, and takes a reply without a password field as "cannot tell" unless it
	 * says nopassword. No login rests on such a lookup: a login gives a password
	 * (verified above) or names a scheme (refused above). */
	if (exists_only && (setenv("EXTRA", "NOPASSWORD", 1) < 0 ||
			    setenv("NOPASSWORD", "y", 1) < 0))
		return CHECKPW_EXIT_TEMPFAIL;
	/* The home comes from the IMAP server's userdb, not from whatever HOME we inherited. */
	unsetenv("HOME");
	execv(reply_argv[0], reply_argv);
	admin_error("checkpassword: cannot run %s: %s", reply_argv[0], strerror(errno));
	return CHECKPW_EXIT_TEMPFAIL;
}

int cmd_checkpassword(const char *config_path, int argc, char **argv)
{
	char buf[CHECKPW_MAX_INPUT + 2];
	const char *authorized = getenv("AUTHORIZED");
	int lookup = authorized && strcmp(authorized, "1") == 0;
	struct userdb *db;
	char *user = NULL;
	ssize_t len;
	int rc, ret;

	if (argc < 2 || argv[1][0] != '/') {
		admin_error("usage: cursus checkpassword /path/to/checkpassword-reply "
			    "(run by Dovecot's passdb checkpassword, input on fd 3)");
		return CHECKPW_EXIT_USAGE;
	}
	if ((len = checkpw_read_input(buf, sizeof(buf))) < 0)
		return CHECKPW_EXIT_USAGE;
	/* user NUL password NUL ...: two terminators at least. */
	const char *name = buf, *password = memchr(buf, '\0', (size_t)len);
	if (!password || !memchr(password + 1, '\0', (size_t)(buf + len - password - 1)) ||
	    !*name) {
		explicit_bzero(buf, sizeof(buf));
		return CHECKPW_EXIT_FAIL;
	}
	password++;
	const char *scheme = getenv("SCHEME");
	int exists_only = lookup && getenv("CREDENTIALS_LOOKUP") && (!scheme || !*scheme);
	if (lookup && getenv("CREDENTIALS_LOOKUP") && !exists_only) {
		/* CRAM-MD5 and friends want the stored secret itself: not given out here. */
		admin_error("checkpassword: credential lookups are not supported; allow only "
			    "PLAIN and LOGIN (auth_mechanisms)");
		explicit_bzero(buf, sizeof(buf));
		return CHECKPW_EXIT_TEMPFAIL;
	}
	if (!lookup)
		/* An unknown user makes userdb_verify_password derive its dummy hash (one
		 * yescrypt) before the check: pay that here in every case, so the time of
		 * a failure does not tell whether the user exists. */
		(void)password_dummy_hash();
	if (!(db = checkpw_open(config_path))) {
		explicit_bzero(buf, sizeof(buf));
		return CHECKPW_EXIT_TEMPFAIL;
	}
	rc = lookup ? checkpw_lookup(db, name, &user)
		    : userdb_verify_password(db, name, password, &user);
	userdb_close(&db);
	explicit_bzero(buf, sizeof(buf));
	if (rc < 0) {
		admin_error("checkpassword: the user database cannot answer");
		ret = CHECKPW_EXIT_TEMPFAIL;
	} else if (rc == 0) {
		ret = lookup ? CHECKPW_EXIT_NOUSER : CHECKPW_EXIT_FAIL;
	} else {
		ret = checkpw_exec(argv + 1, user, lookup, exists_only);
	}
	free(user);
	return ret;
}
