/* oauth_http: one POST to an OAuth token endpoint over HTTPS (libcurl), blocking, so
 * for a thread that may wait (cursus-auth's, never an event loop). The certificate
 * is verified (against ca, else the system's store) and must name the host; no
 * redirect is followed, no other protocol than https is spoken, the whole exchange
 * ends within the timeout, and the answer is bounded. Nothing of the request (it
 * holds the client secret and refresh token) reaches a log or an error text. */
#ifndef CURSUS_OAUTH_HTTP_H
#define CURSUS_OAUTH_HTTP_H

#include <stddef.h>

/* A token endpoint's answer is a small JSON object. */
#define OAUTH_HTTP_ANSWER_MAX (64 * 1024)

/* Once, before any thread calls oauth_http_post (libcurl's global set-up). */
void oauth_http_init(void);

enum oauth_http_result {
	OAUTH_HTTP_OK,          /* an HTTP answer (any status) */
	OAUTH_HTTP_TIMEOUT,     /* no whole answer within the timeout */
	OAUTH_HTTP_FAILED,      /* connection, TLS, or an answer too large: err says */
};

/* POSTs body (application/x-www-form-urlencoded) to url. On OAUTH_HTTP_OK *status_r
 * and *answer_r (malloc'd, NUL-terminated, length in *len_r); otherwise err. */
enum oauth_http_result oauth_http_post(const char *url, const char *body, const char *ca,
				       unsigned timeout_ms, int *status_r, char **answer_r,
				       size_t *len_r, char *err, size_t errlen);

#endif
