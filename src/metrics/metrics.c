/* metrics: see metrics.h. The families are data (name, type, help, labels); a series
 * is found by its label values in a short list per family. Families are few and their
 * series a few dozen, so a list walk under one mutex costs less than the log line
 * written beside each count. */
#include "metrics/metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/xmalloc.h"

struct metric_def {
	const char *name;
	const char *type;        /* "counter" or "gauge" */
	const char *help;
	const char *labels[METRICS_MAX_LABELS];
};

static const struct metric_def metric_defs[METRIC__COUNT] = {
	[METRIC_AUTH] = {"cursus_auth_attempts_total", "counter",
			 "SMTP AUTH attempts by listener, mechanism and result (as in the auth log line).",
			 {"listener", "mechanism", "result"}},
	[METRIC_SESSIONS] = {"cursus_sessions", "gauge", "SMTP sessions open now.", {"listener"}},
	[METRIC_SESSIONS_TOTAL] = {"cursus_sessions_total", "counter", "SMTP sessions accepted.",
				   {"listener"}},
	[METRIC_SESSIONS_REFUSED] = {"cursus_sessions_refused_total", "counter",
				     "Connections refused or closed at connect, by reason.",
				     {"listener", "reason"}},
	[METRIC_ACCEPTED] = {"cursus_messages_accepted_total", "counter",
			     "Messages accepted into the queue.", {"listener"}},
	[METRIC_REJECTED] = {"cursus_messages_rejected_total", "counter",
			     "Refused MAIL, RCPT, DATA and BDAT commands and messages, by reason.",
			     {"listener", "reason"}},
	[METRIC_QUEUE_MESSAGES] = {"cursus_queue_messages", "gauge", "Messages in the queue.", {NULL}},
	[METRIC_QUEUE_RECIPIENTS] = {"cursus_queue_recipients", "gauge",
				     "Recipients in the queue not yet delivered or bounced.", {NULL}},
	[METRIC_QUEUE_OLDEST] = {"cursus_queue_oldest_message_age_seconds", "gauge",
				 "Age of the oldest message in the queue (0: empty).", {NULL}},
	[METRIC_DELIVERIES] = {"cursus_deliveries_total", "counter",
			       "Delivery attempts per recipient, by transport and result.",
			       {"transport", "result"}},
	[METRIC_TLS] = {"cursus_tls_handshakes_total", "counter",
			"Completed TLS handshakes of SMTP sessions, by listener and protocol version.",
			{"listener", "version"}},
	[METRIC_RELAY_TLS] = {"cursus_relay_tls_handshakes_total", "counter",
			      "Completed TLS handshakes of outbound SMTP connections, by protocol version "
			      "and whether the certificate verified.",
			      {"version", "verified"}},
	[METRIC_RELAY_OAUTH_FETCH] = {"cursus_relay_oauth_token_fetches_total", "counter",
				      "Requests to OAuth 2 token endpoints for relay credentials, by "
				      "result (ok, refused, error, timeout).",
				      {"result"}},
	[METRIC_RELAY_DANE] = {"cursus_relay_dane_total", "counter",
			       "DANE (RFC 7672) decisions for next-hop connections under relay_tls dane, "
			       "dane-only or auto, by result (verified, unusable, insecure, no-tlsa, "
			       "mismatch, no-starttls, bogus, tempfail, required).",
			       {"result"}},
	[METRIC_RELAY_REQUIRETLS] = {"cursus_relay_requiretls_total", "counter",
				     "RFC 8689 at next hops: MAIL FROM with REQUIRETLS sent, a REQUIRETLS "
				     "message refused by result (not-offered, unverified, insecure-mx), a "
				     "report sent without it (dsn-without), and connections relaxed by "
				     "TLS-Required: No (tls-required-no).",
				     {"result"}},
	[METRIC_MTASTS_FETCH] = {"cursus_mta_sts_policy_fetches_total", "counter",
				 "MTA-STS policy fetches over HTTPS, by result (ok, timeout, too-large, "
				 "error, invalid).",
				 {"result"}},
	[METRIC_MTASTS_FAILURES] = {"cursus_mta_sts_failures_total", "counter",
				    "MX hosts that failed a domain's MTA-STS policy, by its mode "
				    "(enforce: not used; testing: used, reported) and reason.",
				    {"mode", "reason"}},
	[METRIC_TLSRPT_SESSIONS] = {"cursus_tls_rpt_sessions_total", "counter",
				    "Outbound sessions counted for SMTP TLS reports (RFC 8460), by "
				    "policy type and result (success or the RFC 8460 result type).",
				    {"policy", "result"}},
	[METRIC_TLSRPT_REPORTS] = {"cursus_tls_rpt_reports_total", "counter",
				   "SMTP TLS reports (RFC 8460) per policy domain and period, by "
				   "result (queued, no-rua, dns-error, error).",
				   {"result"}},
	[METRIC_START_TIME] = {"cursus_start_time_seconds", "gauge",
			       "Start time of the daemon since the Unix epoch.", {NULL}},
	[METRIC_BUILD_INFO] = {"cursus_build_info", "gauge",
			       "Always 1; the libraries the daemon runs with, as labels.",
			       {"libevent", "openssl"}},
	/* Latency as a sum and a count (rate(sum)/rate(count) is the mean), so no
	 * histogram buckets need choosing; operation is a fixed word (auth_client.c). */
	[METRIC_STORE_REQUESTS] = {"cursus_store_requests_total", "counter",
				   "Requests to the user store (through cursus-auth).", {"operation"}},
	[METRIC_STORE_MICROS] = {"cursus_store_request_microseconds_total", "counter",
				 "Time those requests took, in microseconds.", {"operation"}},
	[METRIC_STORE_FAILURES] = {"cursus_store_failures_total", "counter",
				   "Requests the user store could not answer (451/454 to the client).",
				   {"operation"}},
};

static const char *const reject_names[REJECT__COUNT] = {
	[REJECT_AUTH_REQUIRED] = "auth-required",
	[REJECT_SENDER_NOT_OWNED] = "sender-not-owned",
	[REJECT_RELAY_DENIED] = "relay-denied",
	[REJECT_UNKNOWN_USER] = "unknown-user",
	[REJECT_TOO_BIG] = "too-big",
	[REJECT_TOO_MANY_RCPTS] = "too-many-recipients",
	[REJECT_BAD_MESSAGE] = "bad-message",
	[REJECT_PROTOCOL] = "protocol",
	[REJECT_RESOURCES] = "resources",
	[REJECT_TEMPORARY] = "temporary",
	[REJECT_CREDENTIALS_GONE] = "credentials-withdrawn",
};

struct series {
	struct series *next;
	long long value;
	char *labels[METRICS_MAX_LABELS];
};

struct family {
	struct series *head, *tail;  /* in order of creation, so the output is stable */
	size_t n;
	int overflow_logged;
};

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static struct family families[METRIC__COUNT];
static atomic_int metrics_on;

static size_t metric_nlabels(enum metric_id m)
{
	size_t n = 0;
	while (n < METRICS_MAX_LABELS && metric_defs[m].labels[n])
		n++;
	return n;
}

static int labels_equal(const struct series *s, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->labels[i], v[i]) != 0)
			return 0;
	return 1;
}

/* Under the mutex. NULL when the family is full. */
static struct series *series_get(enum metric_id m, const char *l1, const char *l2, const char *l3)
{
	const char *v[METRICS_MAX_LABELS] = {l1, l2, l3};
	size_t n = metric_nlabels(m);
	struct family *f = &families[m];
	struct series *s;

	for (size_t i = 0; i < n; i++)
		if (!v[i])
			v[i] = "";
	for (s = f->head; s; s = s->next)
		if (labels_equal(s, v, n))
			return s;
	if (f->n >= METRICS_MAX_SERIES) {
		if (!f->overflow_logged)
			log_warnx("metrics name=%s event=series-limit limit=%d (further series dropped)",
				  metric_defs[m].name, METRICS_MAX_SERIES);
		f->overflow_logged = 1;
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	for (size_t i = 0; i < n; i++)
		s->labels[i] = xstrdup(v[i]);
	if (f->tail)
		f->tail->next = s;
	else
		f->head = s;
	f->tail = s;
	f->n++;
	return s;
}

static void metrics_update(enum metric_id m, int set, long long v, const char *l1, const char *l2,
			   const char *l3)
{
	struct series *s;
	if (!atomic_load_explicit(&metrics_on, memory_order_relaxed) || (unsigned)m >= METRIC__COUNT)
		return;
	pthread_mutex_lock(&metrics_mu);
	if ((s = series_get(m, l1, l2, l3)))
		s->value = set ? v : s->value + v;
	pthread_mutex_unlock(&metrics_mu);
}

void metrics_add(enum metric_id m, long long delta, const char *l1, const char *l2, const char *l3)
{
	metrics_update(m, 0, delta, l1, l2, l3);
}

void metrics_set(enum metric_id m, long long value, const char *l1, const char *l2, const char *l3)
{
	metrics_update(m, 1, value, l1, l2, l3);
}

void metrics_reject(const char *listener, enum metrics_reject why)
{
	if ((unsigned)why < REJECT__COUNT)
		metrics_add(METRIC_REJECTED, 1, listener, reject_names[why], NULL);
}

void metrics_delivery(const char *transport, const char *logged)
{
	const char *result = strcmp(logged, "delivered") == 0 || strcmp(logged, "relayed") == 0
				     ? "delivered"
			     : strcmp(logged, "deferred") == 0 ? "deferred"
							       : "bounced";
	metrics_add(METRIC_DELIVERIES, 1, transport, result, NULL);
}

void metrics_enable(void)
{
	atomic_store(&metrics_on, 1);
	metrics_set(METRIC_START_TIME, (long long)time(NULL), NULL, NULL, NULL);
	metrics_set(METRIC_BUILD_INFO, 1, event_get_version(), OpenSSL_version(OPENSSL_VERSION), NULL);
}

int metrics_enabled(void)
{
	return atomic_load(&metrics_on);
}

/* Exposition 0.0.4: a label value escapes backslash, double quote and line feed. */
static void label_value_add(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*v == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

void metrics_render(struct evbuffer *out)
{
	pthread_mutex_lock(&metrics_mu);
	for (int m = 0; m < METRIC__COUNT; m++) {
		const struct metric_def *d = &metric_defs[m];
		size_t n = metric_nlabels(m);
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
		for (const struct series *s = families[m].head; s; s = s->next) {
			evbuffer_add_printf(out, "%s", d->name);
			for (size_t i = 0; i < n; i++) {
				evbuffer_add_printf(out, "%s%s=\"", i ? "," : "{", d->labels[i]);
				label_value_add(out, s->labels[i]);
				evbuffer_add(out, "\"", 1);
			}
			evbuffer_add_printf(out, "%s %lld\n", n ? "}" : "", s->value);
		}
	}
	pthread_mutex_unlock(&metrics_mu);
}

void metrics_reset(void)
{
	pthread_mutex_lock(&metrics_mu);
	for (int m = 0; m < METRIC__COUNT; m++) {
		struct series *s = families[m].head, *next;
		for (; s; s = next) {
			next = s->next;
			for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
				free(s->labels[i]);
			free(s);
		}
		memset(&families[m], 0, sizeof(families[m]));
	}
	pthread_mutex_unlock(&metrics_mu);
}
