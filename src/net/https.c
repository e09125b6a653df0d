/* https: see https.h. */
#include "net/https.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct https_buf {
	char *p;
	size_t len, max;
	int over;
};

void https_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t https_write(char *data, size_t size, size_t n, void *arg)
{
	struct https_buf *b = arg;
	size_t add = size * n;
	if (b->len + add > b->max) {
		b->over = 1;
		return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
	}
	b->p = xrealloc(b->p, b->len + add + 1);
	memcpy(b->p + b->len, data, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

/* "host:port:addr,addr" for CURLOPT_RESOLVE, from the URL's host and port; NULL when
 * the URL cannot be taken apart (libcurl then refuses it itself). */
static char *https_resolve_entry(const char *url, const char *const *addrs, size_t n)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *entry = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		entry = xasprintf("%s:%s:", host, port);
		for (size_t i = 0; i < n; i++) {
			int v6 = strchr(addrs[i], ':') != NULL;
			char *e = xasprintf("%s%s%s%s%s", entry, i ? "," : "", v6 ? "[" : "",
					    addrs[i], v6 ? "]" : "");
			free(entry);
			entry = e;
		}
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return entry;
}

enum https_result https_request(const struct https_req *req, struct https_answer *a, char *err,
				size_t errlen)
{
	struct https_buf b = { .max = req->max_answer };
	struct curl_slist *hdrs = NULL, *resolve = NULL;
	char cerr[CURL_ERROR_SIZE] = "", *entry = NULL, *accept = NULL, *ctype = NULL;
	enum https_result res = HTTPS_FAILED;
	long status = 0;
	CURLcode rc;
	CURL *h = curl_easy_init();

	memset(a, 0, sizeof(*a));
	if (!h) {
		snprintf(err, errlen, "cannot start an HTTP client");
		return HTTPS_FAILED;
	}
	if (req->accept) {
		accept = xasprintf("Accept: %s", req->accept);
		hdrs = curl_slist_append(hdrs, accept);
	}
	if (req->n_addrs) {
		if (!(entry = https_resolve_entry(req->url, req->addrs, req->n_addrs))) {
			snprintf(err, errlen, "not a URL libcurl can use");
			curl_easy_cleanup(h);
			free(accept);
			curl_slist_free_all(hdrs);
			return HTTPS_FAILED;
		}
		resolve = curl_slist_append(resolve, entry);
		curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
	}
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	/* RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed"; and the OAuth client
	 * secret goes nowhere but the URL configured. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (req->ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, req->ca);
	if (req->post)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->post);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "cursus");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)req->timeout_ms);
	/* Threads: no signals for timeouts (libcurl's threaded resolver keeps them). */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, https_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
			snprintf(a->content_type, sizeof(a->content_type), "%s", ctype);
		a->status = (int)status;
		a->body = b.p ? b.p : xstrdup("");
		a->len = b.len;
		b.p = NULL;
		res = HTTPS_OK;
	} else if (b.over) {
		snprintf(err, errlen, "answer larger than %zu octets", req->max_answer);
		res = HTTPS_TOO_LARGE;
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		if (req->timeout_ms % 1000 == 0)
			snprintf(err, errlen, "no answer within %u s", req->timeout_ms / 1000);
		else
			snprintf(err, errlen, "no answer within %u ms", req->timeout_ms);
		res = HTTPS_TIMEOUT;
	} else {
		/* libcurl's text names the host and the TLS problem, never the body. Every
		 * failed verification, name included, is this one code (CURLE_SSL_CACERT is
		 * its old name); a CA file of ours that cannot be read is not. */
		snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
		if (rc == CURLE_PEER_FAILED_VERIFICATION)
			res = HTTPS_CERT;
	}
	if (b.p)
		xfree_secret(b.p, b.len);
	curl_slist_free_all(hdrs);
	curl_slist_free_all(resolve);
	free(entry);
	free(accept);
	curl_easy_cleanup(h);
	return res;
}

void https_answer_clear(struct https_answer *a)
{
	if (a->body)
		xfree_secret(a->body, a->len);
	memset(a, 0, sizeof(*a));
}
