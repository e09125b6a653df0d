/* trace: the rules: a netlist of clients and a list of users. Only the loop thread
 * reads or swaps them. */
#include "smtp/trace.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "util/log.h"
#include "util/netlist.h"
#include "util/xmalloc.h"

struct trace_rules {
	struct netlist nets;
	char **users;
	size_t n_users;
};

int trace_parse_client(const char *s)
{
	struct netlist l = {0};
	int rc = netlist_add(&l, s);
	netlist_clear(&l);
	return rc;
}

static void trace_add(struct trace_rules *r, const char *kind, const char *value, const char *file,
		      int line, FILE *errs)
{
	if (strcmp(kind, "client") == 0) {
		if (netlist_add(&r->nets, value) < 0 && errs)
			fprintf(errs, "%s:%d: trace: \"%s\" is not an address or CIDR prefix\n",
				file, line, value);
	} else if (strcmp(kind, "user") == 0) {
		r->users = xrealloc(r->users, (r->n_users + 1) * sizeof(*r->users));
		r->users[r->n_users++] = xstrdup(value);
	} else if (errs) {
		fprintf(errs, "%s:%d: trace: expected \"client ADDRESS\" or \"user NAME\"\n", file, line);
	}
}

struct trace_rules *trace_rules_load(const struct config *cfg, FILE *errs)
{
	struct trace_rules *r = xcalloc(1, sizeof(*r));
	char line[512], kind[16], value[400];
	FILE *f;
	int n = 0;

	for (size_t i = 0; i < cfg->n_trace_clients; i++)
		trace_add(r, "client", cfg->trace_clients[i], cfg->path, 0, errs);
	for (size_t i = 0; i < cfg->n_trace_users; i++)
		trace_add(r, "user", cfg->trace_users[i], cfg->path, 0, errs);
	if (!cfg->trace_file || !(f = fopen(cfg->trace_file, "r")))
		return r;
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#');
		n++;
		if (hash)
			*hash = '\0';
		if (sscanf(line, "%15s %399s", kind, value) == 2)
			trace_add(r, kind, value, cfg->trace_file, n, errs);
		else if (sscanf(line, "%15s", kind) == 1)
			trace_add(r, "", "", cfg->trace_file, n, errs);
	}
	fclose(f);
	return r;
}

void trace_rules_free(struct trace_rules **rp)
{
	struct trace_rules *r = *rp;
	if (!r)
		return;
	for (size_t i = 0; i < r->n_users; i++)
		free(r->users[i]);
	free(r->users);
	netlist_clear(&r->nets);
	free(r);
	*rp = NULL;
}

size_t trace_rules_count(const struct trace_rules *r)
{
	return r ? r->nets.n + r->n_users : 0;
}

int trace_match_addr(const struct trace_rules *r, const struct sockaddr *sa)
{
	return r ? netlist_match(&r->nets, sa) : 0;
}

int trace_match_user(const struct trace_rules *r, const char *user)
{
	if (!r || !user)
		return 0;
	for (size_t i = 0; i < r->n_users; i++)
		if (strcasecmp(r->users[i], user) == 0)
			return 1;
	return 0;
}
