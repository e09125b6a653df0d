/* oauth_http: see oauth_http.h. */
#include "oauth/oauth_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct oauth_http_buf {
	char *p;
	size_t len;
	int over;
};

void oauth_http_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t oauth_http_write(char *data, size_t size, size_t n, void *arg)
{
	struct oauth_http_buf *b = arg;
	size_t add = size * n;
	if (b->len + add > OAUTH_HTTP_ANSWER_MAX) {
		b->over = 1;
		return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
	}
	b->p = xrealloc(b->p, b->len + add + 1);
	memcpy(b->p + b->len, data, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

enum oauth_http_result oauth_http_post(const char *url, const char *body, const char *ca,
				       unsigned timeout_ms, int *status_r, char **answer_r,
				       size_t *len_r, char *err, size_t errlen)
{
	struct oauth_http_buf b = {0};
	struct curl_slist *hdrs = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	enum oauth_http_result res = OAUTH_HTTP_FAILED;
	long status = 0;
	CURLcode rc;
	CURL *h = curl_easy_init();

	*answer_r = NULL;
	*len_r = 0;
	*status_r = 0;
	if (!h) {
		snprintf(err, errlen, "cannot start an HTTP client");
		return OAUTH_HTTP_FAILED;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	/* The client secret goes nowhere but an https URL, and not on elsewhere. */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "cursus");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	/* Threads: no signals for timeouts (libcurl's threaded resolver keeps them). */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, oauth_http_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		*status_r = (int)status;
		*answer_r = b.p ? b.p : xstrdup("");
		*len_r = b.len;
		b.p = NULL;
		res = OAUTH_HTTP_OK;
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "no answer within %u ms", timeout_ms);
		res = OAUTH_HTTP_TIMEOUT;
	} else if (b.over) {
		snprintf(err, errlen, "answer larger than %d octets", OAUTH_HTTP_ANSWER_MAX);
	} else {
		/* libcurl's text names the host and the TLS problem, never the body. */
		snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
	}
	if (b.p)
		xfree_secret(b.p, b.len);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return res;
}
