/* scheduler: the delivery scheduler, on the event loop. Messages are loaded (on
 * workers) from the queue, each recipient routed once, and deliveries queued per
 * destination (the next hop): several recipients of one message to one destination in
 * one transaction, a concurrency per destination that starts at relay_concurrency_init
 * and grows while deliveries succeed, backoff per destination (a dead one is not
 * hammered) and per message (exponential from retry_min to retry_max, kept in the
 * queue's journal so it survives a restart), expiry after queue_lifetime, delay
 * warnings after delay_warning_time, and DSNs queued from the null sender. */
#ifndef CURSUS_SCHEDULER_H
#define CURSUS_SCHEDULER_H

#include <stddef.h>

struct config;
struct event_base;
struct workers;
struct qstore;
struct queue;
struct transport;
struct auth_client;
struct dkim_keys;
struct sched;

/* dkim: where the daemon keeps its current DKIM keys (reloads replace them); DSNs are
 * signed with the key of their From: domain (queue/generated.h). */
struct sched *sched_create(const struct config *cfg, struct event_base *base,
			   struct workers *w, struct qstore *qs, struct queue *q,
			   struct auth_client *users, struct dkim_keys *const *dkim,
			   struct transport *local, struct transport *smtp, struct transport *lmtp);
/* Stops starting deliveries; those in flight end as deferred; what is left stays
 * queued for the next start. */
void sched_destroy(struct sched **s);
/* A reload: new routing, policy, retry and relay settings for what is decided from
 * now on (routes already recorded stay, by design); deliveries in flight keep the
 * configuration they started with. Loop thread. */
void sched_reconfigure(struct sched *s, const struct config *cfg);

/* A message to look at now: committed, or found at start. Callable from any thread
 * (it is the queue's notify function: queue_set_notify(q, sched_enqueue_cb, s)). */
void sched_enqueue(struct sched *s, const char *id);
void sched_enqueue_cb(void *s, const char *id);

/* Requests of `cursus queue` (through the control socket), on the loop thread. cb is
 * called once on the loop thread: err 0 and a one-line text ("flushed 3 messages"),
 * or an errno value (ENOENT: no such message) and why. */
typedef void (*sched_ctl_cb)(void *arg, int err, const char *text);
/* Attempts now: one message (id), a domain's (domain: every message with a pending
 * recipient there), or everything (both NULL); destination backoff is forgotten too. */
void sched_flush(struct sched *s, const char *id, const char *domain, sched_ctl_cb cb, void *arg);
void sched_hold(struct sched *s, const char *id, sched_ctl_cb cb, void *arg);
void sched_release(struct sched *s, const char *id, sched_ctl_cb cb, void *arg);
/* Removes the message; no DSN. */
void sched_delete(struct sched *s, const char *id, sched_ctl_cb cb, void *arg);
/* Fails every pending recipient (5.0.0, "returned by the postmaster") and sends the DSN. */
void sched_bounce(struct sched *s, const char *id, sched_ctl_cb cb, void *arg);

/* What the queue holds now, for the metrics: every message the scheduler knows (the
 * whole queue, from the start), the recipients of the loaded ones not yet final, and
 * the age in seconds of the oldest loaded one (a message just committed is loaded
 * within moments). On the loop thread. */
struct sched_stats {
	size_t messages, recipients;
	long long oldest_age;
};
void sched_stats(const struct sched *s, struct sched_stats *st);

#endif
