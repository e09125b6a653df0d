/* relay_session: one outbound SMTP or LMTP connection (see relay_int.h). Setup:
 * greeting, EHLO (HELO fallback) or LHLO, STARTTLS as the policy says, EHLO again,
 * AUTH when the job carries credentials and the channel is good enough; then
 * transactions: MAIL, RCPTs and DATA (in one group under PIPELINING, RFC 2920), the
 * body, the final dot (and with LMTP one reply per recipient taken), RSET.
 * Credentials are only ever handed to smtpc_auth, whose transcript hides them.
 *
 * Here: the session's life (open, close, failure) and smtpc's callbacks, which hand
 * each reply to its phase: setup is relay_setup.c, the transaction relay_tx.c; what
 * they share is relay_sess_int.h. */
#include "relay/relay_sess_int.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "relay/mtasts.h"
#include "relay/tlsrpt.h"
#include "util/log.h"
#include "util/xmalloc.h"

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

/* A failure of the session, not of the message: a 4.x.x whatever the server said. */
void relay_temp_status(const struct smtpc_reply *r, char out[16])
{
	relay_reply_status(r, out);
	out[0] = '4';
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

void relay_sess_fail_with(struct relay_sess *s, struct relay_fail *f)
{
	struct relay_job *j = s->job;
	f->reused = s->reused;
	if (j)
		relay_sess_describe(s, relay_job_delivery(j));
	relay_sess_close(s);
	if (j)
		relay_job_failed(j, NULL, f);
}

/* The session cannot serve its job: the job tries elsewhere. */
void relay_sess_fail(struct relay_sess *s, const char *status, int final, int tls_hs,
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
	relay_setup_reply(s, c, r);
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
