/* dsn: delivery status notifications (RFC 3464 in a multipart/report, RFC 6522) built
 * from a queued message and its recipients' states. Pure: the scheduler decides when
 * a DSN is due and queues what this returns, from the null sender, to env->mail_from. */
#ifndef CURSUS_DSN_H
#define CURSUS_DSN_H

#include <stddef.h>
#include <time.h>

struct envelope;

enum dsn_kind {
	DSN_FAILED,     /* Action: failed (permanent failure, expiry, null MX, admin bounce) */
	DSN_DELAYED,    /* Action: delayed (the delay warning) */
	DSN_DELIVERED,  /* Action: delivered (NOTIFY=SUCCESS, final delivery) */
	DSN_RELAYED,    /* Action: relayed (NOTIFY=SUCCESS, next hop without DSN) */
};

struct dsn_item {
	size_t rcpt;               /* index into env->rcpts: its status, diag, remote_mta */
	enum dsn_kind kind;
};

struct dsn_params {
	const char *reporting_mta; /* our hostname */
	const char *msgid_domain;  /* for the DSN's Message-ID: our hostname */
	time_t now;
	time_t retry_until;        /* DELAYED: when we give up (Will-Retry-Until) */
	/* Nonzero: body is only the first part (whole lines) of a message this big, cut at
	 * bounce_size_limit, and only its header is returned, as Postfix does. */
	size_t orig_size;
};

/* Whether rcpt r wants a DSN of kind (its NOTIFY, RFC 3461 defaults: failure and delay
 * when NOTIFY is absent; never for NEVER), and whether env allows one at all (never to
 * the null sender). */
int dsn_wanted(const struct envelope *env, size_t rcpt, enum dsn_kind kind);

/* The whole DSN message (header and body, CRLF line ends), malloc'd, *len_r its length:
 * From: MAILER-DAEMON@reporting_mta, To: the envelope sender, a plain-words text part
 * first, then message/delivery-status (Reporting-MTA, Original-Envelope-Id, Arrival-Date;
 * per recipient Original-Recipient, Final-Recipient, Action, Status, Remote-MTA,
 * Diagnostic-Code with the remote reply verbatim, Last-Attempt-Date, Will-Retry-Until),
 * then the original message (message/rfc822), or only its header
 * (text/rfc822-headers) for RET=HDRS, a REQUIRETLS message (RFC 8689 5) or a message
 * cut (orig_size). Several items make
 * one DSN. */
char *dsn_build(const struct envelope *env, const char *body, size_t bodylen,
		const struct dsn_item *items, size_t n_items, const struct dsn_params *p,
		size_t *len_r);

#endif
