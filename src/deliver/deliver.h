/* deliver: the queue runner. Delivers each queued message to every local recipient's
 * Maildir (tmp/, fsync, rename into new/, fsync new/), records per-recipient progress,
 * removes the message when every recipient is done, and retries temporary failures
 * with backoff. Runs on its own threads; never on the event loop. */
#ifndef CURSUS_DELIVER_H
#define CURSUS_DELIVER_H

struct config;
struct deliver;

struct deliver *deliver_create(const struct config *cfg, unsigned nthreads);
/* Stops the threads; messages not yet delivered stay in the queue for the next start. */
void deliver_destroy(struct deliver **d);
/* Schedules queued message id for delivery now. Callable from any thread (it is the
 * queue's notify function: queue_set_notify(q, deliver_enqueue_cb, d)). */
void deliver_enqueue(struct deliver *d, const char *id);
void deliver_enqueue_cb(void *d, const char *id);

#endif
