/* relay_dane: the DANE step (RFC 7672) of the SMTP transport, between finding a next
 * hop's addresses and connecting to one: whether relay_tls dane / dane-only / auto
 * makes TLS mandatory and authenticated by TLSA records, leaves the host to `may` (or
 * to MTA-STS), or makes the host unusable.
 * The TLSA lookup runs on the event loop (dns.h), one per host, kept for the host's
 * other addresses. The only hook in the transport is relay_dane_step(). */
#ifndef CURSUS_RELAY_DANE_H
#define CURSUS_RELAY_DANE_H

#include "net/dane.h"
#include "net/dns.h"

enum relay_dane_kind {
	RDV_MAY,        /* no secure TLSA (or none at all): DANE does not apply (`may`) */
	RDV_AUTH,       /* usable secure TLSA: TLS mandatory, the certificate must match */
	RDV_ENCRYPT,    /* secure TLSA, none usable: TLS mandatory, not authenticated */
	RDV_SKIP,       /* this host is not to be used: status and why say so */
};

struct relay_dane_verdict {
	enum relay_dane_kind kind;
	/* For the delivery log's tls_policy field: dane-insecure, dane-no-tlsa,
	 * dane-verified (RDV_AUTH, until the certificate says otherwise), dane-unusable,
	 * dane-bogus, dane-tempfail, dane-required. */
	const char *label;
	const struct dane_rrset *tlsa; /* RDV_AUTH, RDV_ENCRYPT: the records */
	char status[16];               /* RDV_SKIP: "4.7.5" */
	char why[400];                 /* RDV_SKIP: for the deferral and the log */
};

typedef void (*relay_dane_cb)(void *arg, const struct relay_dane_verdict *v);

struct relay_dane *relay_dane_create(void);
/* Cancels a lookup in flight (its callback is not called). */
void relay_dane_destroy(struct relay_dane **rd);
/* 1 when policy (enum relay_tls) asks for the DANE step. */
int relay_dane_policy(int policy);
/* The verdict for target tg (mx_secure: dns_result's), its port the TLSA port: at once
 * when no lookup is needed or this host's answer is known, else NULL, and cb gets it
 * from the loop later. The verdict lives until the next call or relay_dane_destroy. */
const struct relay_dane_verdict *relay_dane_step(struct relay_dane *rd, struct dns *dns,
						 int policy, int mx_secure,
						 const struct dns_target *tg, unsigned port,
						 relay_dane_cb cb, void *arg);
/* Counts a verdict or an outcome in the metrics ("dane-verified" -> "verified"). */
void relay_dane_count(const char *label);

#endif
