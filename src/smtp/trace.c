/* trace: the rules. Address prefixes are compared as bytes; IPv4-mapped IPv6 clients
 * match IPv4 rules. Only the loop thread reads or swaps them. */
#include "smtp/trace.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct trace_net {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

struct trace_rules {
	struct trace_net *nets;
	size_t n_nets;
	char **users;
	size_t n_users;
};

static int trace_net_parse(const char *s, struct trace_net *net)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long prefix;
	size_t len = strlen(s);

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len + 1);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, buf, net->addr) == 1)
		net->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, net->addr) == 1)
		net->family = AF_INET6;
	else
		return -1;
	net->prefix = net->family == AF_INET ? 32 : 128;
	if (slash) {
		prefix = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end || prefix > net->prefix)
			return -1;
		net->prefix = (unsigned)prefix;
	}
	return 0;
}

int trace_parse_client(const char *s)
{
	struct trace_net net;
	return trace_net_parse(s, &net);
}

static void trace_add(struct trace_rules *r, const char *kind, const char *value, const char *file,
		      int line, FILE *errs)
{
	struct trace_net net;
	if (strcmp(kind, "client") == 0) {
		if (trace_net_parse(value, &net) < 0) {
			if (errs)
				fprintf(errs, "%s:%d: trace: \"%s\" is not an address or CIDR prefix\n",
					file, line, value);
			return;
		}
		r->nets = xrealloc(r->nets, (r->n_nets + 1) * sizeof(*r->nets));
		r->nets[r->n_nets++] = net;
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
	free(r->nets);
	free(r);
	*rp = NULL;
}

size_t trace_rules_count(const struct trace_rules *r)
{
	return r ? r->n_nets + r->n_users : 0;
}

static int trace_prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int trace_match_addr(const struct trace_rules *r, const struct sockaddr *sa)
{
	const unsigned char *a;
	int family = sa->sa_family;
	if (!r || r->n_nets == 0)
		return 0;
	if (family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		a = in6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			family = AF_INET;
			a += 12;
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < r->n_nets; i++)
		if (r->nets[i].family == family && trace_prefix_eq(a, r->nets[i].addr, r->nets[i].prefix))
			return 1;
	return 0;
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
