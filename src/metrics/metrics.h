/* metrics: the daemon's counters and gauges, rendered in the Prometheus text
 * exposition format, version 0.0.4 (metrics_http.h serves them).
 *
 * Process-wide, like the log: each event is counted in one line at the place that
 * logs it, without a context threaded through every layer. Until metrics_enable()
 * every call returns at once, so a daemon without metrics_listen pays nothing.
 * Thread-safe (one mutex). Label values come from bounded sets only (listener,
 * mechanism and transport names from the configuration and the code, fixed words),
 * never from a client; a family still keeps at most METRICS_MAX_SERIES series. */
#ifndef CURSUS_METRICS_H
#define CURSUS_METRICS_H

#include <stddef.h>

struct evbuffer;

#define METRICS_MAX_SERIES 512
#define METRICS_MAX_LABELS 3

/* The families; their names, types, help and label names are metrics.c's table. */
enum metric_id {
	METRIC_AUTH,             /* counter: listener, mechanism, result */
	METRIC_SESSIONS,         /* gauge: listener (set at scrape time) */
	METRIC_SESSIONS_TOTAL,   /* counter: listener */
	METRIC_SESSIONS_REFUSED, /* counter: listener, reason */
	METRIC_ACCEPTED,         /* counter: listener */
	METRIC_REJECTED,         /* counter: listener, reason (enum metrics_reject) */
	METRIC_QUEUE_MESSAGES,   /* gauge (set at scrape time) */
	METRIC_QUEUE_RECIPIENTS, /* gauge (set at scrape time) */
	METRIC_QUEUE_OLDEST,     /* gauge, seconds (set at scrape time) */
	METRIC_DELIVERIES,       /* counter: transport, result */
	METRIC_TLS,              /* counter: listener, version */
	METRIC_RELAY_TLS,        /* counter: version, verified */
	METRIC_RELAY_OAUTH_FETCH, /* counter: result (ok, refused, error, timeout) */
	METRIC_RELAY_DANE,       /* counter: result (relay_dane.h's labels without "dane-") */
	METRIC_RELAY_REQUIRETLS, /* counter: result (relay/requiretls.c: sent, not-offered,
				  * unverified, insecure-mx, dsn-without, tls-required-no) */
	METRIC_MTASTS_FETCH,     /* counter: result (mtasts_fetch_result_name) */
	METRIC_MTASTS_FAILURES,  /* counter: mode (enforce, testing), reason */
	METRIC_TLSRPT_SESSIONS,  /* counter: policy (tlsa, sts, no-policy-found), result */
	METRIC_TLSRPT_REPORTS,   /* counter: result (queued, no-rua, dns-error, error) */
	METRIC_START_TIME,       /* gauge, Unix seconds */
	METRIC_BUILD_INFO,       /* gauge 1: libevent, openssl */
	METRIC_STORE_REQUESTS,   /* counter: operation (a round trip to cursus-auth; a
				  * PostgreSQL store only) */
	METRIC_STORE_MICROS,     /* counter: operation, microseconds those took */
	METRIC_STORE_FAILURES,   /* counter: operation (the store could not answer) */
	METRIC__COUNT
};

/* Why a MAIL, RCPT, DATA or BDAT was refused: the reason label of METRIC_REJECTED. */
enum metrics_reject {
	REJECT_PROTOCOL,          /* syntax, parameters, command out of sequence */
	REJECT_AUTH_REQUIRED,     /* submission without AUTH */
	REJECT_SENDER_NOT_OWNED,  /* MAIL FROM an address the user does not own */
	REJECT_RELAY_DENIED,      /* RCPT to another domain without AUTH */
	REJECT_UNKNOWN_USER,      /* RCPT to a local address without a mailbox */
	REJECT_TOO_BIG,           /* SIZE= or the message over max_message_size */
	REJECT_TOO_MANY_RCPTS,    /* over max_recipients */
	REJECT_BAD_MESSAGE,       /* bare CR or LF, a line over max_text_line */
	REJECT_RESOURCES,         /* max_inflight_bytes, a full disk: 452 */
	REJECT_TEMPORARY,         /* a lookup or the queue failed: 451 */
	REJECT_CREDENTIALS_GONE,  /* the login's password was changed or revoked: 421 */
	REJECT__COUNT
};

/* Starts counting (metrics_listen is set); records the start time and build info. */
void metrics_enable(void);
int metrics_enabled(void);
/* Adds delta to the series of family m with these label values (as many as the
 * family has; the rest NULL). A counter only ever gets delta >= 0. */
void metrics_add(enum metric_id m, long long delta, const char *l1, const char *l2, const char *l3);
/* Sets a gauge's series. */
void metrics_set(enum metric_id m, long long value, const char *l1, const char *l2, const char *l3);
/* One refused transaction command, on this listener. */
void metrics_reject(const char *listener, enum metrics_reject why);
/* Maps a delivery's logged result (delivered, relayed, deferred, failed, expired) to
 * METRIC_DELIVERIES' result label (delivered, deferred, bounced) and counts it. */
void metrics_delivery(const char *transport, const char *logged_result);
/* Appends the exposition of every family to out. */
void metrics_render(struct evbuffer *out);
/* Forgets every series (tests, and the end of the daemon). */
void metrics_reset(void);

#endif
