/* cursus user add|passwd|del|list|show: the credentials. The password comes only
 * from admin_password_read (terminal or stdin); an extra argument where a password
 * could be is a usage error, so a password never lands in argv or shell history.
 * grant, revoke, app-password and cert are in cmd_user_auth.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "store/username.h"
#include "util/xmalloc.h"

static void cmd_user_print(void *arg, const char *name)
{
	(void)arg;
	printf("%s\n", name);
}

/* add and passwd: validate and look the user up before prompting, so a typo costs
 * no password typing. */
static int cmd_user_set_password(const char *config_path, const char *arg, int add, int legacy)
{
	struct userdb *db;
	struct user_record rec;
	char *err = NULL, *name, *pw;
	int rc, ret = ADMIN_EXIT_FAIL;

	if (!(name = username_normalize(arg, "user name", &err))) {
		admin_error("%s", err);
		free(err);
		return ADMIN_EXIT_FAIL;
	}
	if (!(db = admin_userdb_open(config_path))) {
		free(name);
		return ADMIN_EXIT_FAIL;
	}
	rc = userdb_user_get(db, name, &rec);
	user_record_clear(&rec);
	if (rc < 0) {
		admin_error("cannot read the user database");
	} else if (add && rc == 1) {
		admin_error("user %s already exists (use `cursus user passwd` to change "
			    "its password)", name);
	} else if (!add && rc == 0) {
		admin_error("no such user: %s", name);
	} else if ((pw = admin_password_read(1)) != NULL) {
		rc = add ? userdb_user_add(db, name, pw, &err) : 0;
		/* add stores no legacy secret; the second derivation is a one-off cost. */
		if (rc == 0 && (!add || legacy))
			rc = userdb_user_set_password(db, name, pw, legacy, &err);
		xfree_secret(pw, strlen(pw));
		if (rc < 0) {
			admin_error("%s", err);
			free(err);
		} else {
			printf(add ? "user %s added\n" : "password of %s changed\n", name);
			if (legacy)
				printf("CRAM-MD5/DIGEST-MD5 enabled for %s: a password-equivalent "
				       "secret is stored\n", name);
			ret = ADMIN_EXIT_OK;
		}
	}
	userdb_close(&db);
	free(name);
	return ret;
}

static int cmd_user_del(const char *config_path, const char *name)
{
	struct userdb *db = admin_userdb_open(config_path);
	char *err = NULL;
	int ret = ADMIN_EXIT_FAIL;

	if (!db)
		return ADMIN_EXIT_FAIL;
	if (userdb_user_del(db, name, &err) < 0) {
		admin_error("%s", err);
		free(err);
	} else {
		/* The mailbox stays on disk: deleting mail is a separate, deliberate act. */
		printf("user %s deleted (its mailbox, if any, was kept)\n", name);
		ret = ADMIN_EXIT_OK;
	}
	userdb_close(&db);
	return ret;
}

static int cmd_user_list(const char *config_path)
{
	struct userdb *db = admin_userdb_open(config_path);
	char *err = NULL;
	int ret = ADMIN_EXIT_OK;

	if (!db)
		return ADMIN_EXIT_FAIL;
	if (userdb_user_list(db, cmd_user_print, NULL, &err) < 0) {
		admin_error("%s", err);
		free(err);
		ret = ADMIN_EXIT_FAIL;
	}
	userdb_close(&db);
	return ret;
}

int cmd_user(const char *config_path, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	int legacy = 0;

	if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
		if (argc == 4 && strcmp(argv[3], "--legacy-mechanisms") == 0) {
			legacy = 1;
			argc--;
		} else if (argc == 4 && strcmp(argv[2], "--legacy-mechanisms") == 0) {
			legacy = 1;
			argv[2] = argv[3];
			argc--;
		}
		if (argc > 3) {
			admin_error("a password is never taken from the command line: it is "
				    "prompted for, or read as one line from stdin");
			return admin_usage_error();
		}
		if (argc != 3)
			return admin_usage_error();
		return cmd_user_set_password(config_path, argv[2], strcmp(sub, "add") == 0, legacy);
	}
	if (strcmp(sub, "del") == 0 && argc == 3)
		return cmd_user_del(config_path, argv[2]);
	if (strcmp(sub, "list") == 0 && argc == 2)
		return cmd_user_list(config_path);
	return cmd_user_auth(config_path, argc, argv);
}
