/* smtpc: the SMTP client (see smtpc.h). Commands sent wait in a FIFO for their
 * replies (PIPELINING); a reply is handed to the owner only when its last line has
 * arrived, and a reply with nothing outstanding is the greeting (or unsolicited). Callbacks may destroy
 * the client: every entry point from the event loop holds it (busy) and frees it on
 * the way out when the owner asked to.
 *
 * Here: the connection, the reply reader and the command FIFO. Reply lines and EHLO
 * capabilities are parsed in smtpc_reply.c, AUTH is smtpc_auth.c, the message body
 * smtpc_body.c; what they share is smtpc_int.h. */
#include "client/smtpc_int.h"

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
#include <unistd.h>

#include "util/linereader.h"
#include "util/xmalloc.h"

static void smtpc_free(struct smtpc *s);

void smtpc_hold(struct smtpc *s) { s->busy++; }

/* Returns -1 when the client is gone (freed here, or to be freed by an outer frame). */
int smtpc_release(struct smtpc *s)
{
	if (--s->busy == 0 && s->doomed) {
		smtpc_free(s);
		return -1;
	}
	return s->doomed ? -1 : 0;
}

void smtpc_trace(struct smtpc *s, char dir, const char *line)
{
	if (s->cbs->transcript && !s->doomed)
		s->cbs->transcript(s->arg, dir, line);
}

void smtpc_fail(struct smtpc *s, enum smtpc_error err, const char *detail)
{
	if (s->ended || s->doomed)
		return;
	s->ended = 1;
	s->cbs->on_error(s, s->arg, err, detail ? detail : "");
}

/* The idle timeout of the connection is reset by every byte; this one is not, so a
 * server that drips a reply (or a handshake) byte by byte still ends in time. */
void smtpc_reply_deadline(struct smtpc *s)
{
	struct timeval tv = {s->timeout, 0};
	if (s->ev_reply)
		evtimer_add(s->ev_reply, &tv);
}

void smtpc_send(struct smtpc *s, const char *line, const char *shown)
{
	smtpc_reply_deadline(s);
	smtpc_trace(s, SMTPC_SENT, shown ? shown : line);
	conn_write(s->conn, line, strlen(line));
	conn_write(s->conn, "\r\n", 2);
}

/* A command whose reply is awaited in turn. */

void smtpc_push(struct smtpc *s, enum smtpc_kind kind, const char *line)
{
	smtpc_expect(s, kind);
	smtpc_trace(s, SMTPC_SENT, line);
	conn_write(s->conn, line, strlen(line));
	conn_write(s->conn, "\r\n", 2);
}

/* One more reply awaited, in turn, for what is or was sent. */
void smtpc_expect(struct smtpc *s, enum smtpc_kind kind)
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
