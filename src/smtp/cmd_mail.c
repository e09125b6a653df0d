/* cmd_mail: MAIL and RCPT, the envelope. Recipients in local domains are looked up
 * in the user store on a worker thread while the session is parked. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/address.h"
#include "smtp/params.h"
#include "smtp/session.h"
#include "smtp/tls_required.h"
#include "auth/auth_client.h"
#include "store/userdb.h"
#include "util/workers.h"
#include "util/xmalloc.h"

/* RFC 5321 4.1.2: ESMTP parameters exist only in a session opened with EHLO. */
static int params_after_helo(const struct session *s, const char *p, size_t len)
{
	if (s->esmtp)
		return 0;
	while (len > 0 && *p == ' ')
		p++, len--;
	return len > 0;
}

static int has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* "FROM:" / "TO:" then the path; RFC 5321 has no space after the colon, but
 * clients commonly send one, and refusing it helps nobody. */
static const char *path_start(const char *args, size_t len, const char *keyword, size_t *rest_r)
{
	size_t k = strlen(keyword);
	if (len < k || strncasecmp(args, keyword, k) != 0)
		return NULL;
	args += k;
	len -= k;
	while (len > 0 && *args == ' ')
		args++, len--;
	*rest_r = len;
	return args;
}

/* What MAIL of an authenticated session asks the store, in one worker hop. */
struct sender_job {
	struct session *s;
	struct auth_client *users;
	char *authid, *user, *from, *auth;
	long long cred_gen;
	int cred;                /* 1 the login still stands, 0 withdrawn, -1 failure */
	int ok;                  /* may send as from: 1, 0, -1 */
	int auth_ok;             /* AUTH= names the user or one it may act as: 1, else 0 */
};

static void sender_lookup(void *arg)
{
	struct sender_job *j = arg;
	long long gen = 0;

	j->cred = auth_client_credential_gen(j->users, j->authid, j->user, &gen);
	if (j->cred == 1 && gen != j->cred_gen)
		j->cred = 0;
	if (j->cred != 1)
		return;
	/* On every listener, port 25 too: an authenticated user sends only as itself,
	 * its aliases or granted addresses, or it could relay as anyone. The null
	 * sender (read receipts, client-made bounces) owns nothing and stays allowed. */
	j->ok = j->from[0] ? auth_client_may_send_as(j->users, j->user, j->from) : 1;
	j->auth_ok = !j->auth || strcmp(j->auth, "<>") == 0 || strcasecmp(j->auth, j->user) == 0 ||
		     auth_client_may_act_as(j->users, j->authid, j->auth) == 1;
}

static void sender_looked_up(void *arg)
{
	struct sender_job *j = arg;
	struct session *s = j->s;
	char esc[LOG_ESCAPE_BUFSZ];

	if (session_unpark(s) == 0) {
		if (j->cred == 0) {
			/* The password or app password this session logged in with was changed
			 * or revoked, or the user deleted. Not 535: that answers AUTH, and
			 * RFC 4954 allows no second AUTH in a session. 421 closes it with a
			 * temporary code, so the client keeps the message, reconnects and must
			 * authenticate again with what is valid now. */
			log_info("smtp session=%s event=credentials-withdrawn user=%s", s->id, j->user);
			session_rejected(s, REJECT_CREDENTIALS_GONE);
			session_reply(s, 421, "4.7.0", "%s Authentication no longer valid, closing connection",
				      s->cfg->hostname);
			session_close(s);
		} else if (j->cred < 0 || j->ok < 0) {
			session_rejected(s, REJECT_TEMPORARY);
			session_reply(s, 451, "4.3.0", "Temporary lookup failure, try again later");
			session_reset_tx(s);
		} else if (j->ok == 0) {
			log_info("smtp session=%s event=sender-rejected user=%s from=\"%s\"", s->id, j->user,
				 log_escape(esc, sizeof(esc), j->from, strlen(j->from)));
			session_rejected(s, REJECT_SENDER_NOT_OWNED);
			session_reply(s, 553, "5.7.1", "<%s>: Sender address rejected: not owned by user %s",
				      j->from, j->user);
			session_reset_tx(s);
		} else {
			if (!j->auth_ok) {
				/* RFC 4954 5 says when a server may pass AUTH= on, never to
				 * refuse the MAIL; Postfix accepts any value and only logs it
				 * ("do not store raw RFC2554 protocol data"). So a forged one is
				 * not refused but never stored or passed on: the authenticated
				 * identity, which RFC 4954 5 lets a server supply, stands in. */
				log_info("smtp session=%s event=auth-param-replaced user=%s auth=\"%s\"", s->id,
					 j->user, log_escape(esc, sizeof(esc), j->auth, strlen(j->auth)));
				envelope_set_str(&s->env.auth, s->user);
			}
			session_enter(s, S_MAIL);
			session_reply(s, 250, "2.1.0", "Ok");
		}
		session_process(s);
	}
	free(j->authid);
	free(j->user);
	free(j->from);
	free(j->auth);
	free(j);
}

/* An authenticated MAIL: the login still valid, the sender owned, AUTH= truthful. */
static void mail_check_sender(struct session *s)
{
	struct sender_job *j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->users = s->srv->auth;
	j->authid = xstrdup(s->authid ? s->authid : s->user);
	j->user = xstrdup(s->user);
	j->from = xstrdup(s->env.mail_from);
	j->auth = s->env.auth ? xstrdup(s->env.auth) : NULL;
	j->cred_gen = s->cred_gen;
	session_park(s);
	workers_submit(s->srv->workers, sender_lookup, sender_looked_up, j);
}

void cmd_mail(struct session *s, const char *args, size_t len)
{
	struct mail_params mp = {0};
	struct param_error perr;
	const char *p, *why;
	size_t rest, end;
	char *addr = NULL;

	if (!(p = path_start(args, len, "FROM:", &rest))) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	if (address_parse_path(p, rest, 1, 1, &addr, &end, &why) < 0) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.1.7", "Bad sender address syntax: %s", why);
		return;
	}
	if (params_after_helo(s, p + end, rest - end)) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 555, "5.5.4", "MAIL parameters need EHLO, not HELO");
		goto out;
	}
	if (params_parse_mail(p + end, rest - end, &mp, &perr) < 0) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, perr.code, perr.enhanced, "%s", perr.text);
		goto out;
	}
	/* RFC 8689 2: REQUIRETLS only in a session under TLS, where EHLO offered it. The
	 * client asked for encryption it does not have: 530 as RFC 3207 4 answers a
	 * command that needs TLS first, with 5.7.10 "Encryption needed" (RFC 5248),
	 * the code RFC 8689 4.2.1 gives for the lack of a TLS session. */
	if (mp.requiretls && !tlsreq_offered(s)) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 530, "5.7.10", "REQUIRETLS needs a TLS session: issue STARTTLS first");
		goto out;
	}
	/* RFC 6531 3.7.4.1: a non-ASCII address without SMTPUTF8 is refused with 553 5.6.7. */
	if (!mp.smtputf8 && has_non_ascii(addr)) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
		goto out;
	}
	if (mp.body == BODY_BINARYMIME) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 555, "5.5.4", "BODY=BINARYMIME is not supported");
		goto out;
	}
	/* RFC 1870 6.2: refuse at MAIL a message declared larger than the limit. */
	if (mp.size > s->limits->max_message_size) {
		session_rejected(s, REJECT_TOO_BIG);
		session_reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		goto out;
	}
	session_reset_tx(s);
	s->env.mail_from = addr;
	addr = NULL;
	s->env.helo = xstrdup(s->helo);
	s->env.client_addr = xstrdup(s->addr);
	s->env.body = mp.body;
	s->env.smtputf8 = mp.smtputf8;
	/* RFC 8689 4.1: "an SMTP server MUST tag that message as needing REQUIRETLS
	 * handling"; "TLS-Required: No" is looked for in the header (cmd_data.c). */
	s->env.tlsreq = mp.requiretls ? TLSREQ_REQUIRETLS : TLSREQ_DEFAULT;
	s->env.ret = mp.ret;
	s->env.envid = mp.envid;
	mp.envid = NULL;
	/* RFC 4954 5: AUTH= is kept only from an authenticated (trusted) client, which
	 * stands for the user when it gives none; from anyone else it counts as <>. */
	if (s->user) {
		s->env.auth = mp.auth ? mp.auth : xstrdup(s->user);
		mp.auth = NULL;
	} else if (mp.auth) {
		s->env.auth = xstrdup("<>");
	}
	s->declared_size = mp.size;
	if (s->user) {
		mail_check_sender(s);
		goto out;
	}
	session_enter(s, S_MAIL);
	session_reply(s, 250, "2.1.0", "Ok");
out:
	params_mail_clear(&mp);
	free(addr);
}

struct rcpt_job {
	struct session *s;
	struct auth_client *users;
	char *addr;
	struct rcpt_params rp;
	size_t room;                 /* mailboxes max_recipients still allows */
	int found;
	char **boxes;
	size_t nboxes;
};

static void rcpt_lookup(void *arg)
{
	struct rcpt_job *j = arg;
	j->found = auth_client_resolve(j->users, j->addr, j->room, &j->boxes, &j->nboxes);
}

static void rcpt_job_free(struct rcpt_job *j)
{
	userdb_free_list(j->boxes, j->nboxes);
	params_rcpt_clear(&j->rp);
	free(j->addr);
	free(j);
}

static void rcpt_looked_up(void *arg)
{
	struct rcpt_job *j = arg;
	struct session *s = j->s;
	char esc[LOG_ESCAPE_BUFSZ];

	if (session_unpark(s) < 0) {
		rcpt_job_free(j);
		return;
	}
	if (j->found == USERDB_RESOLVE_TOO_MANY) {
		/* Every mailbox an alias expands to is a recipient of max_recipients. */
		log_info("smtp session=%s event=rcpt-rejected rcpt=\"%s\" reason=too-many-recipients", s->id,
			 log_escape(esc, sizeof(esc), j->addr, strlen(j->addr)));
		session_rejected(s, REJECT_TOO_MANY_RCPTS);
		session_reply(s, 452, "4.5.3", "<%s>: Too many recipients", j->addr);
	} else if (j->found < 0) {
		session_rejected(s, REJECT_TEMPORARY);
		session_reply(s, 451, "4.3.0", "<%s>: Temporary lookup failure, try again later", j->addr);
	} else if (j->found == 0) {
		log_info("smtp session=%s event=rcpt-rejected rcpt=\"%s\" reason=unknown", s->id,
			 log_escape(esc, sizeof(esc), j->addr, strlen(j->addr)));
		session_rejected(s, REJECT_UNKNOWN_USER);
		session_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: no such user", j->addr);
	} else {
		for (size_t i = 0; i < j->nboxes; i++)
			envelope_add_rcpt(&s->env, j->addr, j->rp.orcpt, j->rp.notify, j->boxes[i]);
		s->nrcpts++;
		session_enter(s, S_RCPT);
		session_reply(s, 250, "2.1.5", "Ok");
	}
	rcpt_job_free(j);
	session_process(s);
}

void cmd_rcpt(struct session *s, const char *args, size_t len)
{
	struct rcpt_params rp = {0};
	struct param_error perr;
	const char *p, *why;
	size_t rest, end;
	char *addr = NULL, *local = NULL, *domain = NULL;

	if (!(p = path_start(args, len, "TO:", &rest))) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	if (s->env.n_rcpts >= s->limits->max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452 for too many recipients; the client retries them.
		 * Counted in envelope entries: each mailbox of an expanded alias is one. */
		session_rejected(s, REJECT_TOO_MANY_RCPTS);
		session_reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	/* RFC 5321 4.1.1.3: "<Postmaster>" without a domain must be accepted. */
	if (rest >= 12 && strncasecmp(p, "<postmaster>", 12) == 0) {
		addr = xasprintf("postmaster@%s", s->cfg->local_domains[0]);
		end = 12;
	} else if (address_parse_path(p, rest, 0, 1, &addr, &end, &why) < 0) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.1.3", "Bad recipient address syntax: %s", why);
		return;
	}
	if (params_after_helo(s, p + end, rest - end)) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 555, "5.5.4", "RCPT parameters need EHLO, not HELO");
		goto out;
	}
	if (params_parse_rcpt(p + end, rest - end, &rp, &perr) < 0) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, perr.code, perr.enhanced, "%s", perr.text);
		goto out;
	}
	if (!s->env.smtputf8 && has_non_ascii(addr)) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
		goto out;
	}
	if (address_split(addr, &local, &domain) < 0) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.1.3", "Bad recipient address syntax");
		goto out;
	}
	if (!config_is_local_domain(s->cfg, domain)) {
		/* No open relay: mail for other domains only from an authenticated user
		 * or a local one (the local socket, whose caller's uid is recorded).
		 * The canonical address's domain is the one routing uses, so "%", "!" and
		 * quoted "@" in the local part cannot smuggle in another destination. */
		if (!s->user && !SESSION_LOCAL(s)) {
			session_rejected(s, REJECT_RELAY_DENIED);
			session_reply(s, 554, "5.7.1", "<%s>: Relay access denied", addr);
			goto out;
		}
		envelope_add_rcpt(&s->env, addr, rp.orcpt, rp.notify, NULL);
		s->nrcpts++;
		session_enter(s, S_RCPT);
		session_reply(s, 250, "2.1.5", "Ok");
		goto out;
	}
	struct rcpt_job *j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->users = s->srv->auth;
	j->addr = addr;
	j->rp = rp;
	j->room = s->limits->max_recipients - s->env.n_rcpts;
	addr = NULL;
	memset(&rp, 0, sizeof(rp));
	session_park(s);
	workers_submit(s->srv->workers, rcpt_lookup, rcpt_looked_up, j);
out:
	params_rcpt_clear(&rp);
	free(addr);
	free(local);
	free(domain);
}
