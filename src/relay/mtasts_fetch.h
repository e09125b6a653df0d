/* mtasts_fetch: one MTA-STS policy fetch (RFC 8461 3.3), blocking (a worker thread of
 * the daemon, or the admin tool's probe): GET https://mta-sts.DOMAIN/.well-known/
 * mta-sts.txt over net/https (a PKIX-valid certificate for mta-sts.DOMAIN, no
 * redirects, bounded in time and size), then the answer checked (200, text/plain)
 * and the policy parsed strictly. */
#ifndef CURSUS_MTASTS_FETCH_H
#define CURSUS_MTASTS_FETCH_H

#include <stddef.h>

#include "relay/mtasts_policy.h"

struct mtasts_fetch_req {
	const char *domain;          /* the policy domain, lower case */
	const char *const *addrs;    /* mta-sts.DOMAIN's addresses (numeric); 0: libcurl resolves */
	size_t n_addrs;
	const char *ca;              /* relay_ca, or NULL for the system's store */
	unsigned timeout_ms;
	size_t max_size;
};

enum mtasts_fetch_result {
	MTASTS_FETCH_OK,
	MTASTS_FETCH_TIMEOUT,        /* no whole answer in time */
	MTASTS_FETCH_TOO_LARGE,      /* the body was over max_size */
	MTASTS_FETCH_ERROR,          /* no connection, or the TLS handshake failed */
	MTASTS_FETCH_REFUSED,        /* an answer, but not 200 (a redirect included) */
	MTASTS_FETCH_CERT,           /* the certificate failed PKIX validation */
	MTASTS_FETCH_INVALID,        /* 200, but not text/plain, or not a policy */
};

/* The metric's label and the log's result= value: "ok", "timeout", "too-large",
 * "error" (CERT too), "invalid" (REFUSED too). */
const char *mtasts_fetch_result_name(enum mtasts_fetch_result r);
/* What TLS-RPT calls a failed fetch (RFC 8460 4.3.2.2): "sts-webpki-invalid" (CERT),
 * "sts-policy-invalid" (INVALID), else "sts-policy-fetch-error"; NULL for OK. */
const char *mtasts_fetch_rpt_result(enum mtasts_fetch_result r);

/* On MTASTS_FETCH_OK fills p and *text_r (the policy as served, malloc'd, *len_r);
 * otherwise why says what went wrong, in plain words. */
enum mtasts_fetch_result mtasts_fetch(const struct mtasts_fetch_req *req, struct mtasts_policy *p,
				      char **text_r, size_t *len_r, char *why, size_t whylen);

#endif
