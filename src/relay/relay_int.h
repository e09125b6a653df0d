/* relay_int: what the SMTP (and LMTP) transport's two halves share. smtp_transport.c owns the
 * deliveries (jobs): name resolution, the order of addresses, the connection cache,
 * results. relay_session.c drives one connection: greeting, EHLO, STARTTLS, AUTH
 * (relay_setup.c), then one transaction per message (relay_tx.c), reporting back to
 * the job it serves. */
#ifndef CURSUS_RELAY_INT_H
#define CURSUS_RELAY_INT_H

#include <stddef.h>
#include <sys/socket.h>

#include "client/smtpc.h"
#include "net/dane.h"
#include "deliver/transport.h"

struct smtp_transport;
struct relay_job;
struct relay_sess;
struct tlsrpt_ticket;

/* How a connection attempt ended before the server took MAIL. */
struct relay_fail {
	char reason[512];     /* for the diag of every recipient when nothing else works */
	char status[16];
	int tls_handshake;    /* the STARTTLS handshake failed (may: retry in clear) */
	int final;            /* no use trying other addresses (AUTH failed or refused) */
	int reused;           /* on a connection taken from the cache */
	int permanent;        /* this host can never take the message (relay/requiretls.h):
			       * a permanent failure when every host tried says so */
};

/* ---- relay_session.c (relay_sess_transact: relay_tx.c) ---- */
struct relay_sess_params {
	const char *key;          /* cache key: destination and auth user */
	const char *host;         /* the name to greet as the server's and to verify */
	const char *addr_text;    /* "127.0.0.5" for logs and results */
	int tls;                  /* enum relay_tls */
	int tls_disabled;         /* a may-mode retry without STARTTLS */
	SSL_CTX *ctx;
	const char *auth_user, *auth_password; /* NULL: no AUTH */
	const char *auth_mech;    /* OAuth: XOAUTH2 or OAUTHBEARER (password: the token) */
	int auth_unverified;
	int lmtp;                 /* LHLO; one reply per recipient after the dot */
	/* DANE (relay_dane.h), with tls RELAY_TLS_ENCRYPT: the records the certificate
	 * must match (NULL: encrypted only), and the next-hop domain a DANE-TA
	 * certificate may name. dane_label: the log's tls_policy (static), or NULL. */
	const struct dane_rrset *dane;
	const char *dane_domain;
	const char *dane_label;
	unsigned dane_port;       /* the TLSA port, for messages */
	/* MX delivery under a domain's MTA-STS policy (relay/mtasts.h): enforce (tls is
	 * verify) or testing (tls is may; what would fail is reported). NULL: none, and
	 * always for a host DANE decides for (RFC 8461 2: DANE wins). */
	const char *sts_domain;
	int sts_mode;             /* enum mtasts_mode */
	struct tlsrpt_ticket *rpt; /* TLS-RPT (relay/tlsrpt.h): the session's own, or NULL */
};

/* Connects and sets the session up; then relay_job_session_ready or relay_job_failed. */
struct relay_sess *relay_sess_open(struct smtp_transport *t, struct relay_job *j,
				   const struct sockaddr *sa, socklen_t salen,
				   const struct relay_sess_params *p);
/* One message over a ready session: results into the delivery, then
 * relay_job_tx_done (or relay_job_failed when it broke before MAIL was taken). */
void relay_sess_transact(struct relay_sess *s, struct relay_job *j);
/* QUIT (best effort) and free. */
void relay_sess_close(struct relay_sess *s);
/* Frees at once, no QUIT (transport destroyed). */
void relay_sess_free(struct relay_sess *s);
const char *relay_sess_key(const struct relay_sess *s);
/* The session's TLS facts, copied into a delivery. */
void relay_sess_describe(const struct relay_sess *s, struct delivery *d);

/* ---- relay_body.c ---- */
struct relay_body;
struct workers;
/* After a 354: sends the body b (smtpc_send_body_from), read a block at a time on w.
 * b is copied (with a descriptor of its own): it need not outlive this call. */
struct relay_body *relay_body_start(struct workers *w, struct smtpc *c, const struct qbody *b,
				    unsigned block_timeout, unsigned dot_timeout);
/* No more reads for c (the transaction or the session is over); frees when the read in
 * flight, if any, comes back. */
void relay_body_stop(struct relay_body **rb);

/* ---- relay_lmtp.c ---- */
struct dns_target;
/* An address literal ("192.0.2.1", "[192.0.2.1]", "IPv6:2001:db8::1") with port into
 * tg (tg->host points at host). 0, or -1 when host is no address. */
int relay_literal_target(const char *host, unsigned port, struct dns_target *tg);
/* An LMTP server as config_relay_lmtp wrote it. 0: tg is ready (a UNIX socket, or an
 * address; then *host_r is the bare address, malloc'd, which tg->host points at);
 * 1: *host_r (malloc'd) is a name to look up, for port *port_r; -1: not a server. */
int relay_lmtp_target(const char *server, struct dns_target *tg, char **host_r,
		      unsigned *port_r);

/* ---- smtp_transport.c, called by the session ---- */
struct delivery *relay_job_delivery(struct relay_job *j);
const struct config *relay_job_config(struct relay_job *j);
void relay_job_session_ready(struct relay_job *j, struct relay_sess *s);
void relay_job_failed(struct relay_job *j, struct relay_sess *s, const struct relay_fail *f);
/* The transaction ended with a result for every recipient; the session no longer
 * belongs to the job (it goes on to RSET and the cache, or to QUIT). */
void relay_job_tx_done(struct relay_job *j);
/* A session ready for another message (after RSET) waits for one. */
void relay_cache_put(struct smtp_transport *t, struct relay_sess *s);
/* An idle session ended (closed by the server, idle time over). */
void relay_cache_drop(struct smtp_transport *t, struct relay_sess *s);
unsigned relay_idle_time(struct smtp_transport *t);
struct event_base *relay_base(struct smtp_transport *t);
/* The delivery workers, for reading message bodies. */
struct workers *relay_workers(struct smtp_transport *t);
/* Starts the idle timer of a session put in the cache (relay_session.c). */
void relay_cache_idle_start(struct relay_sess *s);
/* How many messages a session may carry. */
unsigned relay_reuse_limit(struct smtp_transport *t);
/* The transport's current configuration: a session opened under another (before a
 * reload) is not reused, since its TLS policy may no longer be the route's. */
const struct config *relay_config(struct smtp_transport *t);

/* ---- helpers (relay_session.c) ---- */
/* "550 5.1.1 text / more" : the reply verbatim, lines after the first after " / ". */
char *relay_reply_text(const struct smtpc_reply *r);
/* The reply's enhanced code, else "N.0.0" from its class. */
void relay_reply_status(const struct smtpc_reply *r, char out[16]);

#endif
