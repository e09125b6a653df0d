/* requiretls: RFC 8689 where mail leaves, for the SMTP transport. A message tagged
 * REQUIRETLS goes only over TLS with a verified certificate, to a next hop whose name
 * is trustworthy and which offers REQUIRETLS, and its MAIL FROM carries REQUIRETLS on;
 * one tagged "TLS-Required: No" goes as `may` where the route's policy is the
 * recipient's (dane, mta-sts, auto). The transport asks these functions at each of
 * its decisions (which policy, which connection, whether this host will do, what
 * MAIL says); they hold no state. docs/requiretls.md has the rules and codes. */
#ifndef CURSUS_RELAY_REQUIRETLS_H
#define CURSUS_RELAY_REQUIRETLS_H

#include <stddef.h>

struct delivery;
struct dns_result;
struct relay_fail;

enum rtls_mode {
	RTLS_OFF,      /* nothing asked, or LMTP (the mailbox is the last stop) */
	RTLS_REQUIRE,  /* REQUIRETLS: every condition of RFC 8689 4.2.1, else no delivery */
	RTLS_BEST,     /* REQUIRETLS on a report from the null sender (RFC 8689 5): carried
		        * where the next hop offers it, never a reason not to deliver */
	RTLS_RELAXED,  /* "TLS-Required: No" on a dane, mta-sts or auto route: `may` */
};

enum rtls_mode requiretls_mode(const struct delivery *d, int lmtp);

/* The relay_tls a delivery runs under: route_tls, or `may` when RTLS_RELAXED. */
int requiretls_route_tls(const struct delivery *d, int lmtp, int route_tls);
/* Whether the recipient domain's MTA-STS policy is wanted whatever relay_tls says
 * (REQUIRETLS to MX hosts: it may be what makes their names trustworthy). */
int requiretls_wants_sts(const struct delivery *d, int lmtp);
/* What the connection cache key gets, so that a connection opened under one
 * treatment never carries a message of another: "", "|requiretls", "|tls-required-no". */
const char *requiretls_key_tag(const struct delivery *d, int lmtp);
/* The tls_policy label of a relaxed connection ("tls-required-no"), else NULL. */
const char *requiretls_label(const struct delivery *d, int lmtp);

/* MX delivery of a REQUIRETLS message: whether the MX host names can be trusted
 * (RFC 8689 4.2.1 step 2): a DNSSEC-secure MX answer, an implicit MX (the certificate
 * is checked for the domain itself), or an MTA-STS policy in enforce mode (whose mx
 * patterns the transport applies to every host). Returns 0, or -1 with why: the
 * delivery fails with 5.7.30. sts_mode: enum mtasts_mode. */
int requiretls_domain_check(const struct delivery *d, int lmtp, const struct dns_result *res,
			    int sts_mode, char *why, size_t n);

/* The TLS policy (enum relay_tls) of a connection for d: REQUIRETLS raises one that
 * DANE does not decide (dane: the host is under DANE) to verify. */
int requiretls_conn_tls(const struct delivery *d, int lmtp, int tls, int dane);

/* Before MAIL: whether this next hop will do for d. Returns 0, or -1 with *f filled
 * (reason, status; permanent when the host can never take it: REQUIRETLS not
 * offered). host and addr for the words. */
int requiretls_hop_check(const struct delivery *d, int lmtp, int tls_up, int verified,
			 const char *verify_reason, int offered, const char *host,
			 const char *addr, struct relay_fail *f);

/* Whether MAIL FROM carries REQUIRETLS (counted; a report that goes without it is
 * logged). */
int requiretls_mail_param(const struct delivery *d, int lmtp, int tls_up, int offered,
			  const char *host, const char *addr);

#endif
