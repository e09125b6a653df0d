/* requiretls: the sending side of RFC 8689 (requiretls.h). It promises that a
 * message tagged REQUIRETLS is handed to no next hop but one reached over TLS with a
 * certificate verified (by DANE, or by PKIX for the name the mail was routed to),
 * whose name came from a DNSSEC-secure MX answer or an MTA-STS policy in enforce mode
 * (MX delivery), and which offered REQUIRETLS; that its MAIL FROM then says
 * REQUIRETLS; and that "TLS-Required: No" never weakens what the administrator
 * configured, only the recipient's published policies. */
#include "relay/requiretls.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "deliver/transport.h"
#include "metrics/metrics.h"
#include "net/dns.h"
#include "queue/envelope.h"
#include "relay/mtasts_policy.h"
#include "relay/relay_int.h"
#include "util/log.h"

enum rtls_mode requiretls_mode(const struct delivery *d, int lmtp)
{
	int route_tls = d->policy ? d->policy->tls : RELAY_TLS_MAY;
	if (lmtp)
		return RTLS_OFF;
	switch (d->env->tlsreq) {
	case TLSREQ_REQUIRETLS:
		/* RFC 8689 5: "When the MAIL FROM return-path is empty, the REQUIRETLS
		 * parameter SHOULD NOT cause a bounce message to be discarded even if the
		 * next-hop relay does not advertise REQUIRETLS." */
		return d->sender[0] ? RTLS_REQUIRE : RTLS_BEST;
	case TLSREQ_NO:
		/* RFC 8689 4.2.2: the header asks that recipient-side policies (DANE,
		 * MTA-STS) be ignored; relay_tls none/may/encrypt/verify/dane-only are this
		 * server's own and stand. */
		return route_tls == RELAY_TLS_DANE || route_tls == RELAY_TLS_MTA_STS ||
		       route_tls == RELAY_TLS_AUTO ? RTLS_RELAXED : RTLS_OFF;
	default:
		return RTLS_OFF;
	}
}

int requiretls_route_tls(const struct delivery *d, int lmtp, int route_tls)
{
	return requiretls_mode(d, lmtp) == RTLS_RELAXED ? RELAY_TLS_MAY : route_tls;
}

int requiretls_wants_sts(const struct delivery *d, int lmtp)
{
	return requiretls_mode(d, lmtp) == RTLS_REQUIRE;
}

const char *requiretls_key_tag(const struct delivery *d, int lmtp)
{
	switch (requiretls_mode(d, lmtp)) {
	case RTLS_REQUIRE:
		return "|requiretls";
	case RTLS_RELAXED:
		return "|tls-required-no";
	default:
		return "";
	}
}

const char *requiretls_label(const struct delivery *d, int lmtp)
{
	if (requiretls_mode(d, lmtp) != RTLS_RELAXED)
		return NULL;
	metrics_add(METRIC_RELAY_REQUIRETLS, 1, "tls-required-no", NULL, NULL);
	return "tls-required-no";
}

int requiretls_domain_check(const struct delivery *d, int lmtp, const struct dns_result *res,
			    int sts_mode, char *why, size_t n)
{
	if (requiretls_mode(d, lmtp) != RTLS_REQUIRE || d->route->kind != ROUTE_MX)
		return 0;
	/* "If the server lookup is accomplished via the recipient domain's MX record
	 * ... and is not accompanied by a valid DNSSEC signature, the client MUST also
	 * validate the SMTP server name using MTA-STS" (RFC 8689 4.2.1). Without an MX
	 * record the host is the domain itself, and its certificate proves that. */
	if (res->mx_secure || res->implicit_mx || sts_mode == MTASTS_ENFORCE)
		return 0;
	snprintf(why, n, "REQUIRETLS support required: the MX hosts of %s cannot be "
		 "authenticated (the MX answer is not DNSSEC-secure and %s has no MTA-STS "
		 "policy in enforce mode)", d->route->target, d->route->target);
	metrics_add(METRIC_RELAY_REQUIRETLS, 1, "insecure-mx", NULL, NULL);
	return -1;
}

int requiretls_conn_tls(const struct delivery *d, int lmtp, int tls, int dane)
{
	if (requiretls_mode(d, lmtp) != RTLS_REQUIRE || dane || tls >= RELAY_TLS_VERIFY)
		return tls;
	return RELAY_TLS_VERIFY;
}

int requiretls_hop_check(const struct delivery *d, int lmtp, int tls_up, int verified,
			 const char *verify_reason, int offered, const char *host,
			 const char *addr, struct relay_fail *f)
{
	int n;
	if (requiretls_mode(d, lmtp) != RTLS_REQUIRE)
		return 0;
	memset(f, 0, sizeof(*f));
	n = snprintf(f->reason, sizeof(f->reason), "%s[%s]: ", host, addr);
	if (n < 0 || (size_t)n >= sizeof(f->reason))
		n = 0;
	/* What an attacker on the path can cause (no TLS, a certificate that does not
	 * verify) may be gone at the next try: deferred, as any TLS failure. */
	if (!tls_up || !verified) {
		snprintf(f->status, sizeof(f->status), "%s", tls_up ? "4.7.5" : "4.7.10");
		snprintf(f->reason + n, sizeof(f->reason) - (size_t)n,
			 "REQUIRETLS: %s%s%s", tls_up ? "certificate not verified (" : "no TLS",
			 tls_up ? verify_reason : "", tls_up ? ")" : "");
		metrics_add(METRIC_RELAY_REQUIRETLS, 1, "unverified", NULL, NULL);
		return -1;
	}
	/* "Ensure that the response to the subsequent EHLO following establishment of
	 * the TLS protection advertises the REQUIRETLS capability" (RFC 8689 4.2.1 step
	 * 5); else "REQUIRETLS not supported by server: 5.7.30 REQUIRETLS needed". */
	if (!offered) {
		snprintf(f->status, sizeof(f->status), "5.7.30");
		snprintf(f->reason + n, sizeof(f->reason) - (size_t)n,
			 "REQUIRETLS support required: the next hop does not offer REQUIRETLS");
		f->permanent = 1;
		metrics_add(METRIC_RELAY_REQUIRETLS, 1, "not-offered", NULL, NULL);
		return -1;
	}
	return 0;
}

int requiretls_mail_param(const struct delivery *d, int lmtp, int tls_up, int offered,
			  const char *host, const char *addr)
{
	enum rtls_mode m = requiretls_mode(d, lmtp);
	if (m != RTLS_REQUIRE && m != RTLS_BEST)
		return 0;
	/* A server takes the parameter only under TLS (RFC 8689 2). */
	if (tls_up && offered) {
		metrics_add(METRIC_RELAY_REQUIRETLS, 1, "sent", NULL, NULL);
		return 1;
	}
	log_info("relay %s: REQUIRETLS not carried to %s[%s] (%s): a report from the null "
		 "sender goes on without it (RFC 8689 5)", d->id, host, addr,
		 tls_up ? "REQUIRETLS not offered" : "no TLS");
	metrics_add(METRIC_RELAY_REQUIRETLS, 1, "dsn-without", NULL, NULL);
	return 0;
}
