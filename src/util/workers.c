/* workers: a mutex-guarded job list feeds the threads; finished jobs go to a second
 * list that one libevent event, activated from any thread, drains on the loop. */
#include "util/workers.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "util/xmalloc.h"

struct job {
	workers_fn work, done;
	void *arg;
	struct job *next;
};

struct jobq {
	struct job *head, *tail;
};

struct workers {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct jobq todo, finished;
	int stopping;
	unsigned nthreads;
	pthread_t *threads;
	struct event *wake;
};

static void jobq_push(struct jobq *q, struct job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static void workers_finish(struct workers *w, struct job *j)
{
	pthread_mutex_lock(&w->mu);
	jobq_push(&w->finished, j);
	pthread_mutex_unlock(&w->mu);
	event_active(w->wake, EV_READ, 0);
}

static void *workers_thread(void *arg)
{
	struct workers *w = arg;
	for (;;) {
		struct job *j;
		pthread_mutex_lock(&w->mu);
		while (!w->todo.head && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		j = w->todo.head;
		if (!j) {
			pthread_mutex_unlock(&w->mu);
			return NULL;
		}
		w->todo.head = j->next;
		if (!w->todo.head)
			w->todo.tail = NULL;
		pthread_mutex_unlock(&w->mu);
		if (j->work)
			j->work(j->arg);
		if (j->done)
			workers_finish(w, j);
		else
			free(j);
	}
}

static void workers_drain(evutil_socket_t fd, short what, void *arg)
{
	struct workers *w = arg;
	struct job *j;
	pthread_mutex_lock(&w->mu);
	j = w->finished.head;
	w->finished.head = w->finished.tail = NULL;
	pthread_mutex_unlock(&w->mu);
	while (j) {
		struct job *next = j->next;
		j->done(j->arg);
		free(j);
		j = next;
	}
}

struct workers *workers_create(struct event_base *base, unsigned nthreads)
{
	struct workers *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->wake = event_new(base, -1, 0, workers_drain, w);
	w->nthreads = nthreads ? nthreads : 1;
	w->threads = xcalloc(w->nthreads, sizeof(pthread_t));
	for (unsigned i = 0; i < w->nthreads; i++)
		if (pthread_create(&w->threads[i], NULL, workers_thread, w) != 0)
			fatalx("workers: cannot start thread");
	return w;
}

void workers_submit(struct workers *w, workers_fn work, workers_fn done, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	jobq_push(&w->todo, j);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void workers_post(struct workers *w, workers_fn fn, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));
	j->work = NULL;
	j->done = fn;
	j->arg = arg;
	workers_finish(w, j);
}

void workers_destroy(struct workers **wp)
{
	struct workers *w = *wp;
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	for (struct job *j = w->finished.head; j;) {
		struct job *n = j->next;
		free(j);
		j = n;
	}
	event_free(w->wake);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->threads);
	free(w);
	*wp = NULL;
}
