/* tlsrpt_send: the reports of one finished period (RFC 8460 3 and 5.3). For each
 * policy domain with counts: its _smtp._tls TXT record through the relay's resolver
 * (on the loop), and for each mailto: rua a report mail from tls_rpt_from, queued as all
 * generated mail (queue/generated.h): DKIM-signed when a key for that domain is loaded.
 * The JSON, gzip, base64 and the queue write happen on a worker. https: rua are logged,
 * not posted (docs/tls-rpt.md). */
#include "relay/tlsrpt.h"

#include <ctype.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "config/config.h"
#include "dkim/dkim_keys.h"
#include "metrics/metrics.h"
#include "net/dns.h"
#include "queue/envelope.h"
#include "queue/generated.h"
#include "util/log.h"
#include "util/workers.h"
#include "util/xmalloc.h"

/* rua URIs used of one record: RFC 8460 3 allows a list; a few is plenty. */
#define TLSRPT_RUA_MAX 8

struct tlsrpt_dom {
	struct tlsrpt_send *s;
	char *domain;
	struct dns_query *q;
};

struct tlsrpt_mail {
	struct tlsrpt_send *s;
	char *domain, *to;
	struct envelope env;
	struct dkim_keys *keys;
	int err, queued, refs;
};

struct tlsrpt_send {
	struct tlsrpt_send_ctx ctx;
	struct tlsrpt_period *pd;
	void (*done)(void *arg, struct tlsrpt_period *pd);
	void *arg;
	struct tlsrpt_dom *doms;
	size_t n_doms;
	size_t pending;       /* lookups and mails not finished */
	int cancelled;
	struct event *ev_done;
};

/* ---- pure parts ------------------------------------------------------------------- */

size_t tlsrpt_rua_parse(char *const *txt, size_t n, char ***uris_r)
{
	const char *rec = NULL;
	size_t found = 0, nu = 0;
	char **uris = NULL;

	*uris_r = NULL;
	/* RFC 8460 3: "If the number of resulting records is not one, senders MUST
	 * assume the recipient domain does not implement TLSRPT." */
	for (size_t i = 0; i < n; i++)
		if (strncmp(txt[i], "v=TLSRPTv1", 10) == 0 &&
		    (txt[i][10] == ';' || txt[i][10] == ' ' || txt[i][10] == '\t')) {
			rec = txt[i];
			found++;
		}
	if (found != 1)
		return 0;
	for (const char *p = rec; (p = strchr(p, ';')); ) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "rua", 3) != 0)
			continue;
		const char *v = p + 3;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=')
			continue;
		v++;
		size_t vlen = strcspn(v, ";");
		char *list = xstrndup(v, vlen);
		for (char *save = NULL, *u = strtok_r(list, ",", &save); u && nu < TLSRPT_RUA_MAX;
		     u = strtok_r(NULL, ",", &save)) {
			while (*u == ' ' || *u == '\t')
				u++;
			size_t ul = strlen(u);
			while (ul && (u[ul - 1] == ' ' || u[ul - 1] == '\t'))
				u[--ul] = '\0';
			if (!ul)
				continue;
			uris = xrealloc(uris, (nu + 1) * sizeof(*uris));
			uris[nu++] = xstrdup(u);
		}
		free(list);
		break;
	}
	*uris_r = uris;
	return nu;
}

/* The address of a mailto: URI (RFC 6068): up to '?', %XX decoded; NULL when it is
 * not one address we would put in a RCPT TO. */
static char *tlsrpt_mailto(const char *uri)
{
	char *out, *o;
	size_t n;
	if (strncasecmp(uri, "mailto:", 7) != 0)
		return NULL;
	uri += 7;
	n = strcspn(uri, "?");
	out = o = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (uri[i] == '%' && i + 2 < n + 1 && isxdigit((unsigned char)uri[i + 1]) &&
		    isxdigit((unsigned char)uri[i + 2]) && sscanf(uri + i + 1, "%2x", &v) == 1) {
			*o++ = (char)v;
			i += 2;
		} else {
			*o++ = uri[i];
		}
	}
	*o = '\0';
	const char *at = strchr(out, '@');
	if (!at || at == out || !at[1] || strchr(at + 1, '@') ||
	    strpbrk(out, " \t\r\n<>,;\"()[]\\") || strlen(out) > 254) {
		free(out);
		return NULL;
	}
	return out;
}

unsigned char *tlsrpt_gzip(const char *data, size_t len, size_t *len_r)
{
	z_stream z = { 0 };
	size_t cap = compressBound((uLong)len) + 64;
	unsigned char *out = xmalloc(cap);
	/* 15 + 16: a gzip wrapper (RFC 1952), not zlib's. */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (unsigned char *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*len_r = z.total_out;
	deflateEnd(&z);
	return out;
}

char *tlsrpt_mail_build(const char *from, const char *to, const char *submitter,
			const char *domain, const char *report_id, long long start_ms,
			long long end_ms, const unsigned char *gz, size_t gzlen, size_t *len_r)
{
	char *buf = NULL, date[64], boundary[64], idpart[40];
	size_t len = 0, b64len = 4 * ((gzlen + 2) / 3);
	unsigned char *b64 = xmalloc(b64len + 1);
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		fatalx("tls-rpt: out of memory");
	EVP_EncodeBlock(b64, gz, (int)gzlen);
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* The unique part of the id: what is before the '@'. */
	snprintf(idpart, sizeof(idpart), "%.*s", (int)strcspn(report_id, "@"), report_id);
	snprintf(boundary, sizeof(boundary), "tlsrpt-%s", idpart);
	fprintf(f, "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n", from, to, date);
	/* RFC 8460 5.3: "Report Domain: ... Submitter: ... Report-ID: <...>" */
	fprintf(f, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n", domain,
		submitter, report_id);
	fprintf(f, "Message-ID: <%s>\r\nTLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n",
		report_id, domain, submitter);
	fprintf(f, "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\";"
		"\r\n\tboundary=\"%s\"\r\n\r\n", boundary);
	fprintf(f, "This is a multipart message in MIME format.\r\n\r\n--%s\r\n", boundary);
	fprintf(f, "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit"
		"\r\n\r\nThis is an aggregate TLS report (RFC 8460) from %s for %s.\r\n\r\n",
		submitter, domain);
	/* RFC 8460 5.3.1: filename = sender "!" policy-domain "!" begin-timestamp "!"
	 * end-timestamp [ "!" unique-id ] "." extension, timestamps in seconds. */
	fprintf(f, "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment;\r\n"
		"\tfilename=\"%s!%s!%lld!%lld!%s.json.gz\"\r\n\r\n", boundary, submitter, domain,
		start_ms / 1000, end_ms / 1000, idpart);
	for (size_t i = 0; i < b64len; i += 76)
		fprintf(f, "%.*s\r\n", (int)(b64len - i < 76 ? b64len - i : 76), b64 + i);
	fprintf(f, "\r\n--%s--\r\n", boundary);
	fclose(f);
	free(b64);
	*len_r = len;
	return buf;
}

/* ---- the period's reports --------------------------------------------------------- */

static void send_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt_send *s = arg;
	struct tlsrpt_period *pd = s->pd;
	void (*done)(void *, struct tlsrpt_period *) = s->done;
	void *darg = s->arg;
	s->pd = NULL;
	tlsrpt_send_cancel(&s);
	done(darg, pd);
}

static void send_step_done(struct tlsrpt_send *s)
{
	if (--s->pending == 0 && !s->cancelled)
		event_active(s->ev_done, 0, 0);
}

static void mail_committed(void *arg, int err)
{
	struct tlsrpt_mail *m = arg;
	m->err = err;
	if (--m->refs == 0) {
		struct tlsrpt_send *s = m->s;
		free(m->domain);
		free(m->to);
		free(m);
		send_step_done(s);
	}
}

static void mail_work(void *arg)
{
	struct tlsrpt_mail *m = arg;
	struct tlsrpt_send *s = m->s;
	struct tlsrpt_meta meta = { s->ctx.org, s->ctx.from, NULL };
	char *json, *text, *rid;
	unsigned char *gz;
	size_t jlen, gzlen, len;

	rid = xasprintf("%s@%s", m->env.id, s->ctx.submitter);
	meta.report_id = rid;
	json = tlsrpt_json_build(s->pd, m->domain, &meta, &jlen);
	gz = json ? tlsrpt_gzip(json, jlen, &gzlen) : NULL;
	free(json);
	if (!gz) {
		m->err = -1;
		free(rid);
		return;
	}
	text = tlsrpt_mail_build(s->ctx.from, m->to, s->ctx.submitter, m->domain, rid,
				 s->pd->start_ms, s->pd->end_ms, gz, gzlen, &len);
	free(gz);
	log_info("tls-rpt event=report-queued id=%s domain=%s to=<%s> report_id=%s", m->env.id,
		 m->domain, m->to, rid);
	free(rid);
	m->queued = 1;
	m->refs = 2;
	queue_commit_generated(s->ctx.q, m->keys, &m->env, text, len, mail_committed, m);
}

static void mail_after(void *arg)
{
	struct tlsrpt_mail *m = arg;
	if (m->err || !m->queued)
		metrics_add(METRIC_TLSRPT_REPORTS, 1, "error", NULL, NULL);
	else
		metrics_add(METRIC_TLSRPT_REPORTS, 1, "queued", NULL, NULL);
	envelope_clear(&m->env);
	dkim_keys_free(&m->keys);
	if (!m->queued) {
		log_warnx("tls-rpt event=report-error domain=%s to=<%s>", m->domain, m->to);
		m->refs = 1;
	}
	mail_committed(m, m->err);
}

static void mail_start(struct tlsrpt_send *s, const char *domain, const char *to)
{
	struct tlsrpt_mail *m = xcalloc(1, sizeof(*m));
	m->s = s;
	m->domain = xstrdup(domain);
	m->to = xstrdup(to);
	generated_envelope(s->ctx.q, &m->env, s->ctx.cfg->hostname, s->ctx.from, to, NULL);
	/* The keys as they are now (a reload may replace them); signed with the key of
	 * tls_rpt_from's domain when there is one (RFC 8460 5.3). */
	m->keys = generated_keys(s->ctx.dkim);
	s->pending++;
	workers_submit(s->ctx.w, mail_work, mail_after, m);
}

static void dom_txt_done(void *arg, struct dns_result *res)
{
	struct tlsrpt_dom *dm = arg;
	struct tlsrpt_send *s = dm->s;
	char **uris = NULL;
	size_t n = 0, mails = 0;

	dm->q = NULL;
	if (res->status == DNS_OK)
		n = tlsrpt_rua_parse(res->txt, res->n_txt, &uris);
	if (res->status == DNS_TEMPFAIL) {
		log_info("tls-rpt event=no-report domain=%s reason=\"%s\"", dm->domain, res->detail);
		metrics_add(METRIC_TLSRPT_REPORTS, 1, "dns-error", NULL, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		char *to = tlsrpt_mailto(uris[i]);
		if (to) {
			mail_start(s, dm->domain, to);
			free(to);
			mails++;
		} else {
			log_info("tls-rpt event=rua-skipped domain=%s rua=\"%.200s\" reason=\"%s\"",
				 dm->domain, uris[i], strncasecmp(uris[i], "https:", 6) == 0
				 ? "https reports are not sent" : "not a mailto: address");
		}
		free(uris[i]);
	}
	free(uris);
	if (!mails && res->status != DNS_TEMPFAIL) {
		log_info("tls-rpt event=no-report domain=%s reason=\"no usable rua\"", dm->domain);
		metrics_add(METRIC_TLSRPT_REPORTS, 1, "no-rua", NULL, NULL);
	}
	dns_result_free(res);
	send_step_done(s);
}

struct tlsrpt_send *tlsrpt_send_start(const struct tlsrpt_send_ctx *ctx,
				      struct tlsrpt_period *pd,
				      void (*done)(void *arg, struct tlsrpt_period *pd),
				      void *arg)
{
	struct tlsrpt_send *s = xcalloc(1, sizeof(*s));
	s->ctx = *ctx;
	s->pd = pd;
	s->done = done;
	s->arg = arg;
	s->ev_done = event_new(ctx->base, -1, 0, send_finish_cb, s);
	if (!s->ev_done)
		fatalx("tls-rpt: out of memory for events");
	s->doms = xcalloc(pd->n_pols + 1, sizeof(*s->doms));
	s->pending = 1; /* held while starting */
	for (size_t i = 0; i < pd->n_pols; i++) {
		const char *d = pd->pols[i].p.domain;
		int seen = 0;
		for (size_t k = 0; k < s->n_doms && !seen; k++)
			seen = strcmp(s->doms[k].domain, d) == 0;
		if (seen)
			continue;
		struct tlsrpt_dom *dm = &s->doms[s->n_doms++];
		char *name = xasprintf("_smtp._tls.%s", d);
		dm->s = s;
		dm->domain = xstrdup(d);
		s->pending++;
		dm->q = dns_resolve_txt(ctx->dns, name, dom_txt_done, dm);
		free(name);
	}
	send_step_done(s);
	return s;
}

void tlsrpt_send_cancel(struct tlsrpt_send **sp)
{
	struct tlsrpt_send *s = *sp;
	if (!s)
		return;
	for (size_t i = 0; i < s->n_doms; i++) {
		if (s->doms[i].q)
			dns_cancel(s->doms[i].q);
		free(s->doms[i].domain);
	}
	free(s->doms);
	event_free(s->ev_done);
	if (s->pd) {
		tlsrpt_period_clear(s->pd);
		free(s->pd);
	}
	free(s);
	*sp = NULL;
}
