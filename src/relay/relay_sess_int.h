/* relay_sess_int: one relay session's state, shared by its modules (relay_session.c,
 * relay_setup.c, relay_tx.c); smtp_transport.c sees only relay_int.h. */
#ifndef CURSUS_RELAY_SESS_INT_H
#define CURSUS_RELAY_SESS_INT_H

#include <stddef.h>

#include "client/smtpc.h"
#include "net/tls_client.h"
#include "relay/mtasts.h"
#include "relay/relay_int.h"
#include "util/log.h"

enum phase {
	PH_GREETING, PH_EHLO1, PH_STARTTLS, PH_EHLO2, PH_AUTH, PH_IDLE,
	PH_TX,          /* MAIL, RCPT, DATA replies, by index */
	PH_DOT,         /* the reply to the final dot */
	PH_DOT_DISCARD, /* 354 though no RCPT was taken: an empty message, reply ignored */
	PH_RSET, PH_QUIT,
};

struct relay_sess {
	struct smtp_transport *t;
	const struct config *cfg;
	struct relay_job *job;
	struct smtpc *c;
	char *key, *host, *addr_text;
	int tls, tls_disabled, auth_unverified, lmtp;
	char *sts_domain;           /* under an MTA-STS policy (enforce or testing), or NULL */
	int sts_mode;
	struct tlsrpt_ticket *rpt;  /* TLS-RPT: this connection's outcome, counted once */
	SSL_CTX *ctx;
	const char *auth_user, *auth_password; /* valid during setup only (the job's) */
	const char *auth_mech;      /* likewise: an OAuth credential's mechanism */
	enum phase phase;
	int tls_up, authed, broken, closing, reused;
	struct tls_check tc;
	/* DANE: the records to match (during setup only: the job's), the other name a
	 * DANE-TA certificate may carry, and the tls_policy label for the log. */
	const struct dane_rrset *dane;
	char *dane_domain;
	const char *dane_label;
	int dane_on;                /* TLS required by DANE (usable or not) */
	unsigned dane_port;
	unsigned n_msgs;
	struct event *ev_idle;
	/* The transaction */
	size_t reply_i, n_rcpts, accepted;
	size_t *order;              /* the recipient (in the delivery) of each RCPT sent */
	size_t dot_i;               /* LMTP: replies to the final dot so far */
	char *acc;                  /* per recipient: RCPT taken */
	int mail_ok, pipelined;
	struct relay_body *body;    /* the message being sent, read from the queue */
};

#define RELAY_QUIT_TIMEOUT 10

/* relay_session.c */
void relay_temp_status(const struct smtpc_reply *r, char out[16]);
void relay_sess_fail(struct relay_sess *s, const char *status, int final, int tls_hs,
		     const char *fmt, ...) PRINTF_LIKE(5, 6);
void relay_sess_fail_with(struct relay_sess *s, struct relay_fail *f);

/* relay_setup.c */
int relay_sts_fail(struct relay_sess *s, enum mtasts_failure why, const char *detail);
void relay_on_tls(struct smtpc *c, void *arg);
void relay_setup_reply(struct relay_sess *s, struct smtpc *c, const struct smtpc_reply *r);

/* relay_tx.c */
void relay_tx_all(struct relay_sess *s, enum delivery_result res, const char *status,
		  const char *diag, int only_accepted);
void relay_tx_reply(struct relay_sess *s, const struct smtpc_reply *r);
void relay_dot_reply(struct relay_sess *s, const struct smtpc_reply *r);

#endif
