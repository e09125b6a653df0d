/* cursus trace: chooses the sessions cursusd traces, at runtime. The rules live in
 * trace_file (one "client ADDR[/PREFIX]" or "user NAME" a line), which the daemon
 * re-reads on SIGHUP; this command edits the file atomically and sends the signal to
 * the pid in pid_file. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin/admin.h"
#include "config/config.h"
#include "smtp/trace.h"
#include "store/username.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

struct trace_lines {
	char **v;
	size_t n;
};

static void trace_lines_read(const char *path, struct trace_lines *tl)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (getline(&line, &cap, f) >= 0) {
		line[strcspn(line, "\r\n")] = '\0';
		tl->v = xrealloc(tl->v, (tl->n + 1) * sizeof(*tl->v));
		tl->v[tl->n++] = xstrdup(line);
	}
	free(line);
	fclose(f);
}

static int trace_lines_write(const char *path, const struct trace_lines *tl)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fs_mkparent(path, 0755) == 0 ? fopen(tmp, "w") : NULL;
	int ok = f != NULL;
	for (size_t i = 0; ok && i < tl->n; i++)
		ok = fprintf(f, "%s\n", tl->v[i]) >= 0;
	if (f && fclose(f) != 0)
		ok = 0;
	if (ok && rename(tmp, path) < 0)
		ok = 0;
	if (!ok) {
		admin_error("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return ok ? 0 : -1;
}

/* Tells a running daemon; without one the rules apply from its next start. */
static void trace_signal(const char *pid_file)
{
	FILE *f = fopen(pid_file, "r");
	long pid = 0;
	if (f) {
		if (fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	/* A stale pid file may name another program by now: signal only cursusd. */
	if (pid > 0) {
		char path[64], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		if ((f = fopen(path, "r"))) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			fclose(f);
		}
		if (strncmp(comm, "cursusd", 7) != 0)
			pid = 0;
	}
	if (pid > 0 && kill((pid_t)pid, SIGHUP) == 0)
		printf("cursusd (pid %ld) reloads the trace rules\n", pid);
	else
		printf("cursusd is not running: the rules apply when it starts\n");
}

int cmd_trace(const char *config_path, int argc, char **argv)
{
	struct config *cfg;
	struct trace_lines tl = {0};
	int rc = ADMIN_EXIT_OK, add;
	char *entry;

	if (argc < 2)
		return admin_usage_error();
	if (!(cfg = config_load(config_path, stderr)))
		return ADMIN_EXIT_FAIL;
	trace_lines_read(cfg->trace_file, &tl);
	if (strcmp(argv[1], "list") == 0 && argc == 2) {
		for (size_t i = 0; i < cfg->n_trace_clients; i++)
			printf("client %s (configuration)\n", cfg->trace_clients[i]);
		for (size_t i = 0; i < cfg->n_trace_users; i++)
			printf("user %s (configuration)\n", cfg->trace_users[i]);
		for (size_t i = 0; i < tl.n; i++)
			if (tl.v[i][0] && tl.v[i][0] != '#')
				printf("%s\n", tl.v[i]);
		goto out;
	}
	if (strcmp(argv[1], "clear") == 0 && argc == 2) {
		for (size_t i = 0; i < tl.n; i++)
			free(tl.v[i]);
		tl.n = 0;
		if (trace_lines_write(cfg->trace_file, &tl) < 0)
			rc = ADMIN_EXIT_FAIL;
		else
			trace_signal(cfg->pid_file);
		goto out;
	}
	add = strcmp(argv[1], "add") == 0;
	if ((!add && strcmp(argv[1], "del") != 0) || argc != 4 ||
	    (strcmp(argv[2], "client") != 0 && strcmp(argv[2], "user") != 0)) {
		rc = admin_usage_error();
		goto out;
	}
	if (strcmp(argv[2], "client") == 0 && trace_parse_client(argv[3]) < 0) {
		admin_error("\"%s\" is not an address or CIDR prefix", argv[3]);
		rc = ADMIN_EXIT_FAIL;
		goto out;
	}
	char *value = xstrdup(argv[3]);
	if (strcmp(argv[2], "user") == 0) {
		/* One rule a line: a name is checked as the store checks user names. */
		char *err = NULL, *name = username_normalize(argv[3], "user name", &err);
		if (!name) {
			admin_error("%s", err);
			free(err);
			free(value);
			rc = ADMIN_EXIT_FAIL;
			goto out;
		}
		free(value);
		value = name;
	}
	entry = xasprintf("%s %s", argv[2], value);
	free(value);
	size_t found = tl.n;
	for (size_t i = 0; i < tl.n; i++)
		if (strcasecmp(tl.v[i], entry) == 0)
			found = i;
	if (add && found == tl.n) {
		tl.v = xrealloc(tl.v, (tl.n + 1) * sizeof(*tl.v));
		tl.v[tl.n++] = entry;
		entry = NULL;
	} else if (!add && found < tl.n) {
		free(tl.v[found]);
		tl.v[found] = tl.v[--tl.n];
	} else if (!add) {
		admin_error("no trace rule \"%s\"", entry);
		rc = ADMIN_EXIT_FAIL;
	}
	free(entry);
	if (rc == ADMIN_EXIT_OK) {
		if (trace_lines_write(cfg->trace_file, &tl) < 0)
			rc = ADMIN_EXIT_FAIL;
		else
			trace_signal(cfg->pid_file);
	}
out:
	for (size_t i = 0; i < tl.n; i++)
		free(tl.v[i]);
	free(tl.v);
	config_free(&cfg);
	return rc;
}
