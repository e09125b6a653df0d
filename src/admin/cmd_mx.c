/* cmd_mx: `cursus mx DOMAIN`, where outbound delivery would send mail for DOMAIN,
 * through the same dns module the transport uses. It needs no configuration. stdout
 * is the status name, then one target per line, "PREF HOST ADDRESS PORT", in the
 * order they would be tried; why a lookup failed goes to stderr. Exit 0 with
 * targets, 1 for a permanent failure, 75 (EX_TEMPFAIL) for a temporary one. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "net/dns.h"

#define MX_EXIT_TEMPFAIL 75
#define MX_TARGETS_MAX 100

static const char mx_usage[] =
	"usage: cursus mx DOMAIN [--resolver ADDRESS[@PORT]] [--port N]\n"
	"                 [--ipv4|--ipv6|--prefer-ipv4|--prefer-ipv6] [--self NAME]\n"
	"                 [--timeout SECONDS] [--host]\n"
	"  prints the DNS status, then each address delivery would try, in order:\n"
	"  PREF HOST ADDRESS PORT. --host: DOMAIN is a host (a smart host): its\n"
	"  addresses only, no MX. Exit 0 targets found, 1 permanent failure,\n"
	"  75 temporary failure, 2 usage.\n";

struct mx_run {
	struct event_base *base;
	struct dns_result *res;
};

static int mx_usage_error(const char *why)
{
	if (why)
		admin_error("mx: %s", why);
	fputs(mx_usage, stderr);
	return ADMIN_EXIT_USAGE;
}

static void mx_done(void *arg, struct dns_result *res)
{
	struct mx_run *run = arg;
	run->res = res;
	event_base_loopbreak(run->base);
}

static void mx_print(const struct dns_result *res)
{
	printf("%s\n", dns_status_name(res->status));
	for (size_t i = 0; i < res->n_targets; i++) {
		const struct dns_target *t = &res->targets[i];
		char addr[INET6_ADDRSTRLEN];
		unsigned port;
		if (t->addr.ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&t->addr;
			inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
			port = ntohs(sin->sin_port);
		} else {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&t->addr;
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
			port = ntohs(sin6->sin6_port);
		}
		printf("%u %s %s %u\n", t->pref, t->host, addr, port);
	}
	if (res->detail[0])
		admin_error("mx: %s", res->detail);
}

static int mx_number(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int cmd_mx(const char *config_path, int argc, char **argv)
{
	enum { O_RESOLVER = 256, O_PORT, O_V4, O_V6, O_PV4, O_PV6, O_SELF, O_TIMEOUT, O_HOST,
	       O_HELP };
	static const struct option longopts[] = {
		{ "resolver", required_argument, NULL, O_RESOLVER },
		{ "port", required_argument, NULL, O_PORT },
		{ "ipv4", no_argument, NULL, O_V4 }, { "ipv6", no_argument, NULL, O_V6 },
		{ "prefer-ipv4", no_argument, NULL, O_PV4 },
		{ "prefer-ipv6", no_argument, NULL, O_PV6 },
		{ "self", required_argument, NULL, O_SELF },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "host", no_argument, NULL, O_HOST },
		{ "help", no_argument, NULL, O_HELP }, { NULL, 0, NULL, 0 },
	};
	static const enum ip_family fams[] = { IPF_V4_ONLY, IPF_V6_ONLY, IPF_PREFER_V4,
					       IPF_PREFER_V6 };
	const char *resolver = NULL, *self = NULL;
	unsigned port = 25, timeout = 10;
	int c, fam = -1, host_only = 0, status;
	struct mx_run run = { 0 };
	struct dns *d;
	char *err = NULL;

	(void)config_path; /* a diagnostic of DNS alone: no configuration */
	optind = 0; /* GNU: start afresh; options may follow DOMAIN */
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_RESOLVER: resolver = optarg; break;
		case O_SELF: self = optarg; break;
		case O_HOST: host_only = 1; break;
		case O_PORT:
			if (mx_number(optarg, 1, 65535, &port) < 0)
				return mx_usage_error("--port takes 1 to 65535");
			break;
		case O_TIMEOUT:
			if (mx_number(optarg, 1, 3600, &timeout) < 0)
				return mx_usage_error("--timeout takes 1 to 3600 seconds");
			break;
		case O_V4: case O_V6: case O_PV4: case O_PV6:
			if (fam >= 0 && fam != c - O_V4)
				return mx_usage_error("one of --ipv4, --ipv6, --prefer-ipv4, --prefer-ipv6");
			fam = c - O_V4;
			break;
		case O_HELP:
			fputs(mx_usage, stdout);
			return ADMIN_EXIT_OK;
		default:
			return mx_usage_error(NULL);
		}
	}
	if (optind != argc - 1 || !*argv[optind])
		return mx_usage_error("one DOMAIN expected");
	if (host_only && self)
		return mx_usage_error("--self applies to MX lookups, not --host");

	run.base = event_base_new();
	if (!run.base || !(d = dns_create(run.base, resolver, NULL, &err))) {
		admin_error("mx: %s", err ? err : "cannot create the event loop");
		free(err);
		if (run.base)
			event_base_free(run.base);
		return ADMIN_EXIT_USAGE;
	}
	dns_set_timeout(d, timeout * 1000);
	enum ip_family f = fam < 0 ? IPF_ANY : fams[fam];
	if (host_only)
		dns_resolve_host(d, argv[optind], f, port, MX_TARGETS_MAX, mx_done, &run);
	else
		dns_resolve_mx(d, argv[optind], f, port, self, MX_TARGETS_MAX, mx_done, &run);
	event_base_dispatch(run.base);
	dns_destroy(&d);
	event_base_free(run.base);

	if (!run.res) {
		admin_error("mx: the event loop ended without an answer");
		return MX_EXIT_TEMPFAIL;
	}
	mx_print(run.res);
	status = run.res->status == DNS_OK ? ADMIN_EXIT_OK
	       : run.res->status == DNS_TEMPFAIL ? MX_EXIT_TEMPFAIL : ADMIN_EXIT_FAIL;
	dns_result_free(run.res);
	return status;
}
