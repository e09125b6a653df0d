/* scheduler: see scheduler.h. Everything here runs on the loop thread; file work
 * (loading a message, recording outcomes, removing it) goes to workers, and the loop
 * learns the result in a completion.
 *
 * A message's life is a series of rounds: load it from disk (routing any recipient
 * not yet routed, recorded at once), queue one job per destination for the recipients
 * that are due, and when every job has come back and its outcomes are recorded, end
 * the round: report what became final or late (DSNs), then remove the message or
 * sleep until its next attempt. Promises: one round per message at a time; an outcome
 * is acted upon (reported, removed) only after it is recorded; the next attempt of a
 * deferred recipient is in the journal before the round ends. */
#include "deliver/scheduler.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "deliver/bounce.h"
#include "deliver/sched_dest.h"
#include "deliver/transport.h"
#include "dsn/dsn.h"
#include "metrics/metrics.h"
#include "queue/envelope.h"
#include "queue/qstore.h"
#include "route/route.h"
#include "route/router.h"
#include "auth/auth_client.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

#define SCHED_BUCKETS 4096

struct smsg {
	char id[24];
	struct sched *s;
	struct qmsg m;          /* the last loaded state, without the body */
	int loaded, busy;       /* busy: a round (or a load, or an admin change) runs */
	int again;              /* asked for while busy: a new round when this one ends */
	int flush_now;          /* next round: every recipient is due */
	int bounce_now;         /* next round: fail every pending recipient (admin) */
	int doomed;             /* deleted by the admin: removed when the round ends */
	int vanished;           /* found corrupt (moved aside) or gone when a delivery
				 * opened it: forgotten when the round ends */
	unsigned pending;       /* jobs and records of this round not yet back */
	unsigned load_failures;
	unsigned ctl_refs;      /* hold/release requests not yet back from the journal */
	sched_ctl_cb del_cb;    /* `cursus queue delete` waiting for the removal */
	void *del_arg;
	int gone;               /* removed while ctl_refs: freed when the last comes back */
	struct dsn_item *items; /* DSN being queued */
	size_t n_items;
	struct event *timer;
	struct smsg *hnext;
};

struct sjob {
	struct sched *s;
	const struct config *cfg; /* held: policy's strings point into it */
	struct smsg *msg;
	struct sdest *dest;
	struct route route;
	struct relay_policy policy;
	struct auth_client_relay_cred cred; /* a smart host's credentials, if any */
	char *rejected;         /* the OAuth token the next hop refused (wiped) */
	int oauth_retried;      /* a refused OAuth token was refreshed once */
	struct delivery d;
	struct qev *evs;        /* the outcomes to record */
	size_t n_evs;
	int err;
	struct sjob *next, *prev; /* every live job, for sched_destroy */
};

struct sched {
	const struct config *cfg; /* held; replaced by sched_reconfigure */
	struct event_base *base;
	struct workers *w;
	struct qstore *qs;
	struct queue *q;
	struct auth_client *users;
	struct transport *local, *smtp, *lmtp;
	struct smsg *buckets[SCHED_BUCKETS];
	struct sdests *dests;
	struct sjob *jobs;
	int stopping;
};

static void sched_round(struct smsg *msg);
static void sched_round_end(struct smsg *msg);
static void sched_load(struct smsg *msg);

/* ---- messages ------------------------------------------------------------ */

static size_t sched_hash(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % SCHED_BUCKETS;
}

static struct smsg **sched_find(struct sched *s, const char *id)
{
	struct smsg **pp = &s->buckets[sched_hash(id)];
	while (*pp && strcmp((*pp)->id, id) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void sched_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct smsg *msg = arg;
	if (msg->busy)
		msg->again = 1;
	else
		sched_load(msg);
}

static struct smsg *sched_msg_get(struct sched *s, const char *id)
{
	struct smsg **pp = sched_find(s, id), *msg = *pp;
	if (msg)
		return msg;
	msg = xcalloc(1, sizeof(*msg));
	snprintf(msg->id, sizeof(msg->id), "%s", id);
	msg->s = s;
	msg->timer = evtimer_new(s->base, sched_timer_fired, msg);
	*pp = msg;
	return msg;
}

static void sched_msg_free(struct smsg *msg)
{
	if (!msg->gone) {
		struct smsg **pp = sched_find(msg->s, msg->id);
		*pp = msg->hnext;
	}
	event_free(msg->timer);
	qmsg_clear(&msg->m);
	free(msg->items);
	free(msg);
}

/* The message is gone from the queue: forgotten now, freed once no hold or release
 * still holds it. */
static void sched_msg_drop(struct smsg *msg)
{
	struct smsg **pp;
	if (msg->del_cb) {
		sched_ctl_cb cb = msg->del_cb;
		msg->del_cb = NULL;
		cb(msg->del_arg, 0, "deleted");
	}
	if (!msg->ctl_refs) {
		sched_msg_free(msg);
		return;
	}
	pp = sched_find(msg->s, msg->id);
	*pp = msg->hnext;
	msg->gone = 1;
	evtimer_del(msg->timer);
}

static unsigned sched_backoff(const struct config *cfg, unsigned attempts)
{
	unsigned lo = cfg->retry_min ? cfg->retry_min : 1;
	unsigned hi = cfg->retry_max > lo ? cfg->retry_max : lo;
	unsigned b = lo;
	for (unsigned i = 1; i < attempts && b < hi; i++)
		b = b > hi / 2 ? hi : 2 * b;
	return b;
}

/* ---- loading ------------------------------------------------------------- */

struct load_job {
	struct smsg *msg;
	const struct config *cfg; /* held: the router reads it on a worker */
	struct qmsg m;
	int err;
};

static int sched_route_readable(const char *text)
{
	struct route rt;
	if (!text || route_parse(text, &rt) < 0)
		return 0;
	route_clear(&rt);
	return 1;
}

/* On a worker: read the message and route every recipient that has no route yet (or
 * an unreadable one); the routes are recorded before anything is delivered, so they
 * are chosen once. */
static void sched_load_work(void *arg)
{
	struct load_job *lj = arg;
	struct sched *s = lj->msg->s;
	struct qev *evs;
	char **texts;
	size_t n = 0;

	/* Bodies are read per delivery, never for a whole backlog at once. */
	if ((lj->err = qstore_load(s->qs, lj->msg->id, 0, &lj->m)) != 0)
		return;
	evs = xcalloc(lj->m.env.n_rcpts, sizeof(*evs));
	texts = xcalloc(lj->m.env.n_rcpts, sizeof(*texts));
	for (size_t i = 0; i < lj->m.env.n_rcpts; i++) {
		struct env_rcpt *r = &lj->m.env.rcpts[i];
		struct route rt;
		if (r->done || sched_route_readable(r->route))
			continue;
		if (router_route(lj->cfg, &lj->m.env, i, &rt) == 0) {
			texts[n] = route_format(&rt);
			route_clear(&rt);
		}
		if (texts[n])
			evs[n] = (struct qev){ .kind = QEV_ROUTE, .rcpt = i, .route = texts[n] };
		else /* failed, not retried in a loop: nothing would route it next time */
			evs[n] = (struct qev){ .kind = QEV_FAILED, .rcpt = i, .when = time(NULL),
					       .status = "5.1.3",
					       .diag = "the address cannot be routed" };
		n++;
	}
	if (n && (lj->err = qstore_record(s->qs, lj->msg->id, evs, n)) != 0)
		log_warnx("queue id=%s cannot record routes: %s", lj->msg->id, strerror(lj->err));
	else
		for (size_t k = 0; k < n; k++)
			qstore_apply(&lj->m, &evs[k]);
	for (size_t k = 0; k < n; k++)
		free(texts[k]);
	free(texts);
	free(evs);
	if (lj->err)
		qmsg_clear(&lj->m);
}

static void sched_load_done(void *arg)
{
	struct load_job *lj = arg;
	struct smsg *msg = lj->msg;
	struct sched *s = msg->s;
	int err = lj->err;

	if (err == ENOENT || err == EBADMSG) {
		/* Removed meanwhile, or moved aside as corrupt (logged by qstore). */
		msg->busy = 0;
		sched_msg_drop(msg);
	} else if (err) {
		unsigned wait = sched_backoff(s->cfg, ++msg->load_failures);
		struct timeval tv = { (time_t)wait, 0 };
		log_warnx("queue id=%s status=deferred reason=\"read: %s\" retry_in=%us", msg->id,
			  strerror(err), wait);
		msg->busy = 0;
		evtimer_add(msg->timer, &tv);
	} else {
		msg->load_failures = 0;
		qmsg_clear(&msg->m);
		msg->m = lj->m;
		msg->loaded = 1;
		sched_round(msg);
	}
	config_release(&lj->cfg);
	free(lj);
}

static void sched_load(struct smsg *msg)
{
	struct load_job *lj;
	if (msg->s->stopping)
		return;
	lj = xcalloc(1, sizeof(*lj));
	lj->msg = msg;
	lj->cfg = config_ref(msg->s->cfg);
	msg->busy = 1;
	msg->again = 0;
	evtimer_del(msg->timer);
	workers_submit(msg->s->w, sched_load_work, sched_load_done, lj);
}

/* ---- recording outcomes ---------------------------------------------------- */

static void sched_job_free(struct sjob *j)
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

static struct sjob *sched_job_new(struct sched *s, struct smsg *msg)
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

static void sched_record(struct sjob *j)
{
	/* A journal written now would be an orphan beside no message. */
	workers_submit(j->s->w, j->msg->vanished ? NULL : sched_record_work, sched_record_done, j);
}

static struct qev *sched_ev_add(struct sjob *j, enum qev_kind kind, size_t rcpt, time_t when)
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

static struct transport *sched_transport(const struct sjob *j)
{
	return j->route.kind == ROUTE_LOCAL ? j->s->local
	     : j->route.kind == ROUTE_LMTP ? j->s->lmtp : j->s->smtp;
}

static void sched_log_attempt(struct sjob *j, const struct env_rcpt *r, const char *result,
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
static void sched_outcomes(struct sjob *j)
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

/* ---- deliveries -------------------------------------------------------------- */

static void sched_reauth(struct sjob *j);

static void sched_delivered(struct delivery *d, void *arg)
{
	struct sjob *j = arg;
	/* The next hop refused an OAuth token (expired or revoked early): one fresh
	 * token, one more try, before the refusal stands. */
	if (d->auth_rejected && j->cred.mech && !j->oauth_retried) {
		sched_reauth(j);
		return;
	}
	sched_dest_done(j->dest, d->dest_ok, d->rcpts[0].diag);
	sched_outcomes(j);
	sched_record(j);
}

static void sched_start_delivery(struct sjob *j)
{
	struct transport *t = sched_transport(j);
	j->d.auth_user = j->cred.user;
	j->d.auth_password = j->cred.password;
	j->d.auth_mech = j->cred.mech;
	j->d.auth_rejected = 0;
	t->deliver(t, &j->d, sched_delivered, j);
}

/* On a worker: the smart host's credentials; for OAuth the token, which cursus-auth
 * may have to fetch (relay_oauth_timeout bounds it). */
static void sched_creds_work(struct sjob *j)
{
	const char *sender = j->msg->m.env.mail_from;
	struct auth_client_relay_req req = {
		.ca = j->policy.ca,
		.timeout_ms = j->cfg->relay_oauth_timeout_ms,
		.margin_ms = j->cfg->relay_oauth_refresh_margin_ms,
		.rejected = j->rejected,
	};
	char *nexthop = route_nexthop(&j->route);
	int r;
	auth_client_relay_cred_clear(&j->cred);
	r = auth_client_relay_auth_find(j->s->users, nexthop, *sender ? sender : NULL, &req,
					&j->cred);
	if (j->cred.fetch)
		metrics_add(METRIC_RELAY_OAUTH_FETCH, 1, j->cred.fetch, NULL, NULL);
	j->err = r == -2 ? EACCES : r < 0 ? EAGAIN : 0;
	free(nexthop);
}

/* On a worker: what the delivery needs from disk, the body (opened after a check of
 * the whole file, never read into memory) and (for a smart host) the credentials. */
static void sched_prepare_work(void *arg)
{
	struct sjob *j = arg;
	if ((j->err = qstore_open_body(j->s->qs, j->msg->id, &j->d.body)) != 0)
		return;
	if (j->route.kind != ROUTE_LOCAL)
		j->d.hops = delivery_count_hops(&j->d.body);
	if (j->route.kind != ROUTE_RELAY || !j->s->users)
		return;
	sched_creds_work(j);
}

static void sched_reauth_work(void *arg)
{
	sched_creds_work(arg);
}

static void sched_prepare_done(void *arg)
{
	struct sjob *j = arg;
	if (j->err == EBADMSG || j->err == ENOENT) {
		/* Corrupt (moved to corrupt/ and logged by qstore) or removed: nothing
		 * of it is sent, and nothing more is recorded. */
		j->msg->vanished = 1;
		sched_dest_done(j->dest, 1, NULL);
		sched_record(j);
		return;
	}
	if (j->err) {
		/* Not sent without its body or the credentials it may need: deferred. An
		 * OAuth token that could not be had says why (the endpoint's words). */
		const char *why = j->err == EACCES ? j->cred.reason
				: j->err == EAGAIN ? "cannot read the relay credentials"
						   : "cannot read the queued message";
		for (size_t i = 0; i < j->d.n_rcpts; i++)
			transport_delivery_set(&j->d.rcpts[i], DR_TEMPFAIL,
					       j->err == EACCES ? "4.7.0" : "4.3.0", why);
		j->d.dest_ok = 1; /* not the destination's fault */
		sched_delivered(&j->d, j);
		return;
	}
	sched_start_delivery(j);
}

/* Again with a fresh token; the recipients' outcomes of the refused try are
 * forgotten (they say only that the token was refused). */
static void sched_reauth(struct sjob *j)
{
	j->oauth_retried = 1;
	if (j->rejected)
		xfree_secret(j->rejected, strlen(j->rejected));
	j->rejected = xstrdup(j->cred.password);
	transport_delivery_clear(&j->d);
	j->d.dest_ok = 1;
	j->d.auth_rejected = 0;
	workers_submit(j->s->w, sched_reauth_work, sched_prepare_done, j);
}

/* Called by the destination when the job may run (or must be deferred unrun). */
static void sched_job_run(struct sjob *j, const char *suspended)
{
	if (suspended) {
		for (size_t i = 0; i < j->d.n_rcpts; i++)
			transport_delivery_set(&j->d.rcpts[i], DR_TEMPFAIL, "4.4.1", suspended);
		sched_outcomes(j);
		sched_record(j);
		return;
	}
	workers_submit(j->s->w, sched_prepare_work, sched_prepare_done, j);
}

static void sched_dest_run_cb(void *job, const char *suspended)
{
	sched_job_run(job, suspended);
}

/* ---- rounds ---------------------------------------------------------------- */

static int sched_due(const struct smsg *msg, const struct env_rcpt *r, time_t now)
{
	return !r->done && (msg->flush_now || r->next_attempt <= now);
}

/* The admin's bounce: every pending recipient fails now; round_end sends the DSN. */
static void sched_round_bounce(struct smsg *msg, time_t now)
{
	struct envelope *env = &msg->m.env;
	struct sjob *j = sched_job_new(msg->s, msg);
	msg->bounce_now = 0;
	for (size_t i = 0; i < env->n_rcpts; i++) {
		struct qev *ev;
		if (env->rcpts[i].done)
			continue;
		ev = sched_ev_add(j, QEV_FAILED, i, now);
		ev->status = xstrdup("5.0.0");
		ev->diag = xstrdup("returned to the sender by the postmaster");
		sched_log_attempt(j, &env->rcpts[i], "failed", ev->status, ev->diag, now, 0);
	}
	sched_record(j);
}

static struct sjob *sched_job_for(struct smsg *msg, struct route *rt)
{
	struct sched *s = msg->s;
	struct sjob *j = sched_job_new(s, msg);
	char *key = route_dest(rt);
	j->route = *rt;
	memset(rt, 0, sizeof(*rt));
	j->dest = sched_dest_get(s->dests, key, j->route.kind == ROUTE_LOCAL);
	free(key);
	router_policy(j->cfg, &j->route, &j->policy);
	j->d.id = msg->id;
	j->d.env = &msg->m.env;
	j->d.route = &j->route;
	j->d.sender = msg->m.env.mail_from;
	j->d.policy = &j->policy;
	return j;
}

/* Groups the due recipients by destination into jobs (a transaction each, at most
 * relay_rcpts_per_transaction recipients for SMTP) and queues them. */
static void sched_round(struct smsg *msg)
{
	struct sched *s = msg->s;
	struct envelope *env = &msg->m.env;
	time_t now = time(NULL);
	struct sjob **jobs = NULL;
	size_t n_jobs = 0;

	msg->pending++; /* the round itself, until every job is queued */
	if (msg->bounce_now && !msg->doomed) {
		sched_round_bounce(msg, now);
	} else if (!msg->doomed && !msg->m.held) {
		for (size_t i = 0; i < env->n_rcpts; i++) {
			struct env_rcpt *r = &env->rcpts[i];
			struct sjob *j = NULL;
			struct route rt;
			if (!sched_due(msg, r, now) || !r->route)
				continue;
			if (route_parse(r->route, &rt) < 0) {
				log_warnx("queue id=%s rcpt_index=%zu unreadable route \"%s\"",
					  msg->id, i, r->route);
				continue;
			}
			for (size_t k = 0; k < n_jobs && !j; k++) {
				struct sjob *o = jobs[k];
				if (o->route.kind == rt.kind && o->route.port == rt.port &&
				    o->route.literal == rt.literal &&
				    strcasecmp(o->route.policy ? o->route.policy : "",
					       rt.policy ? rt.policy : "") == 0 &&
				    (rt.kind == ROUTE_LOCAL ||
				     /* A socket's path is case-sensitive, a host name not. */
				     ((rt.kind == ROUTE_LMTP ? strcmp(o->route.target, rt.target)
				       : strcasecmp(o->route.target, rt.target)) == 0 &&
				      o->d.n_rcpts < s->cfg->relay_rcpts_per_transaction)))
					j = o;
			}
			if (j) {
				route_clear(&rt);
			} else {
				j = sched_job_for(msg, &rt);
				jobs = xrealloc(jobs, (n_jobs + 1) * sizeof(*jobs));
				jobs[n_jobs++] = j;
			}
			j->d.rcpts = xrealloc(j->d.rcpts, (j->d.n_rcpts + 1) * sizeof(*j->d.rcpts));
			memset(&j->d.rcpts[j->d.n_rcpts], 0, sizeof(*j->d.rcpts));
			j->d.rcpts[j->d.n_rcpts++].index = i;
		}
	}
	msg->flush_now = 0;
	/* Queued only now: a destination may run a job at once, even finish it. */
	for (size_t k = 0; k < n_jobs; k++)
		sched_dest_push(jobs[k]->dest, jobs[k]);
	free(jobs);
	if (--msg->pending == 0)
		sched_round_end(msg);
}

static void sched_removed_work(void *arg)
{
	struct smsg *msg = arg;
	int err = qstore_remove(msg->s->qs, msg->id);
	if (err && err != ENOENT)
		log_warnx("queue id=%s cannot remove: %s", msg->id, strerror(err));
}

static void sched_removed_done(void *arg)
{
	struct smsg *msg = arg;
	log_info("queue id=%s status=removed", msg->id);
	msg->busy = 0;
	sched_msg_drop(msg);
}

static void sched_notified(void *arg, int err);

/* What the sender must hear of now: final recipients not yet reported, and late
 * ones not yet warned about. Returns the number of items (msg->items). */
static size_t sched_collect_dsn(struct smsg *msg, time_t now, struct qev **evs_r, size_t *nev_r)
{
	const struct config *cfg = msg->s->cfg;
	const struct envelope *env = &msg->m.env;
	size_t n = 0, nev = 0;
	struct qev *evs = xcalloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*evs));
	free(msg->items);
	msg->items = xcalloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*msg->items));
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct env_rcpt *r = &env->rcpts[i];
		enum dsn_kind kind;
		if (r->done && !r->notified) {
			kind = r->state == RCPT_FAILED ? DSN_FAILED :
			       r->state == RCPT_RELAYED ? DSN_RELAYED : DSN_DELIVERED;
			evs[nev++] = (struct qev){ .kind = QEV_NOTIFIED, .rcpt = i, .when = now };
		} else if (!r->done && r->state == RCPT_DEFERRED && !r->delay_warned &&
			   cfg->delay_warning_time &&
			   now - env->received >= (time_t)cfg->delay_warning_time) {
			kind = DSN_DELAYED;
			evs[nev++] = (struct qev){ .kind = QEV_WARNED, .rcpt = i, .when = now };
		} else {
			continue;
		}
		/* RFC 3461 5.2.2.1: delivered to a next hop that took NOTIFY (only a local
		 * delivery or such a relay is "delivered"): its success report is the
		 * next hop's to send. */
		if (kind == DSN_DELIVERED && r->route && strncmp(r->route, "local ", 6) != 0)
			continue;
		if (dsn_wanted(env, i, kind))
			msg->items[n++] = (struct dsn_item){ .rcpt = i, .kind = kind };
	}
	msg->n_items = n;
	*evs_r = evs;
	*nev_r = nev;
	return n;
}

static void sched_notify_record(struct smsg *msg, struct qev *evs, size_t nev)
{
	struct sjob *j = sched_job_new(msg->s, msg);
	j->evs = evs;
	j->n_evs = nev;
	sched_record(j);
}

static void sched_round_end(struct smsg *msg)
{
	struct sched *s = msg->s;
	time_t now = time(NULL), next = 0;
	struct qev *evs;
	size_t nev;

	if (s->stopping)
		return;
	if (msg->vanished) {
		msg->busy = 0;
		sched_msg_drop(msg);
		return;
	}
	if (msg->doomed) {
		workers_submit(s->w, sched_removed_work, sched_removed_done, msg);
		return;
	}
	if (!msg->m.held) {
		if (sched_collect_dsn(msg, now, &evs, &nev) > 0) {
			/* Recorded once the DSN is safely queued: a crash in between
			 * sends it twice rather than never. */
			msg->pending++;
			free(evs);
			bounce_send(s->cfg, s->w, s->qs, s->q, s->users, &msg->m, msg->items,
				    msg->n_items,
				    msg->m.env.received + (time_t)s->cfg->queue_lifetime,
				    sched_notified, msg);
			return;
		}
		if (nev > 0) {
			sched_notify_record(msg, evs, nev);
			return;
		}
		free(evs);
	}
	if (msg->again || msg->flush_now || msg->bounce_now) {
		sched_load(msg);
		return;
	}
	if (qmsg_finished(&msg->m)) {
		workers_submit(s->w, sched_removed_work, sched_removed_done, msg);
		return;
	}
	msg->busy = 0;
	if (msg->m.held)
		return;
	for (size_t i = 0; i < msg->m.env.n_rcpts; i++) {
		const struct env_rcpt *r = &msg->m.env.rcpts[i];
		if (!r->done && (next == 0 || r->next_attempt < next))
			next = r->next_attempt;
	}
	{
		struct timeval tv = { next > now ? next - now : 0, 0 };
		evtimer_add(msg->timer, &tv);
	}
}

static void sched_notified(void *arg, int err)
{
	struct smsg *msg = arg;
	time_t now = time(NULL);
	struct qev *evs;
	size_t nev;
	msg->pending--;
	if (err == EBADMSG || err == ENOENT) {
		/* Moved aside as corrupt, or removed, while the DSN was built. */
		msg->busy = 0;
		sched_msg_drop(msg);
		return;
	}
	if (err) {
		unsigned wait = sched_backoff(msg->s->cfg, 1);
		struct timeval tv = { (time_t)wait, 0 };
		log_warnx("queue id=%s cannot queue the DSN: %s (retry in %us)", msg->id,
			  strerror(err), wait);
		msg->busy = 0;
		evtimer_add(msg->timer, &tv);
		return;
	}
	sched_collect_dsn(msg, now, &evs, &nev);
	sched_notify_record(msg, evs, nev);
}

/* ---- entry points -------------------------------------------------------------- */

struct enqueue_req {
	struct sched *s;
	char id[24];
};

static void sched_enqueue_loop(void *arg)
{
	struct enqueue_req *req = arg;
	struct sched *s = req->s;
	if (!s->stopping) {
		struct smsg *msg = sched_msg_get(s, req->id);
		if (msg->busy)
			msg->again = 1;
		else
			sched_load(msg);
	}
	free(req);
}

void sched_enqueue(struct sched *s, const char *id)
{
	struct enqueue_req *req = xcalloc(1, sizeof(*req));
	req->s = s;
	snprintf(req->id, sizeof(req->id), "%s", id);
	workers_post(s->w, sched_enqueue_loop, req);
}

void sched_enqueue_cb(void *s, const char *id)
{
	sched_enqueue(s, id);
}

struct sched *sched_create(const struct config *cfg, struct event_base *base,
			   struct workers *w, struct qstore *qs, struct queue *q,
			   struct auth_client *users, struct transport *local, struct transport *smtp,
			   struct transport *lmtp)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	s->cfg = config_ref(cfg);
	s->base = base;
	s->w = w;
	s->qs = qs;
	s->q = q;
	s->users = users;
	s->local = local;
	s->smtp = smtp;
	s->lmtp = lmtp;
	s->dests = sched_dests_create(cfg, base, sched_dest_run_cb);
	return s;
}

void sched_reconfigure(struct sched *s, const struct config *cfg)
{
	const struct config *old = s->cfg;
	s->cfg = config_ref(cfg);
	sched_dests_reconfigure(s->dests, cfg);
	if (s->smtp->reconfigure)
		s->smtp->reconfigure(s->smtp, cfg);
	if (s->local->reconfigure)
		s->local->reconfigure(s->local, cfg);
	if (s->lmtp->reconfigure)
		s->lmtp->reconfigure(s->lmtp, cfg);
	config_release(&old);
}

void sched_destroy(struct sched **sp)
{
	struct sched *s = *sp;
	if (!s)
		return;
	s->stopping = 1;
	while (s->jobs)
		sched_job_free(s->jobs);
	sched_dests_destroy(&s->dests);
	for (size_t b = 0; b < SCHED_BUCKETS; b++)
		while (s->buckets[b])
			sched_msg_free(s->buckets[b]);
	config_release(&s->cfg);
	free(s);
	*sp = NULL;
}

/* ---- `cursus queue` ----------------------------------------------------------- */

static int sched_msg_has_domain(const struct smsg *msg, const char *domain)
{
	for (size_t i = 0; i < msg->m.env.n_rcpts; i++) {
		const struct env_rcpt *r = &msg->m.env.rcpts[i];
		const char *at = strrchr(r->address, '@');
		if (!r->done && at && strcasecmp(at + 1, domain) == 0)
			return 1;
	}
	return 0;
}

static void sched_kick(struct smsg *msg)
{
	msg->flush_now = 1;
	if (msg->busy)
		msg->again = 1;
	else
		sched_load(msg);
}

void sched_flush(struct sched *s, const char *id, const char *domain, sched_ctl_cb cb, void *arg)
{
	size_t n = 0;
	char text[64];
	if (id) {
		struct smsg *msg = *sched_find(s, id);
		if (!msg) {
			cb(arg, ENOENT, "no such message");
			return;
		}
		sched_dest_forget_backoff_all(s->dests);
		sched_kick(msg);
		cb(arg, 0, "flushed 1 message");
		return;
	}
	sched_dest_forget_backoff_all(s->dests);
	for (size_t b = 0; b < SCHED_BUCKETS; b++)
		for (struct smsg *msg = s->buckets[b]; msg; msg = msg->hnext)
			if (!msg->m.held && (!domain || (msg->loaded && sched_msg_has_domain(msg, domain)))) {
				sched_kick(msg);
				n++;
			}
	snprintf(text, sizeof(text), "flushed %zu message%s", n, n == 1 ? "" : "s");
	cb(arg, 0, text);
}

/* Hold and release are recorded before they are acknowledged. */
struct ctl_job {
	struct smsg *msg;
	struct qev ev;
	int err;
	sched_ctl_cb cb;
	void *arg;
};

static void sched_ctl_work(void *arg)
{
	struct ctl_job *c = arg;
	c->err = qstore_record(c->msg->s->qs, c->msg->id, &c->ev, 1);
}

static void sched_ctl_done(void *arg)
{
	struct ctl_job *c = arg;
	struct smsg *msg = c->msg;
	msg->ctl_refs--;
	if (msg->gone) {
		c->cb(c->arg, ENOENT, "no such message");
		if (!msg->ctl_refs)
			sched_msg_free(msg);
	} else if (c->err) {
		c->cb(c->arg, c->err, strerror(c->err));
	} else {
		qstore_apply(&msg->m, &c->ev);
		log_info("queue id=%s status=%s", msg->id, msg->m.held ? "held" : "released");
		/* A load in flight may have read the journal before this event and would
		 * undo it in memory: the round that ends reads it again. */
		if (msg->busy)
			msg->again = 1;
		else if (msg->m.held)
			evtimer_del(msg->timer);
		else
			sched_load(msg);
		c->cb(c->arg, 0, msg->m.held ? "held" : "released");
	}
	free(c);
}

static void sched_hold_release(struct sched *s, const char *id, enum qev_kind kind,
			       sched_ctl_cb cb, void *arg)
{
	struct smsg *msg = *sched_find(s, id);
	struct ctl_job *c;
	if (!msg || !msg->loaded) {
		cb(arg, ENOENT, "no such message");
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->msg = msg;
	msg->ctl_refs++;
	c->ev.kind = kind;
	c->ev.when = time(NULL);
	c->cb = cb;
	c->arg = arg;
	workers_submit(s->w, sched_ctl_work, sched_ctl_done, c);
}

void sched_hold(struct sched *s, const char *id, sched_ctl_cb cb, void *arg)
{
	sched_hold_release(s, id, QEV_HOLD, cb, arg);
}

void sched_release(struct sched *s, const char *id, sched_ctl_cb cb, void *arg)
{
	sched_hold_release(s, id, QEV_RELEASE, cb, arg);
}

void sched_delete(struct sched *s, const char *id, sched_ctl_cb cb, void *arg)
{
	struct smsg *msg = *sched_find(s, id);
	if (!msg) {
		cb(arg, ENOENT, "no such message");
		return;
	}
	if (msg->del_cb) {
		cb(arg, 0, "deleted");
		return;
	}
	log_info("queue id=%s status=deleted by=admin", msg->id);
	/* Answered once it is gone: at once when idle, else after the attempt in
	 * progress, so that "deleted" always means removed from the queue. */
	msg->doomed = 1;
	msg->del_cb = cb;
	msg->del_arg = arg;
	if (!msg->busy) {
		msg->busy = 1;
		evtimer_del(msg->timer);
		workers_submit(s->w, sched_removed_work, sched_removed_done, msg);
	}
}

void sched_bounce(struct sched *s, const char *id, sched_ctl_cb cb, void *arg)
{
	struct smsg *msg = *sched_find(s, id);
	if (!msg) {
		cb(arg, ENOENT, "no such message");
		return;
	}
	log_info("queue id=%s status=bounced by=admin", msg->id);
	msg->bounce_now = 1;
	if (msg->busy)
		msg->again = 1;
	else
		sched_load(msg);
	cb(arg, 0, "bounced");
}

void sched_stats(const struct sched *s, struct sched_stats *st)
{
	time_t now = time(NULL);
	memset(st, 0, sizeof(*st));
	for (size_t b = 0; b < SCHED_BUCKETS; b++)
		for (const struct smsg *msg = s->buckets[b]; msg; msg = msg->hnext) {
			const struct envelope *env = &msg->m.env;
			st->messages++;
			if (!msg->loaded)
				continue;
			for (size_t i = 0; i < env->n_rcpts; i++)
				st->recipients += !env->rcpts[i].done;
			if (env->received && now - env->received > st->oldest_age)
				st->oldest_age = now - env->received;
		}
}
