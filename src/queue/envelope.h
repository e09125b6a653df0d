/* envelope: what the queue keeps beside the message body: the SMTP envelope, the
 * DSN parameters (RFC 3461) and, per recipient, where it goes and whether it is done. */
#ifndef CURSUS_ENVELOPE_H
#define CURSUS_ENVELOPE_H

#include <stddef.h>
#include <time.h>

#define DSN_NOTIFY_NEVER   0x1
#define DSN_NOTIFY_SUCCESS 0x2
#define DSN_NOTIFY_FAILURE 0x4
#define DSN_NOTIFY_DELAY   0x8

enum dsn_ret { DSN_RET_UNSET, DSN_RET_FULL, DSN_RET_HDRS };
enum body_type { BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };
/* What the sender asked of the TLS on the way (RFC 8689): nothing, MAIL FROM's
 * REQUIRETLS (verified TLS to a next hop that offers REQUIRETLS, every hop on), or the
 * header field "TLS-Required: No" (the recipient's DANE and MTA-STS policies waived).
 * The header field counts only without REQUIRETLS (RFC 8689 4.1). */
enum env_tlsreq { TLSREQ_DEFAULT, TLSREQ_REQUIRETLS, TLSREQ_NO };

/* Where a recipient stands; the queue's journal (queue/qstore.h) records each change. */
enum rcpt_state {
	RCPT_PENDING,      /* not tried yet */
	RCPT_DEFERRED,     /* a temporary failure; tried again at next_attempt */
	RCPT_DELIVERED,    /* final: accepted by the mailbox or a next hop that does DSN */
	RCPT_RELAYED,      /* final: accepted by a next hop without DSN (RFC 3461 "relayed") */
	RCPT_FAILED,       /* final: permanent failure, expiry, or bounced by the admin */
};

struct env_rcpt {
	char *address;     /* as given in RCPT TO, without <> */
	char *orcpt;       /* ORCPT= as "addr-type;xtext-decoded", or NULL */
	unsigned notify;   /* DSN_NOTIFY_* bits, 0 when not given */
	char *mailbox;     /* local delivery target "domain/local-part", NULL if remote */
	int done;          /* final (delivered, relayed or failed); kept across retries */
	/* Delivery state, replayed from the journal; all zero/NULL for a new message. */
	enum rcpt_state state;
	char *route;       /* the route (deliver/route.h text form), NULL until routed */
	unsigned attempts;
	time_t last_attempt;
	time_t next_attempt; /* wall clock; 0: now */
	char status[16];   /* enhanced status code of the last outcome, e.g. "4.4.1" */
	char *diag;        /* the last remote reply or local reason, verbatim; NULL: none */
	char *remote_mta;  /* the host that gave diag, NULL when local */
	int delay_warned;  /* a delay DSN went out for it */
	int notified;      /* its final state was reported (DSN queued), or needs no report */
};

struct envelope {
	char id[24];           /* queue id: 16 hex digits */
	time_t received;       /* arrival time */
	char *helo;
	char *client_addr;     /* numeric address of the client */
	char *mail_from;       /* "" for the null sender */
	char *auth;            /* MAIL AUTH= (decoded), NULL when none */
	enum dsn_ret ret;
	char *envid;           /* ENVID= (decoded) or NULL */
	enum body_type body;
	int smtputf8;
	enum env_tlsreq tlsreq;
	struct env_rcpt *rcpts;
	size_t n_rcpts;
	/* Header fields every delivery sends before the message (its DKIM signatures),
	 * CRLF-terminated; NULL: none. From the queue file's trailer (qfile.h). */
	char *prepend;
};

/* Appends a recipient (strings copied, NULL allowed for optional ones). */
struct env_rcpt *envelope_add_rcpt(struct envelope *env, const char *address,
				   const char *orcpt, unsigned notify, const char *mailbox);
/* Sets *field to a copy of value (NULL allowed), freeing the old one. */
void envelope_set_str(char **field, const char *value);
/* Frees every member and zeroes *env (the struct itself is not freed). */
void envelope_clear(struct envelope *env);

#endif
