/* cmd_probe_dane: `cursus probe --dane DOMAIN[:PORT]`, a domain's DANE status as the
 * relay would see it (RFC 7672): are its MX records and each MX host's addresses
 * DNSSEC-secure, which TLSA records does each host publish at _PORT._tcp.HOST and are
 * they usable, and does the certificate the host presents after STARTTLS match them.
 * The decisions are the relay's own (relay/relay_dane.c, net/dane.c); this file only
 * drives them on one event loop, one host after another, and prints. No message is
 * sent: EHLO, STARTTLS, EHLO, QUIT. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "client/smtpc.h"
#include "config/config.h"
#include "net/dns.h"
#include "net/tls_client.h"
#include "relay/relay_dane.h"
#include "util/json.h"
#include "util/xmalloc.h"

#define PD_HOSTS_MAX 10
#define PD_SYSTEM_TA "/usr/share/dns/root.key"

static const char pd_usage[] =
	"usage: cursus probe --dane DOMAIN[:PORT] [--resolver ADDRESS[@PORT]]\n"
	"                    [--trust-anchor FILE] [--ehlo NAME] [--timeout SECONDS] [--json]\n"
	"  DANE (RFC 7672) status of DOMAIN's MX hosts: DNSSEC security of the MX and\n"
	"  address records, the TLSA records at _PORT._tcp.HOST (PORT 25 by default) and\n"
	"  whether each host's certificate matches them. The trust anchor defaults to\n"
	"  " PD_SYSTEM_TA " (package dns-root-data) when it exists.\n"
	"  Exit 0 no problem, 1 a host fails DANE, 2 usage or no answer.\n";

struct pd_host {
	char *name;
	unsigned pref;
	char addr[NI_MAXHOST];
	const struct dns_target *tg;
	const char *label;            /* relay_dane's verdict, then the connection's */
	char why[400];
	struct dane_rrset tlsa;       /* a copy of the records, for the report */
	int connected, starttls, tls_up, matched;
	char tls_version[32], match_detail[200], error[300];
};

struct pd {
	struct event_base *base;
	struct dns *dns;
	struct relay_dane *rd;
	struct dns_result *mx;
	const char *domain, *ehlo;
	unsigned port, timeout;
	SSL_CTX *ctx;
	struct pd_host hosts[PD_HOSTS_MAX];
	size_t n_hosts, cur;
	struct smtpc *cli;
	int phase;                    /* 0 greeting, 1 EHLO, 2 STARTTLS, 3 EHLO again, 4 QUIT */
	const struct dane_rrset *arm; /* records to match on the connection, or NULL */
};

static void pd_next(struct pd *p);

static int pd_usage_error(const char *why)
{
	if (why)
		admin_error("probe: %s", why);
	fputs(pd_usage, stderr);
	return ADMIN_EXIT_USAGE;
}

static void pd_copy_tlsa(struct dane_rrset *dst, const struct dane_rrset *src)
{
	dst->recs = xcalloc(src->n + 1, sizeof(*dst->recs));
	for (size_t i = 0; i < src->n; i++) {
		dst->recs[i] = src->recs[i];
		dst->recs[i].data = xmalloc(src->recs[i].len);
		memcpy(dst->recs[i].data, src->recs[i].data, src->recs[i].len);
	}
	dst->n = src->n;
	dst->n_usable = src->n_usable;
}

static void pd_conn_end(struct pd *p)
{
	p->cur++;
	pd_next(p);
}

static void pd_on_reply(struct smtpc *c, const struct smtpc_reply *r, void *arg)
{
	struct pd *p = arg;
	struct pd_host *h = &p->hosts[p->cur];
	switch (p->phase) {
	case 0:
		if (r->code != 220) {
			snprintf(h->error, sizeof(h->error), "greeting %d", r->code);
			break;
		}
		p->phase = 1;
		smtpc_ehlo(c, p->ehlo);
		return;
	case 1:
		if (r->code != 250) {
			snprintf(h->error, sizeof(h->error), "EHLO refused (%d)", r->code);
			break;
		}
		h->starttls = smtpc_caps(c)->starttls;
		if (!h->starttls)
			break;
		p->phase = 2;
		smtpc_starttls(c, p->ctx);
		return;
	case 2:
		snprintf(h->error, sizeof(h->error), "STARTTLS refused (%d)", r->code);
		h->starttls = 0;
		break;
	default:
		break;
	}
	p->phase = 4;
	smtpc_command(c, "QUIT");
}

static void pd_on_tls(struct smtpc *c, void *arg)
{
	struct pd *p = arg;
	struct pd_host *h = &p->hosts[p->cur];
	char why[160];
	h->tls_up = 1;
	snprintf(h->tls_version, sizeof(h->tls_version), "%s", SSL_get_version(smtpc_ssl(c)));
	if (p->arm) {
		h->matched = dane_ssl_verified(smtpc_ssl(c), h->match_detail,
					       sizeof(h->match_detail), why, sizeof(why));
		if (!h->matched)
			snprintf(h->match_detail, sizeof(h->match_detail), "%s", why);
	}
	p->phase = 4;
	smtpc_command(c, "QUIT");
}

static void pd_on_error(struct smtpc *c, void *arg, enum smtpc_error err, const char *detail)
{
	struct pd *p = arg;
	struct pd_host *h = &p->hosts[p->cur];
	if (p->phase < 4 && !h->error[0])
		snprintf(h->error, sizeof(h->error), "%s%s",
			 err == SMTPC_ERR_CONNECT ? "connect failed: " :
			 err == SMTPC_ERR_TLS ? "TLS handshake failed: " : "connection lost: ", detail);
	h->connected = h->connected || err != SMTPC_ERR_CONNECT;
	pd_conn_end(p);
}

static int pd_tls_setup(struct smtpc *c, SSL *ssl, void *arg)
{
	struct pd *p = arg;
	if (!p->arm)
		return 0;
	return dane_ssl_enable(ssl, p->hosts[p->cur].name, p->domain, p->arm) < 0 ? -1 : 0;
}

static const struct smtpc_cbs pd_cbs = {
	.on_reply = pd_on_reply, .on_tls = pd_on_tls, .on_error = pd_on_error,
	.tls_setup = pd_tls_setup,
};

/* The verdict for the current host: connect when there is something to check. */
static void pd_verdict(void *arg, const struct relay_dane_verdict *v)
{
	struct pd *p = arg;
	struct pd_host *h = &p->hosts[p->cur];
	struct smtpc_opts o = { .server_name = h->name, .timeout = p->timeout,
				.connect_timeout = p->timeout, .helo_fallback = 1 };
	h->label = v->label;
	snprintf(h->why, sizeof(h->why), "%s", v->why);
	if (v->tlsa)
		pd_copy_tlsa(&h->tlsa, v->tlsa);
	if (v->kind == RDV_SKIP) {
		p->cur++;
		pd_next(p);
		return;
	}
	p->arm = v->kind == RDV_AUTH ? &h->tlsa : NULL;
	p->phase = 0;
	smtpc_destroy(&p->cli);
	p->cli = smtpc_create(p->base, (const struct sockaddr *)&h->tg->addr, h->tg->addrlen, &o,
			      &pd_cbs, p);
}

static void pd_next(struct pd *p)
{
	const struct relay_dane_verdict *v;
	if (p->cur >= p->n_hosts) {
		event_base_loopbreak(p->base);
		return;
	}
	v = relay_dane_step(p->rd, p->dns, RELAY_TLS_DANE, p->mx->mx_secure,
			    p->hosts[p->cur].tg, p->port, pd_verdict, p);
	if (v)
		pd_verdict(p, v);
}

static void pd_mx_done(void *arg, struct dns_result *res)
{
	struct pd *p = arg;
	p->mx = res;
	/* One connection per host: its first address, as the relay tries it first. */
	for (size_t i = 0; i < res->n_targets && p->n_hosts < PD_HOSTS_MAX; i++) {
		const struct dns_target *t = &res->targets[i];
		int seen = 0;
		for (size_t k = 0; k < p->n_hosts && !seen; k++)
			seen = strcmp(p->hosts[k].name, t->host) == 0;
		if (seen)
			continue;
		struct pd_host *h = &p->hosts[p->n_hosts++];
		h->name = xstrdup(t->host);
		h->pref = t->pref;
		h->tg = t;
		if (getnameinfo((const struct sockaddr *)&t->addr, t->addrlen, h->addr,
				sizeof(h->addr), NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(h->addr, sizeof(h->addr), "?");
	}
	pd_next(p);
}

/* The final word on one host, after the connection. */
static const char *pd_outcome(const struct pd_host *h, int *problem)
{
	*problem = 0;
	if (!h->label)
		return "not-checked";
	if (!strcmp(h->label, "dane-bogus") || !strcmp(h->label, "dane-tempfail")) {
		*problem = 1;
		return h->label;
	}
	if (!strcmp(h->label, "dane-verified") || !strcmp(h->label, "dane-unusable")) {
		if (!h->tls_up) {
			*problem = 1;
			return h->starttls || !h->connected ? "dane-no-tls" : "dane-no-starttls";
		}
		if (!strcmp(h->label, "dane-verified") && !h->matched) {
			*problem = 1;
			return "dane-mismatch";
		}
	}
	return h->label;
}

static int pd_print(const struct pd *p, int json)
{
	int problems = 0, problem;
	char rec[300];
	if (json) {
		printf("{\"domain\":");
		json_put_str(stdout, p->domain);
		printf(",\"port\":%u,\"dns_status\":\"%s\",\"mx_secure\":%s,\"hosts\":[", p->port,
		       dns_status_name(p->mx->status), p->mx->mx_secure ? "true" : "false");
	} else {
		printf("domain %s: %s, MX records %s\n", p->domain, dns_status_name(p->mx->status),
		       p->mx->mx_secure ? "DNSSEC-secure" : "not DNSSEC-secure (insecure)");
		if (p->mx->status != DNS_OK)
			printf("  %s\n", p->mx->detail);
	}
	for (size_t i = 0; i < p->n_hosts; i++) {
		const struct pd_host *h = &p->hosts[i];
		const char *out = pd_outcome(h, &problem);
		problems += problem;
		if (json) {
			printf("%s{\"host\":", i ? "," : "");
			json_put_str(stdout, h->name);
			printf(",\"pref\":%u,\"address\":\"%s\",\"address_secure\":%s,\"tlsa\":[", h->pref,
			       h->addr, h->tg->addr_secure ? "true" : "false");
			for (size_t k = 0; k < h->tlsa.n; k++) {
				dane_tlsa_text(&h->tlsa.recs[k], rec, sizeof(rec));
				printf("%s{\"record\":\"%s\",\"usable\":%s}", k ? "," : "", rec,
				       h->tlsa.recs[k].usable ? "true" : "false");
			}
			printf("],\"starttls\":%s,\"tls\":\"%s\",\"match\":%s,\"detail\":",
			       h->starttls ? "true" : "false", h->tls_version,
			       h->label && !strcmp(h->label, "dane-verified") && h->tls_up ?
			       (h->matched ? "true" : "false") : "null");
			json_put_str(stdout, h->match_detail[0] ? h->match_detail : h->error[0] ? h->error : h->why);
			printf(",\"result\":\"%s\",\"problem\":%s}", out, problem ? "true" : "false");
			continue;
		}
		printf("host %s (MX %u) %s: address %s\n", h->name, h->pref, h->addr,
		       h->tg->addr_secure ? "DNSSEC-secure" : "not DNSSEC-secure");
		for (size_t k = 0; k < h->tlsa.n; k++) {
			dane_tlsa_text(&h->tlsa.recs[k], rec, sizeof(rec));
			printf("  TLSA _%u._tcp.%s %s: %s\n", p->port, h->name, rec,
			       h->tlsa.recs[k].usable ? "usable" : "unusable (RFC 7672 3.1.3)");
		}
		if (h->connected || h->error[0])
			printf("  STARTTLS %s%s%s%s%s\n", h->starttls ? "offered" : "not offered",
			       h->tls_up ? ", " : "", h->tls_version, h->error[0] ? ": " : "", h->error);
		if (h->match_detail[0])
			printf("  certificate %s: %s\n", h->matched ? "matches TLSA" : "does NOT match",
			       h->match_detail);
		printf("  result: %s%s%s\n", out, h->why[0] && strcmp(out, "dane-verified") ? " - " : "",
		       strcmp(out, "dane-verified") ? h->why : "");
	}
	if (json)
		printf("],\"problems\":%d}\n", problems);
	return problems;
}

int cmd_probe_dane(int argc, char **argv)
{
	enum { O_DANE = 256, O_RESOLVER, O_TA, O_EHLO, O_TIMEOUT, O_JSON, O_HELP };
	static const struct option longopts[] = {
		{ "dane", no_argument, NULL, O_DANE },
		{ "resolver", required_argument, NULL, O_RESOLVER },
		{ "trust-anchor", required_argument, NULL, O_TA },
		{ "ehlo", required_argument, NULL, O_EHLO },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON }, { "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct pd p = { .port = 25, .timeout = 30, .ehlo = "localhost" };
	const char *resolver = NULL, *ta = NULL;
	char *domain = NULL, *colon, *end, *err = NULL;
	int c, json = 0, status;
	unsigned long v;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_DANE: break;
		case O_RESOLVER: resolver = optarg; break;
		case O_TA: ta = optarg; break;
		case O_EHLO: p.ehlo = optarg; break;
		case O_JSON: json = 1; break;
		case O_TIMEOUT:
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v == 0 || v > 3600)
				return pd_usage_error("--timeout takes 1 to 3600 seconds");
			p.timeout = (unsigned)v;
			break;
		case O_HELP: fputs(pd_usage, stdout); return ADMIN_EXIT_OK;
		default: return pd_usage_error(NULL);
		}
	}
	if (optind != argc - 1 || !*argv[optind])
		return pd_usage_error("one DOMAIN[:PORT] expected");
	domain = xstrdup(argv[optind]);
	if ((colon = strchr(domain, ':'))) {
		*colon = '\0';
		v = strtoul(colon + 1, &end, 10);
		if (!colon[1] || *end || v == 0 || v > 65535) {
			free(domain);
			return pd_usage_error("bad PORT");
		}
		p.port = (unsigned)v;
	}
	if (!ta && access(PD_SYSTEM_TA, R_OK) == 0)
		ta = PD_SYSTEM_TA;
	p.domain = domain;
	p.base = event_base_new();
	p.rd = relay_dane_create();
	if (!p.base || !(p.dns = dns_create(p.base, resolver, ta, &err)) ||
	    !(p.ctx = tls_client_ctx_create(NULL, 0, &err)) || dane_ctx_enable(p.ctx) < 0) {
		admin_error("probe: %s", err ? err : "cannot set up");
		status = ADMIN_EXIT_USAGE;
		goto out;
	}
	if (!ta && !json)
		printf("no trust anchor (--trust-anchor): nothing can be DNSSEC-secure\n");
	dns_set_timeout(p.dns, p.timeout * 1000);
	dns_resolve_mx(p.dns, domain, IPF_ANY, p.port, NULL, 100, pd_mx_done, &p);
	event_base_dispatch(p.base);
	if (!p.mx) {
		admin_error("probe: the event loop ended without an answer");
		status = ADMIN_EXIT_USAGE;
		goto out;
	}
	status = pd_print(&p, json) ? ADMIN_EXIT_FAIL
	       : p.mx->status == DNS_OK ? ADMIN_EXIT_OK : ADMIN_EXIT_USAGE;
out:
	smtpc_destroy(&p.cli);
	relay_dane_destroy(&p.rd);
	dns_destroy(&p.dns);
	for (size_t i = 0; i < p.n_hosts; i++) {
		free(p.hosts[i].name);
		dane_rrset_clear(&p.hosts[i].tlsa);
	}
	dns_result_free(p.mx);
	if (p.ctx)
		SSL_CTX_free(p.ctx);
	if (p.base)
		event_base_free(p.base);
	free(err);
	free(domain);
	return status;
}
