/* bounce: DSN messages into the queue. The DSN is an ordinary queued message from "<>",
 * so it is delivered, retried and listed like any other; being from the null sender,
 * its own failure never produces another DSN (RFC 5321 6.1, no loops). It is queued as
 * generated mail (queue/generated.h): DKIM-signed when its From: domain has a key. */
#include "deliver/bounce.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_client.h"
#include "config/config.h"
#include "dkim/dkim_keys.h"
#include "queue/envelope.h"
#include "queue/generated.h"
#include "queue/qstore.h"
#include "queue/queue.h"
#include "store/userdb.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

struct bounce_job {
	const struct config *cfg;
	struct qstore *qs;
	struct queue *q;
	struct auth_client *users;
	struct dkim_keys *keys; /* as they were when the DSN was asked for */
	const struct qmsg *m;
	const struct dsn_item *items;
	size_t n_items;
	time_t retry_until;
	void (*done)(void *arg, int err);
	void *arg;
	int err;
	int queued;
	int refs;      /* the worker's completion and the commit's: both on the loop */
};

static void bounce_finish(struct bounce_job *j)
{
	j->done(j->arg, j->err);
	config_release(&j->cfg);
	dkim_keys_free(&j->keys);
	free(j);
}

static void bounce_committed(void *arg, int err)
{
	struct bounce_job *j = arg;
	j->err = err;
	if (--j->refs == 0)
		bounce_finish(j);
}

static const char *bounce_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

static void bounce_work(void *arg)
{
	struct bounce_job *j = arg;
	const char *to = j->m->env.mail_from;
	struct dsn_params p = {
		.reporting_mta = j->cfg->hostname, .msgid_domain = j->cfg->hostname,
		.now = time(NULL), .retry_until = j->retry_until,
	};
	struct envelope env = { 0 };
	struct qbody b;
	char **boxes = NULL, *text, *buf;
	size_t nboxes = 0, len, n;
	const char *box = NULL;

	if (config_is_local_domain(j->cfg, bounce_domain(to))) {
		int found = auth_client_resolve(j->users, to, SIZE_MAX, &boxes, &nboxes);
		if (found < 0) {
			j->err = EAGAIN;
			return;
		}
		if (found == 0 || nboxes == 0) {
			log_warnx("dsn id=%s to=<%s> status=discarded reason=\"no such local "
				  "mailbox\"", j->m->id, to);
			return;
		}
		box = boxes[0];
	}
	if ((j->err = qstore_open_body(j->qs, j->m->id, &b)) != 0) {
		userdb_free_list(boxes, nboxes);
		return;
	}
	/* Only what is returned is read: the whole message up to the limit, else the
	 * part of it that may hold the header, cut at its last line end. */
	n = b.len;
	if (n > j->cfg->bounce_size_limit) {
		n = j->cfg->bounce_size_limit;
		p.orig_size = b.len;
	}
	buf = xmalloc(n + 1);
	if ((j->err = qbody_read(&b, 0, buf, n)) != 0) {
		qbody_close(&b);
		free(buf);
		userdb_free_list(boxes, nboxes);
		return;
	}
	qbody_close(&b);
	if (p.orig_size) {
		const char *nl = memrchr(buf, '\n', n);
		n = nl ? (size_t)(nl - buf) + 1 : 0;
	}
	text = dsn_build(&j->m->env, buf, n, j->items, j->n_items, &p, &len);
	free(buf);
	generated_envelope(j->q, &env, j->cfg->hostname, "", to, box);
	/* The returned message may hold 8-bit text: say so to the next hop. */
	env.body = j->m->env.body == BODY_7BIT ? BODY_7BIT : BODY_8BITMIME;
	env.smtputf8 = j->m->env.smtputf8;
	/* RFC 8689 5: "All non-delivery messages resulting from messages with the
	 * REQUIRETLS SMTP option ... MUST also specify the REQUIRETLS SMTP option"; its
	 * header alone is returned (dsn_build). */
	if (j->m->env.tlsreq == TLSREQ_REQUIRETLS)
		env.tlsreq = TLSREQ_REQUIRETLS;
	log_info("dsn id=%s dsn_id=%s to=<%s> items=%zu%s", j->m->id, env.id, to, j->n_items,
		 env.tlsreq == TLSREQ_REQUIRETLS ? " requiretls=yes" : "");
	j->queued = 1;
	j->refs = 2;
	queue_commit_generated(j->q, j->keys, &env, text, len, bounce_committed, j);
	envelope_clear(&env);
	userdb_free_list(boxes, nboxes);
}

static void bounce_after(void *arg)
{
	struct bounce_job *j = arg;
	if (!j->queued || --j->refs == 0)
		bounce_finish(j);
}

void bounce_send(const struct config *cfg, struct dkim_keys *const *keys, struct workers *w,
		 struct qstore *qs, struct queue *q, struct auth_client *users, const struct qmsg *m,
		 const struct dsn_item *items, size_t n_items, time_t retry_until,
		 void (*done)(void *arg, int err), void *arg)
{
	struct bounce_job *j = xcalloc(1, sizeof(*j));
	j->cfg = config_ref(cfg);
	j->keys = generated_keys(keys);
	j->qs = qs;
	j->q = q;
	j->users = users;
	j->m = m;
	j->items = items;
	j->n_items = n_items;
	j->retry_until = retry_until;
	j->done = done;
	j->arg = arg;
	workers_submit(w, bounce_work, bounce_after, j);
}
