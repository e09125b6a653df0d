/* transport: one interface for every way a message leaves the queue (Maildir, SMTP,
 * LMTP). The scheduler hands a transport one delivery: one message, the
 * recipients of it that share one destination; the transport fills in a result per
 * recipient and calls done on the loop thread. Transports never touch queue files and
 * never log per-recipient outcomes: the scheduler records and logs them in one place.
 * Blocking file work runs on worker threads; network work is event-driven. */
#ifndef CURSUS_TRANSPORT_H
#define CURSUS_TRANSPORT_H

#include <stddef.h>

#include "queue/qstore.h"
#include "route/route.h"

struct config;
struct envelope;

enum delivery_result {
	DR_NONE,        /* not tried (the transport never got to it): counts as deferred */
	DR_DELIVERED,   /* accepted; final */
	DR_TEMPFAIL,    /* try again later */
	DR_PERMFAIL,    /* final failure: bounce */
};

struct delivery_rcpt {
	size_t index;                 /* into env->rcpts */
	enum delivery_result result;
	char status[16];              /* enhanced status code, e.g. "2.0.0", "5.1.1" */
	char *diag;                   /* the remote reply verbatim ("550 5.1.1 <x>: unknown")
				       * or a local reason; malloc'd, owned by the delivery */
};

struct delivery {
	const char *id;
	const struct envelope *env;
	const struct route *route;    /* the destination's: every rcpt here has it */
	const char *sender;           /* env->mail_from ("" for the null sender) */
	const struct relay_policy *policy; /* MX, RELAY, LMTP: TLS policy (router_policy()) */
	/* RELAY with credentials for this next hop and sender (looked up by the scheduler
	 * on a worker): sent only as relay_policy allows. NULL otherwise. A transport that
	 * reuses connections keys them by destination and auth_user. */
	const char *auth_user;
	const char *auth_password;    /* for OAuth: the access token */
	const char *auth_mech;        /* OAuth: "XOAUTH2" or "OAUTHBEARER"; NULL: a password */
	/* Set by the transport: the next hop refused the OAuth token (535, or the error
	 * challenge); the scheduler fetches a fresh one and tries once more. */
	int auth_rejected;
	/* The message as queued (CRLF line ends), checked and open, never in memory:
	 * transports read it in bounded blocks with qbody_read() (on worker threads). */
	struct qbody body;
	/* Received: header fields in its header (counted when it was opened). */
	unsigned hops;
	size_t n_rcpts;
	struct delivery_rcpt *rcpts;
	/* Filled by the transport, for the log and the DSN: */
	char *remote_host;            /* the host that answered last (NULL: local / none) */
	char *remote_addr;            /* its address */
	char *tls;                    /* "TLSv1.3" or NULL for clear text */
	int tls_verified;             /* the certificate verified */
	/* How the TLS policy was met, when it needed more than the words of relay_tls
	 * (static text, NULL otherwise): "dane-verified", "dane-unusable", ... */
	const char *tls_policy;
	int dsn_passed;               /* the next hop took DSN parameters (else "relayed") */
	/* Whether the destination itself worked: 0 when it could not be reached or refused
	 * the whole session (connection refused, 421, TLS failure, DNS failure): the
	 * scheduler backs the destination off, not just this message. */
	int dest_ok;
};

typedef void (*delivery_done_fn)(struct delivery *d, void *arg);

struct transport {
	const char *name;             /* "maildir", "smtp", "lmtp" */
	/* Starts the delivery; done is called later on the loop thread, exactly once,
	 * with a result for every rcpt (DR_NONE counts as a temporary failure). */
	void (*deliver)(struct transport *t, struct delivery *d, delivery_done_fn done, void *arg);
	/* Connections cached for reuse get their QUIT queued and close as the loop runs
	 * on; deliveries in flight are dropped without calling their done (whoever
	 * would receive it, the scheduler, is being destroyed too). */
	void (*destroy)(struct transport *t);
	/* Optional: the configuration of deliveries started from now on (a reload).
	 * Those in flight, and connections kept for reuse, keep theirs. Loop thread. */
	void (*reconfigure)(struct transport *t, const struct config *cfg);
};

/* Frees what the transport put in d (diag strings, remote_*, tls), not d itself. */
void transport_delivery_clear(struct delivery *d);
/* Sets rcpt's outcome (diag copied). */
void transport_delivery_set(struct delivery_rcpt *r, enum delivery_result res, const char *status,
		  const char *diag);

/* How many Received: header fields the body's header has (the loop check); reads the
 * file, so on a worker thread. */
unsigned delivery_count_hops(const struct qbody *b);

struct config;
struct workers;
struct event_base;
struct dns;

/* Maildir under cfg->mail_dir, on worker threads. */
struct transport *transport_maildir_create(const struct config *cfg, struct workers *w);
/* SMTP to MX hosts and smart hosts (relay/smtp_transport.c); the body is read on w. */
struct transport *transport_smtp_create(const struct config *cfg, struct event_base *base,
					struct dns *dns, struct workers *w);
/* TLS-RPT (relay/tlsrpt.h) counts the SMTP transport's MX connections into r. */
struct tlsrpt;
void transport_smtp_set_tlsrpt(struct transport *t, struct tlsrpt *r);
/* LMTP (RFC 2033) to the server of a ROUTE_LMTP route, a UNIX socket or a TCP address
 * or host name (looked up through dns): the SMTP transport's connections, cache, STARTTLS
 * and body streaming with LHLO and one reply per recipient after the final dot
 * (relay/smtp_transport.c). */
struct transport *transport_lmtp_create(const struct config *cfg, struct event_base *base,
					struct dns *dns, struct workers *w);

#endif
