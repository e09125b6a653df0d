/* sched_outcome: a job's life and the record of what it achieved: its delivery's
 * results turned into journal events (with the next attempt of a deferred recipient),
 * one log line per recipient, and the journal written on a worker before the round
 * may act on them. */
#include "deliver/sched_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

void sched_job_free(struct sjob *j)
{
	struct sched *s = j->s;
	if (j->prev)
		j->prev->next = j->next;
	else
		s->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	transport_delivery_clear(&j->d);
	free(j->d.rcpts);
	for (size_t i = 0; i < j->n_evs; i++) {
		free((char *)j->evs[i].status);
		free((char *)j->evs[i].remote);
		free((char *)j->evs[i].diag);
	}
	free(j->evs);
	route_clear(&j->route);
	qbody_close(&j->d.body);
	auth_client_relay_cred_clear(&j->cred);
	if (j->rejected)
		xfree_secret(j->rejected, strlen(j->rejected));
	config_release(&j->cfg);
	free(j);
}

struct sjob *sched_job_new(struct sched *s, struct smsg *msg)
{
	struct sjob *j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->cfg = config_ref(s->cfg);
	j->msg = msg;
	j->d.body.fd = -1;
	j->next = s->jobs;
	if (s->jobs)
		s->jobs->prev = j;
	s->jobs = j;
	msg->pending++;
	return j;
}

static void sched_record_work(void *arg)
{
	struct sjob *j = arg;
	j->err = qstore_record(j->s->qs, j->msg->id, j->evs, j->n_evs);
}

static void sched_record_done(void *arg)
{
	struct sjob *j = arg;
	struct smsg *msg = j->msg;
	if (j->err)
		log_warnx("queue id=%s outcome not recorded (may be delivered again): %s",
			  msg->id, strerror(j->err));
	/* Applied even when not recorded: retrying at once would not help either. */
	for (size_t i = 0; i < j->n_evs; i++)
		qstore_apply(&msg->m, &j->evs[i]);
	sched_job_free(j);
	if (--msg->pending == 0)
		sched_round_end(msg);
}

void sched_record(struct sjob *j)
{
	/* A journal written now would be an orphan beside no message. */
	workers_submit(j->s->w, j->msg->vanished ? NULL : sched_record_work, sched_record_done, j);
}

struct qev *sched_ev_add(struct sjob *j, enum qev_kind kind, size_t rcpt, time_t when)
{
	struct qev *ev;
	j->evs = xrealloc(j->evs, (j->n_evs + 1) * sizeof(*j->evs));
	ev = &j->evs[j->n_evs++];
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->rcpt = rcpt;
	ev->when = when;
	return ev;
}

static char *sched_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct transport *sched_transport(const struct sjob *j)
{
	return j->route.kind == ROUTE_LOCAL ? j->s->local
	     : j->route.kind == ROUTE_LMTP ? j->s->lmtp : j->s->smtp;
}

void sched_log_attempt(struct sjob *j, const struct env_rcpt *r, const char *result,
		       const char *status, const char *diag, time_t now, unsigned retry)
{
	char rcpt[LOG_ESCAPE_BUFSZ], why[LOG_ESCAPE_BUFSZ], route[LOG_ESCAPE_BUFSZ];
	char host[LOG_ESCAPE_BUFSZ], retry_s[32] = "";
	const struct delivery *d = &j->d;
	log_escape(rcpt, sizeof(rcpt), r->address, strlen(r->address));
	log_escape(why, sizeof(why), diag ? diag : "", diag ? strlen(diag) : 0);
	log_escape(route, sizeof(route), r->route ? r->route : "-", strlen(r->route ? r->route : "-"));
	if (d->remote_host)
		log_escape(host, sizeof(host), d->remote_host, strlen(d->remote_host));
	else
		strcpy(host, "-");
	if (retry)
		snprintf(retry_s, sizeof(retry_s), " retry_in=%us", retry);
	log_info("delivery id=%s rcpt=\"%s\" route=\"%s\" relay=%s[%s] tls=%s verified=%s%s%s%s "
		 "result=%s status=%s delay=%llds attempts=%u%s reply=\"%s\"",
		 j->msg->id, rcpt, route, host, d->remote_addr ? d->remote_addr : "-",
		 d->tls ? d->tls : "none", d->tls ? (d->tls_verified ? "yes" : "no") : "-",
		 d->tls_policy ? " tls_policy=" : "", d->tls_policy ? d->tls_policy : "",
		 j->msg->m.env.tlsreq == TLSREQ_REQUIRETLS ? " requiretls=yes" : "",
		 result, status && *status ? status : "-",
		 (long long)(now - j->msg->m.env.received), r->attempts + 1, retry_s, why);
}

/* Turns a delivery's results into journal events and logs one line per recipient. */
void sched_outcomes(struct sjob *j)
{
	struct sched *s = j->s;
	const struct config *cfg = s->cfg;
	struct delivery *d = &j->d;
	time_t now = time(NULL);
	int expired = now - j->msg->m.env.received >= (time_t)cfg->queue_lifetime;
	time_t dest_ready = sched_dest_ready_at(j->dest);

	for (size_t i = 0; i < d->n_rcpts; i++) {
		struct delivery_rcpt *dr = &d->rcpts[i];
		const struct env_rcpt *r = &j->msg->m.env.rcpts[dr->index];
		const char *status = dr->status, *result;
		enum qev_kind kind;
		unsigned retry = 0;
		struct qev *ev;

		switch (dr->result) {
		case DR_DELIVERED:
			/* LMTP puts it in the mailbox: final, like a Maildir. */
			kind = d->dsn_passed || j->route.kind == ROUTE_LOCAL ||
			       j->route.kind == ROUTE_LMTP ? QEV_DELIVERED : QEV_RELAYED;
			break;
		case DR_PERMFAIL:
			kind = QEV_FAILED;
			break;
		default:
			if (!dr->diag)
				transport_delivery_set(dr, DR_TEMPFAIL, "4.4.1", "delivery not attempted");
			status = dr->status[0] ? dr->status : "4.0.0";
			if (expired) {
				/* RFC 3463 4.4.7, reported as the final failure it now is. */
				kind = QEV_FAILED;
				status = "5.4.7";
			} else {
				kind = QEV_DEFERRED;
				retry = sched_backoff(cfg, r->attempts + 1);
			}
		}
		ev = sched_ev_add(j, kind, dr->index, now);
		ev->status = sched_dup(status);
		ev->remote = sched_dup(d->remote_host);
		if (kind == QEV_FAILED && expired && dr->result != DR_PERMFAIL) {
			char *why = xasprintf("%s (gave up: the message was %lld hours in the queue)",
					      dr->diag, (long long)(now - j->msg->m.env.received) / 3600);
			ev->diag = why;
		} else {
			ev->diag = sched_dup(dr->diag);
		}
		if (kind == QEV_DEFERRED) {
			ev->next = now + retry;
			/* A destination that is down is not tried before it is due. */
			if (dest_ready > ev->next)
				ev->next = dest_ready;
		}
		result = kind == QEV_DELIVERED ? "delivered" : kind == QEV_RELAYED ? "relayed" :
			 kind == QEV_FAILED ? (expired && dr->result != DR_PERMFAIL ? "expired" : "failed")
					    : "deferred";
		sched_log_attempt(j, r, result, ev->status, ev->diag, now,
				  kind == QEV_DEFERRED ? (unsigned)(ev->next - now) : 0);
		metrics_delivery(sched_transport(j)->name, result);
	}
}
