/* smtpc: the SMTP client (see smtpc.h). Commands sent wait in a FIFO for their
 * replies (PIPELINING); a reply is handed to the owner only when its last line has
 * arrived, and a reply with nothing outstanding is the greeting (or unsolicited). Callbacks may destroy
 * the client: every entry point from the event loop holds it (busy) and frees it on
 * the way out when the owner asked to. */
#include "client/smtpc.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <gsasl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "net/conn.h"
#include "oauth/oauth_sasl.h"
#include "util/linereader.h"
#include "util/xmalloc.h"

enum smtpc_state {
	ST_CONNECTING,
	ST_TLS_IMPLICIT,   /* handshake before the greeting */
	ST_READY,          /* the greeting or a command's reply is awaited, or idle */
	ST_STARTTLS,       /* STARTTLS sent */
	ST_HANDSHAKE,      /* 220 received, TLS handshake running */
	ST_AUTH,           /* inside an AUTH exchange */
	ST_BODY,           /* streaming the message after 354 */
};

/* What a command's reply means to the client itself. */
enum smtpc_kind { K_CMD, K_EHLO, K_HELO };

struct smtpc_pend {
	enum smtpc_kind kind;
	unsigned timeout;
};

/* Output kept queued while streaming a body, and the block of it dot-stuffed at once. */
#define SMTPC_BODY_WATERMARK (64 * 1024)
#define SMTPC_BODY_BLOCK (16 * 1024)
/* Most asked of a body source at once. */
#define SMTPC_BODY_READ (64 * 1024)

struct smtpc {
	struct event_base *base;
	struct event *ev_connect;
	int fd;                    /* until the conn owns it */
	int connect_errno;
	struct conn *conn;
	char *server_name;
	SSL_CTX *implicit_tls, *starttls_ctx;
	unsigned timeout;
	const struct smtpc_cbs *cbs;
	void *arg;
	enum smtpc_state state;
	struct linereader lr;
	struct smtpc_reply cur;    /* lines of the reply being read */
	int cur_more;
	struct smtpc_pend *pend;   /* FIFO of commands awaiting replies */
	size_t n_pend, cap_pend;
	int helo_fallback, used_helo;
	char *ehlo_name;
	unsigned connect_timeout;
	/* ST_BODY: from memory (body), or asked of src a block at a time */
	const char *body;
	struct smtpc_body_src src;
	size_t body_len, body_off;
	int body_bol;
	int body_waiting;          /* src was asked and has not answered */
	int body_filling;          /* inside smtpc_body_fill (src may answer from want) */
	unsigned dot_timeout;
	size_t dot_replies;        /* replies the final dot gets: 1, LMTP one per recipient */
	struct smtpc_caps caps;
	Gsasl *gctx;
	Gsasl_session *gs;
	int saw_330;
	unsigned auth_rounds;      /* challenges answered in this exchange */
	int oauth;                 /* -1, or the enum oauth_mech of this exchange (ours) */
	char oauth_error[64];      /* the status of its error challenge, or "" */
	unsigned port;             /* the server's, for OAUTHBEARER's port= */
	struct event *ev_reply;    /* a whole reply (or handshake) must come within timeout */
	int ended, busy, doomed;
};

/* A server may not keep an exchange going for ever: SCRAM needs 2 challenges,
 * DIGEST-MD5 2; beyond this many the client cancels. */
#define SMTPC_AUTH_ROUNDS_MAX 8

static void smtpc_free(struct smtpc *s);

static void smtpc_hold(struct smtpc *s) { s->busy++; }

/* Returns -1 when the client is gone (freed here, or to be freed by an outer frame). */
static int smtpc_release(struct smtpc *s)
{
	if (--s->busy == 0 && s->doomed) {
		smtpc_free(s);
		return -1;
	}
	return s->doomed ? -1 : 0;
}

static void smtpc_trace(struct smtpc *s, char dir, const char *line)
{
	if (s->cbs->transcript && !s->doomed)
		s->cbs->transcript(s->arg, dir, line);
}

static void smtpc_fail(struct smtpc *s, enum smtpc_error err, const char *detail)
{
	if (s->ended || s->doomed)
		return;
	s->ended = 1;
	s->cbs->on_error(s, s->arg, err, detail ? detail : "");
}

static void smtpc_reply_clear(struct smtpc_reply *r)
{
	for (size_t i = 0; i < r->n_lines; i++)
		free(r->lines[i]);
	free(r->lines);
	memset(r, 0, sizeof(*r));
}

void smtpc_caps_clear(struct smtpc_caps *caps)
{
	for (size_t i = 0; i < caps->n_lines; i++)
		free(caps->lines[i]);
	free(caps->lines);
	free(caps->auth);
	free(caps->auth_legacy);
	memset(caps, 0, sizeof(*caps));
}

int smtpc_parse_line(const char *line, size_t len, int *more_r, size_t *text_off_r)
{
	int code;
	*more_r = 0;
	*text_off_r = len;
	/* RFC 5321 4.2: "Reply-code  = %x32-35 %x30-35 %x30-39". */
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3)
		return code;
	if (line[3] != ' ' && line[3] != '-')
		return -1;
	*more_r = line[3] == '-';
	*text_off_r = 4;
	return code;
}

int smtpc_list_has(const char *list, const char *mech)
{
	size_t n = strlen(mech);
	const char *p = list;
	if (!list)
		return 0;
	while (*p) {
		size_t w;
		while (*p == ' ')
			p++;
		w = strcspn(p, " ");
		if (w == n && strncasecmp(p, mech, n) == 0)
			return 1;
		p += w;
	}
	return 0;
}

/* "AUTH PLAIN LOGIN" -> "PLAIN LOGIN", single spaces, upper case. */
static char *smtpc_words(const char *text)
{
	char *out = xmalloc(strlen(text) + 1), *o = out;
	for (const char *p = text; *p; p++) {
		if (*p == ' ' || *p == '\t') {
			if (o > out && o[-1] != ' ')
				*o++ = ' ';
			continue;
		}
		*o++ = (char)toupper((unsigned char)*p);
	}
	if (o > out && o[-1] == ' ')
		o--;
	*o = '\0';
	return out;
}

static int smtpc_keyword(const char *line, const char *kw, const char **rest_r)
{
	size_t n = strlen(kw);
	if (strncasecmp(line, kw, n) != 0 || (line[n] != '\0' && line[n] != ' ' && line[n] != '='))
		return 0;
	*rest_r = line + n;
	return 1;
}

void smtpc_caps_parse(struct smtpc_caps *caps, const struct smtpc_reply *r)
{
	const char *rest;
	smtpc_caps_clear(caps);
	if (r->code != 250)
		return;
	caps->valid = 1;
	/* RFC 5321 4.1.1.1: the first line is the greeting; each later line is an
	 * "ehlo-keyword *( SP ehlo-param )". */
	for (size_t i = 1; i < r->n_lines; i++) {
		const char *l = r->lines[i];
		caps->lines = xrealloc(caps->lines, (caps->n_lines + 1) * sizeof(char *));
		caps->lines[caps->n_lines++] = xstrdup(l);
		if (smtpc_keyword(l, "STARTTLS", &rest))
			caps->starttls = 1;
		else if (smtpc_keyword(l, "PIPELINING", &rest))
			caps->pipelining = 1;
		else if (smtpc_keyword(l, "SIZE", &rest))
			caps->size = 1;
		else if (smtpc_keyword(l, "8BITMIME", &rest))
			caps->eightbitmime = 1;
		else if (smtpc_keyword(l, "CHUNKING", &rest))
			caps->chunking = 1;
		else if (smtpc_keyword(l, "SMTPUTF8", &rest))
			caps->smtputf8 = 1;
		else if (smtpc_keyword(l, "AUTH", &rest)) {
			/* "AUTH=PLAIN LOGIN" is the pre-RFC 2554 draft's form, still sent for
			 * old Outlook versions; "AUTH PLAIN LOGIN" is the standard one. */
			char **slot = *rest == '=' ? &caps->auth_legacy : &caps->auth;
			if (!*slot)
				*slot = smtpc_words(rest + (*rest == '=' ? 1 : 0));
		}
	}
}

/* The idle timeout of the connection is reset by every byte; this one is not, so a
 * server that drips a reply (or a handshake) byte by byte still ends in time. */
static void smtpc_reply_deadline(struct smtpc *s)
{
	struct timeval tv = {s->timeout, 0};
	if (s->ev_reply)
		evtimer_add(s->ev_reply, &tv);
}

static void smtpc_send(struct smtpc *s, const char *line, const char *shown)
{
	smtpc_reply_deadline(s);
	smtpc_trace(s, SMTPC_SENT, shown ? shown : line);
	conn_write(s->conn, line, strlen(line));
	conn_write(s->conn, "\r\n", 2);
}

/* A command whose reply is awaited in turn. */
static void smtpc_expect(struct smtpc *s, enum smtpc_kind kind);

static void smtpc_push(struct smtpc *s, enum smtpc_kind kind, const char *line)
{
	smtpc_expect(s, kind);
	smtpc_trace(s, SMTPC_SENT, line);
	conn_write(s->conn, line, strlen(line));
	conn_write(s->conn, "\r\n", 2);
}

/* One more reply awaited, in turn, for what is or was sent. */
static void smtpc_expect(struct smtpc *s, enum smtpc_kind kind)
{
	if (s->n_pend == s->cap_pend) {
		s->cap_pend = s->cap_pend ? 2 * s->cap_pend : 8;
		s->pend = xrealloc(s->pend, s->cap_pend * sizeof(*s->pend));
	}
	s->pend[s->n_pend++] = (struct smtpc_pend){ kind, s->timeout };
	/* The deadline runs for the oldest reply awaited; later ones start theirs
	 * when it comes. */
	if (s->n_pend == 1)
		smtpc_reply_deadline(s);
}

static void smtpc_auth_end(struct smtpc *s)
{
	if (s->gs)
		gsasl_finish(s->gs);
	s->gs = NULL;
	s->oauth = -1;
	s->state = ST_READY;
}

/* A challenge inside XOAUTH2 or OAUTHBEARER can only be the server's error (the
 * client has said all it has): note its status and answer as RFC 7628 3.2.3 says,
 * so the server sends its final reply. A second one is cancelled. */
static void smtpc_oauth_challenge(struct smtpc *s, const struct smtpc_reply *r)
{
	char *raw = NULL, *b64 = NULL;
	size_t rawlen = 0, n;
	const char *resp;
	if (s->oauth_error[0]) {
		smtpc_send(s, "*", NULL);
		return;
	}
	if (gsasl_base64_from(r->n_lines ? r->lines[0] : "", r->n_lines ? strlen(r->lines[0]) : 0,
			      &raw, &rawlen) != GSASL_OK)
		rawlen = 0;
	oauth_sasl_parse_error(raw ? raw : "", rawlen, s->oauth_error, sizeof(s->oauth_error));
	free(raw);
	resp = oauth_sasl_error_response((enum oauth_mech)s->oauth, &n);
	if (n && gsasl_base64_to(resp, n, &b64, NULL) != GSASL_OK) {
		smtpc_send(s, "*", NULL);
		return;
	}
	smtpc_send(s, b64 ? b64 : "", "<hidden>");
	free(b64);
}

/* One 334 (or 330) challenge: answer it through GNU SASL, or cancel the exchange. */
static void smtpc_auth_challenge(struct smtpc *s, const struct smtpc_reply *r)
{
	char *out = NULL;
	int rc;
	if (r->code == 330)
		s->saw_330 = 1;
	if (++s->auth_rounds > SMTPC_AUTH_ROUNDS_MAX) {
		smtpc_trace(s, SMTPC_INFO, "too many AUTH challenges: cancelling the exchange");
		smtpc_send(s, "*", NULL);
		return;
	}
	if (s->oauth >= 0) {
		smtpc_oauth_challenge(s, r);
		return;
	}
	/* RFC 4954 4: "A server challenge is sent as a 334 reply with the text part
	 * containing the [BASE64] encoded string supplied by the SASL mechanism." */
	rc = gsasl_step64(s->gs, r->n_lines ? r->lines[0] : "", &out);
	if (rc == GSASL_OK || rc == GSASL_NEEDS_MORE) {
		smtpc_send(s, out ? out : "", "<hidden>");
	} else {
		char why[160];
		snprintf(why, sizeof(why), "SASL client: %s", gsasl_strerror(rc));
		smtpc_trace(s, SMTPC_INFO, why);
		/* RFC 4954 4: "If the client wishes to cancel an authentication exchange,
		 * it issues a line with a single "*"." */
		smtpc_send(s, "*", NULL);
	}
	if (out) {
		explicit_bzero(out, strlen(out));
		free(out);
	}
}

/* Returns -1 when the client is gone. */
static int smtpc_got_reply(struct smtpc *s)
{
	struct smtpc_reply r = s->cur;
	memset(&s->cur, 0, sizeof(s->cur));
	evtimer_del(s->ev_reply);
	if (r.n_lines) {
		const char *t = r.lines[0];
		if (t[0] == r.code / 100 + '0' && t[1] == '.' && isdigit((unsigned char)t[2])) {
			size_t n = strspn(t, "0123456789.");
			if (n < sizeof(r.enhanced) && (t[n] == ' ' || t[n] == '\0'))
				memcpy(r.enhanced, t, n);
		}
	}
	switch (s->state) {
	case ST_AUTH:
		if (r.code == 334 || r.code == 330) {
			smtpc_auth_challenge(s, &r);
			smtpc_reply_clear(&r);
			return 0;
		}
		smtpc_auth_end(s);
		break;
	case ST_STARTTLS:
		if (r.code == 220) {
			smtpc_reply_clear(&r);
			/* RFC 3207 4.2: "The client MUST discard any knowledge obtained from
			 * the server, such as the list of SMTP service extensions". */
			smtpc_caps_clear(&s->caps);
			s->state = ST_HANDSHAKE;
			smtpc_reply_deadline(s);
			conn_starttls_client(s->conn, s->starttls_ctx);
			return s->doomed ? -1 : 0;
		}
		s->state = ST_READY;
		break;
	default:
		break;
	}
	if (s->n_pend) {
		enum smtpc_kind kind = s->pend[0].kind;
		memmove(s->pend, s->pend + 1, (s->n_pend - 1) * sizeof(*s->pend));
		s->n_pend--;
		if (s->n_pend) {
			struct timeval tv = {s->pend[0].timeout, 0};
			evtimer_add(s->ev_reply, &tv);
		}
		if (kind == K_EHLO && r.code / 100 == 5 && s->helo_fallback) {
			char line[600];
			smtpc_reply_clear(&r);
			snprintf(line, sizeof(line), "HELO %s", s->ehlo_name);
			smtpc_caps_clear(&s->caps);
			s->used_helo = 1;
			smtpc_push(s, K_HELO, line);
			return s->doomed ? -1 : 0;
		}
		if (kind == K_EHLO)
			smtpc_caps_parse(&s->caps, &r);
	}
	if (!s->ended)
		s->cbs->on_reply(s, &r, s->arg);
	smtpc_reply_clear(&r);
	return s->doomed ? -1 : 0;
}

/* One received line; returns -1 when the client is gone or failed. */
static int smtpc_line(struct smtpc *s, const char *line, size_t len)
{
	char shown[SMTPC_LINE_MAX + 16];
	size_t off;
	int more, code = smtpc_parse_line(line, len, &more, &off);

	if ((s->state == ST_AUTH && (code == 334 || code == 330)) && len > 4)
		snprintf(shown, sizeof(shown), "%.4s<hidden>", line);
	else
		snprintf(shown, sizeof(shown), "%.*s", (int)len, line);
	smtpc_trace(s, SMTPC_RECEIVED, shown);
	if (code < 0 || (s->cur.n_lines && code != s->cur.code) ||
	    s->cur.n_lines >= SMTPC_REPLY_LINES_MAX || memchr(line, '\0', len)) {
		smtpc_fail(s, SMTPC_ERR_PROTOCOL, code < 0 ? "malformed reply line" :
			   s->cur.n_lines >= SMTPC_REPLY_LINES_MAX ? "reply too long"
			   : "reply code changed inside a reply");
		return -1;
	}
	s->cur.code = code;
	s->cur.lines = xrealloc(s->cur.lines, (s->cur.n_lines + 1) * sizeof(char *));
	s->cur.lines[s->cur.n_lines++] = xstrndup(line + off, len - off);
	if (more)
		return 0;
	return smtpc_got_reply(s);
}

static void smtpc_on_read(struct conn *c, void *arg)
{
	struct smtpc *s = arg;
	struct evbuffer *in = conn_input(c);
	size_t avail, want, len, consumed;
	enum line_status st;
	const char *p;

	smtpc_hold(s);
	while (!s->ended && !s->doomed && s->state != ST_HANDSHAKE &&
	       (avail = evbuffer_get_length(in)) > 0) {
		want = avail < s->lr.limit ? avail : s->lr.limit;
		p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
		st = linereader_next(&s->lr, p, want, &len, &consumed);
		if (st == LINE_OK || st == LINE_BARE_LF) {
			/* A bare LF from a server is tolerated: a client reading replies
			 * cannot be smuggled into, and old servers send them. */
			char *line = xstrndup(p, len);
			evbuffer_drain(in, consumed);
			int gone = smtpc_line(s, line, len);
			free(line);
			if (gone < 0)
				break;
			continue;
		}
		evbuffer_drain(in, consumed);
		if (st == LINE_NEED_MORE && s->lr.skipping)
			st = LINE_TOO_LONG; /* no server reply line is that long: stop now */
		if (st == LINE_TOO_LONG || st == LINE_BARE_CR) {
			smtpc_fail(s, SMTPC_ERR_PROTOCOL, st == LINE_TOO_LONG ? "reply line too long"
				   : "bare CR in a reply line");
			break;
		}
		if (consumed == 0)
			break;
	}
	smtpc_release(s);
}

static void smtpc_on_tls(struct conn *c, void *arg)
{
	struct smtpc *s = arg;
	char info[256];
	SSL *ssl = conn_ssl(c);
	smtpc_hold(s);
	snprintf(info, sizeof(info), "TLS established: %s %s", SSL_get_version(ssl),
		 SSL_get_cipher_name(ssl));
	smtpc_trace(s, SMTPC_INFO, info);
	evtimer_del(s->ev_reply);
	if (s->state == ST_TLS_IMPLICIT)
		smtpc_reply_deadline(s); /* now the greeting */
	s->state = ST_READY;
	if (!s->ended && !s->doomed && s->cbs->on_tls)
		s->cbs->on_tls(s, s->arg);
	/* Input that arrived with the handshake's last flight waits in the buffer. */
	if (!s->ended && !s->doomed && evbuffer_get_length(conn_input(c)) > 0)
		smtpc_on_read(c, s);
	smtpc_release(s);
}

static void smtpc_on_timeout(struct conn *c, void *arg)
{
	struct smtpc *s = arg;
	smtpc_hold(s);
	/* Reported first: closing may end the conn at once, which reads as "closed". */
	smtpc_fail(s, SMTPC_ERR_TIMEOUT, "no reply in time");
	conn_close_after_flush(c);
	smtpc_release(s);
}

static void smtpc_on_end(struct conn *c, void *arg, enum conn_end why, const char *detail)
{
	struct smtpc *s = arg;
	static const enum smtpc_error map[] = {
		[CONN_EOF] = SMTPC_ERR_CLOSED, [CONN_ERROR] = SMTPC_ERR_IO,
		[CONN_TIMEOUT] = SMTPC_ERR_TIMEOUT, [CONN_CLOSED] = SMTPC_ERR_CLOSED,
		[CONN_TLS_FAILED] = SMTPC_ERR_TLS,
	};
	smtpc_hold(s);
	smtpc_fail(s, map[why], detail && *detail ? detail
		   : why == CONN_EOF ? "connection closed by the server" : "connection closed");
	smtpc_release(s);
}

static void smtpc_reply_late(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *s = arg;
	smtpc_hold(s);
	smtpc_fail(s, SMTPC_ERR_TIMEOUT, "no complete reply in time");
	if (s->conn)
		conn_close_after_flush(s->conn);
	smtpc_release(s);
}

size_t smtpc_dot_stuff(const char *src, size_t len, char *dst, int *at_bol)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		/* RFC 5321 4.5.2: "Before sending a line of mail text, the SMTP client
		 * checks the first character of the line. If it is a period, one
		 * additional period is inserted at the beginning of the line." */
		if (*at_bol && src[i] == '.')
			dst[o++] = '.';
		dst[o++] = src[i];
		*at_bol = src[i] == '\n';
	}
	return o;
}

/* Dot-stuffs and queues n octets of the body, a block at a time. */
static void smtpc_body_write(struct smtpc *s, const char *data, size_t n)
{
	char out[2 * SMTPC_BODY_BLOCK];
	while (n > 0) {
		size_t k = n < SMTPC_BODY_BLOCK ? n : SMTPC_BODY_BLOCK;
		size_t o = smtpc_dot_stuff(data, k, out, &s->body_bol);
		conn_write(s->conn, out, o);
		s->body_off += k;
		data += k;
		n -= k;
	}
	smtpc_reply_deadline(s); /* one more block left: a new block_timeout */
}

/* Writes body blocks while the output is under the watermark (asking the source for
 * each, which may answer later); the final dot once the body is all out. */
static void smtpc_body_fill(struct smtpc *s)
{
	if (s->body_filling)
		return; /* the source answered from inside want: the loop below goes on */
	smtpc_hold(s);
	s->body_filling = 1;
	while (s->state == ST_BODY && !s->ended && !s->doomed && !s->body_waiting &&
	       s->body_off < s->body_len && conn_output_length(s->conn) < SMTPC_BODY_WATERMARK) {
		size_t n = s->body_len - s->body_off;
		if (s->body) {
			smtpc_body_write(s, s->body + s->body_off,
					 n < SMTPC_BODY_BLOCK ? n : SMTPC_BODY_BLOCK);
		} else {
			s->body_waiting = 1;
			s->src.want(s->src.arg, n < SMTPC_BODY_READ ? n : SMTPC_BODY_READ);
		}
	}
	s->body_filling = 0;
	if (s->state == ST_BODY && !s->ended && !s->doomed && s->body_off == s->body_len) {
		if (s->body_len > 0 && !s->body_bol)
			conn_write(s->conn, "\r\n", 2);
		s->state = ST_READY;
		s->body = NULL;
		smtpc_set_timeout(s, s->dot_timeout);
		smtpc_push(s, K_CMD, ".");
		/* RFC 2033 4.2: "there is one reply for each successful RCPT command",
		 * "in the same order as the successful RCPT commands". */
		for (size_t i = 1; i < s->dot_replies; i++)
			smtpc_expect(s, K_CMD);
		s->dot_replies = 1;
	}
	smtpc_release(s);
}

void smtpc_body_put(struct smtpc *s, const char *data, size_t n)
{
	if (s->state != ST_BODY || !s->body_waiting || s->ended || s->doomed)
		return;
	if (n == 0) {
		/* Nothing would ever end the body. */
		smtpc_body_abort(s, "the message body source gave nothing");
		return;
	}
	if (n > s->body_len - s->body_off)
		n = s->body_len - s->body_off;
	s->body_waiting = 0;
	smtpc_body_write(s, data, n);
	smtpc_body_fill(s);
}

void smtpc_body_abort(struct smtpc *s, const char *why)
{
	if (s->state != ST_BODY || s->ended || s->doomed)
		return;
	s->body_waiting = 0;
	smtpc_hold(s);
	/* Closed with no final dot: the server drops the transaction (RFC 5321 3.8). */
	smtpc_fail(s, SMTPC_ERR_IO, why);
	if (s->conn)
		conn_close_after_flush(s->conn);
	smtpc_release(s);
}

static void smtpc_on_drain(struct conn *c, void *arg)
{
	struct smtpc *s = arg;
	if (s->state != ST_BODY || s->ended || s->doomed)
		return;
	smtpc_body_fill(s);
}

static int smtpc_tls_setup(struct conn *c, SSL *ssl, void *arg)
{
	struct smtpc *s = arg;
	return s->cbs->tls_setup ? s->cbs->tls_setup(s, ssl, s->arg) : 0;
}

static const struct conn_cbs smtpc_conn_cbs = {
	.tls_setup = smtpc_tls_setup,
	.on_drain = smtpc_on_drain,
	.on_read = smtpc_on_read,
	.on_tls = smtpc_on_tls,
	.on_timeout = smtpc_on_timeout,
	.on_end = smtpc_on_end,
};

static void smtpc_connected(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *s = arg;
	int err = s->connect_errno;
	socklen_t errlen = sizeof(err);
	char info[160];

	smtpc_hold(s);
	if (!err && (what & EV_TIMEOUT))
		err = ETIMEDOUT;
	if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
		err = errno;
	if (err) {
		smtpc_fail(s, SMTPC_ERR_CONNECT, strerror(err));
		smtpc_release(s);
		return;
	}
	smtpc_trace(s, SMTPC_INFO, "connected");
	s->conn = conn_create_client(s->base, s->fd, s->implicit_tls, s->server_name,
				     &smtpc_conn_cbs, s);
	s->fd = -1;
	if (!s->conn) {
		smtpc_fail(s, SMTPC_ERR_IO, "cannot set up the connection");
		smtpc_release(s);
		return;
	}
	conn_set_timeout(s->conn, s->timeout);
	smtpc_reply_deadline(s); /* the greeting, or the implicit TLS handshake */
	s->state = s->implicit_tls ? ST_TLS_IMPLICIT : ST_READY;
	if (s->implicit_tls) {
		snprintf(info, sizeof(info), "TLS handshake (implicit TLS)");
		smtpc_trace(s, SMTPC_INFO, info);
	}
	smtpc_release(s);
}

struct smtpc *smtpc_create(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
			   const struct smtpc_opts *opts, const struct smtpc_cbs *cbs, void *arg)
{
	struct smtpc *s = xcalloc(1, sizeof(*s));
	struct timeval tv;
	s->base = base;
	s->cbs = cbs;
	s->arg = arg;
	s->server_name = xstrdup(opts->server_name ? opts->server_name : "");
	s->implicit_tls = opts->implicit_tls;
	s->timeout = opts->timeout ? opts->timeout : 60;
	s->connect_timeout = opts->connect_timeout ? opts->connect_timeout : s->timeout;
	s->helo_fallback = opts->helo_fallback;
	s->dot_replies = 1;
	s->oauth = -1;
	if (sa->sa_family == AF_INET)
		s->port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	else if (sa->sa_family == AF_INET6)
		s->port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	s->state = ST_CONNECTING;
	linereader_init(&s->lr, SMTPC_LINE_MAX);
	tv.tv_sec = s->connect_timeout;
	tv.tv_usec = 0;
	s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		s->connect_errno = errno;
	else if (connect(s->fd, sa, salen) < 0 && errno != EINPROGRESS)
		s->connect_errno = errno;
	s->ev_connect = event_new(base, s->fd, EV_WRITE, smtpc_connected, s);
	s->ev_reply = evtimer_new(base, smtpc_reply_late, s);
	/* Even an immediate failure is reported from the loop, never from here. */
	if (s->connect_errno)
		event_active(s->ev_connect, EV_WRITE, 0);
	else
		event_add(s->ev_connect, &tv);
	return s;
}

static void smtpc_free(struct smtpc *s)
{
	if (s->ev_connect)
		event_free(s->ev_connect);
	if (s->ev_reply)
		event_free(s->ev_reply);
	conn_destroy(&s->conn);
	if (s->fd >= 0)
		close(s->fd);
	if (s->gs)
		gsasl_finish(s->gs);
	if (s->gctx)
		gsasl_done(s->gctx);
	smtpc_reply_clear(&s->cur);
	smtpc_caps_clear(&s->caps);
	free(s->pend);
	free(s->ehlo_name);
	free(s->server_name);
	free(s);
}

void smtpc_destroy(struct smtpc **sp)
{
	struct smtpc *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	if (s->busy) {
		s->doomed = 1;
		return;
	}
	smtpc_free(s);
}

void smtpc_command(struct smtpc *s, const char *line)
{
	if (!s->conn || s->ended)
		return;
	smtpc_push(s, K_CMD, line);
}

size_t smtpc_pending(const struct smtpc *s) { return s->n_pend; }
int smtpc_used_helo(const struct smtpc *s) { return s->used_helo; }

void smtpc_set_timeout(struct smtpc *s, unsigned seconds)
{
	s->timeout = seconds ? seconds : 60;
	if (s->conn)
		conn_set_timeout(s->conn, s->timeout);
}

static void smtpc_body_start(struct smtpc *s, const char *body, const struct smtpc_body_src *src,
			     size_t len, unsigned block_timeout, unsigned dot_timeout)
{
	if (!s->conn || s->ended)
		return;
	s->state = ST_BODY;
	s->body = body;
	if (src)
		s->src = *src;
	s->body_len = len;
	s->body_off = 0;
	s->body_bol = 1;
	s->body_waiting = 0;
	s->dot_timeout = dot_timeout;
	smtpc_set_timeout(s, block_timeout);
	smtpc_trace(s, SMTPC_INFO, "message body");
	smtpc_body_fill(s);
}

void smtpc_send_body(struct smtpc *s, const char *body, size_t len, unsigned block_timeout,
		     unsigned dot_timeout)
{
	smtpc_body_start(s, body ? body : "", NULL, len, block_timeout, dot_timeout);
}

void smtpc_send_body_from(struct smtpc *s, size_t len, const struct smtpc_body_src *src,
			  unsigned block_timeout, unsigned dot_timeout)
{
	smtpc_body_start(s, NULL, src, len, block_timeout, dot_timeout);
}

void smtpc_dot_replies(struct smtpc *s, size_t n)
{
	s->dot_replies = n ? n : 1;
}

static void smtpc_hello(struct smtpc *s, const char *verb, const char *name)
{
	char line[600];
	if (!s->conn || s->ended)
		return;
	snprintf(line, sizeof(line), "%s %s", verb, name);
	free(s->ehlo_name);
	s->ehlo_name = xstrdup(name);
	s->used_helo = 0;
	smtpc_push(s, K_EHLO, line);
}

void smtpc_ehlo(struct smtpc *s, const char *name)
{
	smtpc_hello(s, "EHLO", name);
}

void smtpc_lhlo(struct smtpc *s, const char *name)
{
	/* RFC 2033 4.1: LHLO in place of EHLO, with the same reply; no HELO to fall
	 * back to. */
	smtpc_hello(s, "LHLO", name);
}

void smtpc_starttls(struct smtpc *s, SSL_CTX *ctx)
{
	if (!s->conn || s->ended)
		return;
	s->starttls_ctx = ctx;
	s->state = ST_STARTTLS;
	smtpc_send(s, "STARTTLS", NULL);
}

/* The channel binding the server computes (net/tls.c tls_channel), seen from the
 * client: tls-exporter on TLS 1.3; on TLS 1.2 tls-unique, RFC 5929 3.1: "the first
 * TLS Finished message sent ... in the most recent TLS handshake", which is our
 * own in a full handshake and the server's in a resumed one. */
static void smtpc_channel_binding(struct smtpc *s, SSL *ssl)
{
	unsigned char cb[64];
	size_t len = 0;
	char *b64 = NULL;
	int exporter = SSL_version(ssl) >= TLS1_3_VERSION;
	if (exporter) {
		static const char label[] = "EXPORTER-Channel-Binding";
		if (SSL_export_keying_material(ssl, cb, 32, label, sizeof(label) - 1, NULL, 0, 0) == 1)
			len = 32;
	} else {
		len = SSL_session_reused(ssl) ? SSL_get_peer_finished(ssl, cb, sizeof(cb))
					      : SSL_get_finished(ssl, cb, sizeof(cb));
	}
	if (len == 0 || gsasl_base64_to((const char *)cb, len, &b64, NULL) != GSASL_OK)
		return;
	gsasl_property_set(s->gs, exporter ? GSASL_CB_TLS_EXPORTER : GSASL_CB_TLS_UNIQUE, b64);
	free(b64);
}

int smtpc_mech_supported(const char *mech)
{
	Gsasl *ctx = NULL;
	int ok;
	if (oauth_sasl_mech(mech) >= 0)
		return 1;
	if (gsasl_init(&ctx) != GSASL_OK)
		return 0;
	ok = gsasl_client_support_p(ctx, mech);
	gsasl_done(ctx);
	return ok;
}

/* XOAUTH2 or OAUTHBEARER: the one client message, as the initial response. */
static int smtpc_auth_oauth(struct smtpc *s, enum oauth_mech m, const char *user, const char *token)
{
	char host[256], *raw, *b64 = NULL, *line, *shown;
	size_t rawlen, n = strlen(s->server_name);
	const char *h = s->server_name;
	/* An address literal's brackets are not part of the host. */
	if (n > 2 && h[0] == '[' && h[n - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(n - 2), h + 1);
	else
		snprintf(host, sizeof(host), "%s", h);
	if (!(raw = oauth_sasl_initial(m, user, host, s->port, token, &rawlen)))
		return -1;
	if (gsasl_base64_to(raw, rawlen, &b64, NULL) != GSASL_OK) {
		xfree_secret(raw, rawlen);
		return -1;
	}
	xfree_secret(raw, rawlen);
	line = xasprintf("AUTH %s %s", oauth_sasl_name(m), b64);
	shown = xasprintf("AUTH %s <hidden>", oauth_sasl_name(m));
	smtpc_send(s, line, shown);
	xfree_secret(line, strlen(line));
	xfree_secret(b64, strlen(b64));
	free(shown);
	s->oauth = (int)m;
	s->oauth_error[0] = '\0';
	s->auth_rounds = 0;
	s->saw_330 = 0;
	s->state = ST_AUTH;
	return 0;
}

const char *smtpc_auth_oauth_error(const struct smtpc *s) { return s->oauth_error; }

int smtpc_auth(struct smtpc *s, const char *mech, const char *user, const char *password)
{
	/* Mechanisms where the server speaks first: no initial response. */
	static const char *const server_first[] = { "LOGIN", "CRAM-MD5", "DIGEST-MD5" };
	int server_speaks_first = 0, rc;
	char *out = NULL, *line, *shown;
	size_t n = strlen(mech);

	if (!s->conn || s->ended || s->gs || s->state == ST_AUTH)
		return -1;
	if (oauth_sasl_mech(mech) >= 0)
		return smtpc_auth_oauth(s, (enum oauth_mech)oauth_sasl_mech(mech), user, password);
	if (!s->gctx && gsasl_init(&s->gctx) != GSASL_OK)
		return -1;
	if (!gsasl_client_support_p(s->gctx, mech) || gsasl_client_start(s->gctx, mech, &s->gs) != GSASL_OK)
		return -1;
	s->auth_rounds = 0;
	gsasl_property_set(s->gs, GSASL_AUTHID, user);
	gsasl_property_set(s->gs, GSASL_PASSWORD, password);
	gsasl_property_set(s->gs, GSASL_SERVICE, "smtp");
	if (*s->server_name)
		gsasl_property_set(s->gs, GSASL_HOSTNAME, s->server_name);
	/* Binding data only for -PLUS: offered to plain SCRAM, the library would send
	 * "y" ("I could bind, you did not offer it"), which a server offering -PLUS
	 * must treat as a downgrade (RFC 5802 6). */
	if (n > 5 && strcasecmp(mech + n - 5, "-PLUS") == 0 && conn_ssl(s->conn))
		smtpc_channel_binding(s, conn_ssl(s->conn));
	for (size_t i = 0; i < sizeof(server_first) / sizeof(server_first[0]); i++)
		if (strcasecmp(mech, server_first[i]) == 0)
			server_speaks_first = 1;
	s->saw_330 = 0;
	if (server_speaks_first) {
		line = xasprintf("AUTH %s", mech);
		smtpc_send(s, line, NULL);
		free(line);
	} else {
		rc = gsasl_step64(s->gs, "", &out);
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			free(out);
			gsasl_finish(s->gs);
			s->gs = NULL;
			return -1;
		}
		/* RFC 4954 4: "If the initial response is zero-length, the client MUST
		 * send the initial response as a single equals sign". */
		line = xasprintf("AUTH %s %s", mech, out && *out ? out : "=");
		shown = xasprintf("AUTH %s <hidden>", mech);
		smtpc_send(s, line, shown);
		explicit_bzero(line, strlen(line));
		free(line);
		free(shown);
		if (out) {
			explicit_bzero(out, strlen(out));
			free(out);
		}
	}
	s->state = ST_AUTH;
	return 0;
}

int smtpc_auth_saw_330(const struct smtpc *s) { return s->saw_330; }
const struct smtpc_caps *smtpc_caps(const struct smtpc *s) { return &s->caps; }
SSL *smtpc_ssl(const struct smtpc *s) { return s->conn ? conn_ssl(s->conn) : NULL; }

int smtpc_local_addr(const struct smtpc *s, char *out, size_t outsz)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = s->conn ? conn_fd(s->conn) : s->fd;
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
	    getnameinfo((struct sockaddr *)&ss, len, out, (socklen_t)outsz, NULL, 0,
			NI_NUMERICHOST) != 0)
		return -1;
	return 0;
}

void smtpc_close(struct smtpc *s)
{
	if (s->conn && !s->ended)
		conn_close_after_flush(s->conn);
	else if (!s->conn)
		smtpc_fail(s, SMTPC_ERR_CLOSED, "closed");
}
