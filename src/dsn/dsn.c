/* dsn: builds delivery status notifications: a multipart/report (RFC 6522) holding a
 * plain-words explanation, a message/delivery-status (RFC 3464) and the returned
 * message or its header (RFC 3461 RET). Promises: CRLF line ends, no line over 998
 * octets, the report part 7-bit whatever the remote servers said, a boundary that
 * occurs nowhere in the content, and 8-bit content labelled as such. */
#include "dsn/dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dsn/dsn_text.h"
#include "queue/envelope.h"
#include "util/xmalloc.h"

int dsn_wanted(const struct envelope *env, size_t rcpt, enum dsn_kind kind)
{
	unsigned notify;

	/* RFC 3461 6.1 (and RFC 5321 4.5.5): no DSN is ever sent to the null sender,
	 * which is what stops notification loops. */
	if (env->mail_from == NULL || env->mail_from[0] == '\0' || rcpt >= env->n_rcpts)
		return 0;
	notify = env->rcpts[rcpt].notify;
	/* RFC 3461 4.1: "NEVER requests that a DSN not be returned to the sender under
	 * any conditions"; with no NOTIFY, "the MTA ... behave[s] as if NOTIFY=FAILURE,DELAY". */
	if (notify & DSN_NOTIFY_NEVER)
		return 0;
	if (notify == 0)
		notify = DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
	switch (kind) {
	case DSN_FAILED:
		return (notify & DSN_NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return (notify & DSN_NOTIFY_DELAY) != 0;
	case DSN_DELIVERED:
	case DSN_RELAYED:
		return (notify & DSN_NOTIFY_SUCCESS) != 0;
	}
	return 0;
}

static const char *const dsn_action[] = {
	[DSN_FAILED] = "failed", [DSN_DELAYED] = "delayed",
	[DSN_DELIVERED] = "delivered", [DSN_RELAYED] = "relayed",
};

/* The report as a whole is named after its most pressing item. */
static enum dsn_kind dsn_overall(const struct dsn_item *items, size_t n)
{
	static const enum dsn_kind order[] = { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED };
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (size_t i = 0; i < n; i++)
			if (items[i].kind == order[k])
				return order[k];
	return DSN_RELAYED;
}

/* RFC 3463 "class.subject.detail", with the class the action implies when the
 * recorded code is missing or contradicts the action (a leftover 4.x.x on a
 * delivered recipient); "failed" may keep a 4.x.x: a message that expired after
 * temporary failures is reported with the last temporary reason. */
static int dsn_status_valid(const char *st)
{
	const char *p = st + 1;
	if (*st != '2' && *st != '4' && *st != '5')
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t n;
		if (*p++ != '.')
			return 0;
		n = strspn(p, "0123456789");
		if (n < 1 || n > 3)
			return 0;
		p += n;
	}
	return *p == '\0';
}

static void dsn_status(char out[16], const char *st, enum dsn_kind kind)
{
	int ok = dsn_status_valid(st);
	if (ok && kind == DSN_FAILED)
		ok = st[0] != '2';
	else if (ok && kind == DSN_DELAYED)
		ok = st[0] == '4';
	else if (ok)
		ok = st[0] == '2';
	snprintf(out, 16, "%s", ok ? st : kind == DSN_FAILED ? "5.0.0"
				   : kind == DSN_DELAYED ? "4.0.0" : "2.0.0");
}

/* For the text part and the To: field: the address as the user wrote it, control
 * bytes replaced so that nothing can end a line or a header field early. */
static char *dsn_display(const char *s)
{
	char *out = xstrdup(s ? s : "");
	for (char *q = out; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	return out;
}

/* What the original message looks like, to choose how to return it. */
struct dsn_orig {
	size_t hdr_len;      /* the header section, without the empty line after it */
	int hdr_8bit, body_8bit;
	int long_line;       /* a line over DSN_LINE_MAX: it cannot be sent back as it is */
};

static void dsn_scan(const char *m, size_t len, struct dsn_orig *o)
{
	int in_hdr = 1;

	memset(o, 0, sizeof(*o));
	o->hdr_len = len;
	for (size_t start = 0, i; start < len; start = i) {
		for (i = start; i < len && m[i] != '\r' && m[i] != '\n'; i++) {
			unsigned char c = (unsigned char)m[i];
			if (c >= 0x80 || c == 0)
				*(in_hdr ? &o->hdr_8bit : &o->body_8bit) = 1;
		}
		if (i - start > DSN_LINE_MAX)
			o->long_line = 1;
		if (in_hdr && i == start) {
			o->hdr_len = start;
			in_hdr = 0;
		}
		/* CRLF, or a bare CR or LF, ends the line. */
		if (i < len && m[i] == '\r' && i + 1 < len && m[i + 1] == '\n')
			i++;
		i++;
	}
}

/* Copies m with every line end made CRLF (bare CR or LF included) and the last line
 * ended. Header lines too long for transport are folded (fold = 1), which is the only
 * change RFC 5322 lets us make to a header; bodies with such lines are not copied. */
static void dsn_copy_crlf(struct strbuf *b, const char *m, size_t len, int fold)
{
	size_t start = 0, i;
	for (i = 0; i <= len; i++) {
		size_t n;
		if (i < len && m[i] != '\r' && m[i] != '\n')
			continue;
		n = i - start;
		if (i == len && n == 0)
			break;
		/* Each piece after the first gains the fold's space. */
		while (fold && n > DSN_LINE_MAX - 1) {
			strbuf_put(b, m + start, 900);
			strbuf_put(b, "\r\n ", 3);
			start += 900;
			n -= 900;
		}
		strbuf_put(b, m + start, n);
		strbuf_put(b, "\r\n", 2);
		if (i < len && m[i] == '\r' && i + 1 < len && m[i + 1] == '\n')
			i++;
		start = i + 1;
	}
}

static void dsn_random_hex(char *out, size_t nbytes)
{
	unsigned char r[16];
	static unsigned long fallback;

	if (nbytes > sizeof(r))
		nbytes = sizeof(r);
	if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
		/* Uniqueness, not secrecy, is what we need here. */
		unsigned long v = ++fallback ^ ((unsigned long)getpid() << 20);
		for (size_t i = 0; i < nbytes; i++)
			r[i] = (unsigned char)(v >> (8 * (i % sizeof(v))));
	}
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* The plain-words part: what happened to each recipient, and what happens next. */
static void dsn_text_part(struct strbuf *b, const struct envelope *env,
			  const struct dsn_item *items, size_t n, const struct dsn_params *p,
			  int hdrs_only)
{
	int any[4] = { 0 };
	char when[40], *s;

	s = dsn_printable(p->reporting_mta);
	strbuf_printf(b, "This is the mail system at %s.\r\n\r\n", s);
	free(s);
	for (size_t i = 0; i < n; i++) {
		const struct env_rcpt *r = &env->rcpts[items[i].rcpt];
		char *to = dsn_display(r->address), *mta = dsn_printable(r->remote_mta);
		char *diag = r->diag ? dsn_printable(r->diag) : NULL;
		any[items[i].kind] = 1;
		switch (items[i].kind) {
		case DSN_FAILED:
			s = xasprintf("Your message to %s could not be delivered.", to);
			break;
		case DSN_DELAYED:
			s = xasprintf("Your message to %s has not been delivered yet. The last "
				      "try failed, but the problem may be temporary.", to);
			break;
		case DSN_DELIVERED:
			s = xasprintf("Your message to %s was delivered.", to);
			break;
		default:
			s = xasprintf("Your message to %s was passed on to %s. That server does "
				      "not send delivery reports, so this is the last report you "
				      "will get about it.", to, mta[0] ? mta : "another server");
			break;
		}
		dsn_wrap(b, "", s);
		free(s);
		if (diag && diag[0]) {
			if (r->remote_mta)
				s = xasprintf("The receiving server (%s) said:", mta);
			else
				s = xstrdup("The reason given was:");
			dsn_wrap(b, "", s);
			free(s);
			strbuf_puts(b, "\r\n");
			dsn_wrap(b, "    ", diag);
		}
		strbuf_puts(b, "\r\n");
		free(to);
		free(mta);
		free(diag);
	}
	if (any[DSN_FAILED])
		dsn_wrap(b, "", "We have stopped trying to deliver to the addresses that failed. "
				"Check that each address is right before you send the message again.");
	if (any[DSN_DELAYED]) {
		if (p->retry_until) {
			dsn_date(when, p->retry_until);
			s = xasprintf("We will keep trying until %s. You do not need to send the "
				      "message again. If it still cannot be delivered by then, you "
				      "will get another message.", when);
		} else {
			s = xstrdup("We will keep trying for a while. You do not need to send the "
				    "message again.");
		}
		if (any[DSN_FAILED])
			strbuf_puts(b, "\r\n");
		dsn_wrap(b, "", s);
		free(s);
	}
	if (any[DSN_FAILED] || any[DSN_DELAYED])
		strbuf_puts(b, "\r\n");
	if (p->orig_size) {
		s = xasprintf("Your message (%zu octets) was too big to return whole; its "
			      "header is attached below.", p->orig_size);
		dsn_wrap(b, "", s);
		free(s);
		return;
	}
	dsn_wrap(b, "", hdrs_only ? "The header of your message is attached below."
				  : "Your message is attached below.");
}

/* The machine-readable part, RFC 3464 2.2 then 2.3 for each recipient, in the order
 * of its grammar. Every value goes through dsn_printable or an address form, so the
 * part is 7-bit as RFC 3464 requires of message/delivery-status. */
static void dsn_status_part(struct strbuf *b, const struct envelope *env,
			    const struct dsn_item *items, size_t n, const struct dsn_params *p)
{
	char date[40], *s;

	if (env->envid) {
		s = dsn_printable(env->envid);
		dsn_field(b, "Original-Envelope-Id", s);
		free(s);
	}
	s = dsn_printable(p->reporting_mta);
	strbuf_printf(b, "Reporting-MTA: dns; %s\r\n", s);
	free(s);
	dsn_date(date, env->received);
	strbuf_printf(b, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < n; i++) {
		const struct env_rcpt *r = &env->rcpts[items[i].rcpt];
		char status[16], *v;
		strbuf_puts(b, "\r\n");
		if (r->orcpt) {
			/* Stored as "addr-type;address" (xtext-decoded, printable ASCII). */
			const char *semi = strchr(r->orcpt, ';');
			s = dsn_printable(r->orcpt);
			if (semi) {
				v = xasprintf("%.*s; %s", (int)(semi - r->orcpt), s,
					      s + (semi - r->orcpt) + 1);
				dsn_field(b, "Original-Recipient", v);
				free(v);
			}
			free(s);
		}
		s = dsn_address_field(r->address);
		dsn_field(b, "Final-Recipient", s);
		free(s);
		strbuf_printf(b, "Action: %s\r\n", dsn_action[items[i].kind]);
		dsn_status(status, r->status, items[i].kind);
		strbuf_printf(b, "Status: %s\r\n", status);
		if (r->remote_mta) {
			s = dsn_printable(r->remote_mta);
			v = xasprintf("dns; %s", s);
			dsn_field(b, "Remote-MTA", v);
			free(v);
			free(s);
		}
		if (r->diag) {
			/* "smtp" when diag is an SMTP reply (RFC 3464 2.3.6), ours otherwise. */
			const char *d = r->diag;
			int smtp = strspn(d, "0123456789") == 3 && (d[3] == ' ' || d[3] == '-' ||
								  d[3] == '\0');
			s = dsn_printable(d);
			v = xasprintf("%s; %s", smtp ? "smtp" : "X-Cursus", s);
			dsn_field(b, "Diagnostic-Code", v);
			free(v);
			free(s);
		}
		if (r->last_attempt) {
			dsn_date(date, r->last_attempt);
			strbuf_printf(b, "Last-Attempt-Date: %s\r\n", date);
		}
		if (items[i].kind == DSN_DELAYED && p->retry_until) {
			dsn_date(date, p->retry_until);
			strbuf_printf(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

static const char *dsn_subject(enum dsn_kind k)
{
	switch (k) {
	case DSN_FAILED:
		return "Undelivered Mail Returned to Sender";
	case DSN_DELAYED:
		return "Delayed Mail (still being retried)";
	case DSN_DELIVERED:
		return "Successful Mail Delivery Report";
	default:
		return "Mail relayed";
	}
}

static int dsn_has_8bit(const struct strbuf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->p[i] >= 0x80)
			return 1;
	return 0;
}

char *dsn_build(const struct envelope *env, const char *body, size_t bodylen,
		const struct dsn_item *items, size_t n_items, const struct dsn_params *p,
		size_t *len_r)
{
	struct strbuf out = { 0 }, text = { 0 }, status = { 0 }, orig = { 0 };
	struct dsn_orig o;
	char boundary[64], rnd[40], date[40], *host, *to;
	const char *ctype, *cte = NULL;
	int hdrs_only, text8;
	enum dsn_kind overall = dsn_overall(items, n_items);

	dsn_scan(body, bodylen, &o);
	/* RFC 3461 4.3: RET=HDRS asks for the header only; RFC 8689 5: "If a REQUIRETLS
	 * message is bounced, the server MUST behave as if RET=HDRS was present". A BINARYMIME message (RFC
	 * 3030) or one with lines past 998 octets cannot travel in a DSN that must go
	 * through plain DATA to any server, so those return their header as well. */
	hdrs_only = env->ret == DSN_RET_HDRS || env->body == BODY_BINARYMIME || o.long_line ||
		    p->orig_size || env->tlsreq == TLSREQ_REQUIRETLS;
	if (hdrs_only) {
		dsn_copy_crlf(&orig, body, o.hdr_len, 1);
		/* RFC 6533 6: a header with UTF-8 (RFC 6532) is message/global-headers. */
		ctype = o.hdr_8bit ? "message/global-headers" : "text/rfc822-headers";
		if (o.hdr_8bit)
			cte = "8bit";
	} else {
		dsn_copy_crlf(&orig, body, bodylen, 0);
		/* RFC 2046 5.2.1 allows only 7bit, 8bit or binary on message/rfc822, and the
		 * content is never re-encoded: 8-bit text (RFC 6152) is sent as it is and
		 * labelled "8bit" so that every reader and relay knows; the DSN then needs
		 * an 8BITMIME path, as the original did. An RFC 6532 header is not an RFC
		 * 5322 message any more, so that one is returned as message/global. */
		ctype = o.hdr_8bit ? "message/global" : "message/rfc822";
		if (o.hdr_8bit || o.body_8bit)
			cte = "8bit";
	}
	dsn_text_part(&text, env, items, n_items, p, hdrs_only);
	text8 = dsn_has_8bit(&text);
	dsn_status_part(&status, env, items, n_items, p);

	/* RFC 2046 5.1.1: the boundary "must not appear inside any of the encapsulated
	 * parts"; 96 random bits make that near certain, and the check makes it so. */
	for (;;) {
		dsn_random_hex(rnd, 12);
		snprintf(boundary, sizeof(boundary), "=_cursus_dsn_%s", rnd);
		if (!memmem(orig.p ? orig.p : "", orig.len, boundary, strlen(boundary)) &&
		    !memmem(text.p, text.len, boundary, strlen(boundary)))
			break;
	}

	host = dsn_printable(p->reporting_mta);
	to = dsn_display(env->mail_from);
	strbuf_printf(&out, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", host);
	strbuf_printf(&out, "To: <%s>\r\n", to);
	strbuf_printf(&out, "Subject: %s\r\n", dsn_subject(overall));
	dsn_date(date, p->now);
	strbuf_printf(&out, "Date: %s\r\n", date);
	dsn_random_hex(rnd, 8);
	free(host);
	host = dsn_printable(p->msgid_domain);
	strbuf_printf(&out, "Message-ID: <%llx.%s@%s>\r\n", (unsigned long long)p->now, rnd, host);
	/* RFC 3834 5: a DSN is an automatic response; auto-responders must not answer it. */
	strbuf_puts(&out, "Auto-Submitted: auto-replied\r\n");
	strbuf_puts(&out, "MIME-Version: 1.0\r\n");
	strbuf_printf(&out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			     "\tboundary=\"%s\"\r\n", boundary);
	/* RFC 2045 6.4: a multipart holding 8-bit parts is itself labelled 8bit. */
	if (cte || text8)
		strbuf_puts(&out, "Content-Transfer-Encoding: 8bit\r\n");
	strbuf_puts(&out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	strbuf_printf(&out, "--%s\r\nContent-Description: Notification\r\n"
			     "Content-Type: text/plain; charset=%s\r\n", boundary,
		       text8 ? "utf-8" : "us-ascii");
	if (text8)
		strbuf_puts(&out, "Content-Transfer-Encoding: 8bit\r\n");
	strbuf_puts(&out, "\r\n");
	strbuf_put(&out, text.p, text.len);

	strbuf_printf(&out, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
			     "Content-Type: message/delivery-status\r\n\r\n", boundary);
	strbuf_put(&out, status.p, status.len);

	strbuf_printf(&out, "\r\n--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n",
		       boundary, hdrs_only ? "Message header" : "Returned message", ctype);
	if (cte)
		strbuf_printf(&out, "Content-Transfer-Encoding: %s\r\n", cte);
	strbuf_puts(&out, "\r\n");
	if (orig.len)
		strbuf_put(&out, orig.p, orig.len);
	/* RFC 2046 5.1.1: the CRLF before a delimiter belongs to the delimiter, so one
	 * more keeps the returned content's last line end, as in the other parts. */
	strbuf_printf(&out, "\r\n--%s--\r\n", boundary);

	free(host);
	free(to);
	free(text.p);
	free(status.p);
	free(orig.p);
	*len_r = out.len;
	return out.p;
}
