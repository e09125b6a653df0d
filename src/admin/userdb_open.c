/* admin userdb_open: from the configuration to an open user database, creating
 * the database's directory (mkdir -p, mode 0700) on first use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/admin.h"
#include "config/config.h"
#include "util/xmalloc.h"

/* mkdir -p of the directory part of path. 0 ok, -1 with errno set. */
static int admin_mkdir_parent(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int rc = 0;

	if (!slash || slash == dir) {
		free(dir);
		return 0;
	}
	*slash = '\0';
	for (char *p = dir + 1; rc == 0; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = -1;
		*p = saved;
		if (saved == '\0')
			break;
	}
	free(dir);
	return rc;
}

struct userdb *admin_userdb_open(const char *config_path)
{
	struct config *cfg = config_load(config_path, stderr);
	struct userdb *db = NULL;
	char *err = NULL;

	if (!cfg)
		return NULL;
	if (!cfg->user_db || !*cfg->user_db) {
		admin_error("%s: no user_db configured", config_path);
	} else if (admin_mkdir_parent(cfg->user_db) < 0) {
		admin_error("cannot create the directory of %s: %s", cfg->user_db, strerror(errno));
	} else if (!(db = userdb_open(cfg->user_db, 1, &err))) {
		admin_error("%s", err);
		free(err);
	}
	config_free(&cfg);
	return db;
}
