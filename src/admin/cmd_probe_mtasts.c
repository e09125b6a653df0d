/* cmd_probe_mtasts: `cursus probe --mta-sts DOMAIN`, a domain's MTA-STS status as
 * cursusd would find it: the _mta-sts TXT record, the policy fetched over HTTPS
 * (relay/mtasts_fetch, the daemon's own code, with --ca as relay_ca), its mode and mx
 * patterns, and whether each MX host matches them. The lookups run through the
 * daemon's resolver module (net/dns, --resolver as dns_resolver), all three at once;
 * the fetch blocks, which a command may. Exit 0: no policy, or one every MX host
 * matches; 1: a problem (an MX host the policy rules out, a record or policy that
 * cannot be used); 2: usage or resolver set-up. */
#include <event2/event.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/cmd_probe.h"
#include "net/dns.h"
#include "relay/mtasts_fetch.h"
#include "util/json.h"
#include "util/xmalloc.h"

#define PROBE_STS_ADDRS 8
#define PROBE_STS_MX 100

static const char probe_sts_usage[] =
	"usage: cursus probe --mta-sts DOMAIN [--resolver ADDRESS[@PORT]] [--ca FILE]\n"
	"                    [--timeout SECONDS] [--json]\n";

struct probe_sts {
	struct event_base *base;
	int pending;
	struct dns_result *txt;
	struct dns_result *mx, *host;
};

static void probe_sts_txt(void *arg, struct dns_result *res)
{
	struct probe_sts *p = arg;
	p->txt = res;
	if (--p->pending == 0)
		event_base_loopbreak(p->base);
}

static void probe_sts_mx(void *arg, struct dns_result *res)
{
	struct probe_sts *p = arg;
	p->mx = res;
	if (--p->pending == 0)
		event_base_loopbreak(p->base);
}

static void probe_sts_host(void *arg, struct dns_result *res)
{
	struct probe_sts *p = arg;
	p->host = res;
	if (--p->pending == 0)
		event_base_loopbreak(p->base);
}

/* The MX hosts, each once, in the order delivery tries them. */
static size_t probe_sts_hosts(const struct dns_result *mx, const struct dns_target **out)
{
	size_t n = 0;
	for (size_t i = 0; mx && mx->status == DNS_OK && i < mx->n_targets && n < PROBE_STS_MX; i++) {
		int seen = 0;
		for (size_t k = 0; k < n && !seen; k++)
			seen = strcmp(out[k]->host, mx->targets[i].host) == 0;
		if (!seen)
			out[n++] = &mx->targets[i];
	}
	return n;
}

struct probe_sts_out {
	const char *domain, *url;
	struct dns_result *txt;
	int have_id;
	char id[MTASTS_ID_MAX + 1];
	const char *no_policy;        /* why there is none */
	int fetched;
	char fetch_error[700];
	const char *fetch_result;
	struct mtasts_policy pol;
	const struct dns_target *hosts[PROBE_STS_MX];
	size_t n_hosts;
};

static void probe_sts_print_json(const struct probe_sts_out *o, int status)
{
	printf("{\"domain\":");
	json_put_str(stdout, o->domain);
	printf(",\"txt\":[");
	for (size_t i = 0; o->txt->status == DNS_OK && i < o->txt->n_txt; i++) {
		printf(i ? "," : "");
		json_put_str(stdout, o->txt->txt[i]);
	}
	printf("],\"id\":");
	if (o->have_id)
		json_put_str(stdout, o->id);
	else
		printf("null");
	if (o->have_id) {
		printf(",\"policy_url\":");
		json_put_str(stdout, o->url);
		printf(",\"fetch\":\"%s\"", o->fetch_result);
	}
	if (o->fetched) {
		printf(",\"mode\":\"%s\",\"max_age\":%lu,\"mx_patterns\":[",
		       mtasts_mode_name(o->pol.mode), o->pol.max_age);
		for (size_t i = 0; i < o->pol.n_mx; i++) {
			printf(i ? "," : "");
			json_put_str(stdout, o->pol.mx[i]);
		}
		printf("],\"mx_hosts\":[");
		for (size_t i = 0; i < o->n_hosts; i++) {
			printf("%s{\"pref\":%u,\"host\":", i ? "," : "", o->hosts[i]->pref);
			json_put_str(stdout, o->hosts[i]->host);
			printf(",\"matches\":%s}", mtasts_mx_match(&o->pol, o->hosts[i]->host) ? "true"
											  : "false");
		}
		printf("]");
	} else if (o->have_id) {
		printf(",\"error\":");
		json_put_str(stdout, o->fetch_error);
	}
	printf(",\"status\":%d}\n", status);
}

static void probe_sts_print_text(const struct probe_sts_out *o)
{
	printf("domain: %s\n", o->domain);
	if (o->txt->status != DNS_OK)
		printf("txt: none (%s)\n", o->txt->detail);
	for (size_t i = 0; o->txt->status == DNS_OK && i < o->txt->n_txt; i++)
		printf("txt: %s\n", o->txt->txt[i]);
	if (!o->have_id) {
		if (o->txt->status == DNS_OK)
			printf("no MTA-STS policy (%s)\n", o->no_policy);
		else
			printf("no MTA-STS policy\n");
		return;
	}
	printf("id: %s\n", o->id);
	if (!o->fetched) {
		printf("policy: %s\n", o->fetch_error);
		return;
	}
	printf("policy: %s\nmode: %s\nmax_age: %lu\n", o->url, mtasts_mode_name(o->pol.mode),
	       o->pol.max_age);
	for (size_t i = 0; i < o->pol.n_mx; i++)
		printf("mx: %s\n", o->pol.mx[i]);
	for (size_t i = 0; i < o->n_hosts; i++) {
		int ok = mtasts_mx_match(&o->pol, o->hosts[i]->host);
		printf("MX %u %s: %s\n", o->hosts[i]->pref, o->hosts[i]->host,
		       ok ? "matches" : o->pol.mode == MTASTS_ENFORCE
					? "does not match (not used in enforce mode)"
					: o->pol.mode == MTASTS_TESTING
						? "does not match (reported in testing mode)"
						: "does not match (mode none: no matter)");
	}
}

int cmd_probe_mtasts(int argc, char **argv)
{
	enum { O_STS = 256, O_RESOLVER, O_CA, O_TIMEOUT, O_JSON, O_HELP };
	static const struct option longopts[] = {
		{ "mta-sts", required_argument, NULL, O_STS },
		{ "resolver", required_argument, NULL, O_RESOLVER },
		{ "ca", required_argument, NULL, O_CA },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP }, { NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *resolver = NULL, *ca = NULL;
	unsigned long timeout = 10;
	int c, json = 0, status = ADMIN_EXIT_OK;
	struct probe_sts p = { 0 };
	struct probe_sts_out o = { 0 };
	struct dns *d;
	char *err = NULL, *name, *end, *addrs[PROBE_STS_ADDRS];
	size_t n_addrs = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_STS: domain = optarg; break;
		case O_RESOLVER: resolver = optarg; break;
		case O_CA: ca = optarg; break;
		case O_JSON: json = 1; break;
		case O_TIMEOUT:
			timeout = strtoul(optarg, &end, 10);
			if (!*optarg || *end || timeout < 1 || timeout > 3600) {
				admin_error("probe: --timeout takes 1 to 3600 seconds");
				return ADMIN_EXIT_USAGE;
			}
			break;
		case O_HELP:
			fputs(probe_sts_usage, stdout);
			return ADMIN_EXIT_OK;
		default:
			fputs(probe_sts_usage, stderr);
			return ADMIN_EXIT_USAGE;
		}
	}
	if (!domain || !*domain || optind != argc) {
		admin_error("probe: --mta-sts takes one DOMAIN and no HOST");
		fputs(probe_sts_usage, stderr);
		return ADMIN_EXIT_USAGE;
	}
	p.base = event_base_new();
	if (!p.base || !(d = dns_create(p.base, resolver, NULL, &err))) {
		admin_error("probe: %s", err ? err : "cannot create the event loop");
		free(err);
		if (p.base)
			event_base_free(p.base);
		return ADMIN_EXIT_USAGE;
	}
	dns_set_timeout(d, (unsigned)timeout * 1000);
	p.pending = 3;
	name = xasprintf("_mta-sts.%s", domain);
	dns_resolve_txt(d, name, probe_sts_txt, &p);
	free(name);
	dns_resolve_mx(d, domain, IPF_ANY, 25, NULL, PROBE_STS_MX, probe_sts_mx, &p);
	name = xasprintf("mta-sts.%s", domain);
	dns_resolve_host(d, name, IPF_ANY, 443, PROBE_STS_ADDRS, probe_sts_host, &p);
	free(name);
	event_base_dispatch(p.base);
	dns_destroy(&d);
	event_base_free(p.base);
	if (p.pending) {
		admin_error("probe: the event loop ended without every answer");
		return ADMIN_EXIT_TEMPFAIL;
	}

	o.domain = domain;
	o.txt = p.txt;
	o.url = name = xasprintf("https://mta-sts.%s/.well-known/mta-sts.txt", domain);
	o.n_hosts = probe_sts_hosts(p.mx, o.hosts);
	if (p.txt->status == DNS_OK)
		o.have_id = mtasts_txt_select(p.txt->txt, p.txt->n_txt, o.id, &o.no_policy) == 1;
	if (p.txt->status == DNS_OK && !o.have_id)
		status = ADMIN_EXIT_FAIL; /* a record that is there but cannot be used */
	if (o.have_id) {
		char *text = NULL;
		size_t len = 0;
		for (size_t i = 0; p.host->status == DNS_OK && i < p.host->n_targets &&
				   n_addrs < PROBE_STS_ADDRS; i++) {
			char a[NI_MAXHOST];
			if (getnameinfo((struct sockaddr *)&p.host->targets[i].addr,
					p.host->targets[i].addrlen, a, sizeof(a), NULL, 0,
					NI_NUMERICHOST) == 0)
				addrs[n_addrs++] = xstrdup(a);
		}
		if (p.host->status != DNS_OK) {
			snprintf(o.fetch_error, sizeof(o.fetch_error), "%s: %s", name, p.host->detail);
			o.fetch_result = "error";
		} else {
			struct mtasts_fetch_req req = {
				.domain = domain, .addrs = (const char *const *)addrs,
				.n_addrs = n_addrs, .ca = ca, .timeout_ms = (unsigned)timeout * 1000,
				.max_size = 64 * 1024,
			};
			enum mtasts_fetch_result fr = mtasts_fetch(&req, &o.pol, &text, &len,
								   o.fetch_error,
								   sizeof(o.fetch_error));
			o.fetch_result = mtasts_fetch_result_name(fr);
			o.fetched = fr == MTASTS_FETCH_OK;
		}
		free(text);
		if (!o.fetched)
			status = ADMIN_EXIT_FAIL;
		for (size_t i = 0; o.fetched && o.pol.mode != MTASTS_NONE && i < o.n_hosts; i++)
			if (!mtasts_mx_match(&o.pol, o.hosts[i]->host))
				status = ADMIN_EXIT_FAIL;
	}
	if (json)
		probe_sts_print_json(&o, status);
	else
		probe_sts_print_text(&o);
	for (size_t i = 0; i < n_addrs; i++)
		free(addrs[i]);
	mtasts_policy_clear(&o.pol);
	free(name);
	dns_result_free(p.txt);
	dns_result_free(p.mx);
	dns_result_free(p.host);
	return status;
}
