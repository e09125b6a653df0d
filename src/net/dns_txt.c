/* dns_txt: TXT lookups through the relay's libunbound context (see dns.h). One
 * question, our own timer (unbound's retries can go on for minutes), and the answer
 * delivered through the loop, never from inside dns_resolve_txt. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "net/dns_impl.h"
#include "util/xmalloc.h"

#define DNS_CLASS_IN 1
/* Records kept of one name: RFC 8461 wants exactly one; more is noise. */
#define DNS_TXT_MAX 16

struct dns_txt_query {
	struct dns *d;
	char *name;
	dns_txt_cb cb;
	void *arg;
	int async_id, pending;
	struct event *timer, *done_ev;
	struct dns_txt_result *res;
};

static void dns_txt_free(struct dns_txt_query *q)
{
	if (q->pending)
		ub_cancel(dns_ub_ctx(q->d), q->async_id);
	event_free(q->timer);
	event_free(q->done_ev);
	dns_txt_result_free(q->res);
	free(q->name);
	free(q);
}

static void dns_txt_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct dns_txt_query *q = arg;
	struct dns_txt_result *res = q->res;
	dns_txt_cb cb = q->cb;
	void *cbarg = q->arg;
	q->res = NULL;
	dns_txt_free(q);
	cb(cbarg, res);
}

static void dns_txt_finish(struct dns_txt_query *q, enum dns_status st, const char *why)
{
	if (q->pending)
		ub_cancel(dns_ub_ctx(q->d), q->async_id);
	q->pending = 0;
	evtimer_del(q->timer);
	q->res->status = st;
	if (why)
		snprintf(q->res->detail, sizeof(q->res->detail), "%s looking up TXT of %s", why,
			 q->name);
	event_active(q->done_ev, 0, 0);
}

/* One TXT rdata: length-prefixed character-strings, joined. */
static char *dns_txt_join(const unsigned char *p, int len)
{
	char *out = xmalloc((size_t)len + 1), *o = out;
	int i = 0;
	while (i < len) {
		int n = p[i++];
		if (n > len - i)
			n = len - i; /* a short string: what is there */
		for (int k = 0; k < n; k++)
			*o++ = p[i + k] ? (char)p[i + k] : '?';
		i += n;
	}
	*o = '\0';
	return out;
}

static void dns_txt_on_answer(void *mydata, int err, struct ub_result *r)
{
	struct dns_txt_query *q = mydata;
	struct dns_txt_result *res = q->res;

	q->pending = 0;
	if (err) {
		dns_txt_finish(q, DNS_TEMPFAIL, ub_strerror(err));
	} else if (r->nxdomain) {
		dns_txt_finish(q, DNS_NXDOMAIN, "NXDOMAIN");
	} else if (r->rcode != 0 || r->bogus) {
		dns_txt_finish(q, DNS_TEMPFAIL, r->bogus ? "a bogus DNSSEC answer"
							 : dns_rcode_text(r->rcode));
	} else if (!r->havedata) {
		dns_txt_finish(q, DNS_NODATA, "no record");
	} else {
		for (int i = 0; r->data[i] && res->n < DNS_TXT_MAX; i++) {
			res->txt = xrealloc(res->txt, (res->n + 1) * sizeof(*res->txt));
			res->txt[res->n++] = dns_txt_join((const unsigned char *)r->data[i], r->len[i]);
		}
		dns_txt_finish(q, DNS_OK, NULL);
	}
	if (r)
		ub_resolve_free(r);
}

static void dns_txt_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_txt_query *q = arg;
	unsigned ms = dns_timeout_ms(q->d);
	char why[64];
	if (ms % 1000 == 0)
		snprintf(why, sizeof(why), "no answer within %u s", ms / 1000);
	else
		snprintf(why, sizeof(why), "no answer within %u ms", ms);
	dns_txt_finish(q, DNS_TEMPFAIL, why);
}

struct dns_txt_query *dns_resolve_txt(struct dns *d, const char *name, dns_txt_cb cb, void *arg)
{
	struct dns_txt_query *q = xcalloc(1, sizeof(*q));
	unsigned ms = dns_timeout_ms(d);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int err;

	q->d = d;
	q->name = dns_name_normal(name);
	q->cb = cb;
	q->arg = arg;
	q->res = xcalloc(1, sizeof(*q->res));
	q->timer = evtimer_new(dns_event_base(d), dns_txt_on_timeout, q);
	q->done_ev = event_new(dns_event_base(d), -1, 0, dns_txt_on_done, q);
	if (!q->timer || !q->done_ev)
		fatalx("dns: out of memory for events");
	evtimer_add(q->timer, &tv);
	err = ub_resolve_async(dns_ub_ctx(d), q->name, DNS_RR_TXT, DNS_CLASS_IN, q,
			       dns_txt_on_answer, &q->async_id);
	if (err)
		dns_txt_finish(q, DNS_TEMPFAIL, ub_strerror(err));
	else
		q->pending = 1;
	return q;
}

void dns_txt_cancel(struct dns_txt_query *q)
{
	if (q)
		dns_txt_free(q);
}

void dns_txt_result_free(struct dns_txt_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n; i++)
		free(res->txt[i]);
	free(res->txt);
	free(res);
}
