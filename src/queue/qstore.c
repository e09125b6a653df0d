/* qstore: the queue directory (see qstore.h). The journal is append-only: a line is
 * "<kind> <fields...> $"; only a line ending in " $" followed by a newline counts, so
 * a line torn by a crash (and later closed by the next append's newline) is ignored
 * rather than read with a truncated field. Promises: an event is reported recorded
 * only after its bytes are fsync'd; replaying a journal gives the state that was
 * recorded, in order; nothing here deletes a message except qstore_remove. */
#include "queue/qstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"
#include "util/xtext.h"

/* Appends to one journal are serialised; different messages rarely share a stripe. */
#define QSTORE_STRIPES 64

struct qstore {
	char *dir;
	int msgfd;
	int lockfd;
	pthread_mutex_t stripes[QSTORE_STRIPES];
};

struct qstore *qstore_open(const char *dir, char **err_r)
{
	struct qstore *qs;
	char *msg = xasprintf("%s/msg", dir);
	int err = fs_mkdirs(msg, 0700), fd;
	if (err || (fd = open(msg, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		*err_r = xasprintf("%s: %s", msg, strerror(err ? err : errno));
		free(msg);
		return NULL;
	}
	free(msg);
	qs = xcalloc(1, sizeof(*qs));
	qs->dir = xstrdup(dir);
	qs->msgfd = fd;
	qs->lockfd = -1;
	for (int i = 0; i < QSTORE_STRIPES; i++)
		pthread_mutex_init(&qs->stripes[i], NULL);
	return qs;
}

void qstore_close(struct qstore **qsp)
{
	struct qstore *qs = *qsp;
	if (!qs)
		return;
	close(qs->msgfd);
	if (qs->lockfd >= 0)
		close(qs->lockfd); /* releases the flock */
	for (int i = 0; i < QSTORE_STRIPES; i++)
		pthread_mutex_destroy(&qs->stripes[i]);
	free(qs->dir);
	free(qs);
	*qsp = NULL;
}

const char *qstore_dir(const struct qstore *qs)
{
	return qs->dir;
}

int qstore_lock(struct qstore *qs)
{
	char *path;
	int fd;
	if (qs->lockfd >= 0)
		return 0;
	path = xasprintf("%s/lock", qs->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	free(path);
	if (fd < 0)
		return errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno == EWOULDBLOCK ? EWOULDBLOCK : errno;
		close(fd);
		return err;
	}
	qs->lockfd = fd;
	return 0;
}

static int qstore_is_id(const char *name)
{
	return strspn(name, "0123456789abcdef") == 16 && name[16] == '\0';
}

int qstore_each(struct qstore *qs, int (*fn)(void *arg, const char *id), void *arg)
{
	DIR *d = fdopendir(dup(qs->msgfd));
	struct dirent *de;
	if (!d)
		return errno;
	rewinddir(d); /* the dup shares the offset of an earlier scan */
	while ((de = readdir(d)))
		if (qstore_is_id(de->d_name) && fn(arg, de->d_name) != 0)
			break;
	closedir(d);
	return 0;
}

const char *rcpt_state_name(enum rcpt_state st)
{
	static const char *const names[] = { "pending", "deferred", "delivered", "relayed",
					     "failed" };
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

int qmsg_finished(const struct qmsg *m)
{
	for (size_t i = 0; i < m->env.n_rcpts; i++)
		if (!m->env.rcpts[i].done)
			return 0;
	return 1;
}

void qstore_apply(struct qmsg *m, const struct qev *ev)
{
	struct env_rcpt *r;
	if (ev->kind == QEV_HOLD || ev->kind == QEV_RELEASE) {
		m->held = ev->kind == QEV_HOLD;
		return;
	}
	if (ev->rcpt >= m->env.n_rcpts)
		return;
	r = &m->env.rcpts[ev->rcpt];
	switch (ev->kind) {
	case QEV_ROUTE:
		envelope_set_str(&r->route, ev->route);
		return;
	case QEV_WARNED:
		r->delay_warned = 1;
		return;
	case QEV_NOTIFIED:
		r->notified = 1;
		return;
	case QEV_DELIVERED: r->state = RCPT_DELIVERED; break;
	case QEV_RELAYED: r->state = RCPT_RELAYED; break;
	case QEV_FAILED: r->state = RCPT_FAILED; break;
	case QEV_DEFERRED: r->state = RCPT_DEFERRED; break;
	default: return;
	}
	r->done = r->state != RCPT_DEFERRED;
	r->attempts++;
	r->last_attempt = ev->when;
	r->next_attempt = ev->kind == QEV_DEFERRED ? ev->next : 0;
	snprintf(r->status, sizeof(r->status), "%s", ev->status ? ev->status : "");
	envelope_set_str(&r->diag, ev->diag);
	envelope_set_str(&r->remote_mta, ev->remote);
}

static const char qev_letters[] = "RDLFTWHUN"; /* in enum qev_kind order */

/* Events with a time but no status, remote or diagnostic. */
static int qstore_bare(enum qev_kind k)
{
	return k == QEV_WARNED || k == QEV_HOLD || k == QEV_RELEASE || k == QEV_NOTIFIED;
}

static void qstore_put_str(char **p, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 2 > *cap) {
		while (*len + n + 2 > *cap)
			*cap = *cap ? 2 * *cap : 256;
		*p = xrealloc(*p, *cap);
	}
	memcpy(*p + *len, s, n);
	*len += n;
	(*p)[*len] = '\0';
}

/* "-" for NULL; a lone "-" string is written "+2D". */
static void qstore_put_opt(char **p, size_t *len, size_t *cap, const char *s)
{
	char *e;
	qstore_put_str(p, len, cap, " ");
	if (!s) {
		qstore_put_str(p, len, cap, "-");
		return;
	}
	e = strcmp(s, "-") == 0 ? xstrdup("+2D") : xtext_encode(s, strlen(s));
	qstore_put_str(p, len, cap, e);
	free(e);
}

static void qstore_encode(const struct qev *ev, char **p, size_t *len, size_t *cap)
{
	char num[64];
	snprintf(num, sizeof(num), "%c", qev_letters[ev->kind]);
	qstore_put_str(p, len, cap, num);
	if (ev->kind != QEV_HOLD && ev->kind != QEV_RELEASE) {
		snprintf(num, sizeof(num), " %zu", ev->rcpt);
		qstore_put_str(p, len, cap, num);
	}
	if (ev->kind == QEV_ROUTE) {
		qstore_put_opt(p, len, cap, ev->route);
	} else {
		snprintf(num, sizeof(num), " %lld", (long long)ev->when);
		qstore_put_str(p, len, cap, num);
		if (ev->kind == QEV_DEFERRED) {
			snprintf(num, sizeof(num), " %lld", (long long)ev->next);
			qstore_put_str(p, len, cap, num);
		}
		if (!qstore_bare(ev->kind)) {
			qstore_put_opt(p, len, cap, ev->status);
			qstore_put_opt(p, len, cap, ev->remote);
			qstore_put_opt(p, len, cap, ev->diag);
		}
	}
	qstore_put_str(p, len, cap, " $\n");
}

/* Splits a line (without its newline) into at most max words. */
static size_t qstore_words(char *line, char **w, size_t max)
{
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < max;
	     t = strtok_r(NULL, " ", &save))
		w[n++] = t;
	return n;
}

static int qstore_num(const char *s, long long *v)
{
	char *end;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno || *end || end == s ? -1 : 0;
}

static int qstore_opt(const char *s, char **out)
{
	if (strcmp(s, "-") == 0) {
		*out = NULL;
		return 0;
	}
	return (*out = xtext_decode(s, strlen(s))) ? 0 : -1;
}

/* Parses one whole line into an event and hands it to fn; a malformed one is
 * skipped (logged by the caller). */
static int qstore_parse_line(char *line, void (*fn)(void *arg, const struct qev *ev), void *arg)
{
	char *w[10], *route = NULL, *status = NULL, *remote = NULL, *diag = NULL;
	size_t n = qstore_words(line, w, 10), k = 1;
	const char *letter;
	long long rcpt = 0, when = 0, next = 0;
	struct qev ev = { 0 };
	int rc = -1;

	if (n < 2 || strcmp(w[n - 1], "$") != 0 || strlen(w[0]) != 1 ||
	    !(letter = strchr(qev_letters, w[0][0])))
		return -1;
	ev.kind = (enum qev_kind)(letter - qev_letters);
	n--; /* the "$" */
	if (ev.kind != QEV_HOLD && ev.kind != QEV_RELEASE) {
		if (k >= n || qstore_num(w[k++], &rcpt) < 0 || rcpt < 0)
			return -1;
		ev.rcpt = (size_t)rcpt;
	}
	if (ev.kind == QEV_ROUTE) {
		if (k + 1 != n || qstore_opt(w[k], &route) < 0)
			return -1;
		ev.route = route;
		fn(arg, &ev);
		free(route);
		return 0;
	}
	if (k >= n || qstore_num(w[k++], &when) < 0)
		return -1;
	ev.when = (time_t)when;
	if (ev.kind == QEV_DEFERRED && (k >= n || qstore_num(w[k++], &next) < 0))
		return -1;
	ev.next = (time_t)next;
	if (!qstore_bare(ev.kind)) {
		if (k + 3 != n || qstore_opt(w[k], &status) < 0 ||
		    qstore_opt(w[k + 1], &remote) < 0 || qstore_opt(w[k + 2], &diag) < 0)
			goto out;
		ev.status = status;
		ev.remote = remote;
		ev.diag = diag;
	} else if (k != n) {
		return -1;
	}
	fn(arg, &ev);
	rc = 0;
out:
	free(status);
	free(remote);
	free(diag);
	return rc;
}

static void qstore_apply_cb(void *arg, const struct qev *ev)
{
	qstore_apply(arg, ev);
}

/* Calls fn for each whole line of a journal's contents. */
static void qstore_parse(const char *id, char *buf, size_t len,
			 void (*fn)(void *arg, const struct qev *ev), void *arg)
{
	char *line, *nl;
	for (line = buf; (nl = memchr(line, '\n', len - (size_t)(line - buf))); line = nl + 1) {
		*nl = '\0';
		if (*line && qstore_parse_line(line, fn, arg) < 0)
			log_warnx("queue id=%s journal: skipped a torn or malformed line", id);
	}
}

int qstore_history(struct qstore *qs, const char *id,
		   void (*fn)(void *arg, const struct qev *ev), void *arg)
{
	char name[40], *buf;
	size_t len;
	int err;
	if (!qstore_is_id(id))
		return ENOENT;
	snprintf(name, sizeof(name), "%s.state", id);
	if ((err = qfile_read_at(qs->msgfd, name, &buf, &len)) != 0)
		return err;
	qstore_parse(id, buf, len, fn, arg);
	free(buf);
	return 0;
}

/* Reads msg/<name> if it exists and replays it: the journal, or the older "<i> done"
 * sidecar. A missing file is no progress. */
static int qstore_replay(struct qstore *qs, struct qmsg *m, const char *name, int legacy)
{
	char *buf;
	size_t len;
	int err = qfile_read_at(qs->msgfd, name, &buf, &len);
	if (err)
		return err == ENOENT ? 0 : err;
	if (legacy) {
		qfile_done_apply(buf, len, &m->env);
		for (size_t i = 0; i < m->env.n_rcpts; i++)
			if (m->env.rcpts[i].done && m->env.rcpts[i].state == RCPT_PENDING)
				m->env.rcpts[i].state = RCPT_DELIVERED;
		free(buf);
		return 0;
	}
	qstore_parse(m->id, buf, len, qstore_apply_cb, m);
	free(buf);
	return 0;
}

/* The message and its journal go aside together: the journal alone would be an
 * orphan, and the message alone would be delivered again from the start. */
static void qstore_move_corrupt(struct qstore *qs, const char *id)
{
	char name[40];
	qfile_move_corrupt(qs->dir, qs->msgfd, id, "torn or malformed");
	snprintf(name, sizeof(name), "%s.state", id);
	if (faccessat(qs->msgfd, name, F_OK, 0) == 0)
		qfile_move_corrupt(qs->dir, qs->msgfd, name, "journal of a corrupt file");
}

int qstore_load(struct qstore *qs, const char *id, int flags, struct qmsg *m)
{
	char *buf, name[40];
	size_t len;
	int err;

	memset(m, 0, sizeof(*m));
	if (!qstore_is_id(id))
		return ENOENT;
	snprintf(m->id, sizeof(m->id), "%s", id);
	if (flags & QSTORE_BODY) {
		if ((err = qfile_read_at(qs->msgfd, id, &buf, &len)) != 0)
			return err;
		if (qfile_decode(buf, len, &m->env, &m->body, &m->bodylen) < 0)
			err = EBADMSG;
	} else {
		/* Only the envelope is wanted: the file is checked a block at a time, so a
		 * big message is never held whole just to be scheduled. */
		buf = NULL;
		err = qfile_load_env_at(qs->msgfd, id, &m->env, &m->bodylen);
		if (err && err != EBADMSG)
			return err;
	}
	if (err || strcmp(m->env.id, id) != 0) {
		envelope_clear(&m->env);
		free(buf);
		qstore_move_corrupt(qs, id);
		memset(m, 0, sizeof(*m));
		return EBADMSG;
	}
	m->size = m->bodylen;
	snprintf(name, sizeof(name), "%s.done", id);
	if ((err = qstore_replay(qs, m, name, 1)) == 0) {
		snprintf(name, sizeof(name), "%s.state", id);
		err = qstore_replay(qs, m, name, 0);
	}
	if (err) {
		/* Without the progress we would deliver twice: better not at all now. */
		envelope_clear(&m->env);
		free(buf);
		memset(m, 0, sizeof(*m));
		return err;
	}
	if (flags & QSTORE_BODY) {
		m->buf = buf;
	} else {
		free(buf);
		m->body = NULL;
		m->bodylen = 0;
	}
	return 0;
}

int qstore_open_body(struct qstore *qs, const char *id, struct qbody *b)
{
	struct envelope env;
	int err;
	b->fd = -1;
	if (!qstore_is_id(id))
		return ENOENT;
	b->head = NULL;
	b->hlen = 0;
	err = qfile_open_at(qs->msgfd, id, &env, &b->fd, &b->off, &b->len);
	if (err && err != EBADMSG)
		return err;
	if (!err && env.prepend) {
		b->head = env.prepend;
		b->hlen = strlen(env.prepend);
		b->len += b->hlen;
		env.prepend = NULL;
	}
	if (!err && strcmp(env.id, id) != 0) {
		close(b->fd);
		b->fd = -1;
		err = EBADMSG;
	}
	envelope_clear(&env);
	if (err)
		qstore_move_corrupt(qs, id);
	return err;
}

int qbody_read(const struct qbody *b, uint64_t pos, char *buf, size_t n)
{
	if (pos > b->len || n > b->len - pos)
		return EINVAL;
	if (pos < b->hlen) {
		size_t k = b->hlen - pos < n ? b->hlen - (size_t)pos : n;
		memcpy(buf, b->head + pos, k);
		buf += k;
		n -= k;
		pos += k;
	}
	pos -= b->hlen; /* from here on, into the file's body */
	while (n > 0) {
		ssize_t r = pread(b->fd, buf, n, (off_t)(b->off + pos));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno;
		if (r == 0)
			return EIO; /* shorter than when it was checked: never, but not a loop */
		buf += r;
		n -= (size_t)r;
		pos += (uint64_t)r;
	}
	return 0;
}

void qbody_close(struct qbody *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	free(b->head);
	b->head = NULL;
	b->hlen = 0;
}

void qbody_dup(const struct qbody *b, struct qbody *copy)
{
	*copy = *b;
	copy->fd = b->fd >= 0 ? fcntl(b->fd, F_DUPFD_CLOEXEC, 0) : -1;
	copy->head = b->head ? xstrdup(b->head) : NULL;
}

void qmsg_clear(struct qmsg *m)
{
	envelope_clear(&m->env);
	free(m->buf);
	memset(m, 0, sizeof(*m));
}

static size_t qstore_stripe(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % QSTORE_STRIPES;
}

static int qstore_append(struct qstore *qs, const char *id, const char *data, size_t len)
{
	char name[40], last;
	struct stat st;
	int fd, err = 0, isnew;
	snprintf(name, sizeof(name), "%s.state", id);
	fd = openat(qs->msgfd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	isnew = st.st_size == 0;
	/* After a torn append, start on a fresh line so this one stays whole. */
	if (!isnew && (pread(fd, &last, 1, st.st_size - 1) != 1 || last != '\n') &&
	    write(fd, "\n", 1) != 1) {
		err = errno ? errno : EIO;
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			goto out;
		}
		data += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		err = errno;
	else if (isnew && fsync(qs->msgfd) < 0)
		err = errno;
out:
	close(fd);
	return err;
}

int qstore_record(struct qstore *qs, const char *id, const struct qev *evs, size_t n)
{
	char *buf = NULL;
	size_t len = 0, cap = 0, s;
	int err;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		qstore_encode(&evs[i], &buf, &len, &cap);
	s = qstore_stripe(id);
	pthread_mutex_lock(&qs->stripes[s]);
	err = qstore_append(qs, id, buf, len);
	pthread_mutex_unlock(&qs->stripes[s]);
	free(buf);
	return err;
}

int qstore_remove(struct qstore *qs, const char *id)
{
	char name[40];
	if (!qstore_is_id(id))
		return ENOENT;
	/* The message first: a crash after it leaves an orphan journal, which
	 * queue_recover removes, never a message without its progress. */
	if (unlinkat(qs->msgfd, id, 0) < 0)
		return errno;
	snprintf(name, sizeof(name), "%s.state", id);
	unlinkat(qs->msgfd, name, 0);
	snprintf(name, sizeof(name), "%s.done", id);
	unlinkat(qs->msgfd, name, 0);
	if (fsync(qs->msgfd) < 0)
		log_warn("queue id=%s fsync of the queue directory", id);
	return 0;
}
