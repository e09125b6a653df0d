/* mtasts_fetch: see mtasts_fetch.h. */
#include "relay/mtasts_fetch.h"

#include <stdio.h>
#include <stdlib.h>

#include "net/https.h"
#include "util/xmalloc.h"

const char *mtasts_fetch_result_name(enum mtasts_fetch_result r)
{
	static const char *const names[] = { "ok",    "timeout", "too-large", "error",
					     "invalid", "error", "invalid" };
	return names[r];
}

const char *mtasts_fetch_rpt_result(enum mtasts_fetch_result r)
{
	switch (r) {
	case MTASTS_FETCH_OK:
		return NULL;
	case MTASTS_FETCH_CERT:
		return "sts-webpki-invalid";
	case MTASTS_FETCH_INVALID:
		return "sts-policy-invalid";
	default:
		/* RFC 8460 4.3.2.2: "a failure to retrieve", a status not 200 included: no
		 * policy was served to be invalid. */
		return "sts-policy-fetch-error";
	}
}

enum mtasts_fetch_result mtasts_fetch(const struct mtasts_fetch_req *req, struct mtasts_policy *p,
				      char **text_r, size_t *len_r, char *why, size_t whylen)
{
	char *url = xasprintf("https://mta-sts.%s/.well-known/mta-sts.txt", req->domain);
	struct https_req hr = {
		.url = url, .accept = "text/plain", .ca = req->ca, .timeout_ms = req->timeout_ms,
		.max_answer = req->max_size, .addrs = req->addrs, .n_addrs = req->n_addrs,
	};
	struct https_answer a;
	char err[CURSUS_HTTPS_ERR_MAX];
	enum mtasts_fetch_result res;
	enum https_result hres;
	const char *bad;

	*text_r = NULL;
	*len_r = 0;
	hres = https_request(&hr, &a, err, sizeof(err));
	if (hres != HTTPS_OK) {
		snprintf(why, whylen, "%s: %s", url, err);
		free(url);
		return hres == HTTPS_TIMEOUT ? MTASTS_FETCH_TIMEOUT
		     : hres == HTTPS_TOO_LARGE ? MTASTS_FETCH_TOO_LARGE
		     : hres == HTTPS_CERT ? MTASTS_FETCH_CERT : MTASTS_FETCH_ERROR;
	}
	if ((bad = mtasts_http_check(a.status, a.content_type))) {
		snprintf(why, whylen, "%s: %s (HTTP %d, %s)", url, bad, a.status,
			 a.content_type[0] ? a.content_type : "no Content-Type");
		res = a.status == 200 ? MTASTS_FETCH_INVALID : MTASTS_FETCH_REFUSED;
	} else if (mtasts_policy_parse(a.body, a.len, p, &bad) < 0) {
		snprintf(why, whylen, "%s: %s", url, bad);
		res = MTASTS_FETCH_INVALID;
	} else {
		*text_r = a.body;
		*len_r = a.len;
		a.body = NULL;
		res = MTASTS_FETCH_OK;
	}
	https_answer_clear(&a);
	free(url);
	return res;
}
