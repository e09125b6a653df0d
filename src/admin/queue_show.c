/* admin queue_show: `cursus queue list [--json]` and `cursus queue show ID`, read
 * straight from the queue directory through qstore (no daemon needed). Text from the
 * network (senders, remote replies, header fields) is printed with control characters
 * replaced, and in JSON as valid UTF-8, so nothing queued can steer the terminal or
 * break a script's parser. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin.h"
#include "queue/qstore.h"
#include "util/json.h"
#include "util/xmalloc.h"

#define QUEUE_SHOW_HEADER_MAX (64 * 1024)   /* octets of header printed by show */

struct queue_list {
	struct qmsg *msgs;
	size_t n, cap;
	struct qstore *qs;
};

/* Prints s with control characters (but tab) as '?'. */
static void queue_put_clean(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		putchar((c < 0x20 && c != '\t') || c == 0x7f ? '?' : c);
	}
}

static void queue_puts_clean(const char *s)
{
	queue_put_clean(s ? s : "", s ? strlen(s) : 0);
}

/* "45s", "12m", "3h20m", "2d4h". */
static void queue_duration(char *buf, size_t size, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, size, "%llds", secs);
	else if (secs < 3600)
		snprintf(buf, size, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, size, "%lldh%02lldm", secs / 3600, secs / 60 % 60);
	else
		snprintf(buf, size, "%lldd%02lldh", secs / 86400, secs / 3600 % 24);
}

static void queue_time(char *buf, size_t size, time_t t)
{
	struct tm tm;
	if (t == 0 || !gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "-");
}

static int queue_collect(void *arg, const char *id)
{
	struct queue_list *l = arg;
	struct qmsg m;
	int err = qstore_load(l->qs, id, 0, &m);

	/* Gone meanwhile (delivered) or moved to corrupt/ (logged): not queued. */
	if (err == ENOENT || err == EBADMSG)
		return 0;
	if (err) {
		admin_error("cannot read queued message %s: %s", id, strerror(err));
		return 0;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->msgs = xrealloc(l->msgs, l->cap * sizeof(*l->msgs));
	}
	l->msgs[l->n++] = m;
	return 0;
}

/* Oldest first; ties by id, so the order is stable. */
static int queue_cmp(const void *a, const void *b)
{
	const struct qmsg *x = a, *y = b;
	if (x->env.received != y->env.received)
		return x->env.received < y->env.received ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void queue_print_rcpt_text(const struct env_rcpt *r, time_t now)
{
	char when[32];

	fputs("    ", stdout);
	queue_puts_clean(r->address);
	printf("  %s", rcpt_state_name(r->state));
	if (r->attempts)
		printf("  attempts=%u", r->attempts);
	if (r->state == RCPT_DEFERRED || r->state == RCPT_PENDING) {
		if (r->next_attempt > now) {
			queue_duration(when, sizeof(when), (long long)(r->next_attempt - now));
			printf("  next=in %s", when);
		} else {
			fputs("  next=now", stdout);
		}
	}
	if (r->status[0])
		printf("  status=%s", r->status);
	if (r->remote_mta) {
		fputs("  remote=", stdout);
		queue_puts_clean(r->remote_mta);
	}
	if (r->diag) {
		fputs("  reply=\"", stdout);
		queue_puts_clean(r->diag);
		putchar('"');
	}
	putchar('\n');
}

static void queue_print_text(const struct qmsg *m, time_t now)
{
	char age[32];

	queue_duration(age, sizeof(age), (long long)(now - m->env.received));
	printf("%s  %s  %zu  <", m->id, age, m->size);
	queue_puts_clean(m->env.mail_from);
	printf(">%s\n", m->held ? "  held" : "");
	for (size_t i = 0; i < m->env.n_rcpts; i++)
		queue_print_rcpt_text(&m->env.rcpts[i], now);
}

static void queue_print_json(const struct qmsg *m, time_t now)
{
	char t[32];

	printf("{\"id\":\"%s\",", m->id);
	queue_time(t, sizeof(t), m->env.received);
	printf("\"received\":\"%s\",\"age\":%lld,\"size\":%zu,\"sender\":", t,
	       (long long)(now - m->env.received), m->size);
	json_put_str(stdout, m->env.mail_from);
	printf(",\"held\":%s,\"tls_required\":\"%s\",\"recipients\":[", m->held ? "true" : "false",
	       m->env.tlsreq == TLSREQ_REQUIRETLS ? "requiretls"
	       : m->env.tlsreq == TLSREQ_NO ? "no" : "default");
	for (size_t i = 0; i < m->env.n_rcpts; i++) {
		const struct env_rcpt *r = &m->env.rcpts[i];
		printf("%s{\"address\":", i ? "," : "");
		json_put_str(stdout, r->address);
		printf(",\"state\":\"%s\",\"attempts\":%u,\"status\":", rcpt_state_name(r->state),
		       r->attempts);
		json_put_str(stdout, r->status[0] ? r->status : NULL);
		fputs(",\"remote\":", stdout);
		json_put_str(stdout, r->remote_mta);
		fputs(",\"reply\":", stdout);
		json_put_str(stdout, r->diag);
		fputs(",\"route\":", stdout);
		json_put_str(stdout, r->route);
		queue_time(t, sizeof(t), r->last_attempt);
		printf(",\"last_attempt\":%s%s%s", r->last_attempt ? "\"" : "",
		       r->last_attempt ? t : "null", r->last_attempt ? "\"" : "");
		queue_time(t, sizeof(t), r->next_attempt);
		printf(",\"next_attempt\":%s%s%s}", r->next_attempt && !r->done ? "\"" : "",
		       r->next_attempt && !r->done ? t : "null", r->next_attempt && !r->done ? "\"" : "");
	}
	fputs("]}", stdout);
}

int admin_queue_list(struct qstore *qs, int json)
{
	struct queue_list l = { .qs = qs };
	time_t now = time(NULL);
	int err = qstore_each(qs, queue_collect, &l);

	if (err) {
		admin_error("cannot read the queue %s: %s", qstore_dir(qs), strerror(err));
		return ADMIN_EXIT_FAIL;
	}
	if (l.n)
		qsort(l.msgs, l.n, sizeof(*l.msgs), queue_cmp);
	if (json)
		putchar('[');
	for (size_t i = 0; i < l.n; i++) {
		if (json) {
			fputs(i ? ",\n" : "\n", stdout);
			queue_print_json(&l.msgs[i], now);
		} else {
			queue_print_text(&l.msgs[i], now);
		}
		qmsg_clear(&l.msgs[i]);
	}
	if (json)
		fputs(l.n ? "\n]\n" : "]\n", stdout);
	else if (l.n == 0)
		fputs("queue is empty\n", stdout);
	free(l.msgs);
	return ADMIN_EXIT_OK;
}

/* The message's header section, up to the empty line, bounded. */
static void queue_print_header(const char *body, size_t len)
{
	size_t end = len < QUEUE_SHOW_HEADER_MAX ? len : QUEUE_SHOW_HEADER_MAX;
	const char *p = body, *stop = body + end;

	while (p < stop) {
		const char *nl = memchr(p, '\n', (size_t)(stop - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(stop - p);
		if (l > 0 && p[l - 1] == '\r')
			l--;
		if (l == 0)
			return;
		fputs("    ", stdout);
		queue_put_clean(p, l);
		putchar('\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	if (end < len)
		fputs("    [header cut]\n", stdout);
}

static void queue_field(const char *name, const char *value)
{
	printf("%-14s", name);
	queue_puts_clean(value ? value : "-");
	putchar('\n');
}

/* One line per journal event: when, which recipient, what happened, and why. */
static void queue_print_event(void *arg, const struct qev *ev)
{
	static const char *const kinds[] = { "routed", "delivered", "relayed", "failed",
					     "deferred", "warned", "held", "released", "notified" };
	const struct qmsg *m = arg;
	char t[32];
	if (ev->kind == QEV_ROUTE) {
		printf("  %-21s", "");
	} else {
		queue_time(t, sizeof(t), ev->when);
		printf("  %-21s", t);
	}
	printf("%-10s", (unsigned)ev->kind < sizeof(kinds) / sizeof(kinds[0]) ? kinds[ev->kind] : "?");
	if (ev->kind != QEV_HOLD && ev->kind != QEV_RELEASE && ev->rcpt < m->env.n_rcpts) {
		putchar('<');
		queue_puts_clean(m->env.rcpts[ev->rcpt].address);
		putchar('>');
	}
	if (ev->route) {
		fputs(" ", stdout);
		queue_puts_clean(ev->route);
	}
	if (ev->status)
		printf(" %s", ev->status);
	if (ev->remote) {
		fputs(" from ", stdout);
		queue_puts_clean(ev->remote);
	}
	if (ev->diag) {
		fputs(": ", stdout);
		queue_puts_clean(ev->diag);
	}
	if (ev->kind == QEV_DEFERRED) {
		queue_time(t, sizeof(t), ev->next);
		printf(" (next %s)", t);
	}
	putchar('\n');
}

int admin_queue_show(struct qstore *qs, const char *id)
{
	static const char *const ret_names[] = { "-", "FULL", "HDRS" };
	static const char *const body_names[] = { "7BIT", "8BITMIME", "BINARYMIME" };
	struct qmsg m;
	char t[32], d[32];
	time_t now = time(NULL);
	int err = qstore_load(qs, id, QSTORE_BODY, &m);

	if (err == ENOENT || err == EBADMSG) {
		admin_error("%s: no such message", id);
		return ADMIN_EXIT_FAIL;
	}
	if (err) {
		admin_error("cannot read queued message %s: %s", id, strerror(err));
		return ADMIN_EXIT_FAIL;
	}
	queue_time(t, sizeof(t), m.env.received);
	queue_duration(d, sizeof(d), (long long)(now - m.env.received));
	printf("%-14s%s\n%-14s%s (%s ago)\n%-14s%zu\n%-14s%s\n", "id", m.id, "received", t, d,
	       "size", m.size, "held", m.held ? "yes" : "no");
	printf("%-14s<", "sender");
	queue_puts_clean(m.env.mail_from);
	puts(">");
	queue_field("client", m.env.client_addr);
	queue_field("helo", m.env.helo);
	queue_field("auth", m.env.auth);
	queue_field("envid", m.env.envid);
	printf("%-14s%s\n%-14s%s%s\n", "ret", ret_names[m.env.ret <= DSN_RET_HDRS ? m.env.ret : 0],
	       "body", body_names[m.env.body <= BODY_BINARYMIME ? m.env.body : 0],
	       m.env.smtputf8 ? " SMTPUTF8" : "");
	/* RFC 8689: what the sender asked of the TLS on the way. */
	if (m.env.tlsreq != TLSREQ_DEFAULT)
		printf("%-14s%s\n", "tls", m.env.tlsreq == TLSREQ_REQUIRETLS
		       ? "REQUIRETLS (verified TLS to next hops that offer REQUIRETLS)"
		       : "TLS-Required: No (DANE and MTA-STS policies waived)");
	puts("recipients");
	for (size_t i = 0; i < m.env.n_rcpts; i++) {
		const struct env_rcpt *r = &m.env.rcpts[i];
		queue_print_rcpt_text(r, now);
		if (r->orcpt)
			queue_field("      orcpt", r->orcpt);
		if (r->route)
			queue_field("      route", r->route);
		if (r->last_attempt) {
			queue_time(t, sizeof(t), r->last_attempt);
			printf("%-14s%s\n", "      last", t);
		}
		if (r->next_attempt && !r->done) {
			queue_time(t, sizeof(t), r->next_attempt);
			printf("%-14s%s\n", "      next", t);
		}
		if (r->delay_warned)
			printf("%-14s%s\n", "      warned", "a delay notice was sent");
	}
	puts("history");
	qstore_history(qs, id, queue_print_event, &m);
	puts("header");
	/* The fields delivery puts first (DKIM-Signature), as the recipient will see them. */
	if (m.env.prepend)
		queue_print_header(m.env.prepend, strlen(m.env.prepend));
	if (m.body)
		queue_print_header(m.body, m.bodylen);
	qmsg_clear(&m);
	return ADMIN_EXIT_OK;
}
