/* cursus check [--json] [--cert-days N]: loads the configuration the way the daemon
 * does, then lints its policy (admin/check.h). Exit 0: no problem (notes allowed);
 * 1: errors or warnings found; 2: the configuration cannot be read (missing file,
 * syntax error: each printed as "file:line: message") or a usage error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/admin.h"
#include "admin/check.h"
#include "store/userdb.h"
#include "util/json.h"
#include "util/xmalloc.h"

#define CHECK_CERT_DAYS 30      /* a certificate expiring sooner is a warning */
#define CHECK_CERT_DAYS_MAX 3650

/* The configuration does not load: the parser's messages on stderr, and with --json
 * the same as a document, so that a script gets JSON whatever happens. */
static int check_unreadable(const char *path, const char *errors, int json)
{
	fputs(errors, stderr);
	if (!json)
		return ADMIN_EXIT_USAGE;
	printf("{\"file\":");
	json_put_str(stdout, path);
	printf(",\"status\":\"unreadable\",\"errors\":[");
	for (const char *p = errors, *nl; *p; p = nl + 1) {
		char *line;
		if (!(nl = strchr(p, '\n')))
			nl = p + strlen(p) - 1;
		line = xstrndup(p, (size_t)(nl - p + (*nl != '\n')));
		printf("%s", p == errors ? "" : ",");
		json_put_str(stdout, line);
		free(line);
	}
	printf("],\"findings\":[]}\n");
	return ADMIN_EXIT_USAGE;
}

/* The store, read-only in effect: a missing SQLite database is an empty one (and is
 * not created here); one that cannot be opened is noted, not fatal. A PostgreSQL
 * store is opened without connecting: check_store asks it whether it answers and
 * has the schema this program needs. */
static struct userdb *check_store_open(const struct config *cfg, char **err_r)
{
	struct stat st;
	*err_r = NULL;
	if (strncmp(cfg->user_store, "postgresql:", 11) == 0)
		return userdb_open_opts(cfg->user_store, USERDB_LAZY | USERDB_ANY_SCHEMA,
					cfg->store_timeout_ms, 1, err_r);
	if (!cfg->user_db || (stat(cfg->user_db, &st) < 0 && errno == ENOENT))
		return NULL;
	return userdb_open(cfg->user_db, 0, err_r);
}

int cmd_check(const char *config_path, int argc, char **argv)
{
	struct check_report r = { .file = config_path, .cert_days = CHECK_CERT_DAYS };
	struct config *cfg;
	struct userdb *db;
	char *errors = NULL, *store_err;
	size_t errlen = 0;
	unsigned long days;
	char *end;
	int json = 0, status;
	FILE *errs;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--cert-days") == 0 && i + 1 < argc &&
			 argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9' &&
			 (days = strtoul(argv[++i], &end, 10)) <= CHECK_CERT_DAYS_MAX && !*end)
			r.cert_days = (int)days;
		else
			return admin_usage_error();
	}
	if (!(errs = open_memstream(&errors, &errlen)))
		return ADMIN_EXIT_USAGE;
	cfg = config_load(config_path, errs);
	fclose(errs);
	if (!cfg) {
		status = check_unreadable(config_path, errors, json);
		free(errors);
		return status;
	}
	free(errors);
	r.cfg = cfg;
	db = check_store_open(cfg, &store_err);
	if (db && !check_store_reachable(&r, db))
		userdb_close(&db);
	check_auth(&r);
	check_tls(&r);
	check_dkim(&r);
	check_relay(&r, db);
	check_lmtp(&r);
	check_store(&r, db, store_err);
	status = check_report_print(&r, json);
	check_report_clear(&r);
	userdb_close(&db);
	free(store_err);
	config_free(&cfg);
	return status;
}
