/* cursus store init|migrate|copy: the user store's schema and moving an installation
 * between backends (docs/cluster.md). init and migrate work on the configured
 * user_store; copy names its two stores as sqlite:PATH, postgresql:CONNINFO or
 * "config" (the configured one). A connection string on the command line would show
 * its password to every local user (ps): one that holds a password is refused, and
 * libpq's own places for it (PGPASSWORD, ~/.pgpass, PGPASSFILE) are named instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "config/config.h"
#include "util/xmalloc.h"

/* A password in a key/value connection string ("password=") or a URI
 * ("postgresql://user:secret@host"). */
static int store_arg_has_password(const char *spec)
{
	const char *scheme = strstr(spec, "://"), *at;
	if (strcasestr(spec, "password"))
		return 1;
	if (scheme && (at = strchr(scheme + 3, '@')) != NULL)
		return memchr(scheme + 3, ':', (size_t)(at - (scheme + 3))) != NULL;
	return 0;
}

/* Opens one side of a copy, creating its schema. NULL after saying why. */
static struct userdb *store_open_arg(const struct config *cfg, const char *arg)
{
	const char *spec = strcmp(arg, "config") == 0 ? cfg->user_store : arg;
	struct userdb *db;
	char *err = NULL;

	if (strncmp(spec, "sqlite:", 7) != 0 && strncmp(spec, "postgresql:", 11) != 0) {
		admin_error("%s: expected sqlite:PATH, postgresql:CONNINFO or config", arg);
		return NULL;
	}
	if (spec == arg && store_arg_has_password(arg)) {
		admin_error("a connection string with a password is refused on the command line: "
			    "use PGPASSWORD or ~/.pgpass, or name the configured store as config");
		return NULL;
	}
	if (!(db = userdb_open_opts(spec, USERDB_CREATE, cfg->store_timeout_ms, 1, &err))) {
		admin_error("%s", err);
		free(err);
		return NULL;
	}
	userdb_set_scram_iterations(db, cfg->scram_iterations);
	return db;
}

static void store_copied(void *arg, const char *table, long long rows)
{
	printf("%s %lld\n", table, rows);
}

static int store_copy(const char *config_path, const char *from_arg, const char *to_arg)
{
	struct config *cfg = config_load(config_path, stderr);
	struct userdb *from = NULL, *to = NULL;
	char *err = NULL;
	int status = ADMIN_EXIT_FAIL;

	if (!cfg)
		return ADMIN_EXIT_FAIL;
	if ((from = store_open_arg(cfg, from_arg)) && (to = store_open_arg(cfg, to_arg))) {
		if (userdb_copy(from, to, store_copied, NULL, &err) == 0) {
			status = ADMIN_EXIT_OK;
		} else {
			admin_error("copy failed, the target is unchanged: %s", err);
			free(err);
		}
	}
	userdb_close(&from);
	userdb_close(&to);
	config_free(&cfg);
	return status;
}

int cmd_store(const char *config_path, int argc, char **argv)
{
	struct userdb *db;
	char *err = NULL;
	int have = 0, want = 0;

	if (argc == 4 && strcmp(argv[1], "copy") == 0)
		return store_copy(config_path, argv[2], argv[3]);
	if (argc != 2 || (strcmp(argv[1], "init") != 0 && strcmp(argv[1], "migrate") != 0))
		return admin_usage_error();
	/* Opening with USERDB_CREATE makes or migrates the schema, for either verb. */
	if (!(db = admin_userdb_open(config_path)))
		return ADMIN_EXIT_FAIL;
	if (userdb_schema_version(db, &have, &want, &err) < 0) {
		admin_error("%s", err);
		free(err);
		userdb_close(&db);
		return ADMIN_EXIT_FAIL;
	}
	printf("%s store: schema version %d\n", userdb_backend(db), have);
	userdb_close(&db);
	return have == want ? ADMIN_EXIT_OK : ADMIN_EXIT_FAIL;
}
