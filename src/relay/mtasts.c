/* mtasts: see mtasts.h. Everything here runs on the loop thread but the fetch job
 * (mtasts_fetch_work), which touches only its own struct. Entries are never freed
 * while the daemon runs (one per domain mail went to with relay_tls mta-sts or auto; a
 * few hundred bytes each), so a job or a DNS answer never finds its entry gone. */
#include "relay/mtasts.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "metrics/metrics.h"
#include "net/dns.h"
#include "net/https.h"
#include "relay/mtasts_fetch.h"
#include "relay/mtasts_store.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

#define MTASTS_BUCKETS 1024
/* Addresses of mta-sts.DOMAIN handed to libcurl. */
#define MTASTS_ADDRS_MAX 8
#define MTASTS_HTTPS_PORT 443

struct mtasts_req {
	struct mtasts_ent *e;
	mtasts_cb cb;
	void *arg;
	struct mtasts_req *next, **pprev;
};

struct mtasts_ent {
	struct mtasts *m;
	char *domain;
	int have;                    /* st holds a policy */
	struct mtasts_stored st;
	time_t expires;
	struct dns_query *txtq;      /* a discovery in flight: TXT, */
	struct dns_query *hostq;     /* then mta-sts.DOMAIN's addresses, */
	int fetching;                /* then the fetch */
	int refreshing;              /* started by the refresh timer (nobody waits) */
	char want_id[MTASTS_ID_MAX + 1];
	char failed_id[MTASTS_ID_MAX + 1];
	struct timespec failed_at;   /* monotonic; the last failed fetch */
	const char *failed_rpt;      /* its RFC 8460 result type */
	char *failed_why;            /* its reason, as logged (malloc'd) */
	struct mtasts_req *waiters;
	struct event *answer_ev;     /* answers the waiters from the loop */
	struct mtasts_ent *hnext;
};

struct mtasts_job {
	struct mtasts *m;
	struct mtasts_ent *e;
	/* in */
	char *domain, *ca, *dir;
	char id[MTASTS_ID_MAX + 1];
	char *addrs[MTASTS_ADDRS_MAX];
	size_t n_addrs;
	unsigned timeout_ms;
	size_t max_size;
	/* out */
	enum mtasts_fetch_result res;
	char why[600];
	struct mtasts_stored st;
	int save_err;
};

struct mtasts {
	const struct config *cfg;
	struct event_base *base;
	struct dns *dns;
	struct workers *w;
	struct event *refresh;
	struct mtasts_ent *buckets[MTASTS_BUCKETS];
	size_t n_jobs;               /* fetches in flight */
};

static void mtasts_discover(struct mtasts_ent *e);

/* ---- entries ------------------------------------------------------------------- */

static size_t mtasts_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % MTASTS_BUCKETS;
}

static void mtasts_answer_cb(evutil_socket_t fd, short what, void *arg);

static struct mtasts_ent *mtasts_ent_get(struct mtasts *m, const char *domain)
{
	struct mtasts_ent **pp = &m->buckets[mtasts_hash(domain)];
	for (; *pp; pp = &(*pp)->hnext)
		if (strcmp((*pp)->domain, domain) == 0)
			return *pp;
	struct mtasts_ent *e = xcalloc(1, sizeof(*e));
	e->m = m;
	e->domain = xstrdup(domain);
	e->answer_ev = event_new(m->base, -1, 0, mtasts_answer_cb, e);
	*pp = e;
	return e;
}

static void mtasts_forget(struct mtasts_ent *e)
{
	mtasts_stored_clear(&e->st);
	e->have = 0;
	e->expires = 0;
}

struct mtasts_unlink {
	char *dir, *domain;
};

static void mtasts_unlink_work(void *arg)
{
	struct mtasts_unlink *u = arg;
	mtasts_store_remove(u->dir, u->domain);
	free(u->dir);
	free(u->domain);
	free(u);
}

/* The cached policy, unless it has expired (then it is dropped, here and, on a fetch
 * thread, from the disk). */
static int mtasts_cached(struct mtasts_ent *e)
{
	struct mtasts_unlink *u;
	if (!e->have)
		return 0;
	if (time(NULL) < e->expires)
		return 1;
	log_info("mta-sts event=policy-expired domain=%s id=%s", e->domain, e->st.id);
	if (!e->m->cfg->mta_sts_cache_dir) {
		mtasts_forget(e);
		return 0;
	}
	u = xmalloc(sizeof(*u));
	u->dir = xstrdup(e->m->cfg->mta_sts_cache_dir);
	u->domain = xstrdup(e->domain);
	workers_submit(e->m->w, mtasts_unlink_work, NULL, u);
	mtasts_forget(e);
	return 0;
}

static void mtasts_set(struct mtasts_ent *e, struct mtasts_stored *st)
{
	mtasts_forget(e);
	e->st = *st;
	memset(st, 0, sizeof(*st));
	e->have = 1;
	/* max_age 0: for the deliveries waiting for it now (a second), cached by no one. */
	e->expires = e->st.fetched + (time_t)(e->st.policy.max_age ? e->st.policy.max_age : 1);
}

static int mtasts_busy(const struct mtasts_ent *e)
{
	return e->txtq || e->hostq || e->fetching;
}

/* A fetch of id that failed: not tried again for mta_sts_fetch_retry, and what the
 * deliveries waiting meanwhile report (RFC 8460 4.3.2.2). */
static void mtasts_failed(struct mtasts_ent *e, const char *id, enum mtasts_fetch_result res,
			  const char *why)
{
	snprintf(e->failed_id, sizeof(e->failed_id), "%s", id);
	clock_gettime(CLOCK_MONOTONIC, &e->failed_at);
	e->failed_rpt = mtasts_fetch_rpt_result(res);
	free(e->failed_why);
	e->failed_why = xstrdup(why);
}

static void mtasts_failed_forget(struct mtasts_ent *e)
{
	e->failed_id[0] = '\0';
	e->failed_rpt = NULL;
	free(e->failed_why);
	e->failed_why = NULL;
}

/* ---- answers --------------------------------------------------------------------- */

/* Every waiter gets what is known now: the cached policy, or none. */
static void mtasts_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mtasts_ent *e = arg;
	int have = mtasts_cached(e);
	struct mtasts_verdict v = {
		.have = have && e->st.policy.mode != MTASTS_NONE, .domain = e->domain,
		.id = have ? e->st.id : "", .policy = have ? &e->st.policy : NULL,
		.source = "cache", .failed = !have && e->failed_id[0] != '\0',
	};
	if (v.failed) {
		v.fail_result = e->failed_rpt;
		v.fail_why = e->failed_why;
	}
	while (e->waiters) {
		struct mtasts_req *r = e->waiters;
		e->waiters = r->next;
		if (e->waiters)
			e->waiters->pprev = &e->waiters;
		r->cb(r->arg, &v);
		free(r);
	}
}

static void mtasts_answer(struct mtasts_ent *e)
{
	e->refreshing = 0;
	if (e->waiters)
		event_active(e->answer_ev, 0, 0);
}

struct mtasts_req *mtasts_lookup(struct mtasts *m, const char *domain, mtasts_cb cb, void *arg)
{
	struct mtasts_ent *e = mtasts_ent_get(m, domain);
	struct mtasts_req *r = xcalloc(1, sizeof(*r));
	r->e = e;
	r->cb = cb;
	r->arg = arg;
	r->next = e->waiters;
	if (r->next)
		r->next->pprev = &r->next;
	r->pprev = &e->waiters;
	e->waiters = r;
	/* A discovery in flight answers this one too. */
	if (!mtasts_busy(e))
		mtasts_discover(e);
	return r;
}

void mtasts_cancel(struct mtasts_req *r)
{
	if (!r)
		return;
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	free(r);
}

/* ---- the fetch (a worker thread) --------------------------------------------------- */

static void mtasts_fetch_work(void *arg)
{
	struct mtasts_job *j = arg;
	struct mtasts_fetch_req req = {
		.domain = j->domain, .addrs = (const char *const *)j->addrs, .n_addrs = j->n_addrs,
		.ca = j->ca, .timeout_ms = j->timeout_ms, .max_size = j->max_size,
	};
	j->res = mtasts_fetch(&req, &j->st.policy, &j->st.text, &j->st.len, j->why,
			      sizeof(j->why));
	if (j->res != MTASTS_FETCH_OK)
		return;
	j->st.domain = xstrdup(j->domain);
	snprintf(j->st.id, sizeof(j->st.id), "%s", j->id);
	j->st.fetched = time(NULL);
	/* max_age 0: good for the deliveries waiting now, kept by no one. */
	if (!j->dir)
		return; /* no cache directory: memory only */
	if (j->st.policy.max_age == 0)
		mtasts_store_remove(j->dir, j->domain);
	else
		j->save_err = mtasts_store_save(j->dir, &j->st);
}

static void mtasts_job_free(struct mtasts_job *j)
{
	for (size_t i = 0; i < j->n_addrs; i++)
		free(j->addrs[i]);
	mtasts_stored_clear(&j->st);
	free(j->domain);
	free(j->ca);
	free(j->dir);
	free(j);
}

static char *mtasts_mx_list(const struct mtasts_policy *p)
{
	char *s = xstrdup("");
	for (size_t i = 0; i < p->n_mx; i++) {
		char *t = xasprintf("%s%s%s", s, i ? " " : "", p->mx[i]);
		free(s);
		s = t;
	}
	return s;
}

static void mtasts_fetch_done(void *arg)
{
	struct mtasts_job *j = arg;
	struct mtasts_ent *e = j->e;
	char why[LOG_ESCAPE_BUFSZ];

	e->fetching = 0;
	j->m->n_jobs--;
	metrics_add(METRIC_MTASTS_FETCH, 1, mtasts_fetch_result_name(j->res), NULL, NULL);
	if (j->res == MTASTS_FETCH_OK) {
		char *mx = mtasts_mx_list(&j->st.policy);
		log_info("mta-sts event=policy-fetched domain=%s id=%s mode=%s max_age=%lu mx=\"%s\"",
			 e->domain, j->id, mtasts_mode_name(j->st.policy.mode), j->st.policy.max_age,
			 mx);
		free(mx);
		if (j->save_err && j->dir)
			log_warnx("mta-sts event=cache-write-failed domain=%s dir=%s error=\"%s\": the "
				  "policy is kept in memory only", e->domain, j->dir,
				  strerror(j->save_err));
		mtasts_set(e, &j->st);
		mtasts_failed_forget(e);
	} else {
		log_escape(why, sizeof(why), j->why, strlen(j->why));
		log_warnx("mta-sts event=fetch-failed domain=%s id=%s result=%s cached=%s "
			  "reason=\"%s\"", e->domain, j->id, mtasts_fetch_result_name(j->res),
			  mtasts_cached(e) ? e->st.id : "none", why);
		mtasts_failed(e, j->id, j->res, j->why);
	}
	mtasts_job_free(j);
	mtasts_answer(e);
}

/* ---- discovery on the loop ------------------------------------------------------- */

static void mtasts_host_done(void *arg, struct dns_result *res)
{
	struct mtasts_ent *e = arg;
	struct mtasts *m = e->m;
	struct mtasts_job *j;

	e->hostq = NULL;
	if (res->status != DNS_OK) {
		char *why = xasprintf("mta-sts.%s: %s", e->domain, res->detail);
		char esc[LOG_ESCAPE_BUFSZ];
		log_escape(esc, sizeof(esc), why, strlen(why));
		log_warnx("mta-sts event=fetch-failed domain=%s id=%s result=%s cached=%s "
			  "reason=\"%s\"", e->domain, e->want_id,
			  mtasts_fetch_result_name(MTASTS_FETCH_ERROR),
			  mtasts_cached(e) ? e->st.id : "none", esc);
		metrics_add(METRIC_MTASTS_FETCH, 1, mtasts_fetch_result_name(MTASTS_FETCH_ERROR),
			    NULL, NULL);
		mtasts_failed(e, e->want_id, MTASTS_FETCH_ERROR, why);
		free(why);
		dns_result_free(res);
		mtasts_answer(e);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->m = m;
	j->e = e;
	j->domain = xstrdup(e->domain);
	j->ca = m->cfg->relay_ca ? xstrdup(m->cfg->relay_ca) : NULL;
	j->dir = m->cfg->mta_sts_cache_dir ? xstrdup(m->cfg->mta_sts_cache_dir) : NULL;
	snprintf(j->id, sizeof(j->id), "%s", e->want_id);
	j->timeout_ms = m->cfg->mta_sts_fetch_timeout_ms;
	j->max_size = m->cfg->mta_sts_max_size;
	for (size_t i = 0; i < res->n_targets && j->n_addrs < MTASTS_ADDRS_MAX; i++) {
		char addr[NI_MAXHOST];
		if (getnameinfo((struct sockaddr *)&res->targets[i].addr, res->targets[i].addrlen, addr,
				sizeof(addr), NULL, 0, NI_NUMERICHOST) == 0)
			j->addrs[j->n_addrs++] = xstrdup(addr);
	}
	dns_result_free(res);
	e->fetching = 1;
	m->n_jobs++;
	workers_submit(m->w, mtasts_fetch_work, mtasts_fetch_done, j);
}

static int mtasts_backing_off(const struct mtasts_ent *e, const char *id)
{
	struct timespec now;
	long long ms;
	if (!e->failed_id[0] || strcmp(e->failed_id, id) != 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(now.tv_sec - e->failed_at.tv_sec) * 1000 +
	     (now.tv_nsec - e->failed_at.tv_nsec) / 1000000;
	return ms < (long long)e->m->cfg->mta_sts_fetch_retry_ms;
}

/* A cached policy with the same id is fetched again anyway when it would expire
 * before the check after next: its max_age starts over, and a domain that still
 * publishes it never sees its policy lapse. */
static int mtasts_due_renewal(const struct mtasts_ent *e)
{
	time_t horizon = (time_t)(2ULL * e->m->cfg->mta_sts_refresh_interval_ms / 1000) + 1;
	return e->refreshing && e->expires - time(NULL) <= horizon;
}

static void mtasts_txt_done(void *arg, struct dns_result *res)
{
	struct mtasts_ent *e = arg;
	struct mtasts *m = e->m;
	char id[MTASTS_ID_MAX + 1];
	const char *why = NULL;
	int cached;

	e->txtq = NULL;
	cached = mtasts_cached(e);
	if (res->status != DNS_OK || mtasts_txt_select(res->txt, res->n_txt, id, &why) != 1) {
		/* No usable record: a cached policy still holds (RFC 8461 8.3: a domain
		 * withdraws one by publishing mode none, not by removing the record). */
		if (res->status == DNS_OK && why)
			log_info("mta-sts event=no-policy domain=%s reason=\"%s\"%s", e->domain, why,
				 cached ? " cached=yes" : "");
		else if (res->status == DNS_TEMPFAIL)
			log_info("mta-sts event=txt-tempfail domain=%s reason=\"%s\"%s", e->domain,
				 res->detail, cached ? " cached=yes" : "");
		/* A domain that no longer announces a policy is not one whose policy failed:
		 * neither REQUIRETLS nor TLS-RPT should treat it so. A DNS failure says
		 * nothing new, and keeps what was known. */
		if (res->status != DNS_TEMPFAIL)
			mtasts_failed_forget(e);
		dns_result_free(res);
		mtasts_answer(e);
		return;
	}
	dns_result_free(res);
	if ((cached && strcmp(id, e->st.id) == 0 && !mtasts_due_renewal(e)) ||
	    mtasts_backing_off(e, id)) {
		mtasts_answer(e);
		return;
	}
	snprintf(e->want_id, sizeof(e->want_id), "%s", id);
	{
		char *host = xasprintf("mta-sts.%s", e->domain);
		e->hostq = dns_resolve_host(m->dns, host, m->cfg->relay_ip_family, MTASTS_HTTPS_PORT,
					    MTASTS_ADDRS_MAX, mtasts_host_done, e);
		free(host);
	}
}

static void mtasts_discover(struct mtasts_ent *e)
{
	char *name = xasprintf("_mta-sts.%s", e->domain);
	e->txtq = dns_resolve_txt(e->m->dns, name, mtasts_txt_done, e);
	free(name);
}

/* Every cached policy is checked again: a new id is fetched, an old one renewed. */
static void mtasts_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mtasts *m = arg;
	for (size_t b = 0; b < MTASTS_BUCKETS; b++)
		for (struct mtasts_ent *e = m->buckets[b]; e; e = e->hnext)
			if (mtasts_cached(e) && !mtasts_busy(e)) {
				e->refreshing = 1;
				mtasts_discover(e);
			}
}

static void mtasts_refresh_arm(struct mtasts *m)
{
	unsigned ms = m->cfg->mta_sts_refresh_interval_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_del(m->refresh);
	if (ms) /* 0: a configuration not made by config_load (a test tool's) */
		event_add(m->refresh, &tv);
}

/* ---- life ------------------------------------------------------------------------ */

static void mtasts_loaded(void *arg, struct mtasts_stored *s)
{
	struct mtasts *m = arg;
	struct mtasts_ent *e = mtasts_ent_get(m, s->domain);
	mtasts_set(e, s);
	(void)mtasts_cached(e); /* an expired one goes now */
}

struct mtasts *mtasts_create(const struct config *cfg, struct event_base *base, struct dns *dns)
{
	struct mtasts *m = xcalloc(1, sizeof(*m));
	size_t n;
	m->cfg = config_ref(cfg);
	m->base = base;
	m->dns = dns;
	https_init();
	m->w = workers_create(base, cfg->mta_sts_fetch_threads);
	m->refresh = event_new(base, -1, EV_PERSIST, mtasts_refresh_cb, m);
	mtasts_refresh_arm(m);
	n = cfg->mta_sts_cache_dir ? mtasts_store_load(cfg->mta_sts_cache_dir, mtasts_loaded, m) : 0;
	if (n)
		log_info("mta-sts event=cache-loaded dir=%s policies=%zu", cfg->mta_sts_cache_dir, n);
	return m;
}

void mtasts_reconfigure(struct mtasts *m, const struct config *cfg)
{
	const struct config *old = m->cfg;
	unsigned was = old->mta_sts_refresh_interval_ms;
	m->cfg = config_ref(cfg);
	if (cfg->mta_sts_refresh_interval_ms != was)
		mtasts_refresh_arm(m);
	config_release(&old);
}

void mtasts_destroy(struct mtasts **mp)
{
	struct mtasts *m = *mp;
	if (!m)
		return;
	/* The threads end after the fetch they are in; their completions are dropped. */
	workers_destroy(&m->w);
	for (size_t b = 0; b < MTASTS_BUCKETS; b++) {
		while (m->buckets[b]) {
			struct mtasts_ent *e = m->buckets[b];
			m->buckets[b] = e->hnext;
			dns_cancel(e->txtq);
			dns_cancel(e->hostq);
			while (e->waiters)
				mtasts_cancel(e->waiters);
			event_free(e->answer_ev);
			mtasts_stored_clear(&e->st);
			free(e->failed_why);
			free(e->domain);
			free(e);
		}
	}
	event_free(m->refresh);
	config_release(&m->cfg);
	free(m);
	*mp = NULL;
}

/* ---- reports --------------------------------------------------------------------- */

const char *mtasts_failure_name(enum mtasts_failure f)
{
	static const char *const names[] = { "mx-mismatch", "starttls-not-offered", "tls-failed",
					     "certificate-invalid" };
	return names[f];
}

void mtasts_report(const char *domain, enum mtasts_mode mode, const char *host, const char *addr,
		   enum mtasts_failure why, const char *detail)
{
	char d[LOG_ESCAPE_BUFSZ];
	log_escape(d, sizeof(d), detail, strlen(detail));
	log_info("mta-sts event=%s domain=%s mode=%s mx=%s[%s] reason=%s detail=\"%s\"",
		 mode == MTASTS_ENFORCE ? "refused" : "would-fail", domain, mtasts_mode_name(mode),
		 host, addr ? addr : "-", mtasts_failure_name(why), d);
	metrics_add(METRIC_MTASTS_FAILURES, 1, mtasts_mode_name(mode), mtasts_failure_name(why),
		    NULL);
}
