/* workers: a thread pool for blocking work (SQLite, hashing, fsync), with results
 * handed back to the event loop thread. The event loop never waits on a worker. */
#ifndef CURSUS_WORKERS_H
#define CURSUS_WORKERS_H

struct event_base;
struct workers;

typedef void (*workers_fn)(void *arg);

/* nthreads >= 1. Requires evthread_use_pthreads() before the base was made. */
struct workers *workers_create(struct event_base *base, unsigned nthreads);
/* Stops the threads after the queued work is done; completions not yet run are
 * dropped. Sets *w to NULL. */
void workers_destroy(struct workers **w);
/* Runs work(arg) on a worker thread, then done(arg) on the loop thread (either may be
 * NULL). Callable from any thread. */
void workers_submit(struct workers *w, workers_fn work, workers_fn done, void *arg);
/* Runs fn(arg) on the loop thread soon. Callable from any thread. */
void workers_post(struct workers *w, workers_fn fn, void *arg);

#endif
