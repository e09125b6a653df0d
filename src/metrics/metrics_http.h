/* metrics_http: the metrics_listen endpoint. libevent's evhttp on the daemon's event
 * loop answers GET /metrics with metrics_render()'s exposition, anything else with
 * 404, any other method with 405; requests have a bounded size and a timeout. */
#ifndef CURSUS_METRICS_HTTP_H
#define CURSUS_METRICS_HTTP_H

struct event_base;
struct metrics_http;

/* Called on the loop before each exposition, to set the gauges read at scrape time. */
typedef void (*metrics_collect_fn)(void *arg);

/* Binds host:port (a numeric address; port as written in the configuration). Returns
 * NULL and a malloc'd reason in *err when it cannot. */
struct metrics_http *metrics_http_create(struct event_base *base, const char *host, const char *port,
					 unsigned timeout_ms, metrics_collect_fn collect, void *arg,
					 char **err);
void metrics_http_destroy(struct metrics_http **mh);

#endif
