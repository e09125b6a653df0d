/* mtasts: MTA-STS (RFC 8461) for MX delivery: which policy applies to a recipient
 * domain, found without blocking the event loop, and what a failure of it says.
 *
 * A lookup asks _mta-sts.DOMAIN's TXT record through the relay's resolver (libunbound,
 * on the loop); when its id is new (or nothing is cached), the addresses of
 * mta-sts.DOMAIN through the same resolver, then the policy over HTTPS on a fetch
 * thread of its own (mta_sts_fetch_threads; a fetch may take mta_sts_fetch_timeout).
 * Policies are kept per domain for their max_age, in memory and on disk
 * (mtasts_store), checked again every mta_sts_refresh_interval, and renewed before
 * they expire. A failed fetch keeps the policy cached before it (the protection rests
 * on it) and is not tried again for that domain and id for mta_sts_fetch_retry.
 * Lookups for one domain share one discovery.
 *
 * The decision per MX host (the mx patterns, TLS with a PKIX-valid certificate for
 * the MX host name) is the transport's (relay/smtp_transport.c, relay_session.c),
 * with the words and counters of mtasts_report. Under relay_tls auto DANE (RFC 7672)
 * goes first: where a host has DNSSEC-secure TLSA records, DANE decides its TLS and
 * only the mx patterns of an enforce policy still apply (docs/tls-policy.md). */
#ifndef CURSUS_MTASTS_H
#define CURSUS_MTASTS_H

#include "relay/mtasts_policy.h"

struct config;
struct dns;
struct event_base;
struct mtasts;
struct mtasts_req;

/* Reads the cache (mta_sts_cache_dir) and starts the fetch threads and the refresh
 * timer. dns is the relay's resolver (not owned). */
struct mtasts *mtasts_create(const struct config *cfg, struct event_base *base, struct dns *dns);
/* Lookups in flight are dropped without their callbacks; a fetch under way is waited
 * for (mta_sts_fetch_timeout at most). Before dns_destroy. Sets *m to NULL. */
void mtasts_destroy(struct mtasts **m);
/* Timeouts, sizes, relay_ca and the refresh interval of fetches started from now. */
void mtasts_reconfigure(struct mtasts *m, const struct config *cfg);

/* What applies to one domain's MX delivery. Valid during the callback only. */
struct mtasts_verdict {
	int have;                    /* a policy in mode enforce or testing applies */
	const char *domain;
	const char *id;
	const struct mtasts_policy *policy;
	const char *source;          /* "cache" or "fetch" */
	int failed;                  /* no policy because its fetch failed: the domain
	                              * announced one, so "none" is not known for sure */
	const char *fail_result;     /* with failed: the RFC 8460 result type
	                              * (mtasts_fetch_rpt_result), */
	const char *fail_why;        /* and the reason the fetch-failed line logged */
};
typedef void (*mtasts_cb)(void *arg, const struct mtasts_verdict *v);

/* cb once, on the loop, never from inside this call, unless cancelled. */
struct mtasts_req *mtasts_lookup(struct mtasts *m, const char *domain, mtasts_cb cb, void *arg);
void mtasts_cancel(struct mtasts_req *r);

/* Why an MX host failed a policy: the reason label and log word. */
enum mtasts_failure {
	MTASTS_FAIL_MX_MISMATCH,     /* "mx-mismatch": not in the policy's mx patterns */
	MTASTS_FAIL_NO_STARTTLS,     /* "starttls-not-offered" (or refused) */
	MTASTS_FAIL_TLS,             /* "tls-failed": the handshake failed */
	MTASTS_FAIL_CERTIFICATE,     /* "certificate-invalid": chain, name or dates */
};
const char *mtasts_failure_name(enum mtasts_failure f);
/* Logs and counts one MX host failing the policy of domain: in enforce mode the host
 * is not used ("event=refused"), in testing mode it is, and this is the report
 * ("event=would-fail"). */
void mtasts_report(const char *domain, enum mtasts_mode mode, const char *host, const char *addr,
		   enum mtasts_failure why, const char *detail);

#endif
