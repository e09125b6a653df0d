/* Tests of metrics: nothing counted until enabled, series by label values, label
 * escaping, the per-family series bound, the delivery result mapping, and the exact
 * text of a family in the exposition. */
#include "unit.h"
#include "metrics/metrics.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>

/* The exposition as a malloc'd string. */
static char *render(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;
	metrics_render(b);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static int has(const char *text, const char *line)
{
	return strstr(text, line) != NULL;
}

void unit_main(void)
{
	char *t, name[32];
	int lines = 0;

	/* Off: nothing is kept. */
	metrics_add(METRIC_SESSIONS_TOTAL, 1, "smtp", NULL, NULL);
	t = render();
	CHECK(!metrics_enabled() && !has(t, "cursus_sessions_total{"));
	CHECK(has(t, "# HELP cursus_sessions_total SMTP sessions accepted.\n"
		     "# TYPE cursus_sessions_total counter\n# HELP"));
	free(t);

	metrics_enable();
	CHECK(metrics_enabled());
	metrics_add(METRIC_SESSIONS_TOTAL, 1, "smtp", NULL, NULL);
	metrics_add(METRIC_SESSIONS_TOTAL, 2, "smtp", NULL, NULL);
	metrics_add(METRIC_SESSIONS_TOTAL, 0, "submission", NULL, NULL);
	metrics_set(METRIC_SESSIONS, 7, "smtp", NULL, NULL);
	metrics_set(METRIC_SESSIONS, 5, "smtp", NULL, NULL);
	metrics_set(METRIC_QUEUE_MESSAGES, 42, NULL, NULL, NULL);
	metrics_add(METRIC_AUTH, 1, "submission", "PLAIN", "fail");
	metrics_add(METRIC_AUTH, 1, "submission", "PLAIN", "ok");
	metrics_add(METRIC_AUTH, 1, "submission", "PLAIN", "fail");
	metrics_reject("smtp", REJECT_RELAY_DENIED);
	metrics_reject("smtp", REJECT_PROTOCOL);
	metrics_reject("smtp", (enum metrics_reject)999); /* ignored */
	metrics_delivery("maildir", "delivered");
	metrics_delivery("smtp", "relayed");
	metrics_delivery("smtp", "deferred");
	metrics_delivery("smtp", "failed");
	metrics_delivery("smtp", "expired");
	/* Escaped as the format says: backslash, double quote, line feed. */
	metrics_add(METRIC_TLS, 1, "a\"b\\c\nd", "TLSv1.3", NULL);
	t = render();
	CHECK(has(t, "# HELP cursus_sessions_total SMTP sessions accepted.\n"
		     "# TYPE cursus_sessions_total counter\n"
		     "cursus_sessions_total{listener=\"smtp\"} 3\n"
		     "cursus_sessions_total{listener=\"submission\"} 0\n# HELP"));
	CHECK(has(t, "\ncursus_sessions{listener=\"smtp\"} 5\n"));
	CHECK(has(t, "\ncursus_queue_messages 42\n"));
	CHECK(has(t, "\ncursus_auth_attempts_total{listener=\"submission\",mechanism=\"PLAIN\",result=\"fail\"} 2\n"
		     "cursus_auth_attempts_total{listener=\"submission\",mechanism=\"PLAIN\",result=\"ok\"} 1\n"));
	CHECK(has(t, "\ncursus_messages_rejected_total{listener=\"smtp\",reason=\"relay-denied\"} 1\n"
		     "cursus_messages_rejected_total{listener=\"smtp\",reason=\"protocol\"} 1\n# HELP"));
	CHECK(has(t, "\ncursus_deliveries_total{transport=\"maildir\",result=\"delivered\"} 1\n"
		     "cursus_deliveries_total{transport=\"smtp\",result=\"delivered\"} 1\n"
		     "cursus_deliveries_total{transport=\"smtp\",result=\"deferred\"} 1\n"
		     "cursus_deliveries_total{transport=\"smtp\",result=\"bounced\"} 2\n"));
	CHECK(has(t, "\ncursus_tls_handshakes_total{listener=\"a\\\"b\\\\c\\nd\",version=\"TLSv1.3\"} 1\n"));
	CHECK(has(t, "\ncursus_build_info{libevent=\""));
	CHECK(has(t, "\ncursus_start_time_seconds 1"));
	CHECK(t[strlen(t) - 1] == '\n');
	free(t);

	/* A family keeps at most METRICS_MAX_SERIES series; counting goes on for those. */
	metrics_reset();
	for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(name, sizeof(name), "l%d", i);
		metrics_add(METRIC_ACCEPTED, 1, name, NULL, NULL);
	}
	metrics_add(METRIC_ACCEPTED, 1, "l0", NULL, NULL);
	t = render();
	for (const char *p = t; (p = strstr(p, "\ncursus_messages_accepted_total{")); p++)
		lines++;
	CHECK(lines == METRICS_MAX_SERIES);
	CHECK(has(t, "\ncursus_messages_accepted_total{listener=\"l0\"} 2\n"));
	CHECK(!has(t, "listener=\"l512\""));
	free(t);
	metrics_reset();
}
