/* metrics_http: see metrics_http.h. evhttp parses the requests (a well-kept HTTP/1.1
 * server already linked with libevent); this file only routes them. */
#include "metrics/metrics_http.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* A scrape is a GET without a body: its header fits in far less. */
#define METRICS_MAX_HEADERS 8192
#define METRICS_MAX_BODY 0

struct metrics_http {
	struct evhttp *http;
	metrics_collect_fn collect;
	void *arg;
};

static void metrics_http_send(struct evhttp_request *req, int code, const char *reason,
			      const char *type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_send_reply(req, code, reason, body);
}

/* Answers anything but GET with 405 (RFC 9110 15.5.6, with the Allow it requires);
 * returns whether it did. */
static int metrics_http_not_get(struct evhttp_request *req)
{
	struct evbuffer *b;
	if (evhttp_request_get_command(req) == EVHTTP_REQ_GET)
		return 0;
	b = evbuffer_new();
	evbuffer_add_printf(b, "method not allowed: only GET\n");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
	metrics_http_send(req, HTTP_BADMETHOD, "Method Not Allowed", "text/plain; charset=utf-8", b);
	evbuffer_free(b);
	return 1;
}

static void metrics_http_not_found(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b;
	if (metrics_http_not_get(req))
		return;
	b = evbuffer_new();
	evbuffer_add_printf(b, "not found: only /metrics is served\n");
	metrics_http_send(req, HTTP_NOTFOUND, "Not Found", "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

static void metrics_http_metrics(struct evhttp_request *req, void *arg)
{
	struct metrics_http *mh = arg;
	struct evbuffer *b;

	if (metrics_http_not_get(req))
		return;
	b = evbuffer_new();
	if (mh->collect)
		mh->collect(mh->arg);
	metrics_render(b);
	metrics_http_send(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

struct metrics_http *metrics_http_create(struct event_base *base, const char *host, const char *port,
					 unsigned timeout_ms, metrics_collect_fn collect, void *arg,
					 char **err)
{
	struct metrics_http *mh = xcalloc(1, sizeof(*mh));
	struct timeval tv = {timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000};
	char *end;
	unsigned long p = strtoul(port, &end, 10);

	if (*end || p == 0 || p > 65535) {
		*err = xasprintf("metrics_listen: bad port %s", port);
		free(mh);
		return NULL;
	}
	mh->collect = collect;
	mh->arg = arg;
	if (!(mh->http = evhttp_new(base)))
		fatalx("metrics: cannot create the HTTP server");
	/* Every method reaches the callbacks, which refuse all but GET with a 405: what
	 * evhttp would say itself, 501, means a method the server does not know. */
	evhttp_set_allowed_methods(mh->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
						     EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(mh->http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(mh->http, METRICS_MAX_BODY);
	evhttp_set_timeout_tv(mh->http, &tv);
	evhttp_set_cb(mh->http, "/metrics", metrics_http_metrics, mh);
	evhttp_set_gencb(mh->http, metrics_http_not_found, mh);
	if (!evhttp_bind_socket_with_handle(mh->http, host, (ev_uint16_t)p)) {
		*err = xasprintf("metrics_listen: cannot listen on %s port %s", host, port);
		metrics_http_destroy(&mh);
		return NULL;
	}
	log_info("listen name=metrics role=metrics address=%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
		 strchr(host, ':') ? "]" : "", port);
	return mh;
}

void metrics_http_destroy(struct metrics_http **mhp)
{
	struct metrics_http *mh = *mhp;
	if (!mh)
		return;
	if (mh->http)
		evhttp_free(mh->http);
	free(mh);
	*mhp = NULL;
}
