/* cmd_data: DATA and BDAT, receiving the message and handing it to the queue. The
 * reply to the end of a message is sent only when the queue says it is on disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/queue.h"
#include "smtp/session.h"
#include "util/xmalloc.h"

static void body_append(struct session *s, const char *p, size_t n)
{
	if (s->body_bad & (BODY_TOO_BIG | BODY_NO_MEMORY))
		return;
	if (s->body_len + n > s->limits->max_message_size) {
		s->body_bad |= BODY_TOO_BIG;
		return;
	}
	/* Charged at the octets held, not at the buffer's doubled capacity (whose
	 * untouched pages cost nothing), per server and per client: many large messages
	 * at once, or one client's, must not exhaust memory nor every other sender's
	 * budget. Refused for now rather than let the allocator end the daemon. */
	if (session_inflight_charge(s, n) < 0) {
		s->body_bad |= BODY_NO_MEMORY;
		return;
	}
	if (s->body_len + n > s->body_cap) {
		size_t cap = s->body_cap ? s->body_cap : 8192;
		while (cap < s->body_len + n)
			cap *= 2;
		s->body = xrealloc(s->body, BODY_HEADROOM + cap);
		s->body_cap = cap;
	}
	memcpy(s->body + BODY_HEADROOM + s->body_len, p, n);
	s->body_len += n;
}

struct commit {
	struct session *s;
	size_t size;
};

static void message_committed(void *arg, int err)
{
	struct commit *c = arg;
	struct session *s = c->s;
	size_t size = c->size;
	free(c);
	if (session_unpark(s) < 0)
		return;
	if (err) {
		log_warnx("smtp session=%s event=queue-failed id=%s error=\"%s\"", s->id, s->env.id, strerror(err));
		if (err == ENOSPC || err == EDQUOT)
			session_reply(s, 452, "4.3.1", "Insufficient system storage, try again later");
		else
			session_reply(s, 451, "4.3.0", "Local error in processing, try again later");
	} else {
		char esc[LOG_ESCAPE_BUFSZ];
		s->messages++;
		log_info("smtp session=%s event=queued id=%s from=\"%s\" nrcpt=%zu size=%zu", s->id, s->env.id,
			 log_escape(esc, sizeof(esc), s->env.mail_from, strlen(s->env.mail_from)),
			 s->env.n_rcpts, size);
		session_reply(s, 250, "2.0.0", "Ok: queued as %s", s->env.id);
	}
	session_reset_tx(s);
	session_enter(s, S_READY);
	session_process(s);
}

/* Whether the header section (up to the first empty line) has a field of this
 * name; names compare case-insensitively (RFC 5322 1.2.2). */
static int header_has(const char *body, size_t len, const char *name)
{
	size_t n = strlen(name), i = 0;
	while (i < len) {
		const char *eol = memchr(body + i, '\n', len - i);
		size_t linelen = eol ? (size_t)(eol - (body + i)) + 1 : len - i;
		if (linelen <= 2 && (body[i] == '\r' || body[i] == '\n'))
			return 0;
		if (linelen > n && strncasecmp(body + i, name, n) == 0 && body[i + n] == ':')
			return 1;
		i += linelen;
	}
	return 0;
}

/* RFC 6409 8.2, 8.3: a submission server may add Date and Message-ID when the client
 * left them out. */
static char *submission_fields(const struct session *s)
{
	char date[64] = "", msgid[200] = "";
	time_t now = time(NULL);
	struct tm tm;
	if (!header_has(SESSION_BODY(s), s->body_len, "Date")) {
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "Date: %a, %d %b %Y %H:%M:%S %z\r\n", &tm);
	}
	if (!header_has(SESSION_BODY(s), s->body_len, "Message-ID"))
		snprintf(msgid, sizeof(msgid), "Message-ID: <%s@%s>\r\n", s->env.id, s->srv->cfg->hostname);
	return xasprintf("%s%s", date, msgid);
}

/* The end of DATA or of the LAST chunk: refuse a bad message, or queue it. */
static void message_end(struct session *s)
{
	char *hdr, *msg;
	size_t hlen, len;
	struct commit *c;

	if (s->trace) {
		char note[64];
		int n = snprintf(note, sizeof(note), "<message, %zu octets>", s->body_len);
		session_trace(s, 'C', note, (size_t)n);
	}
	if (s->body_bad) {
		if (s->body_bad & BODY_NO_MEMORY)
			session_reply(s, 452, "4.3.1", "Insufficient system storage, try again later");
		else if (s->body_bad & BODY_TOO_BIG)
			session_reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		else if (s->body_bad & BODY_BAD_EOL)
			/* RFC 5321 2.3.8; refusing it closes the SMTP smuggling hole. */
			session_reply(s, 550, "5.6.0", "Message contains bare CR or LF; lines must end in CRLF");
		else
			session_reply(s, 550, "5.6.0", "Message has a line longer than %zu octets",
				      s->limits->max_text_line);
		session_reset_tx(s);
		session_enter(s, S_READY);
		return;
	}
	queue_new_id(s->srv->queue, &s->env);
	s->env.received = time(NULL);
	hdr = received_header(s);
	if (s->user && s->listener->lc->role != ROLE_SMTP) {
		char *extra = submission_fields(s), *both = xasprintf("%s%s", hdr, extra);
		free(hdr);
		free(extra);
		hdr = both;
	}
	hlen = strlen(hdr);
	len = hlen + s->body_len;
	if (s->body && hlen <= BODY_HEADROOM) {
		/* The header goes just before the message, and the whole slides to the
		 * start of the allocation, which the queue then owns. */
		memcpy(s->body + BODY_HEADROOM - hlen, hdr, hlen);
		memmove(s->body, s->body + BODY_HEADROOM - hlen, len);
		msg = s->body;
		s->body = NULL;
		session_inflight_release(s);
		s->body_len = s->body_cap = 0;
	} else {
		msg = xmalloc(len);
		memcpy(msg, hdr, hlen);
		if (s->body_len)
			memcpy(msg + hlen, SESSION_BODY(s), s->body_len);
	}
	free(hdr);
	c = xmalloc(sizeof(*c));
	c->s = s;
	c->size = len;
	session_park(s);
	queue_commit(s->srv->queue, &s->env, msg, len, message_committed, c);
}

void cmd_data(struct session *s, const char *args, size_t len)
{
	if (s->bdat_used) {
		/* RFC 3030 2: DATA and BDAT are not mixed in one transaction. */
		session_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		return;
	}
	session_enter(s, S_DATA);
	s->data_crlf = 1;
	session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

void data_line(struct session *s, enum line_status st, const char *line, size_t len)
{
	switch (st) {
	case LINE_OK:
		/* RFC 5321 4.1.1.4: the end of mail data is "<CRLF>.<CRLF>": a "." after a
		 * bare LF is not it (SMTP smuggling, "\n.\r\n"). */
		if (len == 1 && line[0] == '.' && s->data_crlf) {
			message_end(s);
			return;
		}
		s->data_crlf = 1;
		/* RFC 5321 4.5.2: a leading "." is removed (dot-stuffing). */
		if (len > 0 && line[0] == '.')
			line++, len--;
		body_append(s, line, len);
		body_append(s, "\r\n", 2);
		break;
	case LINE_BARE_LF:
		s->body_bad |= BODY_BAD_EOL;
		s->data_crlf = 0;
		break;
	case LINE_BARE_CR:
		/* The line itself ended in CRLF; the bare CR was inside it. */
		s->body_bad |= BODY_BAD_EOL;
		s->data_crlf = 1;
		break;
	case LINE_TOO_LONG:
		s->body_bad |= BODY_TOO_LONG;
		s->data_crlf = s->lr.crlf;
		if (!s->lr.crlf)
			s->body_bad |= BODY_BAD_EOL;
		break;
	case LINE_NEED_MORE:
		break;
	}
}

void cmd_bdat(struct session *s, const char *args, size_t len)
{
	char buf[64], *end;
	unsigned long long size;
	int last = 0;

	/* RFC 3030 2: "BDAT" SP chunk-size [ SP end-marker ] */
	if (len == 0 || len >= sizeof(buf)) {
		session_reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	memcpy(buf, args, len);
	buf[len] = '\0';
	if (buf[0] < '0' || buf[0] > '9') {
		session_reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	errno = 0;
	size = strtoull(buf, &end, 10);
	if (errno || (*end && strcasecmp(end, " LAST") != 0)) {
		session_reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	last = *end != '\0';
	/* The chunk is read in every case, so the session stays in step with the client;
	 * a refusal is sent once it has been read. */
	s->bdat_refusal = session_cmd_refusal(s, CMD_BDAT);
	s->bdat_refuse = s->bdat_refusal != NULL;
	s->bdat_back = s->state;
	if (!s->bdat_refuse && size > s->limits->max_message_size - s->body_len)
		s->body_bad |= BODY_TOO_BIG;
	s->bdat_used = 1;
	s->bdat_left = (size_t)size;
	s->bdat_last = last;
	session_enter(s, S_BDAT);
	if (size == 0)
		bdat_bytes(s, "", 0);
}

static void bdat_scan_eol(struct session *s, const char *p, size_t n)
{
	char prev = s->bdat_prev;
	for (size_t i = 0; i < n; i++) {
		if ((p[i] == '\n' && prev != '\r') || (prev == '\r' && p[i] != '\n'))
			s->body_bad |= BODY_BAD_EOL;
		prev = p[i];
	}
	s->bdat_prev = prev;
}

void bdat_bytes(struct session *s, const char *p, size_t n)
{
	if (!s->bdat_refuse) {
		bdat_scan_eol(s, p, n);
		body_append(s, p, n);
	}
	s->bdat_left -= n;
	if (s->bdat_left > 0)
		return;
	if (s->bdat_refuse) {
		session_enter(s, s->bdat_back);
		session_reply_refusal(s, s->bdat_refusal);
		return;
	}
	session_enter(s, S_RCPT);
	if (!s->bdat_last) {
		session_reply(s, 250, "2.0.0", "%zu octets received", s->body_len);
		return;
	}
	if (s->bdat_prev == '\r')
		s->body_bad |= BODY_BAD_EOL;
	/* A message must end with CRLF for delivery and relaying. */
	if (s->body_len >= 2 && memcmp(SESSION_BODY(s) + s->body_len - 2, "\r\n", 2) != 0)
		body_append(s, "\r\n", 2);
	message_end(s);
}
