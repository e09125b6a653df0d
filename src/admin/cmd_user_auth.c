/* cursus user grant|revoke|app-password|cert|show: what a user may do beyond
 * logging in with its password. `show` lists what a user has, never a secret: an
 * app password is printed once, by the `app-password add` that made it, and the
 * legacy secret only as "yes" or "no". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin.h"
#include "util/xmalloc.h"

/* Prints err (and frees it) when rc < 0, else msg; returns the exit code. */
static int cmd_user_auth_done(int rc, char *err, const char *msg)
{
	if (rc < 0) {
		admin_error("%s", err ? err : "failed");
		free(err);
		return ADMIN_EXIT_FAIL;
	}
	if (msg)
		printf("%s\n", msg);
	return ADMIN_EXIT_OK;
}

/* ISO 8601 UTC, or "never" for 0. */
static const char *cmd_user_time(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || !gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return "never";
	return buf;
}

/* grant|revoke USER --act-as OTHER|--send-as ADDRESS */
static int cmd_user_grant(struct userdb *db, int grant, const char *user, const char *opt,
			  const char *value)
{
	char *err = NULL, *what, *msg;
	int act = strcmp(opt, "--act-as") == 0, rc;

	if (!act && strcmp(opt, "--send-as") != 0)
		return admin_usage_error();
	if (grant) {
		rc = act ? userdb_grant_act_as(db, user, value, &err)
			 : userdb_grant_send_as(db, user, value, &err);
		msg = xasprintf("%s may now %s %s", user, act ? "act as" : "send as", value);
	} else {
		what = xasprintf("%s:%s", act ? "act-as" : "send-as", value);
		rc = userdb_revoke(db, user, what, &err);
		free(what);
		msg = xasprintf("%s may no longer %s %s", user, act ? "act as" : "send as", value);
	}
	rc = cmd_user_auth_done(rc, err, msg);
	free(msg);
	return rc;
}

static void cmd_user_app_print(void *arg, const char *label, long long created, long long last_used)
{
	char c[32], l[32];
	(void)arg;
	printf("%s\tcreated %s\tlast used %s\n", label, cmd_user_time(created, c, sizeof(c)),
	       cmd_user_time(last_used, l, sizeof(l)));
}

/* app-password add|list|revoke USER [LABEL] */
static int cmd_user_app(struct userdb *db, int argc, char **argv)
{
	const char *sub = argv[2];
	char *err = NULL, *pw;

	if (strcmp(sub, "add") == 0 && argc == 5) {
		if (!(pw = userdb_app_password_add(db, argv[3], argv[4], &err)))
			return cmd_user_auth_done(-1, err, NULL);
		/* The one time it is shown: stored only as a hash. */
		printf("app password \"%s\" of %s: %s\n"
		       "It is shown only now; revoke it with `cursus user app-password revoke`.\n",
		       argv[4], argv[3], pw);
		xfree_secret(pw, strlen(pw));
		return ADMIN_EXIT_OK;
	}
	/* The store's result first: err is set by the call, not before it. */
	if (strcmp(sub, "list") == 0 && argc == 4) {
		int rc = userdb_app_password_list(db, argv[3], cmd_user_app_print, NULL, &err);
		return cmd_user_auth_done(rc, err, NULL);
	}
	if (strcmp(sub, "revoke") == 0 && argc == 5) {
		int rc = userdb_app_password_revoke(db, argv[3], argv[4], &err);
		return cmd_user_auth_done(rc, err, "app password revoked");
	}
	return admin_usage_error();
}

static void cmd_user_grant_print(void *arg, const char *kind, const char *value)
{
	(void)arg;
	printf("  %s %s\n", kind, value);
}

static void cmd_user_app_indented(void *arg, const char *label, long long created,
				  long long last_used)
{
	fputs("  ", stdout);
	cmd_user_app_print(arg, label, created, last_used);
}

static void cmd_user_cert_print(void *arg, const char *match)
{
	(void)arg;
	printf("  %s\n", match);
}

static int cmd_user_show(struct userdb *db, const char *name)
{
	struct user_record rec;
	char *err = NULL, *secret = NULL, when[32];
	int rc, legacy;

	rc = userdb_user_get(db, name, &rec);
	if (rc <= 0) {
		user_record_clear(&rec);
		if (rc == 0)
			admin_error("no such user: %s", name);
		else
			admin_error("cannot read the user database");
		return ADMIN_EXIT_FAIL;
	}
	legacy = userdb_legacy_secret(db, rec.name, &secret);
	if (secret)
		xfree_secret(secret, strlen(secret));
	printf("user %s\n", rec.name);
	printf("created %s\n", cmd_user_time(rec.created, when, sizeof(when)));
	printf("legacy mechanisms (CRAM-MD5, DIGEST-MD5): %s\n", legacy == 1 ? "yes" : "no");
	printf("grants:\n");
	rc = userdb_grant_list(db, rec.name, cmd_user_grant_print, NULL, &err);
	if (rc == 0) {
		printf("app passwords:\n");
		rc = userdb_app_password_list(db, rec.name, cmd_user_app_indented, NULL, &err);
	}
	if (rc == 0) {
		printf("certificates:\n");
		rc = userdb_cert_list(db, rec.name, cmd_user_cert_print, NULL, &err);
	}
	user_record_clear(&rec);
	return cmd_user_auth_done(legacy < 0 ? -1 : rc, err, NULL);
}

int cmd_user_auth(const char *config_path, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct userdb *db;
	char *err = NULL;
	int ret;

	if (!((strcmp(sub, "grant") == 0 && argc == 5) || (strcmp(sub, "revoke") == 0 && argc == 5) ||
	      (strcmp(sub, "app-password") == 0 && (argc == 4 || argc == 5)) ||
	      (strcmp(sub, "cert") == 0 && argc == 5) || (strcmp(sub, "show") == 0 && argc == 3)))
		return admin_usage_error();
	if (strcmp(sub, "cert") == 0 && strcmp(argv[2], "add") != 0 && strcmp(argv[2], "del") != 0)
		return admin_usage_error();
	if (!(db = admin_userdb_open(config_path)))
		return ADMIN_EXIT_FAIL;
	if (strcmp(sub, "grant") == 0 || strcmp(sub, "revoke") == 0)
		ret = cmd_user_grant(db, strcmp(sub, "grant") == 0, argv[2], argv[3], argv[4]);
	else if (strcmp(sub, "app-password") == 0)
		ret = cmd_user_app(db, argc, argv);
	else if (strcmp(sub, "cert") == 0 && strcmp(argv[2], "add") == 0) {
		int rc = userdb_cert_add(db, argv[3], argv[4], &err);
		ret = cmd_user_auth_done(rc, err, "certificate mapping added");
	} else if (strcmp(sub, "cert") == 0) {
		int rc = userdb_cert_del(db, argv[3], argv[4], &err);
		ret = cmd_user_auth_done(rc, err, "certificate mapping deleted");
	}
	else
		ret = cmd_user_show(db, argv[2]);
	userdb_close(&db);
	return ret;
}
