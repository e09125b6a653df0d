/* sched_round: one round of a loaded message: the due recipients grouped by
 * destination into jobs, and, once every job is recorded, the round's end: DSNs sent,
 * the message removed, or its timer set for the next attempt. */
#include "deliver/sched_int.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deliver/bounce.h"
#include "route/router.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

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
void sched_round(struct smsg *msg)
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

void sched_round_end(struct smsg *msg)
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
			bounce_send(s->cfg, s->dkim, s->w, s->qs, s->q, s->users, &msg->m, msg->items,
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
