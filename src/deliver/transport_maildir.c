/* transport_maildir: local delivery into Maildirs, on worker threads (every step is
 * file work: write, fsync, rename, fsync). Recipients of one delivery that land in the
 * same mailbox (two aliases of one user) get one copy. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "deliver/maildir.h"
#include "deliver/transport.h"
#include "queue/envelope.h"
#include "util/workers.h"
#include "util/xmalloc.h"

struct maildir_transport {
	struct transport t;
	const struct config *cfg;
	struct workers *w;
};

struct maildir_job {
	struct maildir_transport *mt;
	struct delivery *d;
	delivery_done_fn done;
	void *arg;
};

/* RFC 3463 codes for what the file system said. */
static const char *maildir_status(int err)
{
	switch (err) {
	case ENOSPC: return "4.3.1";
	case EDQUOT: return "4.2.2";
	default: return "4.2.0";
	}
}

static void maildir_work(void *arg)
{
	struct maildir_job *j = arg;
	struct delivery *d = j->d;
	char name[512], diag[600];

	for (size_t i = 0; i < d->n_rcpts; i++) {
		struct delivery_rcpt *r = &d->rcpts[i];
		const char *box = d->env->rcpts[r->index].mailbox;
		size_t same = i;
		int err;
		if (!box) {
			transport_delivery_set(r, DR_PERMFAIL, "5.1.1", "no local mailbox");
			continue;
		}
		for (size_t k = 0; k < i; k++) {
			const char *other = d->env->rcpts[d->rcpts[k].index].mailbox;
			if (d->rcpts[k].result == DR_DELIVERED && other && strcmp(other, box) == 0)
				same = k;
		}
		if (same != i) {
			snprintf(diag, sizeof(diag), "same mailbox as %s",
				 d->env->rcpts[d->rcpts[same].index].address);
			transport_delivery_set(r, DR_DELIVERED, "2.0.0", diag);
			continue;
		}
		err = maildir_deliver(j->mt->cfg->mail_dir, box, d->body.head, d->body.hlen,
				      d->body.fd, d->body.off, d->body.len - d->body.hlen, name,
				      sizeof(name));
		if (!err) {
			snprintf(diag, sizeof(diag), "maildir new/%s", name);
			transport_delivery_set(r, DR_DELIVERED, "2.0.0", diag);
		} else {
			snprintf(diag, sizeof(diag), "maildir: %s", strerror(err));
			if (maildir_error_is_permanent(err))
				transport_delivery_set(r, DR_PERMFAIL, "5.1.3", diag);
			else
				transport_delivery_set(r, DR_TEMPFAIL, maildir_status(err), diag);
		}
	}
	d->dest_ok = 1;
	d->dsn_passed = 1;
}

static void maildir_done(void *arg)
{
	struct maildir_job *j = arg;
	j->done(j->d, j->arg);
	free(j);
}

static void maildir_deliver_op(struct transport *t, struct delivery *d, delivery_done_fn done,
			       void *arg)
{
	struct maildir_job *j = xcalloc(1, sizeof(*j));
	j->mt = (struct maildir_transport *)t;
	j->d = d;
	j->done = done;
	j->arg = arg;
	workers_submit(j->mt->w, maildir_work, maildir_done, j);
}

static void maildir_destroy(struct transport *t)
{
	struct maildir_transport *mt = (struct maildir_transport *)t;
	config_release(&mt->cfg);
	free(t);
}

struct transport *transport_maildir_create(const struct config *cfg, struct workers *w)
{
	struct maildir_transport *mt = xcalloc(1, sizeof(*mt));
	mt->t.name = "maildir";
	mt->t.deliver = maildir_deliver_op;
	mt->t.destroy = maildir_destroy;
	/* Held for good: mail_dir, all it reads, takes a restart to change. */
	mt->cfg = config_ref(cfg);
	mt->w = w;
	return &mt->t;
}
