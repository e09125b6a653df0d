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
 * deferred recipient is in the journal before the round ends.
 *
 * Here: the message table, a message's removal and the entry points. The steps are
 * sched_load.c, sched_round.c, sched_deliver.c, sched_outcome.c and sched_dsn.c;
 * `cursus queue` is sched_ctl.c; what they share is sched_int.h. */
#include "deliver/sched_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

/* ---- messages ------------------------------------------------------------ */

static size_t sched_hash(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % SCHED_BUCKETS;
}

struct smsg **sched_find(struct sched *s, const char *id)
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

struct smsg *sched_msg_get(struct sched *s, const char *id)
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

void sched_msg_free(struct smsg *msg)
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
void sched_msg_drop(struct smsg *msg)
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

unsigned sched_backoff(const struct config *cfg, unsigned attempts)
{
	unsigned lo = cfg->retry_min ? cfg->retry_min : 1;
	unsigned hi = cfg->retry_max > lo ? cfg->retry_max : lo;
	unsigned b = lo;
	for (unsigned i = 1; i < attempts && b < hi; i++)
		b = b > hi / 2 ? hi : 2 * b;
	return b;
}

/* ---- removal ---------------------------------------------------------------- */

void sched_removed_work(void *arg)
{
	struct smsg *msg = arg;
	int err = qstore_remove(msg->s->qs, msg->id);
	if (err && err != ENOENT)
		log_warnx("queue id=%s cannot remove: %s", msg->id, strerror(err));
}

void sched_removed_done(void *arg)
{
	struct smsg *msg = arg;
	log_info("queue id=%s status=removed", msg->id);
	msg->busy = 0;
	sched_msg_drop(msg);
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
			   struct auth_client *users, struct dkim_keys *const *dkim,
			   struct transport *local, struct transport *smtp, struct transport *lmtp)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	s->cfg = config_ref(cfg);
	s->base = base;
	s->w = w;
	s->qs = qs;
	s->q = q;
	s->users = users;
	s->dkim = dkim;
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
