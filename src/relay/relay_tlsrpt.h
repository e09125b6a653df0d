/* relay_tlsrpt: what the SMTP transport tells TLS-RPT (relay/tlsrpt.h), in the words
 * of the decisions it already made: the policy a connection runs under (the DANE
 * verdict's TLSA records, else the domain's MTA-STS policy, or the one it announced
 * that could not be fetched, else none), and the hosts it never connected to (DANE
 * skipped them, MTA-STS ruled them out). */
#ifndef CURSUS_RELAY_TLSRPT_H
#define CURSUS_RELAY_TLSRPT_H

#include "relay/mtasts.h"
#include "relay/relay_dane.h"
#include "relay/tlsrpt.h"

/* A ticket for a connection to MX host of domain, under DANE verdict v (or NULL) or
 * the MTA-STS policy pol in mode sts_mode (MTASTS_NONE: none). NULL when r is NULL. */
struct tlsrpt_ticket *relay_tlsrpt_ticket(struct tlsrpt *r, const char *domain,
					  const char *host, const struct relay_dane_verdict *v,
					  int sts_mode, const struct mtasts_policy *pol);
/* A ticket for a connection to host (at addr) of a domain that announced an MTA-STS
 * policy which could not be fetched, none cached, DANE not deciding for the host:
 * policy "sts" without policy-string or mx-host (there is no policy to quote), and the
 * session counts as result (mtasts_verdict's fail_result) with why as its detail. */
struct tlsrpt_ticket *relay_tlsrpt_sts_failed(struct tlsrpt *r, const char *domain,
					      const char *host, const char *addr,
					      const char *result, const char *why);
/* A host the DANE step skipped (v->kind RDV_SKIP): dnssec-invalid or dane-required. */
void relay_tlsrpt_skipped(struct tlsrpt *r, const char *domain, const char *host,
			  const struct relay_dane_verdict *v);
/* A host not in an MTA-STS policy's mx patterns. */
void relay_tlsrpt_mx_mismatch(struct tlsrpt *r, const char *domain, const char *host,
			      int sts_mode, const struct mtasts_policy *pol);

#endif
