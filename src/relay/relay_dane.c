/* relay_dane: RFC 7672's decision for one next-hop address (see relay_dane.h).
 *
 * In order: DANE needs the MX answer and this address's answer to be DNSSEC-secure
 * (2.2.1, 2.2.2), else the host is used as with `may`; then the TLSA RRset at
 * _PORT._tcp.HOST: secure and usable records make TLS mandatory and authenticated,
 * secure but unusable ones make it mandatory only (3.1.3), a secure denial or an
 * insecure answer leaves `may` (or, under auto, the domain's MTA-STS policy); a bogus or failed TLSA lookup means the host is not
 * used (2.2: "the SMTP client MUST NOT deliver" where it cannot tell). dane-only
 * turns every outcome without usable secure records into a skip. */
#include "relay/relay_dane.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/xmalloc.h"


struct relay_dane {
	char *host;                  /* the host whose TLSA answer is kept */
	unsigned port;
	struct dns_result *res;      /* that answer */
	struct dane_rrset tlsa;
	struct dns_query *q;         /* in flight */
	int policy;
	relay_dane_cb cb;
	void *arg;
	struct relay_dane_verdict v;
};

struct relay_dane *relay_dane_create(void)
{
	return xcalloc(1, sizeof(struct relay_dane));
}

static void relay_dane_forget(struct relay_dane *rd)
{
	if (rd->q)
		dns_cancel(rd->q);
	rd->q = NULL;
	dns_result_free(rd->res);
	rd->res = NULL;
	dane_rrset_clear(&rd->tlsa);
	free(rd->host);
	rd->host = NULL;
}

void relay_dane_destroy(struct relay_dane **rdp)
{
	if (!*rdp)
		return;
	relay_dane_forget(*rdp);
	free(*rdp);
	*rdp = NULL;
}

int relay_dane_policy(int policy)
{
	return policy == RELAY_TLS_DANE || policy == RELAY_TLS_DANE_ONLY ||
	       policy == RELAY_TLS_AUTO;
}

void relay_dane_count(const char *label)
{
	if (label && strncmp(label, "dane-", 5) == 0)
		metrics_add(METRIC_RELAY_DANE, 1, label + 5, NULL, NULL);
}

static const struct relay_dane_verdict *relay_dane_set(struct relay_dane *rd,
						       enum relay_dane_kind kind, const char *label,
						       const char *fmt, ...) PRINTF_LIKE(4, 5);

static const struct relay_dane_verdict *relay_dane_set(struct relay_dane *rd,
						       enum relay_dane_kind kind, const char *label,
						       const char *fmt, ...)
{
	struct relay_dane_verdict *v = &rd->v;
	char text[300] = "";
	int required = 0;
	va_list ap;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
	}
	memset(v, 0, sizeof(*v));
	v->label = label;
	/* dane-only: nothing but usable secure records will do. */
	if (rd->policy == RELAY_TLS_DANE_ONLY && (kind == RDV_MAY || kind == RDV_ENCRYPT)) {
		kind = RDV_SKIP;
		v->label = "dane-required";
		required = 1;
	}
	v->kind = kind;
	if (kind == RDV_AUTH || kind == RDV_ENCRYPT)
		v->tlsa = &rd->tlsa;
	if (kind == RDV_SKIP)
		snprintf(v->status, sizeof(v->status), "4.7.5");
	if (*text)
		snprintf(v->why, sizeof(v->why), "%s: %s%s", rd->host,
			 required ? "DANE required (relay_tls dane-only) but " : "", text);
	/* A connection's own outcome counts the others (verified, mismatch, ...). */
	if (kind == RDV_MAY || kind == RDV_SKIP)
		relay_dane_count(v->label);
	return v;
}

/* The verdict from the TLSA answer kept in rd. */
static const struct relay_dane_verdict *relay_dane_judge(struct relay_dane *rd)
{
	const struct dns_result *res = rd->res;
	if (res->sec == DNS_SEC_BOGUS)
		return relay_dane_set(rd, RDV_SKIP, "dane-bogus",
				      "host skipped: a bogus DNSSEC answer for its TLSA records "
				      "(_%u._tcp.%s)", rd->port, rd->host);
	if (res->status == DNS_TEMPFAIL)
		return relay_dane_set(rd, RDV_SKIP, "dane-tempfail",
				      "host skipped: TLSA lookup failed: %s", res->detail);
	if (res->sec != DNS_SEC_SECURE)
		return relay_dane_set(rd, RDV_MAY, "dane-insecure",
				      "its TLSA records are not DNSSEC-secure");
	if (res->status != DNS_OK || rd->tlsa.n == 0)
		return relay_dane_set(rd, RDV_MAY, "dane-no-tlsa",
				      "it publishes no TLSA records (_%u._tcp.%s)", rd->port, rd->host);
	if (rd->tlsa.n_usable == 0)
		return relay_dane_set(rd, RDV_ENCRYPT, "dane-unusable",
				      "none of its TLSA records is usable");
	return relay_dane_set(rd, RDV_AUTH, "dane-verified", NULL);
}

static void relay_dane_answered(void *arg, struct dns_result *res)
{
	struct relay_dane *rd = arg;
	rd->q = NULL;
	rd->res = res;
	if (res->status == DNS_OK && res->sec == DNS_SEC_SECURE)
		dane_rrset_parse(&rd->tlsa, res->rr_data, res->rr_len, res->n_rr);
	rd->cb(rd->arg, relay_dane_judge(rd));
}

const struct relay_dane_verdict *relay_dane_step(struct relay_dane *rd, struct dns *dns,
						 int policy, int mx_secure,
						 const struct dns_target *tg, unsigned port,
						 relay_dane_cb cb, void *arg)
{
	rd->policy = policy;
	if (!rd->host || strcmp(rd->host, tg->host) != 0 || rd->port != port) {
		relay_dane_forget(rd);
		rd->host = xstrdup(tg->host);
		rd->port = port;
	} else if (rd->res) {
		/* Another address of the same host: the same records, but this address's
		 * own answer must be secure too. */
		if (mx_secure && tg->addr_secure)
			return relay_dane_judge(rd);
	}
	/* RFC 7672 2.2.1/2.2.2: without a secure MX RRset and secure addresses, an
	 * attacker chose the host: its TLSA records would prove nothing. */
	if (!mx_secure)
		return relay_dane_set(rd, RDV_MAY, "dane-insecure",
				      "the MX records of its domain are not DNSSEC-secure");
	if (!tg->addr_secure)
		return relay_dane_set(rd, RDV_MAY, "dane-insecure",
				      "its address records are not DNSSEC-secure");
	if (!dns)
		return relay_dane_set(rd, RDV_SKIP, "dane-tempfail", "host skipped: no DNS resolver");
	char *name = xasprintf("_%u._tcp.%s", port, tg->host);
	rd->cb = cb;
	rd->arg = arg;
	rd->q = dns_resolve_rr(dns, name, DNS_RR_TLSA, relay_dane_answered, rd);
	free(name);
	return NULL;
}
