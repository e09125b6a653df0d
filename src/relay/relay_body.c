/* relay_body: feeds a queued message to smtpc_send_body_from, one block (at most 64
 * KiB) at a time as the connection drains, each block read on a worker thread: a
 * read of the queue file may wait on the disk, and the loop serves every session.
 * Memory per transaction is one block here and smtpc's output watermark, whatever
 * the message's size. The reader keeps its own descriptor (a dup) and frees itself
 * only when no read is in flight, so a session may end at any time. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/relay_int.h"
#include "util/workers.h"
#include "util/xmalloc.h"

#define RELAY_BODY_BLOCK (64 * 1024)

struct relay_body {
	struct workers *w;
	struct smtpc *c;        /* NULL once stopped */
	struct qbody b;         /* with our own fd */
	uint64_t pos;
	size_t want;
	char *buf;
	int err;
	int busy;               /* a read is on a worker */
};

static void relay_body_free(struct relay_body *rb)
{
	qbody_close(&rb->b);
	free(rb->buf);
	free(rb);
}

static void relay_body_read(void *arg)
{
	struct relay_body *rb = arg;
	rb->err = qbody_read(&rb->b, rb->pos, rb->buf, rb->want);
}

static void relay_body_read_done(void *arg)
{
	struct relay_body *rb = arg;
	struct smtpc *c = rb->c;
	char why[120];
	rb->busy = 0;
	if (!c) {
		relay_body_free(rb);
		return;
	}
	/* Either call may end the session, and stop (free) rb: rb is not touched after. */
	if (rb->err) {
		snprintf(why, sizeof(why), "cannot read the queued message: %s", strerror(rb->err));
		smtpc_body_abort(c, why);
		return;
	}
	rb->pos += rb->want;
	smtpc_body_put(c, rb->buf, rb->want);
}

static void relay_body_want(void *arg, size_t max)
{
	struct relay_body *rb = arg;
	if (!rb->c || rb->busy)
		return;
	rb->want = max < RELAY_BODY_BLOCK ? max : RELAY_BODY_BLOCK;
	rb->busy = 1;
	workers_submit(rb->w, relay_body_read, relay_body_read_done, rb);
}

struct relay_body *relay_body_start(struct workers *w, struct smtpc *c, const struct qbody *b,
				    unsigned block_timeout, unsigned dot_timeout)
{
	struct relay_body *rb = xcalloc(1, sizeof(*rb));
	struct smtpc_body_src src = { relay_body_want, rb };
	rb->w = w;
	rb->c = c;
	/* On failure (-1) the first read fails (EBADF) and aborts the body: never a dot. */
	qbody_dup(b, &rb->b);
	rb->buf = xmalloc(RELAY_BODY_BLOCK);
	smtpc_send_body_from(c, b->len, &src, block_timeout, dot_timeout);
	return rb;
}

void relay_body_stop(struct relay_body **rbp)
{
	struct relay_body *rb = *rbp;
	if (!rb)
		return;
	*rbp = NULL;
	rb->c = NULL;
	if (!rb->busy)
		relay_body_free(rb);
}
