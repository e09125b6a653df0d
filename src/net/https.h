/* https: one blocking HTTPS request (libcurl), for a thread that may wait (a worker,
 * cursus-auth's, the admin tool; never an event loop). The one HTTPS client of the
 * tree: the OAuth token endpoint (POST) and MTA-STS policies (GET) both go through it.
 *
 * It promises: https and nothing else is spoken; the certificate is verified (against
 * ca, else the system's store) and must name the URL's host; no redirect is followed
 * (a 3xx is an answer like any other, for the caller to refuse); the whole exchange
 * ends within the timeout; the answer is bounded (a larger one fails the request);
 * nothing of the request body (the OAuth client secret) reaches an error text. */
#ifndef CURSUS_HTTPS_H
#define CURSUS_HTTPS_H

#include <stddef.h>

/* Room enough for any error text https_request writes. */
#define CURSUS_HTTPS_ERR_MAX 320

/* Once, before any thread calls https_request (libcurl's global set-up). */
void https_init(void);

struct https_req {
	const char *url;
	const char *post;          /* application/x-www-form-urlencoded body; NULL: GET */
	const char *accept;        /* Accept: header value, or NULL */
	const char *ca;            /* PEM trust store; NULL: the system's */
	unsigned timeout_ms;       /* the whole exchange, connection included */
	size_t max_answer;         /* a larger body fails the request */
	/* The addresses of the URL's host, numeric ("192.0.2.1", "2001:db8::1"), as the
	 * caller's own resolver found them; n_addrs 0: libcurl resolves the name. The
	 * certificate is still checked against the URL's host. */
	const char *const *addrs;
	size_t n_addrs;
};

enum https_result {
	HTTPS_OK,          /* an HTTP answer (any status) */
	HTTPS_TIMEOUT,     /* no whole answer within the timeout */
	HTTPS_TOO_LARGE,   /* the body exceeded max_answer */
	HTTPS_FAILED,      /* connection or TLS: err says */
	HTTPS_CERT,        /* the server's certificate failed PKIX validation (its name, its
	                    * chain, its dates): err says; kept apart from HTTPS_FAILED for
	                    * TLS-RPT's sts-webpki-invalid (RFC 8460 4.3.2.2) */
};

struct https_answer {
	int status;
	char *body;                /* malloc'd, NUL-terminated; len octets */
	size_t len;
	char content_type[128];    /* as sent, or "" */
};

/* On HTTPS_OK *a is filled (https_answer_clear frees it); otherwise err says why. */
enum https_result https_request(const struct https_req *req, struct https_answer *a, char *err,
				size_t errlen);
/* Frees the body, wiped first (it may hold a token). */
void https_answer_clear(struct https_answer *a);

#endif
