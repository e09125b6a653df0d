/* deliver: the queue runner. A table of known ids, a FIFO of ids due now and a list
 * of deferred ids sorted by due time feed nthreads delivery threads; idle threads
 * sleep on a condition variable until the earliest due time, never polling.
 * Promises: an id is delivered by one thread at a time; a message leaves the queue
 * only when every recipient is done (delivered or finally failed), and every
 * recipient outcome is logged; progress is durable before the next recipient. */
#include "deliver/deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "deliver/maildir.h"
#include "queue/envelope.h"
#include "queue/qfile.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define DELIVER_BUCKETS 4096

enum deliver_state { DELIVER_READY, DELIVER_WAIT, DELIVER_BUSY };
enum deliver_outcome { DELIVER_FINISHED, DELIVER_DEFERRED };

struct deliver_entry {
	char id[24];
	enum deliver_state state;
	int again;                   /* enqueued while busy: run again at once */
	uint64_t due_ms;             /* CLOCK_MONOTONIC, when DELIVER_WAIT */
	unsigned backoff;            /* seconds of the last wait */
	struct deliver_entry *hnext; /* hash chain */
	struct deliver_entry *next;  /* ready FIFO or wait list */
};

struct deliver {
	const struct config *cfg;
	char *queue_dir;
	int msgfd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct deliver_entry *buckets[DELIVER_BUCKETS];
	struct deliver_entry *ready_head, *ready_tail, *wait_head;
	int stopping;
	unsigned nthreads;
	pthread_t *threads;
};

static uint64_t deliver_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t deliver_hash(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % DELIVER_BUCKETS;
}

static struct deliver_entry **deliver_find(struct deliver *d, const char *id)
{
	struct deliver_entry **pp = &d->buckets[deliver_hash(id)];
	while (*pp && strcmp((*pp)->id, id) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void deliver_push_ready(struct deliver *d, struct deliver_entry *e)
{
	e->state = DELIVER_READY;
	e->next = NULL;
	if (d->ready_tail)
		d->ready_tail->next = e;
	else
		d->ready_head = e;
	d->ready_tail = e;
	pthread_cond_signal(&d->cv);
}

static void deliver_push_wait(struct deliver *d, struct deliver_entry *e)
{
	struct deliver_entry **pp = &d->wait_head;
	e->state = DELIVER_WAIT;
	while (*pp && (*pp)->due_ms <= e->due_ms)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
	/* A new earliest deadline: sleeping threads must recompute their timeout. */
	if (d->wait_head == e)
		pthread_cond_broadcast(&d->cv);
}

void deliver_enqueue(struct deliver *d, const char *id)
{
	struct deliver_entry **pp, *e;
	pthread_mutex_lock(&d->mu);
	pp = deliver_find(d, id);
	if (!(e = *pp)) {
		e = xcalloc(1, sizeof(*e));
		snprintf(e->id, sizeof(e->id), "%s", id);
		*pp = e;
		deliver_push_ready(d, e);
	} else if (e->state == DELIVER_WAIT) {
		/* Asked for again (a flush): no need to wait out the backoff. */
		struct deliver_entry **w = &d->wait_head;
		while (*w != e)
			w = &(*w)->next;
		*w = e->next;
		deliver_push_ready(d, e);
	} else if (e->state == DELIVER_BUSY) {
		e->again = 1;
	}
	pthread_mutex_unlock(&d->mu);
}

void deliver_enqueue_cb(void *d, const char *id)
{
	deliver_enqueue(d, id);
}

static void deliver_log(const char *id, const struct env_rcpt *r, const char *status,
			const char *reason)
{
	char rcpt[LOG_ESCAPE_BUFSZ], box[LOG_ESCAPE_BUFSZ], why[LOG_ESCAPE_BUFSZ];
	log_escape(rcpt, sizeof(rcpt), r->address, strlen(r->address));
	if (r->mailbox)
		log_escape(box, sizeof(box), r->mailbox, strlen(r->mailbox));
	else
		strcpy(box, "-");
	log_escape(why, sizeof(why), reason, strlen(reason));
	log_info("queue id=%s rcpt=\"%s\" mailbox=\"%s\" status=%s reason=\"%s\"", id, rcpt,
		 box, status, why);
}

static void deliver_move_corrupt(struct deliver *d, const char *id)
{
	char *dir = xasprintf("%s/corrupt", d->queue_dir);
	int fd;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		log_warn("queue id=%s cannot make %s", id, dir);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    renameat(d->msgfd, id, fd, id) < 0) {
		log_warn("queue id=%s status=corrupt: cannot move to %s (left in msg/)", id, dir);
	} else {
		char *done = xasprintf("%s.done", id);
		renameat(d->msgfd, done, fd, done);
		free(done);
		fsync(fd);
		log_warnx("queue id=%s status=corrupt reason=\"torn or malformed\" moved to %s",
			  id, dir);
	}
	if (fd >= 0)
		close(fd);
	free(dir);
}

/* Marks r done; the sidecar records it unless nothing is left to do, when removing
 * the message records it instead (one fsync less for every single-recipient mail). */
static void deliver_mark_done(struct deliver *d, const char *id, const char *donepath,
			      struct env_rcpt *r, size_t idx, size_t *remaining,
			      long *unrecorded)
{
	int err;
	r->done = 1;
	if (--*remaining == 0) {
		*unrecorded = (long)idx;
		return;
	}
	if ((err = qfile_done_append(donepath, d->msgfd, idx)) != 0)
		log_warnx("queue id=%s rcpt_index=%zu progress not recorded (may be delivered "
			  "again): %s", id, idx, strerror(err));
}

static enum deliver_outcome deliver_run(struct deliver *d, const char *id)
{
	const struct config *cfg = d->cfg;
	struct envelope env;
	const char *body;
	char *buf, *donepath, name[512], reason[600];
	size_t len, bodylen, remaining = 0;
	long unrecorded = -1;
	int err, expired;
	enum deliver_outcome out = DELIVER_DEFERRED;

	if ((err = qfile_read_at(d->msgfd, id, &buf, &len)) != 0) {
		if (err == ENOENT) /* removed meanwhile (e.g. by the admin) */
			return DELIVER_FINISHED;
		log_warnx("queue id=%s status=deferred reason=\"read: %s\"", id, strerror(err));
		return DELIVER_DEFERRED;
	}
	if (qfile_decode(buf, len, &env, &body, &bodylen) < 0) {
		deliver_move_corrupt(d, id);
		free(buf);
		return DELIVER_FINISHED;
	}
	donepath = xasprintf("%s/msg/%s.done", d->queue_dir, id);
	if ((err = qfile_done_load(donepath, &env)) != 0) {
		/* Without the progress we would deliver twice: better wait. */
		log_warnx("queue id=%s status=deferred reason=\"read %s: %s\"", id, donepath,
			  strerror(err));
		goto out;
	}
	/* Past the lifetime each recipient gets one last try, then is given up.
	 * TODO(dsn): RFC 3464 DSN to the sender (never to ""): a later issue; until
	 * then the "status=failed" log line is the only trace. */
	expired = cfg->queue_lifetime && time(NULL) - env.received >= (time_t)cfg->queue_lifetime;
	for (size_t i = 0; i < env.n_rcpts; i++)
		remaining += !env.rcpts[i].done;

	for (size_t i = 0; i < env.n_rcpts; i++) {
		struct env_rcpt *r = &env.rcpts[i];
		size_t same = i;
		if (r->done)
			continue;
		if (!r->mailbox) {
			/* Relay is a later issue; the router gives no remote recipient yet. */
			if (expired) {
				deliver_log(id, r, "failed", "remote delivery not implemented; "
					    "queue lifetime expired");
				deliver_mark_done(d, id, donepath, r, i, &remaining, &unrecorded);
			} else {
				deliver_log(id, r, "deferred", "remote delivery not implemented");
			}
			continue;
		}
		/* Two addresses of one mailbox (aliases) get one copy. */
		for (size_t k = 0; k < i; k++)
			if (env.rcpts[k].mailbox && env.rcpts[k].done == 2 &&
			    strcmp(env.rcpts[k].mailbox, r->mailbox) == 0)
				same = k;
		if (same != i) {
			snprintf(reason, sizeof(reason), "same mailbox as %s",
				 env.rcpts[same].address);
			deliver_log(id, r, "delivered", reason);
			deliver_mark_done(d, id, donepath, r, i, &remaining, &unrecorded);
			r->done = 2;
			continue;
		}
		err = maildir_deliver(cfg->mail_dir, r->mailbox, body, bodylen, name, sizeof(name));
		if (!err) {
			snprintf(reason, sizeof(reason), "maildir new/%s", name);
			deliver_log(id, r, "delivered", reason);
			deliver_mark_done(d, id, donepath, r, i, &remaining, &unrecorded);
			r->done = 2; /* delivered in this pass */
		} else if (maildir_error_is_permanent(err) || expired) {
			/* TODO(dsn): a DSN (RFC 3464) to env.mail_from unless it is "",
			 * for this recipient, once DSN generation exists. */
			snprintf(reason, sizeof(reason), "maildir: %s%s", strerror(err),
				 expired ? "; queue lifetime expired" : "");
			deliver_log(id, r, "failed", reason);
			deliver_mark_done(d, id, donepath, r, i, &remaining, &unrecorded);
		} else {
			snprintf(reason, sizeof(reason), "maildir: %s", strerror(err));
			deliver_log(id, r, "deferred", reason);
		}
	}
	if (remaining > 0)
		goto out;
	/* The message first, then its sidecar: a crash between the two leaves an
	 * orphan sidecar (removed by queue_recover), never a message without progress. */
	if (unlinkat(d->msgfd, id, 0) < 0 && errno != ENOENT) {
		log_warn("queue id=%s cannot remove the delivered message", id);
		if (unrecorded >= 0)
			qfile_done_append(donepath, d->msgfd, (size_t)unrecorded);
		goto out;
	}
	if (unlink(donepath) < 0 && errno != ENOENT)
		log_warn("queue id=%s cannot remove %s", id, donepath);
	if (fsync(d->msgfd) < 0)
		log_warn("queue id=%s fsync of the queue directory", id);
	log_info("queue id=%s status=removed", id);
	out = DELIVER_FINISHED;
out:
	free(donepath);
	envelope_clear(&env);
	free(buf);
	return out;
}

static void *deliver_thread(void *arg)
{
	struct deliver *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		uint64_t now = deliver_now_ms();
		struct deliver_entry *e;
		while (d->wait_head && d->wait_head->due_ms <= now) {
			e = d->wait_head;
			d->wait_head = e->next;
			deliver_push_ready(d, e);
		}
		if (!(e = d->ready_head)) {
			if (d->wait_head) {
				uint64_t due = d->wait_head->due_ms;
				struct timespec ts = { (time_t)(due / 1000),
						       (long)(due % 1000) * 1000000L };
				pthread_cond_timedwait(&d->cv, &d->mu, &ts);
			} else {
				pthread_cond_wait(&d->cv, &d->mu);
			}
			continue;
		}
		if (!(d->ready_head = e->next))
			d->ready_tail = NULL;
		e->state = DELIVER_BUSY;
		e->again = 0;
		pthread_mutex_unlock(&d->mu);

		enum deliver_outcome out = deliver_run(d, e->id);

		pthread_mutex_lock(&d->mu);
		if (out == DELIVER_FINISHED) {
			*deliver_find(d, e->id) = e->hnext;
			free(e);
		} else if (e->again) {
			deliver_push_ready(d, e);
		} else {
			unsigned lo = d->cfg->retry_min ? d->cfg->retry_min : 1;
			unsigned hi = d->cfg->retry_max > lo ? d->cfg->retry_max : lo;
			e->backoff = e->backoff ? (e->backoff > hi / 2 ? hi : 2 * e->backoff) : lo;
			e->due_ms = deliver_now_ms() + (uint64_t)e->backoff * 1000u;
			log_info("queue id=%s status=deferred retry_in=%us", e->id, e->backoff);
			deliver_push_wait(d, e);
		}
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

struct deliver *deliver_create(const struct config *cfg, unsigned nthreads)
{
	struct deliver *d = xcalloc(1, sizeof(*d));
	pthread_condattr_t ca;
	char *msgdir;
	d->cfg = cfg;
	d->queue_dir = xstrdup(cfg->queue_dir);
	msgdir = xasprintf("%s/msg", d->queue_dir);
	mkdir(d->queue_dir, 0700);
	mkdir(msgdir, 0700);
	if ((d->msgfd = open(msgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fatal("deliver: cannot open %s", msgdir);
	free(msgdir);
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	d->nthreads = nthreads ? nthreads : 1;
	d->threads = xcalloc(d->nthreads, sizeof(pthread_t));
	for (unsigned i = 0; i < d->nthreads; i++)
		if (pthread_create(&d->threads[i], NULL, deliver_thread, d) != 0)
			fatalx("deliver: cannot start thread");
	return d;
}

void deliver_destroy(struct deliver **dp)
{
	struct deliver *d = *dp;
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stopping = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	/* What is left stays in the queue; queue_recover finds it at the next start. */
	for (size_t b = 0; b < DELIVER_BUCKETS; b++)
		for (struct deliver_entry *e = d->buckets[b], *n; e; e = n) {
			n = e->hnext;
			free(e);
		}
	close(d->msgfd);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d->threads);
	free(d->queue_dir);
	free(d);
	*dp = NULL;
}
