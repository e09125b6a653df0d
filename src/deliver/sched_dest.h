/* sched_dest: the scheduler's destinations (next hops). Each has a queue of jobs and
 * runs them as its concurrency allows: local delivery at delivery_threads; SMTP
 * destinations start at relay_concurrency_init and grow by one per success up to
 * relay_concurrency_max. Failures to reach a destination shrink it; a cohort of them
 * in a row (as many as the concurrency was) marks it dead for a backoff that doubles
 * from retry_min to retry_max: its waiting jobs are deferred without a connection, and
 * the first job after the backoff is a lone probe. Loop thread only. */
#ifndef CURSUS_SCHED_DEST_H
#define CURSUS_SCHED_DEST_H

#include <time.h>

struct config;
struct event_base;
struct sdests;
struct sdest;

/* run(job, NULL): deliver it now, then call sched_dest_done once. run(job, reason):
 * the destination is down, defer the job with reason (no sched_dest_done). */
typedef void (*sched_dest_run_fn)(void *job, const char *suspended);

struct sdests *sched_dests_create(const struct config *cfg, struct event_base *base,
				  sched_dest_run_fn run);
/* The scheduler's new configuration (it holds it): limits and backoff from now on. */
void sched_dests_reconfigure(struct sdests *ds, const struct config *cfg);
void sched_dests_destroy(struct sdests **ds);

/* The destination of key (route_dest()), made on first use. */
struct sdest *sched_dest_get(struct sdests *ds, const char *key, int local);
void sched_dest_push(struct sdest *d, void *job);
/* A job of d that ran has ended: ok when the destination answered (even if it
 * refused recipients), else reason says why it could not be used. */
void sched_dest_done(struct sdest *d, int ok, const char *reason);
/* While d is dead: the wall-clock time it may be tried again; else 0. */
time_t sched_dest_ready_at(const struct sdest *d);
/* `cursus queue flush`: every destination may be tried at once. */
void sched_dest_forget_backoff_all(struct sdests *ds);

#endif
