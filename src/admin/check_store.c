/* check_store: what the configuration needs from the user store. RFC 5321 4.5.1: "Any
 * system that includes an SMTP server supporting mail relaying or delivery MUST
 * support the reserved mailbox "postmaster" as a case-insensitive local name" - so
 * postmaster@ each local domain must resolve to a user, an alias or the domain's
 * catch-all. A store that does not exist yet is an empty one. */
#include <stdlib.h>
#include <string.h>

#include "admin/check.h"
#include "store/userdb.h"
#include "util/xmalloc.h"

int check_store_reachable(struct check_report *r, struct userdb *db)
{
	int line = config_option_line(r->cfg, "user_store"), have = 0, want = 0;
	char *err = NULL;

	if (strcmp(userdb_backend(db), "postgresql") != 0)
		return 1;
	if (userdb_schema_version(db, &have, &want, &err) < 0) {
		/* libpq's message names host and port, never the password. */
		check_add(r, CHECK_ERROR, "store-unreachable", line,
			  "start the PostgreSQL server or correct user_store's connection string "
			  "(host, port, dbname, user, password, sslmode)",
			  "the PostgreSQL user store does not answer: %s", err ? err : "?");
		free(err);
		return 0;
	}
	if (have != want) {
		check_add(r, CHECK_ERROR, "store-schema", line,
			  have == 0 ? "create it: cursus store init" : "cursus store migrate",
			  "the PostgreSQL user store has schema version %d, this program needs %d",
			  have, want);
		return 0;
	}
	return 1;
}

void check_store(struct check_report *r, struct userdb *db, const char *store_error)
{
	const struct config *cfg = r->cfg;
	int line = config_option_line(cfg, "local_domains");

	if (store_error) {
		check_add(r, CHECK_INFO, "store-not-checked", config_option_line(cfg, "user_db"),
			  "run cursus check as the user that owns the user database",
			  "the user database was not checked (postmaster, relay credentials): %s",
			  store_error);
		return;
	}
	for (size_t i = 0; i < cfg->n_local_domains; i++) {
		char *addr = xasprintf("postmaster@%s", cfg->local_domains[i]), **boxes = NULL;
		size_t n = 0;
		int found = db ? userdb_resolve(db, addr, &boxes, &n) : 0;
		if (found == 1)
			userdb_free_list(boxes, n);
		else if (found == 0)
			check_add(r, CHECK_ERROR, "postmaster-missing", line,
				  "add an alias: cursus alias add postmaster@DOMAIN ADMIN-ADDRESS",
				  "%s reaches no user or alias: RFC 5321 4.5.1 requires a postmaster "
				  "for every domain", addr);
		else
			check_add(r, CHECK_INFO, "store-not-checked", config_option_line(cfg, "user_db"),
				  "check the user database with cursus user list",
				  "looking up %s in the user database failed", addr);
		free(addr);
	}
}
