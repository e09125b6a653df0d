/* bounce: queues a DSN (dsn/dsn.h) for a message, from the null sender to its envelope
 * sender, through the same durable queue as any other mail, DKIM-signed as all generated
 * mail (queue/generated.h). The DSN is built, and a local sender's mailbox looked up, on
 * a worker thread; it is signed on the queue's writer thread. */
#ifndef CURSUS_BOUNCE_H
#define CURSUS_BOUNCE_H

#include <stddef.h>

#include "dsn/dsn.h"

struct config;
struct dkim_keys;
struct queue;
struct auth_client;
struct workers;
struct qmsg;
struct qstore;

/* Called on the loop thread, where reloads replace *keys (the daemon's current DKIM keys):
 * the DSN holds a reference to those of now, whatever a reload does meanwhile.
 * done(arg, err) on the loop thread: 0 when the DSN is safely queued (or needs no
 * sending: a local sender without a mailbox, logged), else an errno value (try again
 * later). The body is read from qs; m and items must stay valid until done. */
void bounce_send(const struct config *cfg, struct dkim_keys *const *keys, struct workers *w,
		 struct qstore *qs, struct queue *q, struct auth_client *users, const struct qmsg *m,
		 const struct dsn_item *items, size_t n_items, time_t retry_until,
		 void (*done)(void *arg, int err), void *arg);

#endif
