/* Tests of the queue's journal: every event replays to the recorded state, odd bytes
 * in replies survive, a torn line is ignored and the next append stays whole, the
 * older "done" sidecar is still read, and the lock excludes a second holder. */
#include "unit.h"
#include "queue/envelope.h"
#include "queue/qfile.h"
#include "queue/qstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void put_message(const char *id, size_t nrcpts)
{
	struct envelope env = { 0 };
	char path[128], *buf;
	size_t len;
	FILE *f;
	snprintf(env.id, sizeof(env.id), "%s", id);
	env.received = 1700000000;
	env.mail_from = strdup("alice@example.test");
	for (size_t i = 0; i < nrcpts; i++) {
		char a[48];
		snprintf(a, sizeof(a), "r%zu@dest.example", i);
		envelope_add_rcpt(&env, a, NULL, 0, NULL);
	}
	buf = qfile_encode(&env, "Subject: x\r\n\r\nhi\r\n", 18, &len);
	snprintf(path, sizeof(path), "%s/msg/%s", dir, id);
	f = fopen(path, "w");
	fwrite(buf, 1, len, f);
	fclose(f);
	free(buf);
	envelope_clear(&env);
}

static int count_ids(void *arg, const char *id)
{
	(*(int *)arg)++;
	return 0;
}

static void test_journal(struct qstore *qs)
{
	const char *id = "00000000000000a1";
	struct qmsg m;
	struct qev evs[] = {
		{ .kind = QEV_ROUTE, .rcpt = 0, .route = "mx dest.example 25 -" },
		{ .kind = QEV_ROUTE, .rcpt = 1, .route = "-" },
		{ .kind = QEV_DEFERRED, .rcpt = 0, .when = 100, .next = 400, .status = "4.4.1",
		  .remote = NULL, .diag = "connect to mx.dest.example: refused" },
		{ .kind = QEV_FAILED, .rcpt = 1, .when = 101, .status = "5.1.1",
		  .remote = "mx.dest.example", .diag = "550 5.1.1 <r1@dest.example>: no \xff\t$ such" },
		{ .kind = QEV_WARNED, .rcpt = 0, .when = 102 },
		{ .kind = QEV_HOLD, .when = 103 },
		{ .kind = QEV_NOTIFIED, .rcpt = 1, .when = 103 },
	};
	put_message(id, 3);
	CHECK(qstore_record(qs, id, evs, 7) == 0);
	CHECK(qstore_load(qs, id, 0, &m) == 0);
	CHECK(m.held == 1);
	CHECK(m.body == NULL && m.size == 18);
	CHECK_STR(m.env.rcpts[0].route, "mx dest.example 25 -");
	CHECK_STR(m.env.rcpts[1].route, "-");
	CHECK(m.env.rcpts[0].state == RCPT_DEFERRED && !m.env.rcpts[0].done);
	CHECK(m.env.rcpts[0].next_attempt == 400 && m.env.rcpts[0].last_attempt == 100);
	CHECK(m.env.rcpts[0].remote_mta == NULL && m.env.rcpts[0].delay_warned);
	CHECK_STR(m.env.rcpts[0].status, "4.4.1");
	CHECK(m.env.rcpts[1].state == RCPT_FAILED && m.env.rcpts[1].done);
	CHECK(m.env.rcpts[1].notified && !m.env.rcpts[0].notified);
	CHECK_STR(m.env.rcpts[1].diag, "550 5.1.1 <r1@dest.example>: no \xff\t$ such");
	CHECK_STR(m.env.rcpts[1].remote_mta, "mx.dest.example");
	CHECK(m.env.rcpts[2].state == RCPT_PENDING && m.env.rcpts[2].attempts == 0);
	CHECK(!qmsg_finished(&m));
	qmsg_clear(&m);

	/* A crash in the middle of an append: the torn line is ignored, and the next
	 * append starts a fresh line. */
	{
		char path[128];
		int fd;
		snprintf(path, sizeof(path), "%s/msg/%s.state", dir, id);
		fd = open(path, O_WRONLY | O_APPEND);
		CHECK(write(fd, "D 0 200 2.0.0 mx 250-o", 22) == 22);
		close(fd);
	}
	struct qev rel[] = {
		{ .kind = QEV_RELEASE, .when = 104 },
		{ .kind = QEV_DELIVERED, .rcpt = 2, .when = 105, .status = "2.0.0",
		  .remote = "mx.dest.example", .diag = "250 ok" },
	};
	CHECK(qstore_record(qs, id, rel, 2) == 0);
	CHECK(qstore_load(qs, id, QSTORE_BODY, &m) == 0);
	CHECK(m.held == 0);
	CHECK(m.env.rcpts[0].state == RCPT_DEFERRED);
	CHECK(m.env.rcpts[2].state == RCPT_DELIVERED && m.env.rcpts[2].attempts == 1);
	CHECK(m.body && m.bodylen == 18 && memcmp(m.body, "Subject: x\r\n", 12) == 0);
	qmsg_clear(&m);

	CHECK(qstore_remove(qs, id) == 0);
	CHECK(qstore_load(qs, id, 0, &m) == ENOENT);
	CHECK(qstore_remove(qs, id) == ENOENT);
}

static void test_legacy_and_corrupt(struct qstore *qs)
{
	const char *id = "00000000000000b2";
	char path[128];
	struct qmsg m;
	FILE *f;
	int n = 0;
	put_message(id, 2);
	snprintf(path, sizeof(path), "%s/msg/%s.done", dir, id);
	f = fopen(path, "w");
	fputs("1 done\n", f);
	fclose(f);
	CHECK(qstore_load(qs, id, 0, &m) == 0);
	CHECK(m.env.rcpts[1].state == RCPT_DELIVERED && m.env.rcpts[1].done);
	CHECK(m.env.rcpts[0].state == RCPT_PENDING);
	qmsg_clear(&m);
	CHECK(qstore_each(qs, count_ids, &n) == 0 && n == 1);

	/* A flipped byte: moved aside, never delivered. */
	snprintf(path, sizeof(path), "%s/msg/%s", dir, id);
	f = fopen(path, "r+");
	fseek(f, 20, SEEK_SET);
	fputc('#', f);
	fclose(f);
	CHECK(qstore_load(qs, id, 0, &m) == EBADMSG);
	snprintf(path, sizeof(path), "%s/corrupt/%s", dir, id);
	CHECK(access(path, F_OK) == 0);
	n = 0;
	CHECK(qstore_each(qs, count_ids, &n) == 0 && n == 0);
}

static void test_lock(struct qstore *qs)
{
	char *err = NULL;
	struct qstore *other = qstore_open(dir, &err);
	CHECK(other != NULL);
	CHECK(qstore_lock(qs) == 0);
	CHECK(qstore_lock(other) == EWOULDBLOCK);
	qstore_close(&qs);
	CHECK(qstore_lock(other) == 0);
	qstore_close(&other);
}

void unit_main(void)
{
	char *err = NULL;
	struct qstore *qs;
	snprintf(dir, sizeof(dir), "/tmp/cursus-qstore-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	qs = qstore_open(dir, &err);
	CHECK(qs != NULL);
	if (!qs)
		return;
	test_journal(qs);
	test_legacy_and_corrupt(qs);
	test_lock(qs);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
}
