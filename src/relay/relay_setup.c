/* relay_setup: a relay session's setup, from the greeting to the ready state:
 * EHLO (HELO fallback) or LHLO, STARTTLS as the TLS policy (DANE, MTA-STS, the route's
 * tls) says, the certificate checked, EHLO again, and AUTH when the job carries
 * credentials and the channel is good enough for them. */
#include "relay/relay_sess_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "metrics/metrics.h"
#include "net/tls_client.h"
#include "relay/mtasts.h"
#include "relay/relay_dane.h"
#include "relay/tlsrpt.h"
#include "sasl/sasl.h"
#include "util/log.h"

/* This host fails the domain's MTA-STS policy (RFC 8461 4.2: STARTTLS with a valid
 * PKIX certificate for the MX host name). Reported either way; in enforce mode the
 * session ends with 4.7.5 and returns 1, in testing mode it goes on as before. */
int relay_sts_fail(struct relay_sess *s, enum mtasts_failure why, const char *detail)
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

/* RFC 3207 4.2: the capabilities are asked for again under TLS; LMTP asks with LHLO. */
static void relay_hello(struct relay_sess *s, struct smtpc *c)
{
	if (s->lmtp)
		smtpc_lhlo(c, s->cfg->hostname);
	else
		smtpc_ehlo(c, s->cfg->hostname);
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

void relay_on_tls(struct smtpc *c, void *arg)
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
	if (!s->lmtp) /* the metric counts SMTP next hops */
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
	relay_hello(s, c);
}

/* A reply during setup: the greeting, EHLO (or LHLO), STARTTLS, AUTH. */
void relay_setup_reply(struct relay_sess *s, struct smtpc *c, const struct smtpc_reply *r)
{
	char st[16], *text;

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
		relay_hello(s, c);
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
