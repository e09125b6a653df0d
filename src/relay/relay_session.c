/* relay_session: one outbound SMTP or LMTP connection (see relay_int.h). Setup:
 * greeting, EHLO (HELO fallback) or LHLO, STARTTLS as the policy says, EHLO again,
 * AUTH when the job carries credentials and the channel is good enough; then
 * transactions: MAIL, RCPTs and DATA (in one group under PIPELINING, RFC 2920), the
 * body, the final dot (and with LMTP one reply per recipient taken), RSET.
 * Credentials are only ever handed to smtpc_auth, whose transcript hides them. */
#include <ctype.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "metrics/metrics.h"
#include "net/tls_client.h"
#include "queue/envelope.h"
#include "relay/mtasts.h"
#include "relay/relay_dane.h"
#include "relay/relay_int.h"
#include "relay/requiretls.h"
#include "relay/tlsrpt.h"
#include "sasl/sasl.h"
#include "util/log.h"
#include "util/xmalloc.h"

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

/* ---- helpers ---------------------------------------------------------------------- */

char *relay_reply_text(const struct smtpc_reply *r)
{
	size_t n = 8;
	for (size_t i = 0; i < r->n_lines; i++)
		n += strlen(r->lines[i]) + 3;
	char *out = xmalloc(n), *o = out;
	o += sprintf(o, "%d", r->code);
	for (size_t i = 0; i < r->n_lines; i++)
		o += sprintf(o, "%s%s", i ? " / " : " ", r->lines[i]);
	return out;
}

void relay_reply_status(const struct smtpc_reply *r, char out[16])
{
	if (r->enhanced[0])
		snprintf(out, 16, "%s", r->enhanced);
	else
		snprintf(out, 16, "%d.0.0", r->code / 100);
}

static enum delivery_result relay_class(int code)
{
	return code / 100 == 2 ? DR_DELIVERED : code / 100 == 5 ? DR_PERMFAIL : DR_TEMPFAIL;
}

/* A failure of the session, not of the message: a 4.x.x whatever the server said. */
static void relay_temp_status(const struct smtpc_reply *r, char out[16])
{
	relay_reply_status(r, out);
	out[0] = '4';
}

/* xtext (RFC 3461 4): '+', '=' and bytes outside '!'..'~' as "+HH". */
static char *relay_xtext(const char *s)
{
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < '!' || *p > '~' || *p == '+' || *p == '=')
			o += sprintf(o, "+%02X", *p);
		else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

/* An EHLO keyword smtpc does not keep a flag for ("DSN"), and its parameter. */
static const char *relay_cap(const struct smtpc_caps *c, const char *kw)
{
	size_t n = strlen(kw);
	for (size_t i = 0; i < c->n_lines; i++)
		if (strncasecmp(c->lines[i], kw, n) == 0 &&
		    (c->lines[i][n] == '\0' || c->lines[i][n] == ' '))
			return c->lines[i] + n + (c->lines[i][n] == ' ');
	return NULL;
}

/* ---- life ------------------------------------------------------------------------- */

void relay_sess_free(struct relay_sess *s)
{
	if (!s)
		return;
	relay_body_stop(&s->body);
	smtpc_destroy(&s->c);
	if (s->ev_idle)
		event_free(s->ev_idle);
	free(s->acc);
	free(s->order);
	free(s->key);
	free(s->host);
	free(s->addr_text);
	free(s->dane_domain);
	free(s->sts_domain);
	tlsrpt_ticket_free(&s->rpt);
	if (s->ctx)
		SSL_CTX_free(s->ctx);
	config_release(&s->cfg);
	free(s);
}

void relay_sess_close(struct relay_sess *s)
{
	s->job = NULL;
	if (s->ev_idle)
		evtimer_del(s->ev_idle);
	if (s->closing)
		return;
	s->closing = 1;
	if (!s->c || s->broken) {
		relay_sess_free(s);
		return;
	}
	s->phase = PH_QUIT;
	smtpc_set_timeout(s->c, RELAY_QUIT_TIMEOUT);
	smtpc_command(s->c, "QUIT");
}

const char *relay_sess_key(const struct relay_sess *s) { return s->key; }

void relay_sess_describe(const struct relay_sess *s, struct delivery *d)
{
	free(d->remote_host);
	free(d->remote_addr);
	free(d->tls);
	d->remote_host = xstrdup(s->host);
	d->remote_addr = xstrdup(s->addr_text);
	d->tls = s->tls_up ? xstrdup(s->tc.version) : NULL;
	d->tls_verified = s->tls_up && s->tc.verified;
	d->tls_policy = s->dane_label;
	if (s->sts_domain) /* never beside a DANE label: DANE hosts have no sts_domain */
		d->tls_policy = s->sts_mode == MTASTS_ENFORCE ? "mta-sts-enforce" : "mta-sts-testing";
}

/* The session cannot serve its job: the job tries elsewhere. */
static void relay_sess_fail(struct relay_sess *s, const char *status, int final, int tls_hs,
			    const char *fmt, ...) PRINTF_LIKE(5, 6);

static void relay_sess_fail_with(struct relay_sess *s, struct relay_fail *f)
{
	struct relay_job *j = s->job;
	f->reused = s->reused;
	if (j)
		relay_sess_describe(s, relay_job_delivery(j));
	relay_sess_close(s);
	if (j)
		relay_job_failed(j, NULL, f);
}

static void relay_sess_fail(struct relay_sess *s, const char *status, int final, int tls_hs,
			    const char *fmt, ...)
{
	struct relay_fail f = { .final = final, .tls_handshake = tls_hs };
	va_list ap;
	int n = snprintf(f.reason, sizeof(f.reason), "%s[%s]: ", s->host, s->addr_text);
	va_start(ap, fmt);
	vsnprintf(f.reason + n, sizeof(f.reason) - (size_t)n, fmt, ap);
	va_end(ap);
	snprintf(f.status, sizeof(f.status), "%s", status);
	relay_sess_fail_with(s, &f);
}

/* This host fails the domain's MTA-STS policy (RFC 8461 4.2: STARTTLS with a valid
 * PKIX certificate for the MX host name). Reported either way; in enforce mode the
 * session ends with 4.7.5 and returns 1, in testing mode it goes on as before. */
static int relay_sts_fail(struct relay_sess *s, enum mtasts_failure why, const char *detail)
{
	if (!s->sts_domain)
		return 0;
	tlsrpt_ticket_fail(s->rpt, s->c, why == MTASTS_FAIL_NO_STARTTLS ? "starttls-not-supported"
			   : why == MTASTS_FAIL_CERTIFICATE ? tlsrpt_cert_result(detail)
			   : "validation-failure", s->host, s->addr_text, detail);
	mtasts_report(s->sts_domain, (enum mtasts_mode)s->sts_mode, s->host, s->addr_text, why,
		      detail);
	if (s->sts_mode != MTASTS_ENFORCE)
		return 0;
	relay_sess_fail(s, "4.7.5", 0, 0, "MTA-STS policy of %s (enforce): %s", s->sts_domain,
			detail);
	return 1;
}

/* The next hop did not take our OAuth token. A 535, or any failure after its error
 * challenge (RFC 7628 3.2.2), means the token itself: the job says so, and the
 * scheduler tries once more with a fresh one. */
static void relay_auth_oauth_failed(struct relay_sess *s, const struct smtpc_reply *r,
				    const char *status, const char *text)
{
	const char *why = smtpc_auth_oauth_error(s->c);
	struct relay_job *j = s->job;
	if (j && (r->code == 535 || *why))
		relay_job_delivery(j)->auth_rejected = 1;
	relay_sess_fail(s, status, 1, 0, "authentication failed: %s%s%s%s", text,
			*why ? " (token refused: " : "", why, *why ? ")" : "");
}

/* ---- setup ------------------------------------------------------------------------ */

static void relay_sess_ready(struct relay_sess *s)
{
	s->auth_user = s->auth_password = s->auth_mech = NULL;
	s->dane = NULL;
	s->phase = PH_IDLE;
	relay_job_session_ready(s->job, s);
}

/* From the one mechanism registry (sasl/sasl.h), strongest first, except that every
 * -PLUS one comes before the rest: binding the credentials to this TLS channel matters
 * more than the hash. Never a mechanism that needs a password-equivalent secret, nor
 * EXTERNAL (no client certificate is presented). */
static const char *relay_pick_mech(const struct smtpc_caps *c)
{
	const char *list = c->auth ? c->auth : c->auth_legacy;
	size_t n;
	const struct sasl_mech *m = sasl_mechs(&n);
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if (m[i].flags & (SASLF_PLAIN_EQUIV | SASLF_EXTERNAL))
				continue;
			if (((m[i].flags & SASLF_CHANNEL) != 0) == (pass == 0) &&
			    smtpc_list_has(list, m[i].name) && smtpc_mech_supported(m[i].name))
				return m[i].name;
		}
	return NULL;
}

/* An OAuth credential's token goes by the mechanism stored with it, else by the other
 * one of the two when only that is offered: both carry the same bearer token. */
static const char *relay_pick_oauth(const struct smtpc_caps *c, const char *want)
{
	const char *list = c->auth ? c->auth : c->auth_legacy;
	const char *other = strcasecmp(want, "XOAUTH2") == 0 ? "OAUTHBEARER" : "XOAUTH2";
	return smtpc_list_has(list, want) ? want : smtpc_list_has(list, other) ? other : NULL;
}

/* TLS is settled (up, or not to be): AUTH if the job has credentials. */
static void relay_sess_after_tls(struct relay_sess *s)
{
	const struct smtpc_caps *c = smtpc_caps(s->c);
	const char *mech = NULL;
	if (!s->auth_user) {
		relay_sess_ready(s);
		return;
	}
	/* The credentials go nowhere the route did not allow: a deferral says why. */
	if (!s->tls_up) {
		relay_sess_fail(s, "4.7.10", 1, 0, "relay credentials not sent: no TLS%s",
				c->starttls ? "" : " (STARTTLS not offered)");
		return;
	}
	if (!s->tc.verified && !s->auth_unverified) {
		relay_sess_fail(s, "4.7.5", 1, 0,
				"relay credentials not sent: certificate not verified (%s)",
				s->tc.reason);
		return;
	}
	if (!c->auth && !c->auth_legacy) {
		relay_sess_fail(s, "4.7.0", 1, 0, "relay credentials not sent: AUTH not offered");
		return;
	}
	if (s->auth_mech && !(mech = relay_pick_oauth(c, s->auth_mech))) {
		relay_sess_fail(s, "4.7.0", 1, 0,
				"relay credentials not sent: OAuth needs XOAUTH2 or OAUTHBEARER "
				"(server offers %s)", c->auth ? c->auth : c->auth_legacy);
		return;
	}
	if (!s->auth_mech && !(mech = relay_pick_mech(c))) {
		relay_sess_fail(s, "4.7.0", 1, 0,
				"relay credentials not sent: no common mechanism (server offers %s)",
				c->auth ? c->auth : c->auth_legacy);
		return;
	}
	s->phase = PH_AUTH;
	if (smtpc_auth(s->c, mech, s->auth_user, s->auth_password) < 0)
		relay_sess_fail(s, "4.7.0", 1, 0, "relay credentials not sent: SASL client for %s failed",
				mech);
}

/* RFC 7672 2.2: with TLSA records published, never a fall-back to clear text: a next
 * hop without TLS is a downgrade (or a broken server) and the mail waits. */
static void relay_dane_no_tls(struct relay_sess *s, const char *what)
{
	s->dane_label = "dane-no-starttls";
	relay_dane_count(s->dane_label);
	tlsrpt_ticket_fail(s->rpt, s->c, "starttls-not-supported", s->host, s->addr_text, what);
	relay_sess_fail(s, "4.7.5", 0, 0, "DANE: %s TLSA records published but %s: "
			"not sent in clear", s->dane ? "usable" : "secure", what);
}

static void relay_sess_ehlo_done(struct relay_sess *s)
{
	const struct smtpc_caps *c = smtpc_caps(s->c);
	if (s->phase == PH_EHLO2 || s->tls == RELAY_TLS_NONE || s->tls_disabled) {
		relay_sess_after_tls(s);
		return;
	}
	if (c->starttls) {
		s->phase = PH_STARTTLS;
		smtpc_starttls(s->c, s->ctx);
		return;
	}
	if (s->dane_on) {
		relay_dane_no_tls(s, "STARTTLS not offered");
		return;
	}
	if (relay_sts_fail(s, MTASTS_FAIL_NO_STARTTLS, "STARTTLS not offered"))
		return;
	tlsrpt_ticket_fail(s->rpt, s->c, "starttls-not-supported", s->host, s->addr_text,
			   "STARTTLS not offered");
	if (s->tls >= RELAY_TLS_ENCRYPT) {
		relay_sess_fail(s, "4.7.10", 0, 0, "TLS required but not offered");
		return;
	}
	relay_sess_after_tls(s);
}

static void relay_on_tls(struct smtpc *c, void *arg)
{
	struct relay_sess *s = arg;
	char matched[200], why[160];
	tls_client_check(smtpc_ssl(c), s->host, &s->tc);
	s->tls_up = 1;
	if (s->dane) {
		/* DANE authenticates instead of the CA store (RFC 7672 3). */
		if (!dane_ssl_verified(smtpc_ssl(c), matched, sizeof(matched), why, sizeof(why))) {
			s->tc.verified = 0;
			snprintf(s->tc.reason, sizeof(s->tc.reason), "%s", why);
			s->dane_label = "dane-mismatch";
			relay_dane_count(s->dane_label);
			/* RFC 8460 4.3.2.1 tlsa-invalid: "None of the records in the RRset were
			 * found to be valid" for the certificate presented. */
			tlsrpt_ticket_fail(s->rpt, c, strcasestr(why, "hostname mismatch") ?
					   "certificate-host-mismatch" : "tlsa-invalid", s->host,
					   s->addr_text, why);
			relay_sess_fail(s, "4.7.5", 0, 0, "DANE: certificate does not match the TLSA "
					"records of _%u._tcp.%s: %s", s->dane_port, s->host, why);
			return;
		}
		s->tc.verified = 1;
		s->tc.reason[0] = '\0';
		log_info("relay %s[%s]: DANE verified, TLSA %s", s->host, s->addr_text, matched);
	}
	if (s->dane_on)
		relay_dane_count(s->dane_label);
	metrics_add(METRIC_RELAY_TLS, 1, s->tc.version, s->tc.verified ? "yes" : "no", NULL);
	if (!s->tc.verified) {
		char detail[300];
		snprintf(detail, sizeof(detail), "certificate not valid for %s: %s", s->host,
			 s->tc.reason);
		if (relay_sts_fail(s, MTASTS_FAIL_CERTIFICATE, detail))
			return;
	}
	if (s->tls == RELAY_TLS_VERIFY && !s->tc.verified) {
		tlsrpt_ticket_fail(s->rpt, c, tlsrpt_cert_result(s->tc.reason), s->host,
				   s->addr_text, s->tc.reason);
		relay_sess_fail(s, "4.7.5", 0, 0, "TLS certificate verification failed: %s",
				s->tc.reason);
		return;
	}
	tlsrpt_ticket_ok(s->rpt, c);
	s->phase = PH_EHLO2;
	smtpc_ehlo(c, s->cfg->hostname);
}

/* ---- transaction ------------------------------------------------------------------ */

static void relay_tx_finish(struct relay_sess *s)
{
	struct relay_job *j = s->job;
	relay_body_stop(&s->body);
	s->job = NULL;
	s->n_msgs++;
	if (s->broken || s->n_msgs >= relay_reuse_limit(s->t) || s->cfg != relay_config(s->t))
		relay_sess_close(s);
	else {
		/* In the cache at once: the next message may come before the RSET reply,
		 * and then waits for it. */
		s->phase = PH_RSET;
		smtpc_set_timeout(s->c, s->cfg->relay_command_timeout);
		smtpc_command(s->c, "RSET");
		relay_cache_put(s->t, s);
	}
	relay_job_tx_done(j);
}

/* Every recipient still open gets this outcome. */
static void relay_tx_all(struct relay_sess *s, enum delivery_result res, const char *status,
			 const char *diag, int only_accepted)
{
	struct delivery *d = relay_job_delivery(s->job);
	for (size_t i = 0; i < d->n_rcpts; i++)
		if (d->rcpts[i].result == DR_NONE && (!only_accepted || s->acc[i]))
			transport_delivery_set(&d->rcpts[i], res, status, diag);
}

static char *relay_mail_line(struct relay_sess *s, const struct delivery *d)
{
	const struct smtpc_caps *c = smtpc_caps(s->c);
	const struct envelope *env = d->env;
	char *line = xasprintf("MAIL FROM:<%s>", d->sender), *tmp;
#define ADD(...) do { tmp = xasprintf(__VA_ARGS__); free(line); line = tmp; } while (0)
	if (c->size)
		ADD("%s SIZE=%zu", line, d->body.len);
	if (env->body == BODY_8BITMIME)
		ADD("%s BODY=8BITMIME", line);
	if (env->smtputf8 && c->smtputf8)
		ADD("%s SMTPUTF8", line);
	if (requiretls_mail_param(d, s->lmtp, s->tls_up, relay_cap(c, "REQUIRETLS") != NULL,
				  s->host, s->addr_text))
		ADD("%s REQUIRETLS", line);
	if (d->dsn_passed) {
		if (env->ret != DSN_RET_UNSET)
			ADD("%s RET=%s", line, env->ret == DSN_RET_FULL ? "FULL" : "HDRS");
		if (env->envid) {
			char *x = relay_xtext(env->envid);
			ADD("%s ENVID=%s", line, x);
			free(x);
		}
	}
	/* RFC 4954 5: the submitter's identity passes on only when we authenticated
	 * ourselves; otherwise "AUTH=<>" says it is unknown. */
	if (s->authed) {
		char *x = env->auth ? relay_xtext(env->auth) : xstrdup("<>");
		ADD("%s AUTH=%s", line, x);
		free(x);
	}
#undef ADD
	return line;
}

/* LMTP's recipient: the final mailbox, "domain/local-part", as local-part@domain,
 * the full address a Dovecot userdb looks up; alias expansion is done by then. */
static char *relay_lmtp_rcpt_line(const struct env_rcpt *r)
{
	const char *slash = r->mailbox ? strchr(r->mailbox, '/') : NULL;
	if (!slash)
		return xasprintf("RCPT TO:<%s>", r->address);
	return xasprintf("RCPT TO:<%s@%.*s>", slash + 1, (int)(slash - r->mailbox), r->mailbox);
}

static char *relay_rcpt_line(const struct relay_sess *s, const struct delivery *d, size_t i)
{
	const struct env_rcpt *r = &d->env->rcpts[d->rcpts[i].index];
	char *line, *tmp;
	if (s->lmtp)
		return relay_lmtp_rcpt_line(r);
	line = xasprintf("RCPT TO:<%s>", r->address);
	if (d->dsn_passed && r->notify) {
		tmp = xasprintf("%s NOTIFY=%s", line, (r->notify & DSN_NOTIFY_NEVER) ? "NEVER" : "");
		free(line);
		line = tmp;
		if (!(r->notify & DSN_NOTIFY_NEVER)) {
			const char *names[] = { "SUCCESS", "FAILURE", "DELAY" };
			const unsigned bits[] = { DSN_NOTIFY_SUCCESS, DSN_NOTIFY_FAILURE, DSN_NOTIFY_DELAY };
			int first = 1;
			for (int k = 0; k < 3; k++) {
				if (!(r->notify & bits[k]))
					continue;
				tmp = xasprintf("%s%s%s", line, first ? "" : ",", names[k]);
				free(line);
				line = tmp;
				first = 0;
			}
		}
	}
	if (d->dsn_passed && r->orcpt) {
		const char *semi = strchr(r->orcpt, ';');
		if (semi) {
			char *x = relay_xtext(semi + 1);
			tmp = xasprintf("%s ORCPT=%.*s;%s", line, (int)(semi - r->orcpt), r->orcpt, x);
			free(line);
			free(x);
			line = tmp;
		}
	}
	return line;
}

/* Checks what the next hop cannot take; 0 when the message may go. */
static int relay_tx_refuse(struct relay_sess *s, struct delivery *d)
{
	const struct smtpc_caps *c = smtpc_caps(s->c);
	const char *size = relay_cap(c, "SIZE");
	unsigned long long limit = size ? strtoull(size, NULL, 10) : 0;
	char why[200];
	if (limit > 0 && d->body.len > limit) {
		snprintf(why, sizeof(why), "message size %zu exceeds the limit of %s[%s] (%llu)",
			 d->body.len, s->host, s->addr_text, limit);
		relay_tx_all(s, DR_PERMFAIL, "5.3.4", why, 0);
		return -1;
	}
	/* Refuse rather than corrupt (RFC 6152 3, RFC 6531 3.4). */
	if (d->env->body == BODY_BINARYMIME || (d->env->body == BODY_8BITMIME && !c->eightbitmime)) {
		snprintf(why, sizeof(why), "next hop cannot take 8-bit: %s[%s] does not offer 8BITMIME",
			 s->host, s->addr_text);
		relay_tx_all(s, DR_PERMFAIL, "5.6.3", why, 0);
		return -1;
	}
	/* Not for LMTP: the mailbox is the last stop, there is no one to pass UTF-8
	 * addresses on to (RFC 6531 3.4's concern), and Dovecot 2.3 does not offer
	 * SMTPUTF8 though it stores such mail; a sender it cannot take is its reply. */
	if (d->env->smtputf8 && !c->smtputf8 && !s->lmtp) {
		snprintf(why, sizeof(why), "next hop cannot take UTF-8 addresses: %s[%s] does not "
			 "offer SMTPUTF8", s->host, s->addr_text);
		relay_tx_all(s, DR_PERMFAIL, "5.6.7", why, 0);
		return -1;
	}
	return 0;
}

/* Sends command i of the transaction: 0 MAIL, 1..n RCPT, n+1 DATA. */
static void relay_tx_send(struct relay_sess *s, size_t i)
{
	struct delivery *d = relay_job_delivery(s->job);
	char *line = i == 0 ? relay_mail_line(s, d)
		   : i <= s->n_rcpts ? relay_rcpt_line(s, d, s->order[i - 1])
		   : xstrdup("DATA");
	smtpc_command(s->c, line);
	free(line);
}

/* Which recipients get an RCPT, in order: all of them, but with LMTP one per mailbox
 * (two aliases of one user are one delivery; the job shares the outcome). */
static void relay_tx_order(struct relay_sess *s, const struct delivery *d)
{
	free(s->order);
	s->order = xcalloc(d->n_rcpts + 1, sizeof(*s->order));
	s->n_rcpts = 0;
	for (size_t i = 0; i < d->n_rcpts; i++) {
		const char *box = d->env->rcpts[d->rcpts[i].index].mailbox;
		int dup = 0;
		for (size_t k = 0; s->lmtp && box && k < s->n_rcpts && !dup; k++) {
			const char *other = d->env->rcpts[d->rcpts[s->order[k]].index].mailbox;
			dup = other && strcmp(other, box) == 0;
		}
		if (!dup)
			s->order[s->n_rcpts++] = i;
	}
}

void relay_sess_transact(struct relay_sess *s, struct relay_job *j)
{
	struct delivery *d = relay_job_delivery(j);
	s->job = j;
	if (s->ev_idle)
		evtimer_del(s->ev_idle);
	if (s->phase == PH_RSET)
		return; /* the RSET reply starts it */
	relay_sess_describe(s, d);
	/* LMTP delivers into the mailbox: DSN ends here (the scheduler's "delivered"). */
	d->dsn_passed = !s->lmtp && relay_cap(smtpc_caps(s->c), "DSN") != NULL;
	/* RFC 8689 4.2.1: "If any of the above steps fail, the client MUST issue a QUIT
	 * command to the server and repeat steps 2-5 with each host": the job moves on. */
	{
		struct relay_fail f;
		if (requiretls_hop_check(d, s->lmtp, s->tls_up, s->tc.verified, s->tc.reason,
					 relay_cap(smtpc_caps(s->c), "REQUIRETLS") != NULL, s->host,
					 s->addr_text, &f) < 0) {
			relay_sess_fail_with(s, &f);
			return;
		}
	}
	relay_tx_order(s, d);
	free(s->acc);
	s->acc = xcalloc(d->n_rcpts + 1, 1);
	s->accepted = 0;
	s->dot_i = 0;
	s->mail_ok = 0;
	s->reply_i = 0;
	if (relay_tx_refuse(s, d) < 0) {
		/* Nothing was sent: the connection serves the next message as it is. */
		struct relay_job *jj = s->job;
		s->job = NULL;
		s->phase = PH_IDLE;
		relay_cache_put(s->t, s);
		relay_job_tx_done(jj);
		return;
	}
	s->phase = PH_TX;
	s->pipelined = smtpc_caps(s->c)->pipelining;
	smtpc_set_timeout(s->c, s->cfg->relay_command_timeout);
	if (s->pipelined)
		for (size_t i = 0; i <= s->n_rcpts + 1; i++)
			relay_tx_send(s, i);
	else
		relay_tx_send(s, 0);
}

static void relay_tx_reply(struct relay_sess *s, const struct smtpc_reply *r)
{
	struct delivery *d = relay_job_delivery(s->job);
	size_t i = s->reply_i++;
	char status[16], *text = relay_reply_text(r);
	relay_reply_status(r, status);
	if (r->code == 421)
		s->broken = 1; /* RFC 5321 3.8: the server is closing */
	if (i == 0) {
		if (r->code / 100 == 2) {
			s->mail_ok = 1;
		} else if (r->code == 421 && !s->pipelined) {
			char st[16];
			relay_temp_status(r, st);
			relay_sess_fail(s, st, 0, 0, "MAIL FROM: %s", text);
			free(text);
			return;
		} else {
			relay_tx_all(s, relay_class(r->code), status, text, 0);
		}
	} else if (i <= s->n_rcpts) {
		size_t k = s->order[i - 1];
		if (s->mail_ok) {
			if (r->code / 100 == 2) {
				s->acc[k] = 1;
				s->accepted++;
			} else {
				transport_delivery_set(&d->rcpts[k], relay_class(r->code), status, text);
			}
		}
	} else {
		if (r->code == 354) {
			/* RFC 2920 3.1: DATA taken with no valid recipient: send an empty
			 * message, whose reply means nothing. */
			int real = s->mail_ok && s->accepted;
			s->phase = real ? PH_DOT : PH_DOT_DISCARD;
			if (s->lmtp)
				smtpc_dot_replies(s->c, real ? s->accepted : 1);
			if (real)
				s->body = relay_body_start(relay_workers(s->t), s->c, &d->body,
							   s->cfg->relay_data_timeout,
							   s->cfg->relay_dot_timeout);
			else
				smtpc_send_body(s->c, "", 0, s->cfg->relay_data_timeout,
						s->cfg->relay_dot_timeout);
			free(text);
			return;
		}
		relay_tx_all(s, relay_class(r->code), status, text, 1);
		free(text);
		relay_tx_finish(s);
		return;
	}
	free(text);
	if (s->pipelined)
		return;
	/* One at a time: the next command, or the end when there is no point going on. */
	if (!s->mail_ok || s->broken || (i == s->n_rcpts && !s->accepted)) {
		relay_tx_finish(s);
		return;
	}
	relay_tx_send(s, i + 1);
}

static void relay_dot_reply(struct relay_sess *s, const struct smtpc_reply *r)
{
	char status[16], *text;
	if (s->phase == PH_DOT_DISCARD) {
		relay_tx_finish(s);
		return;
	}
	text = relay_reply_text(r);
	relay_reply_status(r, status);
	if (r->code == 421)
		s->broken = 1;
	if (s->lmtp) {
		/* RFC 2033 4.2: one reply per recipient taken, in the order of the RCPTs;
		 * each is that recipient's own outcome (one over quota, the others not). */
		struct delivery *d = relay_job_delivery(s->job);
		size_t seen = 0;
		for (size_t n = 0; n < s->n_rcpts; n++) {
			size_t k = s->order[n];
			if (!s->acc[k] || seen++ < s->dot_i)
				continue;
			transport_delivery_set(&d->rcpts[k], relay_class(r->code), status, text);
			break;
		}
		free(text);
		if (++s->dot_i < s->accepted)
			return;
		relay_tx_finish(s);
		return;
	}
	relay_tx_all(s, relay_class(r->code), status, text, 1);
	free(text);
	relay_tx_finish(s);
}

/* ---- smtpc callbacks -------------------------------------------------------------- */

static void relay_idle_over(evutil_socket_t fd, short what, void *arg)
{
	struct relay_sess *s = arg;
	relay_cache_drop(s->t, s);
	relay_sess_close(s);
}

static void relay_on_reply(struct smtpc *c, const struct smtpc_reply *r, void *arg)
{
	struct relay_sess *s = arg;
	char st[16], *text;

	switch (s->phase) {
	case PH_TX:
		relay_tx_reply(s, r);
		return;
	case PH_DOT:
	case PH_DOT_DISCARD:
		relay_dot_reply(s, r);
		return;
	case PH_RSET:
		if (r->code != 250) {
			if (s->job) {
				text = relay_reply_text(r);
				relay_temp_status(r, st);
				relay_sess_fail(s, st, 0, 0, "RSET: %s", text);
				free(text);
				return;
			}
			relay_cache_drop(s->t, s);
			relay_sess_close(s);
			return;
		}
		s->phase = PH_IDLE;
		if (s->job)
			relay_sess_transact(s, s->job);
		return;
	case PH_QUIT:
		smtpc_close(c);
		return;
	case PH_IDLE:
		/* Unsolicited (a 421 before closing): the connection is done. */
		relay_cache_drop(s->t, s);
		s->broken = 1;
		relay_sess_close(s);
		return;
	default:
		break;
	}
	text = relay_reply_text(r);
	relay_temp_status(r, st);
	switch (s->phase) {
	case PH_GREETING:
		if (r->code != 220) {
			relay_sess_fail(s, st, 0, 0, "greeting: %s", text);
			break;
		}
		s->phase = PH_EHLO1;
		smtpc_set_timeout(c, s->cfg->relay_command_timeout);
		if (s->lmtp)
			smtpc_lhlo(c, s->cfg->hostname);
		else
			smtpc_ehlo(c, s->cfg->hostname);
		break;
	case PH_EHLO1:
	case PH_EHLO2:
		if (r->code != 250)
			relay_sess_fail(s, st, 0, 0, "%s refused: %s", s->lmtp ? "LHLO" :
					smtpc_used_helo(c) ? "HELO" : "EHLO", text);
		else
			relay_sess_ehlo_done(s);
		break;
	case PH_STARTTLS:
		/* Not 220 (a 220 leads to on_tls instead). */
		if (s->dane_on && r->code != 421) {
			relay_dane_no_tls(s, "STARTTLS was refused");
			break;
		}
		{
			char detail[400];
			snprintf(detail, sizeof(detail), "STARTTLS refused: %s", text);
			if (relay_sts_fail(s, MTASTS_FAIL_NO_STARTTLS, detail))
				break;
		}
		if (s->tls >= RELAY_TLS_ENCRYPT || r->code == 421)
			relay_sess_fail(s, st, 0, 0, "TLS required but STARTTLS refused: %s", text);
		else
			relay_sess_after_tls(s);
		break;
	case PH_AUTH:
		if (r->code == 235) {
			s->authed = 1;
			relay_sess_ready(s);
		} else if (s->auth_mech) {
			relay_auth_oauth_failed(s, r, st, text);
		} else {
			relay_sess_fail(s, st, 1, 0, "authentication failed: %s", text);
		}
		break;
	default:
		break;
	}
	free(text);
}

static void relay_on_error(struct smtpc *c, void *arg, enum smtpc_error err, const char *detail)
{
	struct relay_sess *s = arg;
	static const char *const what[] = {
		[PH_GREETING] = "the greeting", [PH_EHLO1] = "EHLO", [PH_STARTTLS] = "STARTTLS",
		[PH_EHLO2] = "EHLO after STARTTLS", [PH_AUTH] = "AUTH", [PH_IDLE] = "idle",
		[PH_TX] = "MAIL/RCPT/DATA", [PH_DOT] = "the message", [PH_DOT_DISCARD] = "DATA",
		[PH_RSET] = "RSET", [PH_QUIT] = "QUIT",
	};
	char reason[400];
	s->broken = 1;
	relay_body_stop(&s->body);
	if (s->closing) {
		relay_sess_free(s);
		return;
	}
	if (!s->job) {
		relay_cache_drop(s->t, s);
		relay_sess_close(s);
		return;
	}
	if (err == SMTPC_ERR_CONNECT)
		snprintf(reason, sizeof(reason), "connect failed: %s", detail);
	else if (err == SMTPC_ERR_TIMEOUT)
		snprintf(reason, sizeof(reason), "timeout waiting for %s", what[s->phase]);
	else if (err == SMTPC_ERR_TLS)
		snprintf(reason, sizeof(reason), "TLS handshake failed: %s", detail);
	else
		snprintf(reason, sizeof(reason), "connection lost during %s: %s", what[s->phase],
			 detail);
	if (s->phase == PH_TX && (s->mail_ok || s->reply_i > 0)) {
		/* The server took MAIL: the message stays with these recipients, the
		 * destination answered. */
		struct relay_job *j = s->job;
		char full[600];
		snprintf(full, sizeof(full), "%s[%s]: %s", s->host, s->addr_text, reason);
		relay_tx_all(s, DR_TEMPFAIL, "4.4.2", full, 0);
		s->job = NULL;
		relay_sess_close(s);
		relay_job_tx_done(j);
		return;
	}
	if (s->phase == PH_DOT || s->phase == PH_DOT_DISCARD) {
		struct relay_job *j = s->job;
		char full[600];
		/* After the dot the outcome is unknown: deferring may deliver twice, which
		 * RFC 5321 6.1 prefers to losing the message. */
		snprintf(full, sizeof(full), "%s[%s]: %s", s->host, s->addr_text, reason);
		relay_tx_all(s, DR_TEMPFAIL, "4.4.2", full, 1);
		relay_tx_all(s, DR_TEMPFAIL, "4.4.2", full, 0);
		s->job = NULL;
		relay_sess_close(s);
		relay_job_tx_done(j);
		return;
	}
	if (err == SMTPC_ERR_TLS && s->phase == PH_STARTTLS &&
	    relay_sts_fail(s, MTASTS_FAIL_TLS, reason))
		return;
	if (err == SMTPC_ERR_TLS && s->phase == PH_STARTTLS)
		tlsrpt_ticket_fail(s->rpt, c, "validation-failure", s->host, s->addr_text, reason);
	relay_sess_fail(s, err == SMTPC_ERR_CONNECT ? "4.4.1" : err == SMTPC_ERR_TLS ? "4.7.5" : "4.4.2",
			0, err == SMTPC_ERR_TLS && s->phase == PH_STARTTLS, "%s", reason);
}

static void relay_transcript(void *arg, char dir, const char *line)
{
	struct relay_sess *s = arg;
	/* smtpc hides AUTH payloads already. */
	if (log_debug_enabled())
		log_debug("%s %s[%s] %c %s", s->lmtp ? "lmtp" : "relay", s->host, s->addr_text, dir,
			  line);
}

static int relay_tls_setup(struct smtpc *c, SSL *ssl, void *arg)
{
	struct relay_sess *s = arg;
	if (!s->dane)
		return 0;
	return dane_ssl_enable(ssl, s->host, s->dane_domain, s->dane) < 0 ? -1 : 0;
}

static const struct smtpc_cbs relay_cbs = {
	.tls_setup = relay_tls_setup,
	.on_reply = relay_on_reply,
	.on_tls = relay_on_tls,
	.on_error = relay_on_error,
	.transcript = relay_transcript,
};

struct relay_sess *relay_sess_open(struct smtp_transport *t, struct relay_job *j,
				   const struct sockaddr *sa, socklen_t salen,
				   const struct relay_sess_params *p)
{
	const struct config *cfg = relay_job_config(j);
	struct relay_sess *s = xcalloc(1, sizeof(*s));
	struct smtpc_opts o = {
		.server_name = p->host,
		.timeout = cfg->relay_greeting_timeout,
		.connect_timeout = cfg->relay_connect_timeout,
		.helo_fallback = !p->lmtp,
	};
	s->t = t;
	s->cfg = config_ref(cfg); /* kept while the connection is reused */
	s->job = j;
	s->key = xstrdup(p->key);
	s->host = xstrdup(p->host);
	s->addr_text = xstrdup(p->addr_text);
	s->tls = p->tls;
	s->tls_disabled = p->tls_disabled;
	if ((s->ctx = p->ctx)) /* a reload may drop the transport's cache meanwhile */
		SSL_CTX_up_ref(s->ctx);
	s->auth_user = p->auth_user;
	s->auth_password = p->auth_password;
	s->auth_mech = p->auth_mech;
	s->auth_unverified = p->auth_unverified;
	s->lmtp = p->lmtp;
	s->dane = p->dane;
	s->dane_domain = p->dane_domain ? xstrdup(p->dane_domain) : NULL;
	s->dane_label = p->dane_label;
	s->dane_on = p->dane_label && (p->dane || strcmp(p->dane_label, "dane-unusable") == 0);
	s->dane_port = p->dane_port;
	if (p->sts_domain) {
		s->sts_domain = xstrdup(p->sts_domain);
		s->sts_mode = p->sts_mode;
	}
	s->rpt = p->rpt;
	s->phase = PH_GREETING;
	s->ev_idle = evtimer_new(relay_base(t), relay_idle_over, s);
	s->c = smtpc_create(relay_base(t), sa, salen, &o, &relay_cbs, s);
	return s;
}

void relay_cache_idle_start(struct relay_sess *s)
{
	struct timeval tv = { relay_idle_time(s->t), 0 };
	s->reused = 1;
	evtimer_add(s->ev_idle, &tv);
}
