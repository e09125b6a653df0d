/* sched_dest: concurrency and backoff of a destination. */
#include <event2/event.h>
#include <time.h>

#include "config/config.h"
#include "deliver/sched_dest.h"
#include "unit.h"

static unsigned ran, suspended;

static void run(void *job, const char *why)
{
	if (why)
		suspended++;
	else
		ran++;
}

/* A destination that goes down with a full cohort of connections open: the
 * stragglers that fail after it was marked dead must not lengthen the backoff (each
 * used to count as a failed probe, doubling it once per straggler). */
static void test_stragglers_do_not_extend_backoff(void)
{
	struct config cfg = { 0 };
	struct event_base *base = event_base_new();
	struct sdests *ds;
	struct sdest *d;
	time_t now;
	static int jobs[8];

	cfg.retry_min = 60;
	cfg.retry_max = 3600;
	cfg.relay_concurrency_init = 4;
	cfg.relay_concurrency_max = 4;
	ds = sched_dests_create(&cfg, base, run);
	d = sched_dest_get(ds, "mx:example.org", 0);
	ran = suspended = 0;
	for (int i = 0; i < 4; i++)
		sched_dest_push(d, &jobs[i]);
	CHECK(ran == 4);
	now = time(NULL);
	for (int i = 0; i < 4; i++)
		sched_dest_done(d, 0, "connect failed");
	/* Dead for retry_min, not 2, 4 or 8 times it. */
	CHECK(sched_dest_ready_at(d) >= now + 60 && sched_dest_ready_at(d) <= time(NULL) + 60);
	/* The lone probe after the backoff fails: now the backoff doubles. */
	sched_dest_forget_backoff_all(ds);
	sched_dest_push(d, &jobs[4]);
	CHECK(ran == 5);
	now = time(NULL);
	sched_dest_done(d, 0, "connect failed");
	CHECK(sched_dest_ready_at(d) >= now + 120 && sched_dest_ready_at(d) <= time(NULL) + 120);
	sched_dests_destroy(&ds);
	event_base_free(base);
}

void unit_main(void)
{
	test_stragglers_do_not_extend_backoff();
}
