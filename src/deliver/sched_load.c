/* sched_load: a round's first step, on a worker: the message read from the queue
 * (without its body) and every recipient not yet routed routed and recorded; on the
 * loop, the round is started or the load retried after a backoff. */
#include "deliver/sched_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/router.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

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

void sched_load(struct smsg *msg)
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
