/* sched_dest: see sched_dest.h. */
#include "deliver/sched_dest.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct dnode {
	void *job;
	struct dnode *next;
};

struct sdest {
	struct sdests *ds;
	char *key;
	int local;
	struct dnode *head, *tail;
	unsigned active, limit;
	unsigned failures;       /* in a row */
	unsigned deaths;         /* backoffs in a row */
	time_t ready_at;         /* dead until then */
	char *reason;            /* why it is dead */
	struct event *timer;
	struct sdest *next;
};

struct sdests {
	const struct config *cfg;
	struct event_base *base;
	sched_dest_run_fn run;
	struct sdest *list;
};

static void dest_kick(struct sdest *d);

static void dest_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sdest *d = arg;
	dest_kick(d);
}

struct sdests *sched_dests_create(const struct config *cfg, struct event_base *base,
				  sched_dest_run_fn run)
{
	struct sdests *ds = xcalloc(1, sizeof(*ds));
	ds->cfg = cfg;
	ds->base = base;
	ds->run = run;
	return ds;
}

void sched_dests_reconfigure(struct sdests *ds, const struct config *cfg)
{
	ds->cfg = cfg;
}

void sched_dests_destroy(struct sdests **dsp)
{
	struct sdests *ds = *dsp;
	if (!ds)
		return;
	for (struct sdest *d = ds->list, *dn; d; d = dn) {
		dn = d->next;
		for (struct dnode *n = d->head, *nn; n; n = nn) {
			nn = n->next;
			free(n);
		}
		event_free(d->timer);
		free(d->reason);
		free(d->key);
		free(d);
	}
	free(ds);
	*dsp = NULL;
}

struct sdest *sched_dest_get(struct sdests *ds, const char *key, int local)
{
	struct sdest *d;
	for (d = ds->list; d; d = d->next)
		if (strcasecmp(d->key, key) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->ds = ds;
	d->key = xstrdup(key);
	d->local = local;
	d->limit = local ? ds->cfg->delivery_threads : ds->cfg->relay_concurrency_init;
	if (d->limit == 0)
		d->limit = 1;
	d->timer = evtimer_new(ds->base, dest_timer, d);
	d->next = ds->list;
	ds->list = d;
	return d;
}

time_t sched_dest_ready_at(const struct sdest *d)
{
	return d->ready_at > time(NULL) ? d->ready_at : 0;
}

static void *dest_pop(struct sdest *d)
{
	struct dnode *n = d->head;
	void *job;
	if (!n)
		return NULL;
	if (!(d->head = n->next))
		d->tail = NULL;
	job = n->job;
	free(n);
	return job;
}

static void dest_kick(struct sdest *d)
{
	struct sdests *ds = d->ds;
	void *job;
	if (sched_dest_ready_at(d)) {
		char why[600];
		snprintf(why, sizeof(why), "delivery temporarily suspended: %s",
			 d->reason ? d->reason : "the destination is not responding");
		while ((job = dest_pop(d)))
			ds->run(job, why);
		return;
	}
	while (d->active < d->limit && (job = dest_pop(d))) {
		d->active++;
		ds->run(job, NULL);
	}
}

void sched_dest_push(struct sdest *d, void *job)
{
	struct dnode *n = xcalloc(1, sizeof(*n));
	n->job = job;
	if (d->tail)
		d->tail->next = n;
	else
		d->head = n;
	d->tail = n;
	dest_kick(d);
}

void sched_dest_done(struct sdest *d, int ok, const char *reason)
{
	const struct config *cfg = d->ds->cfg;
	if (d->active)
		d->active--;
	if (d->local) {
		dest_kick(d);
		return;
	}
	if (ok) {
		if (d->deaths)
			log_info("destination %s event=alive", d->key);
		d->failures = d->deaths = 0;
		d->ready_at = 0;
		if (d->limit < cfg->relay_concurrency_max)
			d->limit++;
	} else {
		unsigned cohort = d->limit;
		free(d->reason);
		d->reason = xstrdup(reason ? reason : "the destination is not responding");
		if (d->limit > 1)
			d->limit--;
		/* Connections opened before it was marked dead say nothing new: only the
		 * probe after the backoff may lengthen it. */
		if (sched_dest_ready_at(d)) {
			dest_kick(d);
			return;
		}
		if (++d->failures >= cohort || d->deaths) {
			/* Dead: back off before anything else is tried there. */
			unsigned lo = cfg->retry_min ? cfg->retry_min : 1, wait = lo;
			unsigned hi = cfg->retry_max > lo ? cfg->retry_max : lo;
			for (unsigned i = 0; i < d->deaths && wait < hi; i++)
				wait = wait > hi / 2 ? hi : 2 * wait;
			d->deaths++;
			d->failures = 0;
			d->limit = 1;
			d->ready_at = time(NULL) + wait;
			struct timeval tv = { (time_t)wait, 0 };
			evtimer_add(d->timer, &tv);
			char why[LOG_ESCAPE_BUFSZ];
			log_escape(why, sizeof(why), d->reason, strlen(d->reason));
			log_info("destination %s event=dead retry_in=%us reason=\"%s\"", d->key,
				 wait, why);
		}
	}
	dest_kick(d);
}

void sched_dest_forget_backoff_all(struct sdests *ds)
{
	for (struct sdest *d = ds->list; d; d = d->next) {
		d->ready_at = 0;
		d->failures = 0;
		evtimer_del(d->timer);
	}
}
