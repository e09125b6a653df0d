/* queue: durable acceptance with group commit. Writer threads each write, fsync and
 * rename one message file; one committer thread then fsyncs the msg/ directory once
 * for every file renamed since its last fsync, and only after that fsync succeeds
 * reports success (on the loop thread) and hands the ids to the deliverer.
 * Promises: no success is ever reported before file and directory are durable; a
 * failed message leaves no file behind; errors become an errno for the session. */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "queue/envelope.h"
#include "queue/qfile.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

/* A step of a streamed message, done in order on a writer thread. */
enum queue_op_kind { QOP_WRITE, QOP_COMMIT, QOP_ABORT };

struct queue_op {
	enum queue_op_kind kind;
	const char *p;                /* QOP_WRITE: the caller's bytes */
	size_t n;
	char *head;                   /* QOP_COMMIT: a new head when the envelope changed */
	size_t hlen;
	queue_commit_cb cb;
	void *arg;
	int err;
	struct queue_op *next;
};

struct queue_job {
	struct queue *q;
	char id[24];
	char *head, *body;
	size_t hlen, blen;
	queue_commit_cb cb;
	void *arg;
	int err;
	struct queue_job *next;
	/* A stream (queue_stream_open): ops waiting, in order; scheduled while it is on
	 * the todo list or a writer has it, so one writer at a time runs its ops. */
	int stream, scheduled, fd;
	uint32_t crc;                 /* of head and body written so far */
	struct queue_op *ops, *ops_tail;
	struct queue_seal *seal;      /* NULL: none, or done with */
};

struct queue_list {
	struct queue_job *head, *tail;
};

struct queue {
	char *dir;
	int tmpfd, msgfd;
	struct workers *w;
	queue_notify_fn notify;
	void *notify_arg;

	pthread_mutex_t mu;
	pthread_cond_t cv_todo, cv_renamed;
	struct queue_list todo, renamed;
	int stopping, writers_gone;
	unsigned nthreads;
	pthread_t *writers, committer;

	pthread_mutex_t id_mu;
	uint64_t id_last_us;
	unsigned id_salt;
};

static void queue_list_push(struct queue_list *l, struct queue_job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static int queue_open_dir(const char *dir, const char *sub)
{
	char *path = xasprintf("%s/%s", dir, sub);
	int fd, err = fs_mkdirs(path, 0700);
	if (err)
		fatalx("queue: cannot create %s: %s", path, strerror(err));
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fatal("queue: cannot open %s", path);
	free(path);
	return fd;
}

static void queue_seal_drop(struct queue_job *j)
{
	if (j->seal)
		j->seal->destroy(j->seal);
	j->seal = NULL;
}

/* The trailer (qfile.h) of the fields the seal puts first; "" without a seal. */
static char *queue_seal_trailer(struct queue_job *j, size_t *len_r)
{
	char *fields = j->seal ? j->seal->finish(j->seal) : NULL, *trailer;
	queue_seal_drop(j);
	trailer = qfile_encode_trailer(fields, len_r);
	free(fields);
	return trailer;
}

static void queue_report(void *arg)
{
	struct queue_job *j = arg;
	j->cb(j->arg, j->err);
	free(j);
}

/* Runs the callback on the loop thread (or here when there is no loop, as in
 * one-shot tools). */
static void queue_finish(struct queue *q, struct queue_job *j)
{
	free(j->head);
	free(j->body);
	j->head = j->body = NULL;
	queue_seal_drop(j);
	if (!j->cb)
		free(j);
	else if (q->w)
		workers_post(q->w, queue_report, j);
	else
		queue_report(j);
}

static int queue_write_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Moves tmp/<id> to msg/<id> without ever replacing an existing message. */
static int queue_publish(struct queue *q, const char *id)
{
	if (renameat2(q->tmpfd, id, q->msgfd, id, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return errno;
	/* A file system without RENAME_NOREPLACE: link() refuses to replace too. */
	if (linkat(q->tmpfd, id, q->msgfd, id, 0) < 0)
		return errno;
	unlinkat(q->tmpfd, id, 0);
	return 0;
}

static int queue_write_one(struct queue *q, struct queue_job *j)
{
	char tail[QFILE_END_MAX + 1], *trailer;
	uint32_t crc = qfile_crc32(qfile_crc32(0, j->head, j->hlen), j->body, j->blen);
	size_t rlen;
	int fd, err;
	if (j->seal)
		j->seal->update(j->seal, j->body, j->blen);
	trailer = queue_seal_trailer(j, &rlen);
	crc = qfile_crc32(crc, trailer, rlen);
	struct iovec iov[4] = {
		{ j->head, j->hlen }, { j->body, j->blen }, { trailer, rlen }, { tail, 0 },
	};
	iov[3].iov_len = qfile_encode_end(crc, j->blen, tail);
	fd = openat(q->tmpfd, j->id, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(trailer);
		return errno;
	}
	err = queue_write_all(fd, iov, 4);
	free(trailer);
	if (!err && fsync(fd) < 0)
		err = errno;
	if (close(fd) < 0 && !err)
		err = errno;
	if (!err)
		err = queue_publish(q, j->id);
	if (err)
		unlinkat(q->tmpfd, j->id, 0);
	return err;
}

/* ---- streams ------------------------------------------------------------------ */

struct queue_stream {
	struct queue_job *j;
};

static void queue_op_report(void *arg)
{
	struct queue_op *op = arg;
	op->cb(op->arg, op->err);
	free(op);
}

static void queue_op_finish(struct queue *q, struct queue_op *op)
{
	free(op->head);
	op->head = NULL;
	if (!op->cb)
		free(op);
	else if (q->w)
		workers_post(q->w, queue_op_report, op);
	else
		queue_op_report(op);
}

static int queue_stream_put(struct queue_job *j, const void *p, size_t n)
{
	struct iovec iov = { (void *)p, n };
	off_t end = lseek(j->fd, 0, SEEK_CUR);
	int err = queue_write_all(j->fd, &iov, 1);
	if (!err)
		j->crc = qfile_crc32(j->crc, p, n);
	/* Writeback starts now, a MiB at a time, so the one fsync at the end has little
	 * left to wait for (only a hint: errors are the fsync's to report). */
	if (!err && end >= 0) {
		off_t mib = 1 << 20, full = (end + (off_t)n) / mib * mib;
		if (full > end / mib * mib)
			sync_file_range(j->fd, full - mib, mib, SYNC_FILE_RANGE_WRITE);
	}
	return err;
}

/* The file is made on the first write: a message refused early never touches disk. */
static int queue_stream_start(struct queue *q, struct queue_job *j)
{
	int err;
	if (j->fd >= 0)
		return 0;
	/* Read back only if the head must be made again (queue_stream_rehead). */
	if ((j->fd = openat(q->tmpfd, j->id, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600)) < 0)
		return errno;
	if ((err = queue_stream_put(j, j->head, j->hlen)) == 0 && j->blen)
		err = queue_stream_put(j, j->body, j->blen);
	if (!err && j->seal && j->blen)
		j->seal->update(j->seal, j->body, j->blen);
	free(j->body);
	j->body = NULL;
	return err;
}

/* Recipients came after the first bytes were written (RCPT between BDAT chunks): the
 * head at the file's start is stale, so the body is copied behind the new one. */
static int queue_stream_rehead(struct queue *q, struct queue_job *j, const char *head, size_t hlen)
{
	char name[40], *buf = xmalloc(64 * 1024);
	int fd, err = 0;
	uint64_t off = j->hlen, end = j->hlen + j->blen;
	uint32_t crc = qfile_crc32(0, head, hlen);
	snprintf(name, sizeof(name), "%s.h", j->id);
	if ((fd = openat(q->tmpfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600)) < 0) {
		free(buf);
		return errno;
	}
	struct iovec iov = { (void *)head, hlen };
	err = queue_write_all(fd, &iov, 1);
	while (!err && off < end) {
		size_t want = end - off < 64 * 1024 ? (size_t)(end - off) : 64 * 1024;
		ssize_t n = pread(j->fd, buf, want, (off_t)off);
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			break;
		}
		crc = qfile_crc32(crc, buf, (size_t)n);
		iov.iov_base = buf;
		iov.iov_len = (size_t)n;
		err = queue_write_all(fd, &iov, 1);
		off += (uint64_t)n;
	}
	free(buf);
	if (!err && renameat(q->tmpfd, name, q->tmpfd, j->id) < 0)
		err = errno;
	if (err) {
		close(fd);
		unlinkat(q->tmpfd, name, 0);
		return err;
	}
	close(j->fd);
	j->fd = fd;
	j->crc = crc;
	j->hlen = hlen;
	return 0;
}

/* Tail, one fsync, rename; the committer then fsyncs msg/ as for any message. */
static int queue_stream_finish(struct queue *q, struct queue_job *j, struct queue_op *op)
{
	char tail[QFILE_END_MAX + 1];
	size_t tlen;
	int err = queue_stream_start(q, j);
	if (!err && op->head && (op->hlen != j->hlen || memcmp(op->head, j->head, j->hlen) != 0))
		err = queue_stream_rehead(q, j, op->head, op->hlen);
	if (!err) {
		size_t rlen;
		char *trailer = queue_seal_trailer(j, &rlen);
		if (rlen)
			err = queue_stream_put(j, trailer, rlen);
		free(trailer);
	}
	if (!err) {
		struct iovec iov = { tail, 0 };
		tlen = qfile_encode_end(j->crc, j->blen, tail);
		iov.iov_len = tlen;
		err = queue_write_all(j->fd, &iov, 1);
	}
	if (!err && fsync(j->fd) < 0)
		err = errno;
	if (j->fd >= 0 && close(j->fd) < 0 && !err)
		err = errno;
	j->fd = -1;
	if (!err)
		err = queue_publish(q, j->id);
	return err;
}

static void queue_stream_drop(struct queue *q, struct queue_job *j)
{
	if (j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
	}
	unlinkat(q->tmpfd, j->id, 0);
}

/* On a writer thread: runs the stream's ops in order until none is left. */
static void queue_stream_run(struct queue *q, struct queue_job *j)
{
	for (;;) {
		struct queue_op *op, *next;
		pthread_mutex_lock(&q->mu);
		op = j->ops;
		j->ops = j->ops_tail = NULL;
		if (!op)
			j->scheduled = 0;
		pthread_mutex_unlock(&q->mu);
		if (!op)
			return;
		for (; op; op = next) {
			next = op->next;
			switch (op->kind) {
			case QOP_WRITE:
				if (!j->err && !(j->err = queue_stream_start(q, j)))
					j->err = queue_stream_put(j, op->p, op->n);
				if (!j->err)
					j->blen += op->n;
				if (!j->err && j->seal)
					j->seal->update(j->seal, op->p, op->n);
				op->err = j->err;
				queue_op_finish(q, op);
				break;
			case QOP_ABORT:
				queue_stream_drop(q, j);
				free(op);
				free(j->head);
				free(j->body);
				queue_seal_drop(j);
				free(j);
				return; /* the last op: the session gave the stream up */
			case QOP_COMMIT:
				if (!j->err)
					j->err = queue_stream_finish(q, j, op);
				free(j->head);
				j->head = NULL;
				j->cb = op->cb;
				j->arg = op->arg;
				op->cb = NULL;
				queue_op_finish(q, op);
				if (j->err) {
					log_warnx("queue id=%s status=error reason=\"write: %s\"", j->id,
						  strerror(j->err));
					queue_stream_drop(q, j);
					queue_finish(q, j);
					return;
				}
				pthread_mutex_lock(&q->mu);
				queue_list_push(&q->renamed, j);
				pthread_cond_signal(&q->cv_renamed);
				pthread_mutex_unlock(&q->mu);
				return;
			}
		}
	}
}

static void queue_stream_push(struct queue_stream *st, struct queue_op *op)
{
	struct queue_job *j = st->j;
	struct queue *q = j->q;
	op->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (j->ops_tail)
		j->ops_tail->next = op;
	else
		j->ops = op;
	j->ops_tail = op;
	if (!j->scheduled) {
		j->scheduled = 1;
		queue_list_push(&q->todo, j);
		pthread_cond_signal(&q->cv_todo);
	}
	pthread_mutex_unlock(&q->mu);
}

struct queue_stream *queue_stream_open(struct queue *q, const struct envelope *env,
				       const char *prefix, size_t plen, struct queue_seal *seal)
{
	struct queue_stream *st = xcalloc(1, sizeof(*st));
	struct queue_job *j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->stream = 1;
	j->fd = -1;
	memcpy(j->id, env->id, sizeof(j->id));
	j->id[sizeof(j->id) - 1] = '\0';
	j->head = qfile_encode_head(env, &j->hlen);
	j->seal = seal;
	if (plen) {
		j->body = xmalloc(plen);
		memcpy(j->body, prefix, plen);
		j->blen = plen;
	}
	st->j = j;
	return st;
}

void queue_stream_write(struct queue_stream *st, const char *p, size_t n, queue_commit_cb cb,
			void *arg)
{
	struct queue_op *op = xcalloc(1, sizeof(*op));
	op->kind = QOP_WRITE;
	op->p = p;
	op->n = n;
	op->cb = cb;
	op->arg = arg;
	queue_stream_push(st, op);
}

void queue_stream_commit(struct queue_stream **stp, const struct envelope *env,
			 queue_commit_cb cb, void *arg)
{
	struct queue_op *op = xcalloc(1, sizeof(*op));
	op->kind = QOP_COMMIT;
	op->head = qfile_encode_head(env, &op->hlen);
	op->cb = cb;
	op->arg = arg;
	queue_stream_push(*stp, op);
	free(*stp);
	*stp = NULL;
}

void queue_stream_abort(struct queue_stream **stp)
{
	struct queue_op *op;
	if (!*stp)
		return;
	op = xcalloc(1, sizeof(*op));
	op->kind = QOP_ABORT;
	queue_stream_push(*stp, op);
	free(*stp);
	*stp = NULL;
}

static void *queue_writer(void *arg)
{
	struct queue *q = arg;
	for (;;) {
		struct queue_job *j;
		pthread_mutex_lock(&q->mu);
		while (!q->todo.head && !q->stopping)
			pthread_cond_wait(&q->cv_todo, &q->mu);
		if (!(j = q->todo.head)) {
			pthread_mutex_unlock(&q->mu);
			return NULL;
		}
		if (!(q->todo.head = j->next))
			q->todo.tail = NULL;
		pthread_mutex_unlock(&q->mu);

		if (j->stream) {
			queue_stream_run(q, j);
			continue;
		}
		if ((j->err = queue_write_one(q, j)) != 0) {
			log_warnx("queue id=%s status=error reason=\"write: %s\"", j->id,
				  strerror(j->err));
			queue_finish(q, j);
			continue;
		}
		free(j->head);
		free(j->body);
		j->head = j->body = NULL;
		pthread_mutex_lock(&q->mu);
		queue_list_push(&q->renamed, j);
		pthread_cond_signal(&q->cv_renamed);
		pthread_mutex_unlock(&q->mu);
	}
}

/* The group commit: whatever was renamed while the previous fsync ran shares the
 * next one, so under load one directory fsync acknowledges many messages. */
static void *queue_committer(void *arg)
{
	struct queue *q = arg;
	for (;;) {
		struct queue_job *batch, *j, *next;
		size_t n = 0;
		int err = 0;
		pthread_mutex_lock(&q->mu);
		while (!q->renamed.head && !q->writers_gone)
			pthread_cond_wait(&q->cv_renamed, &q->mu);
		batch = q->renamed.head;
		q->renamed.head = q->renamed.tail = NULL;
		pthread_mutex_unlock(&q->mu);
		if (!batch)
			return NULL;

		if (fsync(q->msgfd) < 0)
			err = errno;
		for (j = batch; j; j = next) {
			next = j->next;
			n++;
			j->err = err;
			if (err) {
				/* Never acknowledged, so it must not be delivered either. */
				unlinkat(q->msgfd, j->id, 0);
				log_warnx("queue id=%s status=error reason=\"fsync dir: %s\"",
					  j->id, strerror(err));
				queue_finish(q, j);
				continue;
			}
			/* The deliverer hears of it first, so by the time the session
			 * answers 250 the message is already scheduled. */
			if (q->notify)
				q->notify(q->notify_arg, j->id);
			queue_finish(q, j);
		}
		if (n > 1)
			log_debug("queue group commit: %zu messages, one directory fsync", n);
	}
}

struct queue *queue_create(const char *dir, unsigned nthreads, struct workers *w)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->dir = xstrdup(dir);
	q->tmpfd = queue_open_dir(dir, "tmp");
	q->msgfd = queue_open_dir(dir, "msg");
	q->w = w;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv_todo, NULL);
	pthread_cond_init(&q->cv_renamed, NULL);
	pthread_mutex_init(&q->id_mu, NULL);
	if (getrandom(&q->id_salt, sizeof(q->id_salt), 0) != sizeof(q->id_salt))
		q->id_salt = (unsigned)getpid() ^ (unsigned)time(NULL);
	q->id_salt &= 0xfff;
	q->nthreads = nthreads ? nthreads : 1;
	q->writers = xcalloc(q->nthreads, sizeof(pthread_t));
	for (unsigned i = 0; i < q->nthreads; i++)
		if (pthread_create(&q->writers[i], NULL, queue_writer, q) != 0)
			fatalx("queue: cannot start writer thread");
	if (pthread_create(&q->committer, NULL, queue_committer, q) != 0)
		fatalx("queue: cannot start committer thread");
	return q;
}

void queue_destroy(struct queue **qp)
{
	struct queue *q = *qp;
	if (!q)
		return;
	/* Writers drain what was handed to them, the committer what they renamed:
	 * nothing accepted by queue_commit is left half done. */
	pthread_mutex_lock(&q->mu);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cv_todo);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->writers[i], NULL);
	pthread_mutex_lock(&q->mu);
	q->writers_gone = 1;
	pthread_cond_signal(&q->cv_renamed);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->committer, NULL);
	close(q->tmpfd);
	close(q->msgfd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv_todo);
	pthread_cond_destroy(&q->cv_renamed);
	pthread_mutex_destroy(&q->id_mu);
	free(q->writers);
	free(q->dir);
	free(q);
	*qp = NULL;
}

/* 52 bits of microseconds (good until 2112), bumped by one per id when ids come
 * faster than the clock (the counter), then 12 random bits fixed per process so two
 * processes, or a restart after the clock stepped back, are unlikely to meet; and
 * should they, O_EXCL and RENAME_NOREPLACE refuse the second message (451). */
void queue_new_id(struct queue *q, struct envelope *env)
{
	struct timespec ts;
	uint64_t us;
	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	pthread_mutex_lock(&q->id_mu);
	if (us <= q->id_last_us)
		us = q->id_last_us + 1;
	q->id_last_us = us;
	pthread_mutex_unlock(&q->id_mu);
	snprintf(env->id, sizeof(env->id), "%016llx",
		 (unsigned long long)(((us & ((1ull << 52) - 1)) << 12) | q->id_salt));
}

void queue_commit(struct queue *q, const struct envelope *env, char *body, size_t len,
		  struct queue_seal *seal, queue_commit_cb cb, void *arg)
{
	struct queue_job *j = xcalloc(1, sizeof(*j));
	j->q = q;
	memcpy(j->id, env->id, sizeof(j->id));
	j->id[sizeof(j->id) - 1] = '\0';
	/* The header is small and made here, so env need not outlive the call; the
	 * body is only checksummed and written, on a writer thread. */
	j->head = qfile_encode_head(env, &j->hlen);
	j->body = body;
	j->blen = len;
	j->seal = seal;
	j->cb = cb;
	j->arg = arg;
	pthread_mutex_lock(&q->mu);
	queue_list_push(&q->todo, j);
	pthread_cond_signal(&q->cv_todo);
	pthread_mutex_unlock(&q->mu);
}

void queue_set_notify(struct queue *q, queue_notify_fn fn, void *arg)
{
	q->notify = fn;
	q->notify_arg = arg;
}

static int queue_is_id(const char *name)
{
	size_t n = strspn(name, "0123456789abcdef");
	return n == 16 && name[16] == '\0';
}

size_t queue_recover(struct queue *q)
{
	DIR *d;
	struct dirent *de;
	size_t found = 0, removed = 0, n = 0, cap = 0;
	char **names = NULL;

	/* Nothing in tmp/ was ever acknowledged: its client got no 250. */
	if ((d = fdopendir(dup(q->tmpfd)))) {
		/* The dup shares the offset a previous scan left at the end. */
		rewinddir(d);
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && unlinkat(q->tmpfd, de->d_name, 0) == 0)
				removed++;
		closedir(d);
	}
	if (removed)
		log_info("queue recover: removed %zu unacknowledged files from tmp/", removed);

	/* Collect first: moving files while reading the directory may skip some. */
	if (!(d = fdopendir(dup(q->msgfd))))
		fatal("queue: cannot read %s/msg", q->dir);
	rewinddir(d);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap)
			names = xrealloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);

	for (size_t i = 0; i < n; i++) {
		const char *name = names[i];
		size_t len = strlen(name);
		if ((len == 21 && strcmp(name + 16, ".done") == 0) ||
		    (len == 22 && strcmp(name + 16, ".state") == 0)) {
			char id[17];
			memcpy(id, name, 16);
			id[16] = '\0';
			/* The message was removed before its journal (a crash between
			 * the two unlinks): the journal is of no use any more. */
			if (queue_is_id(id) && faccessat(q->msgfd, id, F_OK, 0) < 0 &&
			    errno == ENOENT)
				unlinkat(q->msgfd, name, 0);
			continue;
		}
		if (!queue_is_id(name)) {
			qfile_move_corrupt(q->dir, q->msgfd, name, "not a queue file name");
			continue;
		}
		size_t bodylen;
		struct envelope env;
		int err = qfile_load_env_at(q->msgfd, name, &env, &bodylen);
		if (err && err != EBADMSG) {
			/* Left in place: an I/O error is no proof of corruption. */
			log_warnx("queue id=%s recover: cannot read: %s", name, strerror(err));
			continue;
		}
		if (err || strcmp(env.id, name) != 0) {
			qfile_move_corrupt(q->dir, q->msgfd, name, "torn or malformed");
			for (int k = 0; k < 2; k++) {
				char *side = xasprintf("%s.%s", name, k ? "state" : "done");
				if (faccessat(q->msgfd, side, F_OK, 0) == 0)
					qfile_move_corrupt(q->dir, q->msgfd, side,
							   "journal of a corrupt file");
				free(side);
			}
		} else {
			found++;
			if (q->notify)
				q->notify(q->notify_arg, name);
		}
		envelope_clear(&env);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	fsync(q->msgfd);
	log_info("queue recover: %zu messages queued", found);
	return found;
}
