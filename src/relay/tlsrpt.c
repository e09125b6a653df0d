/* tlsrpt: the counts of the current reporting period, their file, and the turn of the
 * period (tlsrpt.h). Everything here runs on the loop but the file writes, which go
 * to a worker one at a time, in order: a period's last write always lands before its
 * file is removed, and a write never resurrects a removed file.
 *
 * Promises: a count is on disk within one worker round trip of the session that
 * made it (a crash loses at most what was not yet written); a period's report is
 * built from the file's counts after a restart; the file of a period goes only once
 * its reports are queued. */
#include "relay/tlsrpt.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "client/smtpc.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

/* A file operation for the worker: the text of a period to write, or NULL to remove. */
struct tlsrpt_op {
	struct tlsrpt *r;
	char *path;
	char *text;
	size_t len;
	int err;
	struct tlsrpt_op *next;
};

struct tlsrpt_pending {
	struct tlsrpt *r;
	struct tlsrpt_send *s;
	struct tlsrpt_pending *next;
};

struct tlsrpt {
	struct tlsrpt_send_ctx ctx;
	char *dir;
	long long interval_ms;
	struct tlsrpt_period cur;
	struct event *ev_period;
	struct tlsrpt_op *ops, **ops_tail;  /* waiting; the head is the one running */
	int op_running;
	struct tlsrpt_pending *sending;     /* finished periods being reported */
};

struct tlsrpt_ticket {
	struct tlsrpt *r;
	struct tlsrpt_policy p;
	int done;
	char *result, *mx, *ip, *info;  /* tlsrpt_ticket_create_failed's; else NULL */
};

static long long now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static char *period_path(const struct tlsrpt *r, long long start_ms)
{
	return xasprintf("%s/%lld.counts", r->dir, start_ms);
}

/* ---- file operations, one at a time on a worker ----------------------------------- */

static void op_run(struct tlsrpt *r);

static void op_work(void *arg)
{
	struct tlsrpt_op *op = arg;
	if (op->text)
		op->err = fs_write_replace(op->path, op->text, op->len, 0600);
	else if (unlink(op->path) < 0 && errno != ENOENT)
		op->err = errno;
}

static void op_done(void *arg)
{
	struct tlsrpt_op *op = arg;
	struct tlsrpt *r = op->r;
	if (op->err)
		log_warnx("tls-rpt event=state-error path=%s error=\"%s\"", op->path,
			  strerror(op->err));
	r->ops = op->next;
	if (!r->ops)
		r->ops_tail = &r->ops;
	r->op_running = 0;
	free(op->path);
	free(op->text);
	free(op);
	op_run(r);
}

static void op_run(struct tlsrpt *r)
{
	if (r->op_running || !r->ops)
		return;
	r->op_running = 1;
	workers_submit(r->ctx.w, op_work, op_done, r->ops);
}

/* A write of pd replaces one of the same file still waiting (not the running one). */
static void op_push(struct tlsrpt *r, long long start_ms, const struct tlsrpt_period *pd)
{
	char *path = period_path(r, start_ms), *text = NULL;
	size_t len = 0;
	if (pd) {
		FILE *f = open_memstream(&text, &len);
		if (!f)
			fatalx("tls-rpt: out of memory");
		tlsrpt_period_save(pd, f);
		fclose(f);
		for (struct tlsrpt_op *op = r->ops ? r->ops->next : NULL; op; op = op->next)
			if (op->text && strcmp(op->path, path) == 0) {
				free(op->text);
				op->text = text;
				op->len = len;
				free(path);
				return;
			}
	}
	struct tlsrpt_op *op = xcalloc(1, sizeof(*op));
	op->r = r;
	op->path = path;
	op->text = text;
	op->len = len;
	*r->ops_tail = op;
	r->ops_tail = &op->next;
	op_run(r);
}

/* ---- periods ---------------------------------------------------------------------- */

static void period_sent(void *arg, struct tlsrpt_period *pd)
{
	struct tlsrpt_pending *p = arg;
	struct tlsrpt *r = p->r;
	for (struct tlsrpt_pending **pp = &r->sending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p);
	op_push(r, pd->start_ms, NULL);
	log_info("tls-rpt event=period-done start=%lld end=%lld", pd->start_ms, pd->end_ms);
	tlsrpt_period_clear(pd);
	free(pd);
}

/* The reports of a finished period (its counts are on disk: op_push came first). */
static void period_report(struct tlsrpt *r, struct tlsrpt_period *pd)
{
	struct tlsrpt_pending *p = xcalloc(1, sizeof(*p));
	p->r = r;
	p->next = r->sending;
	r->sending = p;
	p->s = tlsrpt_send_start(&r->ctx, pd, period_sent, p);
}

static void period_arm(struct tlsrpt *r)
{
	long long ms = r->cur.end_ms - now_ms();
	struct timeval tv;
	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(r->ev_period, &tv);
}

static void period_begin(struct tlsrpt *r, long long t)
{
	memset(&r->cur, 0, sizeof(r->cur));
	r->cur.start_ms = t - t % r->interval_ms;
	r->cur.end_ms = r->cur.start_ms + r->interval_ms;
}

static void period_over(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt *r = arg;
	long long t = now_ms();
	if (t < r->cur.end_ms) {
		period_arm(r);
		return;
	}
	/* A period without sessions has no file and no report. */
	if (r->cur.n_pols) {
		struct tlsrpt_period *pd = xmalloc(sizeof(*pd));
		*pd = r->cur;
		period_report(r, pd);
	}
	period_begin(r, t);
	period_arm(r);
}

/* After a restart: the current period's counts go on; earlier ones are reported now. */
static void period_load_all(struct tlsrpt *r)
{
	DIR *d = opendir(r->dir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 8 || strcmp(de->d_name + n - 7, ".counts") != 0)
			continue;
		char *path = xasprintf("%s/%s", r->dir, de->d_name);
		FILE *f = fopen(path, "r");
		struct tlsrpt_period *pd = xcalloc(1, sizeof(*pd));
		int rc = f ? tlsrpt_period_load(pd, f) : -1;
		if (f)
			fclose(f);
		if (rc < 0) {
			log_warnx("tls-rpt event=state-unreadable path=%s", path);
			tlsrpt_period_clear(pd);
			free(pd);
		} else if (pd->start_ms == r->cur.start_ms && pd->end_ms == r->cur.end_ms) {
			tlsrpt_period_clear(&r->cur);
			r->cur = *pd;
			free(pd);
			log_info("tls-rpt event=counts-loaded start=%lld policies=%zu", r->cur.start_ms,
				 r->cur.n_pols);
		} else {
			log_info("tls-rpt event=period-loaded start=%lld end=%lld policies=%zu",
				 pd->start_ms, pd->end_ms, pd->n_pols);
			period_report(r, pd);
		}
		free(path);
	}
	closedir(d);
}

struct tlsrpt *tlsrpt_create(const struct config *cfg, struct event_base *base,
			     struct dns *dns, struct workers *w, struct queue *q,
			     struct dkim_keys **dkim)
{
	struct tlsrpt *r;
	int err;
	if (!cfg->tls_rpt || !dns)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->ctx = (struct tlsrpt_send_ctx){ .cfg = config_ref(cfg), .base = base, .dns = dns, .w = w,
					  .q = q, .dkim = dkim };
	r->ctx.submitter = xstrdup(cfg->tls_rpt_submitter ? cfg->tls_rpt_submitter : cfg->hostname);
	r->ctx.from = cfg->tls_rpt_from ? xstrdup(cfg->tls_rpt_from)
					: xasprintf("noreply-tls-rpt@%s", cfg->hostname);
	r->ctx.org = xstrdup(cfg->tls_rpt_org ? cfg->tls_rpt_org : r->ctx.submitter);
	r->dir = xstrdup(cfg->tls_rpt_dir);
	r->interval_ms = cfg->tls_rpt_interval_ms ? cfg->tls_rpt_interval_ms : 1;
	r->ops_tail = &r->ops;
	if ((err = fs_mkdirs(r->dir, 0700)) != 0)
		log_warnx("tls-rpt event=state-error path=%s error=\"%s\"", r->dir, strerror(err));
	period_begin(r, now_ms());
	r->ev_period = evtimer_new(base, period_over, r);
	if (!r->ev_period)
		fatalx("tls-rpt: out of memory for events");
	period_load_all(r);
	period_arm(r);
	return r;
}

void tlsrpt_destroy(struct tlsrpt **rp)
{
	struct tlsrpt *r = *rp;
	if (!r)
		return;
	while (r->sending) {
		struct tlsrpt_pending *p = r->sending;
		r->sending = p->next;
		tlsrpt_send_cancel(&p->s);
		free(p);
	}
	/* Called once the workers are gone (the one running finished before they
	 * stopped): the writes still waiting are done here, in order, since the loop is
	 * over, so the counts of the last moments survive the restart. */
	if (r->ops && r->op_running) {
		struct tlsrpt_op *op = r->ops;
		r->ops = op->next;
		free(op->path);
		free(op->text);
		free(op);
	}
	while (r->ops) {
		struct tlsrpt_op *op = r->ops;
		r->ops = op->next;
		op_work(op);
		if (op->err)
			log_warnx("tls-rpt event=state-error path=%s error=\"%s\"", op->path,
				  strerror(op->err));
		free(op->path);
		free(op->text);
		free(op);
	}
	event_free(r->ev_period);
	tlsrpt_period_clear(&r->cur);
	config_release(&r->ctx.cfg);
	free(r->ctx.submitter);
	free(r->ctx.from);
	free(r->ctx.org);
	free(r->dir);
	free(r);
	*rp = NULL;
}

/* ---- recording -------------------------------------------------------------------- */

static void record(struct tlsrpt *r, const struct tlsrpt_policy *p, const char *result,
		   const char *mx, const char *ip, const char *send_ip, const char *info)
{
	tlsrpt_period_add(&r->cur, p, result, mx, ip, send_ip, info, 1);
	metrics_add(METRIC_TLSRPT_SESSIONS, 1, tlsrpt_ptype_name(p->type),
		    result ? result : "success", NULL);
	log_info("tls-rpt event=session domain=%s policy=%s result=%s mx=%s ip=%s", p->domain,
		 tlsrpt_ptype_name(p->type), result ? result : "success", mx ? mx : "-",
		 ip ? ip : "-");
	op_push(r, r->cur.start_ms, &r->cur);
}

struct tlsrpt_ticket *tlsrpt_ticket_create(struct tlsrpt *r, const struct tlsrpt_policy *p)
{
	struct tlsrpt_ticket *t;
	if (!r)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->r = r;
	tlsrpt_policy_copy(&t->p, p);
	return t;
}

struct tlsrpt_ticket *tlsrpt_ticket_create_failed(struct tlsrpt *r, const struct tlsrpt_policy *p,
						  const char *result, const char *mx,
						  const char *ip, const char *info)
{
	struct tlsrpt_ticket *t = tlsrpt_ticket_create(r, p);
	if (!t)
		return NULL;
	t->result = xstrdup(result);
	t->mx = mx ? xstrdup(mx) : NULL;
	t->ip = ip ? xstrdup(ip) : NULL;
	t->info = info ? xstrdup(info) : NULL;
	return t;
}

void tlsrpt_ticket_free(struct tlsrpt_ticket **tp)
{
	struct tlsrpt_ticket *t = *tp;
	if (!t)
		return;
	tlsrpt_policy_clear(&t->p);
	free(t->result);
	free(t->mx);
	free(t->ip);
	free(t->info);
	free(t);
	*tp = NULL;
}

void tlsrpt_ticket_fail(struct tlsrpt_ticket *t, struct smtpc *c, const char *result,
			const char *mx, const char *ip, const char *info)
{
	char local[64];
	if (!t || t->done)
		return;
	t->done = 1;
	/* One session, one count: a policy that failed before the session began is what
	 * it reports, whatever the session met afterwards (docs/tls-rpt.md). */
	if (t->result) {
		result = t->result;
		mx = t->mx;
		ip = t->ip;
		info = t->info;
	}
	record(t->r, &t->p, result, mx, ip, c && smtpc_local_addr(c, local, sizeof(local)) == 0
	       ? local : NULL, info);
}

void tlsrpt_ticket_ok(struct tlsrpt_ticket *t, struct smtpc *c)
{
	if (t && t->result) {
		tlsrpt_ticket_fail(t, c, NULL, NULL, NULL, NULL);
		return;
	}
	if (!t || t->done)
		return;
	t->done = 1;
	record(t->r, &t->p, NULL, NULL, NULL, NULL, NULL);
}

void tlsrpt_record(struct tlsrpt *r, const struct tlsrpt_policy *p, const char *result,
		   const char *mx, const char *info)
{
	if (r)
		record(r, p, result, mx, NULL, NULL, info);
}

int tlsrpt_is_report(const struct tlsrpt *r, const char *sender)
{
	return r && sender && strcasecmp(sender, r->ctx.from) == 0;
}

const char *tlsrpt_cert_result(const char *reason)
{
	if (reason && strcasestr(reason, "hostname mismatch"))
		return "certificate-host-mismatch";
	if (reason && strcasestr(reason, "expired"))
		return "certificate-expired";
	return "certificate-not-trusted";
}
