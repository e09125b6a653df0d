/* admin userdb_open: from the configuration to an open user database, creating
 * the database's directory (mkdir -p, mode 0700) on first use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/admin.h"
#include "config/config.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

struct userdb *admin_userdb_open(const char *config_path)
{
	struct config *cfg = config_load(config_path, stderr);
	struct userdb *db = NULL;
	int e;
	char *err = NULL;

	if (!cfg)
		return NULL;
	if (strncmp(cfg->user_store, "sqlite:", 7) == 0 &&
	    (e = fs_mkparent(cfg->user_db, 0700)) != 0) {
		admin_error("cannot create the directory of %s: %s", cfg->user_db, strerror(e));
	} else if (!(db = userdb_open_opts(cfg->user_store, USERDB_CREATE, cfg->store_timeout_ms, 1,
					   &err))) {
		admin_error("%s", err);
		free(err);
	} else {
		userdb_set_scram_iterations(db, cfg->scram_iterations);
	}
	config_free(&cfg);
	return db;
}
