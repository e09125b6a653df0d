/* tlsrpt: SMTP TLS Reporting (RFC 8460) for the SMTP transport. Each outbound
 * connection to an MX host counts once for its recipient domain's policy (DANE "tlsa",
 * MTA-STS "sts", or "no-policy-found"): a success, or a failure by RFC 8460 result
 * type. Counts are kept per reporting period (tls_rpt_interval: a UTC day), saved to
 * a file per period under tls_rpt_dir by a worker, and read back after a restart.
 * When a period is over, each domain with counts whose _smtp._tls TXT record names a
 * mailto: rua gets the gzipped JSON report, mailed through our own queue
 * (tlsrpt_send.c). docs/tls-rpt.md says which relay decision gives which result type.
 *
 * The transport's only hooks: tlsrpt_ticket_create (or _create_failed) when it opens a
 * connection under a policy, and tlsrpt_ticket_ok / tlsrpt_ticket_fail where the
 * session decides; a ticket records one outcome, the first one. */
#ifndef CURSUS_TLSRPT_H
#define CURSUS_TLSRPT_H

#include "relay/tlsrpt_data.h"

struct config;
struct dkim_keys;
struct dns;
struct event_base;
struct queue;
struct smtpc;
struct workers;
struct tlsrpt;
struct tlsrpt_ticket;

/* NULL when tls_rpt is off. dkim: where the daemon keeps its current keys (reloads
 * replace them); report mail is signed with the key of tls_rpt_from's domain. */
struct tlsrpt *tlsrpt_create(const struct config *cfg, struct event_base *base,
			     struct dns *dns, struct workers *w, struct queue *q,
			     struct dkim_keys **dkim);
/* After the workers are destroyed (writes still waiting are done here, the loop being
 * over). Cancels reports being looked up: the period's file stays and is reported
 * after the restart. */
void tlsrpt_destroy(struct tlsrpt **r);

/* For one connection under policy p (copied); NULL when r is NULL or the mail is our
 * own report (no reports about reports, RFC 8460 5.3: no loops). */
struct tlsrpt_ticket *tlsrpt_ticket_create(struct tlsrpt *r, const struct tlsrpt_policy *p);
/* A ticket whose outcome is known before the session decides (an MTA-STS policy
 * announced and not fetched, RFC 8460 4.3.2.2): ok and fail both count this result
 * with these host, address and info instead of their own, once. */
struct tlsrpt_ticket *tlsrpt_ticket_create_failed(struct tlsrpt *r, const struct tlsrpt_policy *p,
						  const char *result, const char *mx,
						  const char *ip, const char *info);
void tlsrpt_ticket_free(struct tlsrpt_ticket **t);
/* The session's outcome; both do nothing on a NULL ticket or after the first. c: the
 * connection (for sending-mta-ip), or NULL. */
void tlsrpt_ticket_ok(struct tlsrpt_ticket *t, struct smtpc *c);
void tlsrpt_ticket_fail(struct tlsrpt_ticket *t, struct smtpc *c, const char *result,
			const char *mx, const char *ip, const char *info);
/* A failure before any connection (a host DANE skipped: dnssec-invalid, dane-required). */
void tlsrpt_record(struct tlsrpt *r, const struct tlsrpt_policy *p, const char *result,
		   const char *mx, const char *info);
/* Is sender (an envelope MAIL FROM) the reports' own? */
int tlsrpt_is_report(const struct tlsrpt *r, const char *sender);
/* The RFC 8460 result type for a PKIX certificate check's reason ("hostname
 * mismatch" -> certificate-host-mismatch, expired, else certificate-not-trusted). */
const char *tlsrpt_cert_result(const char *reason);

/* ---- tlsrpt_send.c: the reports of a finished period ---- */
struct tlsrpt_send_ctx {
	const struct config *cfg;
	struct event_base *base;
	struct dns *dns;
	struct workers *w;
	struct queue *q;
	struct dkim_keys **dkim;
	char *submitter, *from, *org;  /* tls_rpt_submitter, tls_rpt_from, tls_rpt_org */
};
struct tlsrpt_send;
/* Looks up each domain's rua and queues its report; then done(arg, pd) (pd's to free),
 * from the loop, never from inside this call. */
struct tlsrpt_send *tlsrpt_send_start(const struct tlsrpt_send_ctx *ctx,
				      struct tlsrpt_period *pd,
				      void (*done)(void *arg, struct tlsrpt_period *pd),
				      void *arg);
/* Cancels the lookups in flight; done is not called; pd freed. */
void tlsrpt_send_cancel(struct tlsrpt_send **s);
/* The rua URIs of one _smtp._tls TXT record set (RFC 8460 3): exactly one record
 * beginning "v=TLSRPTv1;", else none. Returns how many URIs (malloc'd each). */
size_t tlsrpt_rua_parse(char *const *txt, size_t n, char ***uris_r);
/* The whole report mail (RFC 8460 5.3), CRLF line ends, malloc'd. Exposed for tests. */
char *tlsrpt_mail_build(const char *from, const char *to, const char *submitter,
			const char *domain, const char *report_id, long long start_ms,
			long long end_ms, const unsigned char *gz, size_t gzlen, size_t *len_r);
/* gzip (RFC 1952) of data; NULL on failure. */
unsigned char *tlsrpt_gzip(const char *data, size_t len, size_t *len_r);

#endif
