/* dns: asynchronous MX and address lookups through libunbound, on the event loop.
 * libunbound works in its own thread; its answers come back through a pipe (ub_fd)
 * that libevent watches, and ub_process runs our callbacks on the loop thread.
 *
 * It promises: each query's callback exactly once, never from inside the call that
 * started it, never after dns_cancel or dns_destroy, and no later than the timeout
 * (our own timer: unbound's retries can go on for minutes); the RFC 5321 5.1 rules
 * (sort by preference, shuffle equal ones, implicit MX, drop this host and worse) and
 * RFC 7505 (null MX) applied before the caller sees a target. Building the targets
 * from the answers is dns_targets.c's job. */
#include "net/dns.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unbound.h>

#include "net/dns_impl.h"
#include "util/xmalloc.h"

#define DNS_TIMEOUT_DEFAULT_MS 10000
#define DNS_CLASS_IN 1

struct dns {
	struct event_base *base;
	struct ub_ctx *ctx;
	struct event *ev_read;
	unsigned timeout_ms;
	struct dns_query *queries;  /* in flight, for dns_destroy */
};

static void dns_lookups_start(struct dns_query *q);
static void dns_rr_what(const struct dns_query *q, char *out, size_t outsz);

static const char *dns_rcode_text(int rcode)
{
	static const char *const names[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
					     "NOTIMP", "REFUSED" };
	return rcode >= 0 && rcode < 6 ? names[rcode] : "an unexpected rcode";
}

const char *dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK: return "ok";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_NODATA: return "nodata";
	case DNS_NULLMX: return "nullmx";
	case DNS_LOOP: return "loop";
	case DNS_TEMPFAIL: return "tempfail";
	}
	return "unknown";
}

static void dns_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	int err = ub_process(d->ctx);
	if (err)
		log_warnx("dns_process error=\"%s\"", ub_strerror(err));
}

struct dns *dns_create(struct event_base *base, const char *resolver,
		       const char *trust_anchor, char **err_r)
{
	struct dns *d = xcalloc(1, sizeof(*d));
	int err = 0;

	d->base = base;
	d->timeout_ms = DNS_TIMEOUT_DEFAULT_MS;
	d->ctx = ub_ctx_create();
	if (!d->ctx) {
		*err_r = xstrdup("cannot create the libunbound context");
		free(d);
		return NULL;
	}
	if (resolver) {
		char addr[INET6_ADDRSTRLEN + 8], *at, *end;
		unsigned char buf[16];
		unsigned long port = 53;
		snprintf(addr, sizeof(addr), "%s", resolver);
		if ((at = strchr(addr, '@')) != NULL) {
			*at = '\0';
			port = strtoul(at + 1, &end, 10);
			if (!at[1] || *end || port == 0 || port > 65535)
				port = 0;
		}
		if (strlen(resolver) >= sizeof(addr) || port == 0 ||
		    (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)) {
			*err_r = xasprintf("bad resolver \"%s\": ADDRESS[@PORT] expected", resolver);
			goto fail;
		}
		char *fwd = xasprintf("%s@%lu", addr, port);
		err = ub_ctx_set_fwd(d->ctx, fwd);
		free(fwd);
	} else {
		err = ub_ctx_resolvconf(d->ctx, NULL);
	}
	/* Validation only with a trust anchor: without one nothing is secure, and DANE
	 * never applies (RFC 7672 2.1). Unbound reads the file at the first query, so
	 * an unreadable one is refused here, where it can be said. */
	if (!err && trust_anchor) {
		FILE *f = fopen(trust_anchor, "r");
		if (!f) {
			*err_r = xasprintf("cannot read the trust anchor %s: %m", trust_anchor);
			goto fail;
		}
		fclose(f);
		err = ub_ctx_add_ta_file(d->ctx, trust_anchor);
	}
	/* Unbound refuses to send queries to 127.0.0.1 and ::1 unless told: a test
	 * server, or resolv.conf's local resolver (127.0.0.53, a local unbound). */
	if (!err)
		err = ub_ctx_set_option(d->ctx, "do-not-query-localhost:", "no");
	/* A thread, not a forked process: the daemon's descriptors stay its own. */
	if (!err)
		err = ub_ctx_async(d->ctx, 1);
	if (err) {
		*err_r = xasprintf("resolver setup: %s", ub_strerror(err));
		goto fail;
	}
	d->ev_read = event_new(base, ub_fd(d->ctx), EV_READ | EV_PERSIST, dns_on_readable, d);
	if (!d->ev_read || event_add(d->ev_read, NULL) < 0) {
		*err_r = xstrdup("cannot watch the resolver's descriptor");
		goto fail;
	}
	return d;
fail:
	if (d->ev_read)
		event_free(d->ev_read);
	ub_ctx_delete(d->ctx);
	free(d);
	return NULL;
}

void dns_set_timeout(struct dns *d, unsigned ms)
{
	d->timeout_ms = ms ? ms : 1;
}

/* ---- one query's lifecycle ---- */

static void dns_lookup_cancel(struct dns_query *q, struct dns_lookup *lk)
{
	if (!lk->pending)
		return;
	ub_cancel(q->d->ctx, lk->async_id);
	lk->pending = 0;
	q->n_pending--;
}

static void dns_query_cancel_lookups(struct dns_query *q)
{
	dns_lookup_cancel(q, &q->mx);
	for (size_t i = 0; i < q->n_hosts; i++)
		for (int f = 0; f < 2; f++)
			dns_lookup_cancel(q, &q->hosts[i].lk[f]);
}

static void dns_query_unlink(struct dns_query *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		q->d->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
}

static void dns_query_free(struct dns_query *q)
{
	dns_query_cancel_lookups(q);
	event_free(q->timer);
	event_free(q->done_ev);
	dns_hosts_free(q);
	if (q->res)
		dns_result_free(q->res);
	free(q->domain);
	free(q->self);
	free(q);
}

static void dns_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_result *res = q->res;
	dns_cb cb = q->cb;
	void *cbarg = q->arg;

	q->res = NULL;
	dns_query_unlink(q);
	dns_query_free(q);
	cb(cbarg, res);
}

void dns_query_finish(struct dns_query *q, enum dns_status st, const char *fmt, ...)
{
	va_list ap;

	if (q->finished)
		return;
	q->finished = 1;
	dns_query_cancel_lookups(q);
	evtimer_del(q->timer);
	q->res->status = st;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(q->res->detail, sizeof(q->res->detail), fmt, ap);
		va_end(ap);
	}
	/* Through the loop, so that no callback ever runs inside dns_resolve_*. */
	event_active(q->done_ev, 0, 0);
}

static void dns_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	unsigned ms = q->d->timeout_ms;
	char why[64];

	if (ms % 1000 == 0)
		snprintf(why, sizeof(why), "no answer within %u s", ms / 1000);
	else
		snprintf(why, sizeof(why), "no answer within %u ms", ms);
	if (q->mx.pending && q->rr_type) {
		char rrwhat[300];
		dns_rr_what(q, rrwhat, sizeof(rrwhat));
		dns_query_finish(q, DNS_TEMPFAIL, "%s looking up %s", why, rrwhat);
		return;
	}
	if (q->mx.pending) {
		dns_query_finish(q, DNS_TEMPFAIL, "%s looking up the MX of %s", why, q->domain);
		return;
	}
	for (size_t i = 0; i < q->n_hosts; i++) {
		for (int f = 0; f < 2; f++) {
			struct dns_lookup *lk = &q->hosts[i].lk[f];
			if (!lk->pending)
				continue;
			dns_lookup_cancel(q, lk);
			lk->outcome = LK_TEMPFAIL;
			snprintf(lk->why, sizeof(lk->why), "%s", why);
		}
	}
	dns_targets_build(q);
}

static struct dns_query *dns_query_new(struct dns *d, const char *name, enum ip_family fam,
				       unsigned port, size_t max_targets, dns_cb cb, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	struct timeval tv = { d->timeout_ms / 1000, (d->timeout_ms % 1000) * 1000 };

	q->d = d;
	q->cb = cb;
	q->arg = arg;
	q->domain = dns_name_normal(name);
	q->fam = fam;
	q->port = port;
	q->max_targets = max_targets;
	q->res = xcalloc(1, sizeof(*q->res));
	q->timer = evtimer_new(d->base, dns_on_timeout, q);
	q->done_ev = event_new(d->base, -1, 0, dns_on_done, q);
	if (!q->timer || !q->done_ev)
		fatalx("dns: out of memory for events");
	evtimer_add(q->timer, &tv);
	q->next = d->queries;
	if (q->next)
		q->next->prev = q;
	d->queries = q;
	return q;
}

/* ---- unbound lookups ---- */

/* Why validation failed goes to the log (it names the broken signature or key); the
 * lookup's own reason stays short for replies and DSNs. */
static void dns_log_bogus(const struct dns_query *q, const struct dns_lookup *lk,
			  const struct ub_result *r)
{
	char why[LOG_ESCAPE_BUFSZ], name[LOG_ESCAPE_BUFSZ];
	const char *w = r->why_bogus ? r->why_bogus : "";
	log_escape(name, sizeof(name), r->qname ? r->qname : q->domain,
		   strlen(r->qname ? r->qname : q->domain));
	log_escape(why, sizeof(why), w, strlen(w));
	log_info("dns bogus name=%s type=%d why=\"%s\"", name, lk->rrtype, why);
}

/* One TXT rdata: length-prefixed character-strings, joined. */
static char *dns_txt_join(const unsigned char *p, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;
	size_t i = 0;
	while (i < len) {
		size_t n = p[i++];
		if (n > len - i)
			n = len - i; /* a short string: what is there */
		for (size_t k = 0; k < n; k++)
			*o++ = p[i + k] ? (char)p[i + k] : '?';
		i += n;
	}
	*o = '\0';
	return out;
}

/* dns_resolve_rr: the rdata copied out of unbound's answer. */
static void dns_rr_keep(struct dns_query *q, const struct ub_result *r)
{
	struct dns_result *res = q->res;
	size_t n = 0;
	while (r->data[n] && n < DNS_RR_MAX)
		n++;
	res->rr_data = xcalloc(n + 1, sizeof(*res->rr_data));
	res->rr_len = xcalloc(n + 1, sizeof(*res->rr_len));
	for (size_t i = 0; i < n; i++) {
		res->rr_len[i] = (size_t)r->len[i];
		res->rr_data[i] = xmalloc(res->rr_len[i] + 1);
		memcpy(res->rr_data[i], r->data[i], res->rr_len[i]);
	}
	res->n_rr = n;
	if (q->rr_type != DNS_RR_TXT)
		return;
	res->txt = xcalloc(n + 1, sizeof(*res->txt));
	for (size_t i = 0; i < n; i++)
		res->txt[i] = dns_txt_join(res->rr_data[i], res->rr_len[i]);
	res->n_txt = n;
}

/* "TXT of _mta-sts.example.org" for the messages of dns_resolve_rr. */
static void dns_rr_what(const struct dns_query *q, char *out, size_t outsz)
{
	if (q->rr_type == DNS_RR_TXT || q->rr_type == DNS_RR_TLSA)
		snprintf(out, outsz, "%s of %s", q->rr_type == DNS_RR_TXT ? "TXT" : "TLSA",
			 q->domain);
	else
		snprintf(out, outsz, "type %d of %s", q->rr_type, q->domain);
}

static void dns_rr_answered(struct dns_query *q)
{
	char what[300];
	dns_rr_what(q, what, sizeof(what));
	q->res->sec = q->mx.sec;
	switch (q->mx.outcome) {
	case LK_DATA:
	case LK_NODATA:
		if (q->res->n_rr) {
			dns_query_finish(q, DNS_OK, NULL);
			return;
		}
		dns_query_finish(q, DNS_NODATA, "no record looking up %s", what);
		return;
	case LK_NXDOMAIN:
		dns_query_finish(q, DNS_NXDOMAIN, "NXDOMAIN looking up %s", what);
		return;
	default:
		dns_query_finish(q, DNS_TEMPFAIL, "%s looking up %s", q->mx.why, what);
		return;
	}
}

static void dns_on_answer(void *mydata, int err, struct ub_result *r)
{
	struct dns_lookup *lk = mydata;
	struct dns_query *q = lk->q;

	lk->pending = 0;
	q->n_pending--;
	lk->sec = !r ? DNS_SEC_INSECURE : r->bogus ? DNS_SEC_BOGUS
		: r->secure ? DNS_SEC_SECURE : DNS_SEC_INSECURE;
	if (r && r->bogus)
		dns_log_bogus(q, lk, r);
	if (err) {
		lk->outcome = LK_TEMPFAIL;
		snprintf(lk->why, sizeof(lk->why), "%s", ub_strerror(err));
	} else if (r->bogus) {
		/* Even a bogus NXDOMAIN: an unproven denial is no answer (RFC 4035 4.3). */
		lk->outcome = LK_TEMPFAIL;
		snprintf(lk->why, sizeof(lk->why), "a bogus DNSSEC answer");
	} else if (r->nxdomain) {
		lk->outcome = LK_NXDOMAIN;
	} else if (r->rcode != 0) {
		lk->outcome = LK_TEMPFAIL;
		snprintf(lk->why, sizeof(lk->why), "%s", dns_rcode_text(r->rcode));
	} else if (!r->havedata) {
		lk->outcome = LK_NODATA;
	} else {
		lk->outcome = LK_DATA;
		if (q->rr_type)
			dns_rr_keep(q, r);
		else if (lk == &q->mx)
			dns_mx_parse(q, (const unsigned char *const *)r->data, r->len);
		else
			dns_addrs_parse(q, lk, (const unsigned char *const *)r->data, r->len);
	}
	if (r)
		ub_resolve_free(r);
	if (q->rr_type)
		dns_rr_answered(q);
	else if (lk == &q->mx)
		dns_mx_answered(q);
	else if (q->n_pending == 0)
		dns_targets_build(q);
}

static void dns_lookup_start(struct dns_query *q, struct dns_lookup *lk, const char *name,
			     int rrtype)
{
	int err;

	lk->q = q;
	lk->rrtype = rrtype;
	err = ub_resolve_async(q->d->ctx, name, rrtype, DNS_CLASS_IN, lk, dns_on_answer,
			       &lk->async_id);
	if (err) {
		lk->outcome = LK_TEMPFAIL;
		snprintf(lk->why, sizeof(lk->why), "%s", ub_strerror(err));
		return;
	}
	lk->pending = 1;
	q->n_pending++;
}

/* Every host's addresses at once, in the families fam allows. */
static void dns_lookups_start(struct dns_query *q)
{
	/* Held while starting, so that no answer builds the targets half-way. */
	q->n_pending++;
	for (size_t i = 0; i < q->n_hosts; i++) {
		struct dns_host *h = &q->hosts[i];
		h->lk[DNS_LK_AAAA].outcome = h->lk[DNS_LK_A].outcome = LK_NONE;
		if (q->fam != IPF_V4_ONLY)
			dns_lookup_start(q, &h->lk[DNS_LK_AAAA], h->name, DNS_RR_AAAA);
		if (q->fam != IPF_V6_ONLY)
			dns_lookup_start(q, &h->lk[DNS_LK_A], h->name, DNS_RR_A);
	}
	if (--q->n_pending == 0)
		dns_targets_build(q);
}

struct dns_query *dns_resolve_mx(struct dns *d, const char *domain, enum ip_family fam,
				 unsigned port, const char *self_hostname, size_t max_targets,
				 dns_cb cb, void *arg)
{
	struct dns_query *q = dns_query_new(d, domain, fam, port, max_targets, cb, arg);

	q->want_mx = 1;
	q->self = self_hostname && *self_hostname ? dns_name_normal(self_hostname) : NULL;
	dns_lookup_start(q, &q->mx, q->domain, DNS_RR_MX);
	if (!q->mx.pending)
		dns_query_finish(q, DNS_TEMPFAIL, "%s looking up the MX of %s", q->mx.why,
				 q->domain);
	return q;
}

/* Called once the MX answer is in: the hosts are known (or the implicit MX). */
void dns_mx_answered(struct dns_query *q)
{
	/* RFC 7672 2.2.1: DANE needs the MX RRset, or its denial, to be secure. */
	q->res->mx_secure = q->mx.sec == DNS_SEC_SECURE;
	switch (q->mx.outcome) {
	case LK_TEMPFAIL:
		dns_query_finish(q, DNS_TEMPFAIL, "%s looking up the MX of %s", q->mx.why, q->domain);
		return;
	case LK_NXDOMAIN:
		dns_query_finish(q, DNS_NXDOMAIN, "%s does not exist (NXDOMAIN)", q->domain);
		return;
	case LK_NODATA:
		/* RFC 5321 5.1: "If an empty list of MXs is returned, the address is treated
		 * as if it was associated with an implicit MX RR, with a preference of 0,
		 * pointing to that host." */
		q->res->implicit_mx = 1;
		dns_hosts_add(q, q->domain, 0);
		break;
	default:
		break;
	}
	if (dns_mx_select(q) == 0)
		dns_lookups_start(q);
}

struct dns_query *dns_resolve_host(struct dns *d, const char *host, enum ip_family fam,
				   unsigned port, size_t max_targets, dns_cb cb, void *arg)
{
	struct dns_query *q = dns_query_new(d, host, fam, port, max_targets, cb, arg);

	if (dns_literal_target(q) == 0)
		return q;
	q->res->mx_secure = 1; /* no MX step: only the addresses' security counts */
	dns_hosts_add(q, q->domain, 0);
	dns_lookups_start(q);
	return q;
}

struct dns_query *dns_resolve_rr(struct dns *d, const char *name, int rrtype, dns_cb cb,
				 void *arg)
{
	struct dns_query *q = dns_query_new(d, name, IPF_ANY, 0, 0, cb, arg);

	q->rr_type = rrtype;
	dns_lookup_start(q, &q->mx, q->domain, rrtype);
	if (!q->mx.pending) {
		char what[300];
		dns_rr_what(q, what, sizeof(what));
		dns_query_finish(q, DNS_TEMPFAIL, "%s looking up %s", q->mx.why, what);
	}
	return q;
}

struct dns_query *dns_resolve_txt(struct dns *d, const char *name, dns_cb cb, void *arg)
{
	return dns_resolve_rr(d, name, DNS_RR_TXT, cb, arg);
}

void dns_cancel(struct dns_query *q)
{
	if (!q)
		return;
	dns_query_unlink(q);
	dns_query_free(q);
}

void dns_destroy(struct dns **dp)
{
	struct dns *d = *dp;

	if (!d)
		return;
	while (d->queries)
		dns_cancel(d->queries);
	event_free(d->ev_read);
	ub_ctx_delete(d->ctx);
	free(d);
	*dp = NULL;
}

void dns_result_free(struct dns_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_targets; i++)
		free(res->targets[i].host);
	free(res->targets);
	for (size_t i = 0; i < res->n_rr; i++)
		free(res->rr_data[i]);
	free(res->rr_data);
	free(res->rr_len);
	for (size_t i = 0; i < res->n_txt; i++)
		free(res->txt[i]);
	free(res->txt);
	free(res);
}
