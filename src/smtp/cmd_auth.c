/* cmd_auth: SMTP AUTH (RFC 4954). The exchange itself runs in GNU SASL in cursus-auth
 * (auth_client.h), reached from a worker thread; the session is parked meanwhile.
 * Every attempt is logged in one stable line, never with a payload or a password. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth_client.h"
#include "net/conn.h"
#include "sasl/authlimit.h"
#include "sasl/sasl.h"
#include "smtp/session.h"
#include "smtp/trace.h"
#include "util/addrcount.h"
#include "util/workers.h"
#include "util/xmalloc.h"

struct auth_job {
	struct session *s;
	struct auth_client *srv;
	const struct sasl_mech *mech;
	struct auth_client_sasl *sx;    /* NULL: start one */
	struct sasl_channel chan;
	char *in;                       /* client's base64, NULL for no initial response */
	size_t inlen;
	enum sasl_status st;
	char *out;
	unsigned delay_ms;              /* for a failure: how long to hold the reply */
};

/* Runs on the worker. The argument is the session, not the job: the exchange keeps it
 * across steps, and a parked session outlives every step (its address never changes). */
static int auth_precheck(void *arg, const char *authid)
{
	struct session *s = arg;
	const struct sockaddr *sa = (const struct sockaddr *)&s->sa;
	time_t now = time(NULL);
	/* The address budget again, here: parallel sessions that all sent AUTH before
	 * any failed must not each get a password checked. */
	if (authlimit_addr_blocked(s->srv->authlimit, sa, now) > 0 ||
	    authlimit_account_blocked(s->srv->authlimit, authid, sa, now) > 0)
		return 1;
	/* cursus-auth reads the credential generation next, before it checks anything. */
	return 0;
}

static void auth_work(void *arg)
{
	struct auth_job *j = arg;
	if (!j->sx)
		j->sx = auth_client_sasl_start(j->srv, j->mech, &j->chan);
	j->st = auth_client_sasl_step(j->sx, j->in, j->inlen, &j->out, auth_precheck, j->s);
	/* The parked session is the worker's until auth_done. */
	if (j->st == SASL_OK)
		j->s->cred_gen_read = auth_client_sasl_cred_gen(j->sx, &j->s->cred_gen_pending);
	/* Counted here, as soon as it is known, so that attempts still in flight on
	 * other workers see it. */
	if (j->st == SASL_FAIL)
		j->delay_ms = authlimit_failure(j->s->srv->authlimit, (const struct sockaddr *)&j->s->sa,
						auth_client_sasl_authid(j->sx), time(NULL));
}

static void auth_log(struct session *s, const char *result, const char *reason)
{
	char a[LOG_ESCAPE_BUFSZ], z[LOG_ESCAPE_BUFSZ];
	const char *authid = s->sx ? auth_client_sasl_authid(s->sx) : NULL;
	const char *authzid = s->sx ? auth_client_sasl_authzid(s->sx) : NULL;
	/* The one stable format (fail2ban: match "auth .* client=<HOST> .* result=fail"). */
	log_info("auth session=%s client=%s listener=%s mechanism=%s authid=\"%s\" authzid=\"%s\" "
		 "result=%s%s%s",
		 s->id, s->addr, s->lc->name, s->auth_mech ? s->auth_mech->name : "-",
		 authid ? log_escape(a, sizeof(a), authid, strlen(authid)) : "",
		 authzid ? log_escape(z, sizeof(z), authzid, strlen(authzid)) : "", result,
		 reason ? " reason=" : "", reason ? reason : "");
	metrics_add(METRIC_AUTH, 1, s->lc->name, s->auth_mech ? s->auth_mech->name : "-", result);
}

static void auth_finish(struct session *s)
{
	auth_client_sasl_end(&s->sx);
	s->auth_mech = NULL;
	session_enter(s, S_READY);
}

static void auth_reply_failure(struct session *s)
{
	/* RFC 4954 6: 535 5.7.8, the same for an unknown user and a wrong password. */
	session_reply(s, 535, "5.7.8", "Authentication credentials invalid");
	auth_finish(s);
}

static void auth_delayed(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	event_free(s->auth_delay);
	s->auth_delay = NULL;
	if (session_unpark(s) < 0)
		return;
	auth_reply_failure(s);
	session_process(s);
}

static void auth_done(void *arg)
{
	struct auth_job *j = arg;
	struct session *s = j->s;
	unsigned delay;

	s->sx = j->sx;
	if (s->dead) {
		cmd_auth_cleanup(s);
		session_unpark(s);
		goto out;
	}
	switch (j->st) {
	case SASL_MORE:
		session_enter(s, S_AUTH);
		session_reply(s, 334, NULL, "%s", j->out ? j->out : "");
		break;
	case SASL_OK:
		s->user = xstrdup(auth_client_sasl_user(s->sx));
		s->authid = xstrdup(auth_client_sasl_authid(s->sx) ? auth_client_sasl_authid(s->sx) : s->user);
		/* Unread (a store failure): 0, which the next MAIL most likely finds
		 * different; ending a session is safer than trusting an unknown. */
		s->cred_gen = s->cred_gen_read ? s->cred_gen_pending : 0;
		if (!s->trace && (s->trace = trace_match_user(s->srv->trace, s->user)))
			log_info("trace session=%s start user=%s client=%s", s->id, s->user, s->addr);
		auth_log(s, "ok", NULL);
		session_reply(s, 235, "2.7.0", "Authentication successful");
		auth_finish(s);
		break;
	case SASL_FAIL:
		auth_log(s, "fail", auth_client_sasl_reason(s->sx));
		delay = j->delay_ms;
		if (delay > 0) {
			/* Slow down guessing; the session stays parked until the reply. */
			struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
			s->auth_delay = evtimer_new(s->srv->base, auth_delayed, s);
			evtimer_add(s->auth_delay, &tv);
			goto out;
		}
		auth_reply_failure(s);
		break;
	case SASL_REFUSED:
		auth_log(s, "refused", "account-budget");
		session_reply(s, 454, "4.7.0", "Too many failed authentications, try again later");
		auth_finish(s);
		break;
	case SASL_TEMPFAIL:
		auth_log(s, "tempfail", auth_client_sasl_reason(s->sx));
		session_reply(s, 454, "4.7.0", "Temporary authentication failure, try again later");
		auth_finish(s);
		break;
	case SASL_BAD_BASE64:
		auth_log(s, "bad-base64", NULL);
		session_reply(s, 501, "5.5.2", "Invalid base64 data");
		auth_finish(s);
		break;
	}
	if (session_unpark(s) == 0)
		session_process(s);
out:
	if (j->in)
		xfree_secret(j->in, j->inlen);
	free(j->out);
	free(j);
}

static void auth_submit(struct session *s, const char *in, size_t len)
{
	struct auth_job *j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->srv = s->srv->auth;
	j->mech = s->auth_mech;
	j->sx = s->sx;
	if (!j->sx)
		s->cred_gen_read = 0; /* a new exchange */
	s->sx = NULL; /* the worker has it until auth_done */
	j->chan = s->chan;
	/* Where a store keeps budgets for every node, it counts this client too. */
	addrcount_client_text((const struct sockaddr *)&s->sa, s->cfg->client_ipv6_prefix,
			      j->chan.client);
	if (in) {
		j->in = xstrndup(in, len);
		j->inlen = len;
	}
	session_park(s);
	workers_submit(s->srv->workers, auth_work, auth_done, j);
}

unsigned session_auth_offered(const struct session *s)
{
	unsigned m = s->limits->auth_mechanisms;
	size_t n;
	const struct sasl_mech *mechs = sasl_mechs(&n);
	if (s->user || !s->srv->auth)
		return 0; /* RFC 4954 4: no AUTH after a successful one */
	/* Without TLS only what the administrator allowed in clear. */
	if (!s->tls)
		m &= s->limits->auth_cleartext;
	/* Whatever was allowed, never a mechanism without what it is made of: the TLS
	 * channel it binds to, or the verified certificate it takes the identity from. */
	for (size_t i = 0; i < n && i < MECH__COUNT; i++)
		if (((mechs[i].flags & SASLF_CHANNEL) && !s->tls) ||
		    ((mechs[i].flags & SASLF_EXTERNAL) && !s->chan.cert_fingerprint[0]))
			m &= ~MECH_BIT(i);
	return m;
}

void cmd_auth(struct session *s, const char *args, size_t len)
{
	const struct sasl_mech *mech;
	const char *sp = memchr(args, ' ', len);
	size_t mlen = sp ? (size_t)(sp - args) : len;
	unsigned offered = session_auth_offered(s), bit;

	if (len == 0) {
		session_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	mech = sasl_mech_find(args, mlen);
	if (!mech) {
		session_reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	size_t nmechs;
	bit = MECH_BIT(mech - sasl_mechs(&nmechs));
	if (!(offered & bit)) {
		if ((s->limits->auth_mechanisms & bit) && !s->tls) {
			/* RFC 4954 6: 538 when the mechanism needs an encrypted session. */
			session_reply(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
		} else if (mech->flags & SASLF_PLAIN_EQUIV) {
			session_reply(s, 534, "5.7.9", "Authentication mechanism is too weak");
		} else {
			session_reply(s, 504, "5.5.4", "Unrecognized authentication type");
		}
		return;
	}
	unsigned wait = authlimit_addr_blocked(s->srv->authlimit, (struct sockaddr *)&s->sa, time(NULL));
	s->auth_mech = mech;
	if (wait > 0) {
		/* Refused before any password is checked. */
		auth_log(s, "refused", "address-budget");
		s->auth_mech = NULL;
		session_reply(s, 454, "4.7.0", "Too many failed authentications, try again in %u seconds", wait);
		return;
	}
	if (!sp) {
		auth_submit(s, NULL, 0);
		return;
	}
	sp++;
	len -= mlen + 1;
	/* RFC 4954 4: "=" is an initial response of zero length. */
	if (len == 1 && sp[0] == '=')
		auth_submit(s, "", 0);
	else
		auth_submit(s, sp, len);
}

void cmd_auth_line(struct session *s, const char *line, size_t len)
{
	/* RFC 4954 4: "*" cancels the exchange, answered with 501. */
	if (len == 1 && line[0] == '*') {
		auth_log(s, "aborted", NULL);
		session_reply(s, 501, "5.0.0", "Authentication aborted");
		auth_finish(s);
		return;
	}
	auth_submit(s, line, len);
}

void cmd_auth_line_error(struct session *s, enum line_status st)
{
	if (st == LINE_TOO_LONG) {
		/* RFC 4954 6: 500 5.5.6 for an over-long authentication exchange line. */
		auth_log(s, "aborted", "line-too-long");
		session_reply(s, 500, "5.5.6", "Authentication Exchange line is too long");
	} else {
		auth_log(s, "bad-base64", "bare-cr-lf");
		session_reply(s, 501, "5.5.2", "Invalid base64 data");
	}
	auth_finish(s);
}

void cmd_auth_cleanup(struct session *s)
{
	if (s->auth_delay) {
		event_free(s->auth_delay);
		s->auth_delay = NULL;
	}
	auth_client_sasl_end(&s->sx);
	free(s->user);
	s->user = NULL;
	free(s->authid);
	s->authid = NULL;
}
