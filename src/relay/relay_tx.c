/* relay_tx: one transaction over a ready relay session: what the next hop cannot take
 * refused first, then MAIL, RCPTs and DATA (in one group under PIPELINING, RFC 2920),
 * the body, the final dot (with LMTP one reply per recipient), and RSET before the
 * session goes back to the cache. */
#include "relay/relay_sess_int.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "queue/envelope.h"
#include "relay/requiretls.h"
#include "util/xmalloc.h"
#include "util/xtext.h"

static enum delivery_result relay_class(int code)
{
	return code / 100 == 2 ? DR_DELIVERED : code / 100 == 5 ? DR_PERMFAIL : DR_TEMPFAIL;
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
void relay_tx_all(struct relay_sess *s, enum delivery_result res, const char *status,
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
			char *x = xtext_encode(env->envid, strlen(env->envid));
			ADD("%s ENVID=%s", line, x);
			free(x);
		}
	}
	/* RFC 4954 5: the submitter's identity passes on only when we authenticated
	 * ourselves; otherwise "AUTH=<>" says it is unknown. */
	if (s->authed) {
		char *x = env->auth ? xtext_encode(env->auth, strlen(env->auth)) : xstrdup("<>");
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
			char *x = xtext_encode(semi + 1, strlen(semi + 1));
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

void relay_tx_reply(struct relay_sess *s, const struct smtpc_reply *r)
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

void relay_dot_reply(struct relay_sess *s, const struct smtpc_reply *r)
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
