/* relay_tlsrpt: the transport's decisions as TLS-RPT policies and results
 * (relay_tlsrpt.h). RFC 8460 4.4: a "tlsa" policy's policy-string holds the TLSA
 * records, an "sts" one the policy's lines; mx-host the MX host (tlsa) or the
 * policy's mx patterns (sts). */
#include "relay/relay_tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

static void add_string(struct tlsrpt_policy *p, char *s)
{
	p->strings = xrealloc(p->strings, (p->n_strings + 1) * sizeof(*p->strings));
	p->strings[p->n_strings++] = s;
}

/* The policy for host; the caller clears it. */
static void relay_tlsrpt_policy(struct tlsrpt_policy *p, const char *domain, const char *host,
				const struct relay_dane_verdict *v, int sts_mode,
				const struct mtasts_policy *pol)
{
	memset(p, 0, sizeof(*p));
	p->domain = xstrdup(domain);
	if (v && v->kind != RDV_MAY) {
		p->type = TLSRPT_TLSA;
		p->mx_host = xstrdup(host);
		for (size_t i = 0; v->tlsa && i < v->tlsa->n; i++) {
			char text[600];
			dane_tlsa_text(&v->tlsa->recs[i], text, sizeof(text));
			add_string(p, xstrdup(text));
		}
	} else if (sts_mode != MTASTS_NONE && pol) {
		size_t n = 0;
		p->type = TLSRPT_STS;
		add_string(p, xstrdup("version: STSv1"));
		add_string(p, xasprintf("mode: %s", mtasts_mode_name((enum mtasts_mode)sts_mode)));
		for (size_t i = 0; i < pol->n_mx; i++) {
			add_string(p, xasprintf("mx: %s", pol->mx[i]));
			n += strlen(pol->mx[i]) + 2;
		}
		add_string(p, xasprintf("max_age: %lu", pol->max_age));
		if (pol->n_mx) {
			p->mx_host = xcalloc(1, n + 1);
			for (size_t i = 0; i < pol->n_mx; i++) {
				if (i)
					strcat(p->mx_host, ", ");
				strcat(p->mx_host, pol->mx[i]);
			}
		}
	} else {
		p->type = TLSRPT_NO_POLICY;
	}
}

struct tlsrpt_ticket *relay_tlsrpt_ticket(struct tlsrpt *r, const char *domain,
					  const char *host, const struct relay_dane_verdict *v,
					  int sts_mode, const struct mtasts_policy *pol)
{
	struct tlsrpt_policy p;
	struct tlsrpt_ticket *t;
	if (!r)
		return NULL;
	relay_tlsrpt_policy(&p, domain, host, v, sts_mode, pol);
	t = tlsrpt_ticket_create(r, &p);
	tlsrpt_policy_clear(&p);
	return t;
}

struct tlsrpt_ticket *relay_tlsrpt_sts_failed(struct tlsrpt *r, const char *domain,
					      const char *host, const char *addr,
					      const char *result, const char *why)
{
	struct tlsrpt_policy p = { .type = TLSRPT_STS, .domain = (char *)domain };
	/* RFC 8460 4.4: the policy-string is the policy as served; none was. */
	return tlsrpt_ticket_create_failed(r, &p, result, host, addr, why);
}

void relay_tlsrpt_skipped(struct tlsrpt *r, const char *domain, const char *host,
			  const struct relay_dane_verdict *v)
{
	struct tlsrpt_policy p;
	const char *result;
	if (!r || !v->label)
		return;
	/* dane-bogus, dane-tempfail: "no valid records were returned from the recursive
	 * resolver" (RFC 8460 4.3.2.1); dane-required: DANE demanded, none there. */
	if (strcmp(v->label, "dane-required") == 0)
		result = "dane-required";
	else if (strcmp(v->label, "dane-bogus") == 0 || strcmp(v->label, "dane-tempfail") == 0)
		result = "dnssec-invalid";
	else
		return;
	relay_tlsrpt_policy(&p, domain, host, NULL, MTASTS_NONE, NULL);
	if (strcmp(result, "dnssec-invalid") == 0) {
		p.type = TLSRPT_TLSA; /* the TLSA lookup failed: a DANE policy, unproven */
		p.mx_host = xstrdup(host);
	}
	tlsrpt_record(r, &p, result, host, v->why);
	tlsrpt_policy_clear(&p);
}

void relay_tlsrpt_mx_mismatch(struct tlsrpt *r, const char *domain, const char *host,
			      int sts_mode, const struct mtasts_policy *pol)
{
	struct tlsrpt_policy p;
	if (!r)
		return;
	relay_tlsrpt_policy(&p, domain, host, NULL, sts_mode, pol);
	/* RFC 8460 has no result type of its own for it: the general one. */
	tlsrpt_record(r, &p, "validation-failure", host, "MX host not in the policy's mx patterns");
	tlsrpt_policy_clear(&p);
}
