/* sched_ctl: the scheduler's side of `cursus queue`: flush, hold, release, delete,
 * bounce and the statistics, each acting on the messages the scheduler knows. */
#include "deliver/sched_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

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

void sched_kick(struct smsg *msg)
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
