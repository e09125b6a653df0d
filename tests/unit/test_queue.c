/* Tests of the queue and the deliverer on a real directory with a real event loop:
 * concurrent commits, recovery, delivery into Maildirs, partial progress, deferral
 * and retry. */
#include "unit.h"
#include "config/config.h"
#include "queue/envelope.h"
#include "queue/qfile.h"
#include "queue/queue.h"
#include "util/workers.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_MSGS 200

static struct event_base *base;
static int n_done, n_failed, n_expected;
static pthread_mutex_t notify_mu = PTHREAD_MUTEX_INITIALIZER;
static int n_notified;

static void on_commit(void *arg, int err)
{
	int *errp = arg;
	*errp = err;
	if (err)
		n_failed++;
	if (++n_done == n_expected)
		event_base_loopbreak(base);
}

static void on_notify(void *arg, const char *id)
{
	pthread_mutex_lock(&notify_mu);
	n_notified++;
	pthread_mutex_unlock(&notify_mu);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "timeout waiting for callbacks\n");
	event_base_loopbreak(base);
}

static void run_loop(int expected)
{
	struct timeval tv = { 30, 0 };
	struct event *t = evtimer_new(base, on_timeout, NULL);
	n_expected = expected;
	evtimer_add(t, &tv);
	if (n_done < n_expected)
		event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	event_free(t);
}

static size_t count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	if (!d)
		return (size_t)-1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    (!suffix || (strlen(de->d_name) > strlen(suffix) &&
				 strcmp(de->d_name + strlen(de->d_name) - strlen(suffix), suffix) == 0)))
			n++;
	closedir(d);
	return n;
}

static char *make_body(int i)
{
	char *b;
	if (asprintf(&b, "Received: from test by cursus; msg %d\r\nSubject: %d\r\n\r\nbody %d\r\n",
		     i, i, i) < 0)
		abort();
	return b;
}

static void commit_one(struct queue *q, const char *rcpts[], const char *boxes[], size_t n,
		       char id_r[24], int *err_r, int i)
{
	struct envelope env = { 0 };
	char *body = make_body(i);
	queue_new_id(q, &env);
	env.received = time(NULL);
	env.helo = strdup("client.test");
	env.client_addr = strdup("192.0.2.1");
	env.mail_from = strdup("sender@remote.test");
	for (size_t k = 0; k < n; k++)
		envelope_add_rcpt(&env, rcpts[k], NULL, DSN_NOTIFY_FAILURE, boxes[k]);
	memcpy(id_r, env.id, 24);
	queue_commit(q, &env, body, strlen(body), NULL, on_commit, err_r);
	envelope_clear(&env);
}

/* Streams: chunks written in order, the whole checked on commit; an abort leaves
 * nothing; a recipient added after the first write gets a new head. */
static void test_streams(struct queue *q, const char *qdir)
{
	static char chunk[3][100000];
	static int errs[16];
	struct envelope env = { 0 }, out;
	struct queue_stream *st;
	char *buf, path[256], tmpdir[200];
	const char *body;
	size_t len, blen;
	int dfd, k = 0;

	for (int i = 0; i < 3; i++)
		memset(chunk[i], 'a' + i, sizeof(chunk[i]));
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", qdir);
	for (int round = 0; round < 2; round++) {
		n_done = n_failed = 0;
		k = 0;
		memset(&env, 0, sizeof(env));
		queue_new_id(q, &env);
		env.received = time(NULL);
		env.mail_from = strdup("s@x.test");
		envelope_add_rcpt(&env, "a@x.test", NULL, 0, "x.test/a");
		st = queue_stream_open(q, &env, "Received: x\r\n", 13, NULL);
		for (int i = 0; i < 3; i++)
			queue_stream_write(st, chunk[i], sizeof(chunk[i]), on_commit, &errs[k++]);
		if (round == 1)
			envelope_add_rcpt(&env, "b@x.test", NULL, 0, "x.test/b");
		queue_stream_commit(&st, &env, on_commit, &errs[k++]);
		CHECK(st == NULL);
		run_loop(k);
		CHECK(n_done == 4 && n_failed == 0);
		snprintf(path, sizeof(path), "%s/msg", qdir);
		dfd = open(path, O_RDONLY | O_DIRECTORY);
		CHECK(qfile_read_at(dfd, env.id, &buf, &len) == 0);
		CHECK(qfile_decode(buf, len, &out, &body, &blen) == 0);
		CHECK(blen == 13 + 3 * sizeof(chunk[0]) && memcmp(body, "Received: x\r\n", 13) == 0);
		CHECK(memcmp(body + 13 + sizeof(chunk[0]), chunk[1], sizeof(chunk[1])) == 0);
		CHECK(out.n_rcpts == (size_t)(round + 1));
		envelope_clear(&out);
		free(buf);
		CHECK(qfile_load_env_at(dfd, env.id, &out, &blen) == 0);
		CHECK(blen == 13 + 3 * sizeof(chunk[0]) && out.n_rcpts == (size_t)(round + 1));
		envelope_clear(&out);
		close(dfd);
		envelope_clear(&env);
		CHECK(count_files(tmpdir, NULL) == 0);
	}

	/* Given up after two chunks: the file goes, the write callbacks still come. */
	n_done = 0;
	memset(&env, 0, sizeof(env));
	queue_new_id(q, &env);
	env.mail_from = strdup("s@x.test");
	st = queue_stream_open(q, &env, "", 0, NULL);
	queue_stream_write(st, chunk[0], sizeof(chunk[0]), on_commit, &errs[0]);
	queue_stream_write(st, chunk[1], sizeof(chunk[1]), on_commit, &errs[1]);
	run_loop(2);
	CHECK(count_files(tmpdir, NULL) == 1);
	queue_stream_abort(&st);
	CHECK(st == NULL);
	for (int i = 0; i < 200 && count_files(tmpdir, NULL) != 0; i++)
		usleep(10000);
	CHECK(count_files(tmpdir, NULL) == 0);
	snprintf(path, sizeof(path), "%s/msg/%s", qdir, env.id);
	CHECK(access(path, F_OK) < 0);
	envelope_clear(&env);
	queue_stream_abort(&st); /* NULL: nothing */
}

void unit_main(void)
{
	char root[] = "/tmp/cursus-queue-XXXXXX", qdir[128], msgdir[160], tmpdir[160], path[512];
	static char ids[N_MSGS][24];
	static int errs[N_MSGS];
	struct workers *w;
	struct queue *q;
	struct timespec t0, t1;
	int fd;

	evthread_use_pthreads();
	base = event_base_new();
	w = workers_create(base, 1);
	CHECK(mkdtemp(root) != NULL);
	snprintf(qdir, sizeof(qdir), "%s/queue", root);
	snprintf(msgdir, sizeof(msgdir), "%s/msg", qdir);
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", qdir);

	/* 200 concurrent commits share directory fsyncs. */
	q = queue_create(qdir, 8, w);
	queue_set_notify(q, on_notify, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < N_MSGS; i++) {
		char rcpt[64], box[64];
		const char *rp = rcpt, *bp = box;
		errs[i] = -1;
		snprintf(rcpt, sizeof(rcpt), "user%d@example.test", i % 3);
		snprintf(box, sizeof(box), "example.test/user%d", i % 3);
		commit_one(q, &rp, &bp, 1, ids[i], &errs[i], i);
	}
	run_loop(N_MSGS);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "%d commits in %.1f ms\n", N_MSGS,
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	CHECK(n_done == N_MSGS && n_failed == 0);
	CHECK(n_notified == N_MSGS);
	CHECK(count_files(msgdir, NULL) == N_MSGS);
	CHECK(count_files(tmpdir, NULL) == 0);
	for (int i = 0; i < N_MSGS; i++) {
		char *buf;
		size_t len, blen;
		const char *body;
		struct envelope env;
		CHECK(errs[i] == 0);
		for (int k = 0; k < i; k++)
			if (strcmp(ids[k], ids[i]) == 0)
				CHECK(!"duplicate id");
		CHECK(strlen(ids[i]) == 16);
		fd = open(msgdir, O_RDONLY | O_DIRECTORY);
		CHECK(qfile_read_at(fd, ids[i], &buf, &len) == 0);
		close(fd);
		CHECK(qfile_decode(buf, len, &env, &body, &blen) == 0);
		CHECK_STR(env.id, ids[i]);
		CHECK(env.n_rcpts == 1 && strcmp(env.mail_from, "sender@remote.test") == 0);
		CHECK(blen > 10 && memcmp(body, "Received: ", 10) == 0);
		envelope_clear(&env);
		free(buf);
	}

	/* A failing write (the temp name is taken) is reported, and leaves nothing. */
	{
		struct envelope env = { 0 };
		int err = -1;
		queue_new_id(q, &env);
		env.received = time(NULL);
		env.mail_from = strdup("");
		envelope_add_rcpt(&env, "x@example.test", NULL, 0, "example.test/x");
		snprintf(path, sizeof(path), "%s/%s", tmpdir, env.id);
		CHECK(mkdir(path, 0700) == 0);
		n_done = 0;
		queue_commit(q, &env, strdup("x"), 1, NULL, on_commit, &err);
		envelope_clear(&env);
		run_loop(1);
		CHECK(err == EEXIST);
		CHECK(count_files(msgdir, NULL) == N_MSGS);
		rmdir(path);
	}
	queue_destroy(&q);
	CHECK(q == NULL);

	/* Recovery: tmp/ is emptied, a torn file is moved aside, the rest is found. */
	snprintf(path, sizeof(path), "%s/0000000000000001", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	CHECK(write(fd, "CURSUS", 6) == 6);
	close(fd);
	snprintf(path, sizeof(path), "%s/00000000000000ff", msgdir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	CHECK(write(fd, "CURSUS-QUEUE 1\nid 00000000000000ff\n", 35) == 35);
	close(fd);
	snprintf(path, sizeof(path), "%s/00000000000000ee.done", msgdir); /* orphan */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	q = queue_create(qdir, 2, w);
	n_notified = 0;
	queue_set_notify(q, on_notify, NULL);
	CHECK(queue_recover(q) == N_MSGS);
	CHECK(n_notified == N_MSGS);
	CHECK(count_files(tmpdir, NULL) == 0);
	CHECK(count_files(msgdir, NULL) == N_MSGS);
	snprintf(path, sizeof(path), "%s/corrupt/00000000000000ff", qdir);
	CHECK(access(path, F_OK) == 0);

	test_streams(q, qdir);

	/* Delivery is the scheduler's: tests/integration/test_delivery.py. */
	queue_destroy(&q);
	workers_destroy(&w);
	event_base_free(base);
	if (!unit_failed) {
		snprintf(path, sizeof(path), "rm -rf '%s'", root);
		if (system(path) != 0)
			fprintf(stderr, "cannot remove %s\n", root);
	}
}
