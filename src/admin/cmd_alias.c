/* cursus alias add|del|list: addresses delivered to other addresses, and the
 * per-domain catch-all "@domain". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "store/username.h"

static void cmd_alias_print(void *arg, const char *address, const char *target)
{
	(void)arg;
	printf("%s -> %s\n", address, target);
}

/* Tells the administrator when an alias, though stored, will not do what it says. */
static void cmd_alias_warn(struct userdb *db, const char *address, const char *target)
{
	struct user_record rec;
	char **list = NULL;
	size_t n = 0;

	if (address[0] != '@') {
		if (userdb_user_get(db, address, &rec) == 1)
			fprintf(stderr, "cursus: note: %s is also a user; mail to it goes to "
					"that user's mailbox, not to the alias\n", address);
		user_record_clear(&rec);
	}
	if (userdb_resolve(db, target, &list, &n) == 0)
		fprintf(stderr, "cursus: note: %s is not a local user (yet); remote targets "
				"are not delivered to\n", target);
	userdb_free_list(list, n);
}

static int cmd_alias_add(struct userdb *db, const char *address, const char *target)
{
	char *err = NULL, *a, *t;
	if (userdb_alias_add(db, address, target, &err) < 0) {
		admin_error("%s", err);
		free(err);
		return ADMIN_EXIT_FAIL;
	}
	/* Both were validated by the add, so these succeed. */
	a = username_normalize_alias(address, &err);
	t = username_normalize(target, "alias target", &err);
	if (a && t) {
		printf("alias %s -> %s added\n", a, t);
		cmd_alias_warn(db, a, t);
	}
	free(a);
	free(t);
	return ADMIN_EXIT_OK;
}

static int cmd_alias_del(struct userdb *db, const char *address, const char *target)
{
	char *err = NULL;
	if (userdb_alias_del(db, address, target, &err) < 0) {
		admin_error("%s", err);
		free(err);
		return ADMIN_EXIT_FAIL;
	}
	printf("alias %s%s%s deleted\n", address, target ? " -> " : "", target ? target : "");
	return ADMIN_EXIT_OK;
}

int cmd_alias(const char *config_path, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct userdb *db;
	char *err = NULL;
	int ret;

	if (!((strcmp(sub, "add") == 0 && argc == 4) ||
	      (strcmp(sub, "del") == 0 && (argc == 3 || argc == 4)) ||
	      (strcmp(sub, "list") == 0 && argc == 2)))
		return admin_usage_error();
	if (!(db = admin_userdb_open(config_path)))
		return ADMIN_EXIT_FAIL;
	if (strcmp(sub, "add") == 0) {
		ret = cmd_alias_add(db, argv[2], argv[3]);
	} else if (strcmp(sub, "del") == 0) {
		ret = cmd_alias_del(db, argv[2], argc == 4 ? argv[3] : NULL);
	} else {
		ret = ADMIN_EXIT_OK;
		if (userdb_alias_list(db, cmd_alias_print, NULL, &err) < 0) {
			admin_error("%s", err);
			free(err);
			ret = ADMIN_EXIT_FAIL;
		}
	}
	userdb_close(&db);
	return ret;
}
