/* cmd_data: DATA and BDAT, receiving the message and handing it to the queue. The
 * reply to the end of a message is sent only when the queue says it is on disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim/dkim_sign.h"
#include "queue/queue.h"
#include "smtp/session.h"
#include "smtp/tls_required.h"
#include "util/xmalloc.h"

/* A part of the message handed to the queue stream; it stays charged to the
 * server's in-flight budget until written. */
struct data_chunk {
	struct smtp_server *srv;
	struct session *s;           /* NULL once the session gave the message up */
	char *buf;
	size_t held;                 /* octets charged to the server until written */
	struct data_chunk *next;
};

/* The session's buffers and its part of the in-flight budget are released, and the
 * queue file, if one was begun, is removed; the octet count stays for the replies. */
static void data_drop(struct session *s)
{
	for (struct data_chunk *c = s->chunks; c; c = c->next)
		c->s = NULL;
	s->chunks = NULL;
	s->nchunks = 0;
	queue_stream_abort(&s->stream);
	free(s->body);
	s->body = NULL;
	session_inflight_release(s);
	s->body_cap = s->body_fill = 0;
}

void data_reset(struct session *s)
{
	data_drop(s);
	s->body_len = 0;
	s->wait_write = 0;
	memset(s->body_tail, 0, sizeof(s->body_tail));
}

static void chunk_written(void *arg, int err)
{
	struct data_chunk *c = arg, **pp;
	struct session *s = c->s;
	c->srv->inflight -= c->held;
	free(c->buf);
	if (s) {
		/* A write error is not answered here: the stream's commit fails too. */
		for (pp = &s->chunks; *pp && *pp != c; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = c->next;
		s->nchunks--;
	}
	free(c);
	if (s && s->wait_write && s->nchunks < 2) {
		s->wait_write = 0;
		if (session_unpark(s) == 0)
			session_process(s);
	}
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
 * left them out; local submission also gets a From: of its envelope sender, as
 * Postfix's cleanup does (RFC 5322 3.6 requires one). Decided on the message's first
 * BODY_CHUNK octets: a header section longer than that is not looked at further. */
static char *submission_fields(const struct session *s)
{
	char date[64] = "", msgid[200] = "", from[600] = "";
	time_t now = time(NULL);
	struct tm tm;
	if (!header_has(SESSION_BODY(s), s->body_fill, "Date")) {
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "Date: %a, %d %b %Y %H:%M:%S %z\r\n", &tm);
	}
	if (!header_has(SESSION_BODY(s), s->body_fill, "Message-ID"))
		snprintf(msgid, sizeof(msgid), "Message-ID: <%s@%s>\r\n", s->env.id, s->cfg->hostname);
	if (SESSION_LOCAL(s) && s->env.mail_from[0] && !header_has(SESSION_BODY(s), s->body_fill, "From"))
		snprintf(from, sizeof(from), "From: <%s>\r\n", s->env.mail_from);
	return xasprintf("%s%s%s", date, msgid, from);
}

/* The queue id and the fields put before the message; the envelope is complete by
 * now (SMTP has no RCPT after DATA; after a BDAT chunk the queue copes). */
static char *message_prefix(struct session *s)
{
	char *hdr;
	queue_new_id(s->srv->queue, &s->env);
	s->env.received = time(NULL);
	/* Seen in the first BODY_CHUNK octets, like submission_fields: a header field
	 * after a longer header section is not looked for. */
	s->env.tlsreq = tlsreq_tag(s->env.tlsreq, SESSION_BODY(s), s->body_fill);
	hdr = received_header(s);
	if ((s->user && s->lc->role != ROLE_SMTP) || SESSION_LOCAL(s)) {
		char *extra = submission_fields(s), *both = xasprintf("%s%s", hdr, extra);
		free(hdr);
		free(extra);
		hdr = both;
	}
	return hdr;
}

/* Mail of authenticated users and of local programs is signed (DKIM) when a key
 * exists for its From: domain; the signer sees the message as queued, trace and
 * submission fields included, so it runs last (queue.h's seal). */
static struct queue_seal *message_seal(const struct session *s)
{
	if (!s->user && !SESSION_LOCAL(s))
		return NULL;
	return dkim_signer_create(s->srv->dkim, s->env.id);
}

/* Hands the buffer to the queue file (begun on the first call). Two chunks not yet
 * written stop the reading, so a slow disk bounds the session's memory, not the
 * client's speed; the loop itself never waits. */
static void data_flush(struct session *s)
{
	struct data_chunk *c;
	if (!s->body_fill)
		return;
	if (!s->stream) {
		char *hdr = message_prefix(s);
		s->stream_prefix = strlen(hdr);
		s->stream = queue_stream_open(s->srv->queue, &s->env, hdr, s->stream_prefix,
					      message_seal(s));
		free(hdr);
	}
	c = xcalloc(1, sizeof(*c));
	c->srv = s->srv;
	c->s = s;
	c->buf = s->body;
	c->held = s->body_fill;
	session_inflight_handoff(s, s->body_fill);
	c->next = s->chunks;
	s->chunks = c;
	s->nchunks++;
	queue_stream_write(s->stream, c->buf + BODY_HEADROOM, s->body_fill, chunk_written, c);
	s->body = NULL;
	s->body_cap = s->body_fill = 0;
	if (s->nchunks >= 2 && !s->parked) {
		s->wait_write = 1;
		session_park(s);
	}
}

static void body_append(struct session *s, const char *p, size_t n)
{
	if (s->body_bad & (BODY_TOO_BIG | BODY_NO_MEMORY))
		return;
	if (s->body_len + n > s->limits->max_message_size) {
		s->body_bad |= BODY_TOO_BIG;
		data_drop(s);
		return;
	}
	s->body_len += n;
	if (s->body_bad) {
		/* Refused at its end anyway: nothing of it is kept meanwhile. */
		data_drop(s);
		return;
	}
	if (n >= 2) {
		memcpy(s->body_tail, p + n - 2, 2);
	} else if (n == 1) {
		s->body_tail[0] = s->body_tail[1];
		s->body_tail[1] = p[0];
	}
	/* Charged at the octets held, not at the buffer's capacity, per server and per
	 * client: many large messages at once, or one client's, must not exhaust memory
	 * nor every other sender's budget. Refused for now rather than let the
	 * allocator end the daemon. */
	if (session_inflight_charge(s, n) < 0) {
		s->body_bad |= BODY_NO_MEMORY;
		data_drop(s);
		return;
	}
	if (s->body_fill + n > s->body_cap) {
		/* Small messages grow from 8 KiB; a streamed one takes a whole chunk. */
		size_t cap = s->body_cap ? s->body_cap : s->stream ? BODY_CHUNK : 8192;
		while (cap < s->body_fill + n)
			cap *= 2;
		s->body = xrealloc(s->body, BODY_HEADROOM + cap);
		s->body_cap = cap;
	}
	memcpy(s->body + BODY_HEADROOM + s->body_fill, p, n);
	s->body_fill += n;
	if (s->body_fill >= BODY_CHUNK)
		data_flush(s);
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
		session_rejected(s, err == ENOSPC || err == EDQUOT ? REJECT_RESOURCES : REJECT_TEMPORARY);
		if (err == ENOSPC || err == EDQUOT)
			session_reply(s, 452, "4.3.1", "Insufficient system storage, try again later");
		else
			session_reply(s, 451, "4.3.0", "Local error in processing, try again later");
	} else {
		char esc[LOG_ESCAPE_BUFSZ];
		s->messages++;
		char uid[32] = "";
		if (s->peer_uid >= 0)
			snprintf(uid, sizeof(uid), " uid=%ld", s->peer_uid);
		metrics_add(METRIC_ACCEPTED, 1, s->lc->name, NULL, NULL);
		log_info("smtp session=%s event=queued id=%s from=\"%s\" nrcpt=%zu size=%zu%s%s", s->id,
			 s->env.id, log_escape(esc, sizeof(esc), s->env.mail_from, strlen(s->env.mail_from)),
			 s->env.n_rcpts, size, uid, s->env.tlsreq == TLSREQ_REQUIRETLS ? " requiretls=yes"
			 : s->env.tlsreq == TLSREQ_NO ? " tls_required=no" : "");
		session_reply(s, 250, "2.0.0", "Ok: queued as %s", s->env.id);
	}
	session_reset_tx(s);
	session_enter(s, S_READY);
	session_process(s);
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
		session_rejected(s, s->body_bad & BODY_NO_MEMORY ? REJECT_RESOURCES
				    : s->body_bad & BODY_TOO_BIG ? REJECT_TOO_BIG : REJECT_BAD_MESSAGE);
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
		int waiting = s->wait_write;
		session_reset_tx(s);
		session_enter(s, S_READY);
		if (waiting)
			/* Parked for a chunk of this message, which is given up. */
			session_unpark(s);
		return;
	}
	c = xmalloc(sizeof(*c));
	c->s = s;
	if (!s->parked)
		session_park(s);
	/* Parked until the commit's answer, not until a chunk's. */
	s->wait_write = 0;
	if (s->stream) {
		c->size = s->stream_prefix + s->body_len;
		data_flush(s);
		queue_stream_commit(&s->stream, &s->env, message_committed, c);
		return;
	}
	hdr = message_prefix(s);
	hlen = strlen(hdr);
	len = hlen + s->body_fill;
	if (s->body && hlen <= BODY_HEADROOM) {
		/* The header goes just before the message, and the whole slides to the
		 * start of the allocation, which the queue then owns. */
		memcpy(s->body + BODY_HEADROOM - hlen, hdr, hlen);
		memmove(s->body, s->body + BODY_HEADROOM - hlen, len);
		msg = s->body;
		s->body = NULL;
		session_inflight_release(s);
		s->body_fill = s->body_cap = 0;
	} else {
		msg = xmalloc(len);
		memcpy(msg, hdr, hlen);
		if (s->body_fill)
			memcpy(msg + hlen, SESSION_BODY(s), s->body_fill);
	}
	free(hdr);
	c->size = len;
	queue_commit(s->srv->queue, &s->env, msg, len, message_seal(s), message_committed, c);
}

void cmd_data(struct session *s, const char *args, size_t len)
{
	if (s->bdat_used) {
		/* RFC 3030 2: DATA and BDAT are not mixed in one transaction. */
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		return;
	}
	session_enter(s, S_DATA);
	s->data_crlf = 1;
	session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

void cmd_data_line(struct session *s, enum line_status st, const char *line, size_t len)
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
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	memcpy(buf, args, len);
	buf[len] = '\0';
	if (buf[0] < '0' || buf[0] > '9') {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	errno = 0;
	size = strtoull(buf, &end, 10);
	if (errno || (*end && strcasecmp(end, " LAST") != 0)) {
		session_rejected(s, REJECT_PROTOCOL);
		session_reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	last = *end != '\0';
	/* The chunk is read in every case, so the session stays in step with the client;
	 * a refusal is sent once it has been read. */
	s->bdat_refusal = session_cmd_refusal(s, CMD_BDAT);
	s->bdat_refuse = s->bdat_refusal != NULL;
	s->bdat_back = s->state;
	if (!s->bdat_refuse && size > s->limits->max_message_size - s->body_len) {
		s->body_bad |= BODY_TOO_BIG;
		data_drop(s);
	}
	s->bdat_used = 1;
	s->bdat_left = (size_t)size;
	s->bdat_last = last;
	session_enter(s, S_BDAT);
	if (size == 0)
		cmd_bdat_bytes(s, "", 0);
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

void cmd_bdat_bytes(struct session *s, const char *p, size_t n)
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
		session_rejected(s, s->bdat_refusal->reject);
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
	if (s->body_len >= 2 && memcmp(s->body_tail, "\r\n", 2) != 0)
		body_append(s, "\r\n", 2);
	message_end(s);
}
