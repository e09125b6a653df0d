/* sched_dsn: what the sender must hear of at a round's end (final recipients not yet
 * reported, late ones not yet warned about), and the record that it was told, written
 * only once the DSN is safely queued. */
#include "deliver/sched_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/xmalloc.h"

/* What the sender must hear of now: final recipients not yet reported, and late
 * ones not yet warned about. Returns the number of items (msg->items). */
size_t sched_collect_dsn(struct smsg *msg, time_t now, struct qev **evs_r, size_t *nev_r)
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

void sched_notify_record(struct smsg *msg, struct qev *evs, size_t nev)
{
	struct sjob *j = sched_job_new(msg->s, msg);
	j->evs = evs;
	j->n_evs = nev;
	sched_record(j);
}

void sched_notified(void *arg, int err)
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
