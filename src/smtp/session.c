/* session: lifecycle, input loop, the command table and its dispatcher. Policy
 * (state, TLS, AUTH, arguments) is data in the command table, checked here once for
 * every command before the command's own handler runs, and refused with one reply
 * text per reason; handlers only do their command's work. */
#include "smtp/session.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/tls.h"
#include "sasl/authlimit.h"
#include "smtp/trace.h"
#include "util/addrcount.h"
#include "smtp/command.h"
#include "util/xmalloc.h"

#define CF_NEED_HELO  0x01   /* after EHLO/HELO */
#define CF_NO_TX      0x02   /* not inside a mail transaction */
#define CF_NEED_MAIL  0x04   /* after MAIL */
#define CF_NEED_RCPT  0x08   /* after a successful RCPT */
#define CF_NO_ARGS    0x10   /* takes no arguments */
#define CF_NEED_AUTH  0x20   /* after a successful AUTH */
#define CF_NO_AUTH    0x40   /* before a successful AUTH */
#define CF_NO_TLS     0x80   /* before TLS is up */
#define CF_STARTTLS   0x100  /* only where the listener offers STARTTLS */
/* The command reads what follows it (a BDAT chunk) whatever the verdict, and sends
 * the refusal itself once that is read: it asks session_cmd_refusal(). */
#define CF_DEFERRED   0x200
/* A command of the mail transaction: its refusals count as rejections (metrics.h). */
#define CF_TX         0x400

struct cmd_def {
	void (*fn)(struct session *s, const char *args, size_t len);
	unsigned flags;
	unsigned submission_flags; /* added on submission and submissions listeners */
};

/* RFC 5321 4.1.4 gives the order; RFC 2920 lets clients pipeline all of it. */
static const struct cmd_def cmd_table[CMD__COUNT] = {
	[CMD_EHLO] = {cmd_ehlo, 0, 0},
	[CMD_HELO] = {cmd_helo, 0, 0},
	/* RFC 6409 4.3: submission accepts mail from authenticated users only. */
	[CMD_MAIL] = {cmd_mail, CF_TX | CF_NEED_HELO | CF_NO_TX, CF_NEED_AUTH},
	[CMD_RCPT] = {cmd_rcpt, CF_TX | CF_NEED_MAIL, 0},
	[CMD_DATA] = {cmd_data, CF_TX | CF_NEED_RCPT | CF_NO_ARGS, 0},
	[CMD_BDAT] = {cmd_bdat, CF_TX | CF_NEED_RCPT | CF_DEFERRED, 0},
	[CMD_RSET] = {cmd_rset, CF_NO_ARGS, 0},
	[CMD_NOOP] = {cmd_noop, 0, 0},
	[CMD_QUIT] = {cmd_quit, CF_NO_ARGS, 0},
	[CMD_HELP] = {cmd_help, 0, 0},
	[CMD_VRFY] = {cmd_vrfy, 0, 0},
	[CMD_EXPN] = {cmd_expn, 0, 0},
	/* Not CF_NEED_HELO: gsasl --starttls sends it first, Postfix and Dovecot accept
	 * that, and STARTTLS resets the session anyway (RFC 3207 4.2). */
	[CMD_STARTTLS] = {cmd_starttls, CF_NO_ARGS | CF_NO_TLS | CF_STARTTLS, 0},
	/* RFC 4954 4: "After an AUTH command has successfully completed, no more AUTH
	 * commands may be issued in the same session"; nor during a mail transaction. */
	[CMD_AUTH] = {cmd_auth, CF_NEED_HELO | CF_NO_TX | CF_NO_AUTH, 0},
};

/* Every policy refusal, each text once. */
enum refusal_id {
	R_NEED_HELO, R_NEED_AUTH, R_NESTED_MAIL, R_NEED_MAIL, R_NEED_RCPT, R_AUTHED, R_TLS_ACTIVE,
	R_NO_STARTTLS,
};
static const struct cmd_refusal refusals[] = {
	[R_NEED_HELO] = {503, "5.5.1", "Error: send EHLO/HELO first"},
	/* RFC 4954 6: 530 when the server requires authentication first. */
	[R_NEED_AUTH] = {530, "5.7.0", "Authentication required", REJECT_AUTH_REQUIRED},
	[R_NESTED_MAIL] = {503, "5.5.1", "Error: nested MAIL command"},
	[R_NEED_MAIL] = {503, "5.5.1", "Error: need MAIL command"},
	[R_NEED_RCPT] = {503, "5.5.1", "Error: need RCPT command"},
	[R_AUTHED] = {503, "5.5.1", "Error: already authenticated"},
	[R_TLS_ACTIVE] = {503, "5.5.1", "Error: TLS already active"},
	[R_NO_STARTTLS] = {502, "5.5.1", "Error: STARTTLS not offered here"},
};

static const char *const state_names[] = {
	"init", "ready", "mail", "rcpt", "data", "bdat", "auth", "tls", "closing",
};

static void session_free(struct session *s);

/* Commands are read up to the AUTH limit, since AUTH may carry a long initial
 * response; other commands are then held to max_command_line in dispatch. */
static size_t session_line_limit(const struct session *s, enum smtp_state st)
{
	const struct limits *l = s->limits;
	if (st == S_DATA)
		return l->max_text_line;
	if (st == S_AUTH)
		return l->max_auth_line;
	return l->max_auth_line > l->max_command_line ? l->max_auth_line : l->max_command_line;
}

void session_enter(struct session *s, enum smtp_state next)
{
	/* Closing is final: a handler that finishes after a 421 must not revive the
	 * session and let pipelined commands run. */
	if (s->state == next || s->state == S_CLOSING)
		return;
	log_debug("smtp session=%s state=%s->%s", s->id, state_names[s->state], state_names[next]);
	s->state = next;
	session_deadline_state(s, next);
	linereader_init(&s->lr, session_line_limit(s, next));
}

void session_trace(const struct session *s, char dir, const char *text, size_t len)
{
	char esc[LOG_ESCAPE_BUFSZ];
	if (s->trace)
		log_info("trace session=%s %c: %s", s->id, dir, log_escape(esc, sizeof(esc), text, len));
}

/* The server's side of the trace: SASL challenges are AUTH payloads too. */
static void session_trace_reply(const struct session *s, const char *line, size_t len)
{
	if (!s->trace)
		return;
	if (len >= 4 && memcmp(line, "334 ", 4) == 0 && len > 4)
		session_trace(s, 'S', "334 <hidden>", 12);
	else
		session_trace(s, 'S', line, len);
}

/* The client's side: an AUTH initial response and every SASL response are hidden. */
static void session_trace_command(const struct session *s, const char *line, size_t len)
{
	const char *sp;
	if (!s->trace)
		return;
	if (s->state == S_AUTH) {
		session_trace(s, 'C', "<hidden>", 8);
		return;
	}
	if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0 && (sp = memchr(line + 5, ' ', len - 5))) {
		char buf[64];
		int n = snprintf(buf, sizeof(buf), "%.*s <hidden>", (int)(sp - line < 40 ? sp - line : 40), line);
		session_trace(s, 'C', buf, (size_t)n);
		return;
	}
	/* A line that is no command may be a SASL response sent after the exchange
	 * ended (a pipelined password after a 538): never log its content. */
	struct smtp_command cmd;
	if (command_parse(line, len, &cmd) < 0 || cmd.verb == CMD_UNKNOWN) {
		char buf[64];
		int n = snprintf(buf, sizeof(buf), "<unrecognized, %zu octets>", len);
		session_trace(s, 'C', buf, (size_t)n);
		return;
	}
	session_trace(s, 'C', line, len);
}

static void session_vreply(struct session *s, int code, const char *enh, const char *fmt, va_list ap)
{
	char text[1024];
	char line[1100];
	int n;
	if (!s->conn || s->state == S_CLOSING)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	n = enh ? snprintf(line, sizeof(line), "%d %s %s\r\n", code, enh, text)
		: snprintf(line, sizeof(line), "%d %s\r\n", code, text);
	if (n >= (int)sizeof(line))
		n = sizeof(line) - 1, line[n - 2] = '\r', line[n - 1] = '\n';
	conn_write(s->conn, line, (size_t)n);
	session_trace_reply(s, line, (size_t)n - 2);
	if (code >= 400 && code != 421 && ++s->errors >= s->limits->max_errors) {
		n = snprintf(line, sizeof(line), "421 4.7.0 %s Too many errors, closing connection\r\n",
			     s->cfg->hostname);
		conn_write(s->conn, line, (size_t)n);
		session_trace_reply(s, line, (size_t)n - 2);
		log_info("smtp session=%s event=error-limit errors=%u", s->id, s->errors);
		session_close(s);
	}
}

void session_reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	session_vreply(s, code, enh, fmt, ap);
	va_end(ap);
}

void session_reply_lines(struct session *s, int code, const char *const *lines, size_t n)
{
	struct evbuffer *out;
	if (!s->conn || s->state == S_CLOSING)
		return;
	out = evbuffer_new();
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%d%c%s\r\n", code, i + 1 < n ? '-' : ' ', lines[i]);
	if (s->trace) {
		/* Traced only when asked: EHLO is on every session's path. */
		for (size_t i = 0; i < n; i++) {
			char line[600];
			int len = snprintf(line, sizeof(line), "%d%c%s", code, i + 1 < n ? '-' : ' ', lines[i]);
			session_trace_reply(s, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
		}
	}
	size_t len = evbuffer_get_length(out);
	conn_write(s->conn, evbuffer_pullup(out, -1), len);
	evbuffer_free(out);
}

void session_close(struct session *s)
{
	session_enter(s, S_CLOSING);
	if (s->conn)
		conn_close_after_flush(s->conn);
}

void session_reset_tx(struct session *s)
{
	envelope_clear(&s->env);
	data_reset(s);
	s->body_bad = 0;
	s->declared_size = 0;
	s->nrcpts = 0;
	s->bdat_used = 0;
	s->bdat_left = 0;
	s->bdat_last = 0;
	s->bdat_refuse = 0;
	s->bdat_prev = 0;
}

int session_inflight_charge(struct session *s, size_t n)
{
	const struct config *cfg = s->cfg;
	if (s->srv->inflight + n > cfg->max_inflight_bytes ||
	    (s->client_bytes && *s->client_bytes + n > cfg->max_client_inflight_bytes))
		return -1;
	s->srv->inflight += n;
	if (s->client_bytes)
		*s->client_bytes += n;
	s->body_held += n;
	return 0;
}

void session_inflight_handoff(struct session *s, size_t n)
{
	if (n > s->body_held)
		n = s->body_held;
	if (s->client_bytes)
		*s->client_bytes -= n;
	s->body_held -= n;
}

void session_inflight_release(struct session *s)
{
	s->srv->inflight -= s->body_held;
	if (s->client_bytes)
		*s->client_bytes -= s->body_held;
	s->body_held = 0;
}

void session_park(struct session *s)
{
	/* Waiting for a worker or the queue is not the client's time. */
	if (s->deadline_kind != DL_HANDSHAKE)
		session_deadline_set(s, DL_NONE);
	s->parked = 1;
	conn_pause(s->conn);
}

int session_unpark(struct session *s)
{
	s->parked = 0;
	if (s->dead) {
		session_free(s);
		return -1;
	}
	conn_resume(s->conn);
	return 0;
}

static unsigned session_cmd_flags(const struct session *s, enum smtp_verb verb)
{
	const struct cmd_def *def = &cmd_table[verb];
	enum listener_role role = s->lc->role;
	return def->flags | (role == ROLE_SUBMISSION || role == ROLE_SUBMISSIONS ? def->submission_flags : 0);
}

const struct cmd_refusal *session_cmd_refusal(const struct session *s, enum smtp_verb verb)
{
	unsigned f = session_cmd_flags(s, verb);
	int in_tx = s->state == S_MAIL || s->state == S_RCPT;

	if ((f & CF_NEED_HELO) && s->state == S_INIT)
		return &refusals[R_NEED_HELO];
	if ((f & CF_NEED_AUTH) && !s->user)
		return &refusals[R_NEED_AUTH];
	if ((f & CF_NO_TX) && in_tx)
		return &refusals[R_NESTED_MAIL];
	if ((f & (CF_NEED_MAIL | CF_NEED_RCPT)) && !in_tx)
		return &refusals[R_NEED_MAIL];
	if ((f & CF_NEED_RCPT) && s->state != S_RCPT)
		return &refusals[R_NEED_RCPT];
	if ((f & CF_NO_AUTH) && s->user)
		return &refusals[R_AUTHED];
	if ((f & CF_NO_TLS) && s->tls)
		return &refusals[R_TLS_ACTIVE];
	if ((f & CF_STARTTLS) && (s->lc->tls != TLS_STARTTLS || !s->tls_ctx))
		return &refusals[R_NO_STARTTLS];
	return NULL;
}

void session_reply_refusal(struct session *s, const struct cmd_refusal *r)
{
	session_reply(s, r->code, r->enhanced, "%s", r->text);
}

void session_rejected(const struct session *s, enum metrics_reject why)
{
	metrics_reject(s->lc->name, why);
}

int session_can_starttls(const struct session *s)
{
	return session_cmd_refusal(s, CMD_STARTTLS) == NULL;
}

static void session_dispatch(struct session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	const struct cmd_def *def;
	const struct cmd_refusal *r;

	s->commands++;
	if (command_parse(line, len, &cmd) < 0 || cmd.verb == CMD_UNKNOWN) {
		session_reply(s, 500, "5.5.2", "Syntax error, command unrecognized");
		return;
	}
	/* RFC 5321 4.5.3.1.4: 512 octets for a command line; RFC 4954 4 lets AUTH be longer. */
	if (cmd.verb != CMD_AUTH && len + 2 > s->limits->max_command_line) {
		session_reply(s, 500, "5.5.2", "Line too long (limit %zu octets)", s->limits->max_command_line);
		return;
	}
	def = &cmd_table[cmd.verb];
	if (!def->fn) {
		session_reply(s, 502, "5.5.1", "Command not implemented");
		return;
	}
	if ((def->flags & CF_NO_ARGS) && cmd.args_len > 0) {
		session_reply(s, 501, "5.5.4", "Syntax error: %s takes no arguments", command_verb_name(cmd.verb));
		return;
	}
	if (!(def->flags & CF_DEFERRED) && (r = session_cmd_refusal(s, cmd.verb))) {
		if (def->flags & CF_TX)
			session_rejected(s, r->reject);
		session_reply_refusal(s, r);
		return;
	}
	def->fn(s, cmd.args, cmd.args_len);
}

static int cmd_is_auth(const char *line, size_t len)
{
	return len >= 4 && strncasecmp(line, "AUTH", 4) == 0;
}

static void session_line_error(struct session *s, enum line_status st)
{
	switch (st) {
	case LINE_TOO_LONG:
		/* RFC 5321 4.5.3.1.4: command lines are at most 512 octets. */
		session_reply(s, 500, "5.5.2", "Line too long (limit %zu octets)", s->lr.limit);
		break;
	case LINE_BARE_LF:
	case LINE_BARE_CR:
		/* RFC 5321 2.3.8: bare CR or LF is never a line end. */
		session_reply(s, 500, "5.5.2", "Bare CR or LF in command line; use CRLF");
		break;
	default:
		break;
	}
}

/* A bare LF ended a command line (or an over-long one). Whatever follows may be a
 * command the client never meant, or one smuggled past a proxy that splits on LF:
 * nothing after it is read. As Postfix's smtpd_forbid_bare_newline=reject. */
static void session_bare_lf(struct session *s)
{
	log_info("smtp session=%s event=bare-lf state=%s", s->id, state_names[s->state]);
	session_reply(s, 550, "5.5.2", "Error: bare <LF> received");
	session_close(s);
}

void session_process(struct session *s)
{
	char line[64 * 1024]; /* the configuration caps every line limit at 64 KiB */
	while (!s->parked && s->conn && s->state != S_CLOSING && s->state != S_TLS) {
		struct evbuffer *in = conn_input(s->conn);
		size_t avail = evbuffer_get_length(in), len, consumed, want;
		enum line_status st;
		unsigned char *p;

		if (avail == 0)
			break;
		if (s->state == S_BDAT) {
			struct evbuffer_iovec v;
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				break;
			size_t n = v.iov_len < s->bdat_left ? v.iov_len : s->bdat_left;
			cmd_bdat_bytes(s, v.iov_base, n);
			evbuffer_drain(in, n);
			continue;
		}
		want = avail < s->lr.limit ? avail : s->lr.limit;
		p = evbuffer_pullup(in, (ev_ssize_t)want);
		st = linereader_next(&s->lr, (const char *)p, want, &len, &consumed);
		if (s->state == S_DATA) {
			if (st != LINE_NEED_MORE)
				cmd_data_line(s, st, (const char *)p, len);
			evbuffer_drain(in, consumed);
			if (st == LINE_NEED_MORE && consumed == 0)
				break;
			continue;
		}
		if (st == LINE_OK && len < sizeof(line))
			memcpy(line, p, len);
		/* Consumed before dispatch: STARTTLS drops what follows it in the buffer. */
		evbuffer_drain(in, consumed);
		if (st == LINE_NEED_MORE) {
			if (consumed == 0)
				break;
			continue;
		}
		session_deadline_input(s, 1);
		if (st != LINE_OK) {
			session_trace(s, 'C', st == LINE_TOO_LONG ? "<line too long>" : "<line with bare CR or LF>",
				      st == LINE_TOO_LONG ? 15 : 25);
			if (st == LINE_BARE_LF || (st == LINE_TOO_LONG && !s->lr.crlf)) {
				session_bare_lf(s);
				continue;
			}
			if (s->state == S_AUTH)
				cmd_auth_line_error(s, st);
			else
				session_line_error(s, st);
			continue;
		}
		session_trace_command(s, line, len);
		if (s->state == S_AUTH) {
			cmd_auth_line(s, line, len);
			explicit_bzero(line, len);
			continue;
		}
		session_dispatch(s, line, len);
		if (cmd_is_auth(line, len))
			explicit_bzero(line, len); /* may hold an initial response */
	}
	/* A command begun but not ended has until its deadline, however it trickles. */
	if (s->conn)
		session_deadline_input(s, 0);
}

static void session_on_read(struct conn *c, void *arg)
{
	session_process(arg);
}

static void session_on_tls(struct conn *c, void *arg)
{
	struct session *s = arg;
	tls_describe(conn_ssl(c), s->tls_info, sizeof(s->tls_info));
	tls_channel(conn_ssl(c), &s->chan);
	s->tls = 1;
	if (s->deadline_kind == DL_HANDSHAKE)
		session_deadline_set(s, DL_NONE);
	log_info("smtp session=%s event=tls %s", s->id, s->tls_info);
	metrics_add(METRIC_TLS, 1, s->lc->name, SSL_get_version(conn_ssl(c)), NULL);
	if (s->trace)
		log_info("trace session=%s tls=established %s", s->id, s->tls_info);
	if (s->state == S_TLS) {
		/* RFC 3207 4.2: "the server MUST discard any knowledge obtained from the
		 * client, such as the argument to the EHLO command". */
		free(s->helo);
		s->helo = NULL;
		s->esmtp = 0;
		cmd_auth_cleanup(s);
		session_reset_tx(s);
		session_enter(s, S_INIT);
		session_process(s);
	}
}

static const char *const end_names[] = {"eof", "error", "timeout", "closed", "tls-failed"};

static void session_on_end(struct conn *c, void *arg, enum conn_end why, const char *detail)
{
	struct session *s = arg;
	if (s->trace)
		log_info("trace session=%s end=%s%s%s", s->id, end_names[why], detail && *detail ? " detail=" : "",
			 detail ? detail : "");
	log_info("smtp session=%s event=disconnect reason=%s%s%s commands=%u messages=%u", s->id,
		 end_names[why], detail && *detail ? " detail=" : "", detail ? detail : "",
		 s->commands, s->messages);
	conn_destroy(&s->conn);
	if (s->parked)
		s->dead = 1;
	else
		session_free(s);
}

static void session_on_timeout(struct conn *c, void *arg)
{
	struct session *s = arg;
	log_info("smtp session=%s event=timeout state=%s", s->id, state_names[s->state]);
	session_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->cfg->hostname);
	session_close(s);
}

static void session_lifetime_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (!s->conn || s->state == S_CLOSING)
		return;
	if (s->deadline_kind == DL_HANDSHAKE) {
		/* No reply can pass an unfinished handshake; this may free the session. */
		log_info("smtp session=%s event=timeout deadline=session state=tls-handshake", s->id);
		conn_abort(s->conn, "session time limit in tls handshake");
		return;
	}
	session_reply(s, 421, "4.4.2", "%s Error: session time limit exceeded", s->cfg->hostname);
	session_close(s);
}

static void session_free(struct session *s)
{
	if (s->lifetime)
		event_free(s->lifetime);
	session_deadline_free(s);
	conn_destroy(&s->conn);
	cmd_auth_cleanup(s);
	session_reset_tx(s);
	free(s->helo);
	if (s->lprev)
		s->lprev->lnext = s->lnext;
	else
		s->listener->sessions = s->lnext;
	if (s->lnext)
		s->lnext->lprev = s->lprev;
	s->listener->nsessions--;
	s->srv->nsessions--;
	session_stress_update(s->listener);
	addrcount_dec(s->srv->clients, (struct sockaddr *)&s->sa);
	if (s->tls_ctx)
		SSL_CTX_free(s->tls_ctx);
	config_release(&s->cfg);
	free(s);
}

static const struct conn_cbs session_cbs = {
	.on_read = session_on_read,
	.on_tls = session_on_tls,
	.on_timeout = session_on_timeout,
	.on_end = session_on_end,
};

/* A full listener makes room by ending its oldest session that has achieved nothing
 * yet: not authenticated, no transaction, not waiting for a worker. Slow clients that
 * only hold slots (a trickled command line or TLS handshake) thus cannot lock out a
 * client that gets on with its mail: whoever arrives gets a slot, and keeps it by
 * authenticating or starting a transaction. Returns whether a session was ended. */
static int session_evict_idle(struct smtp_listener *l)
{
	struct session *victim = NULL;
	for (struct session *s = l->sessions; s; s = s->lnext) {
		/* Newest first: the last match is the oldest. */
		if (s->user || s->parked || !s->conn ||
		    (s->state != S_INIT && s->state != S_READY && s->state != S_TLS))
			continue;
		victim = s;
	}
	if (!victim)
		return 0;
	log_info("smtp session=%s event=evicted reason=listener-full listener=%s client=%s state=%s",
		 victim->id, l->lc->name, victim->addr, state_names[victim->state]);
	metrics_add(METRIC_SESSIONS_REFUSED, 1, l->lc->name, "evicted", NULL);
	if (!conn_ssl(victim->conn) && victim->state != S_TLS && victim->deadline_kind != DL_HANDSHAKE) {
		char line[256];
		int n = snprintf(line, sizeof(line), "421 4.3.2 %s Too many sessions, closing an idle "
				 "connection\r\n", l->cfg->hostname);
		if (n > 0 && (size_t)n < sizeof(line))
			(void)send(conn_fd(victim->conn), line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	conn_abort(victim->conn, "evicted: the listener is full");
	return 1;
}

/* Why a new connection is refused before any session is made for it, or NULL, with
 * the reply. These refusals are for want of room, so they must cost none. */
static const char *session_refusal(struct smtp_listener *l, const struct sockaddr *sa, unsigned nclient,
				   int *code, const char **enh, const char **text)
{
	const struct limits *lim = &l->lc->limits;
	*code = 421;
	*enh = "4.7.0";
	if (l->nsessions >= lim->max_sessions) {
		*enh = "4.3.2";
		*text = "Too many sessions, try again later";
		return "sessions";
	}
	if (nclient > lim->max_client_sessions) {
		/* One client must not hold every slot of the server. */
		*text = "Too many connections from your address, try again later";
		return "client-sessions";
	}
	return NULL;
}

/* A connection refused for want of room is closed at once: it must neither count
 * against the listener nor wait for anything from the client. In clear the 421 fits any socket buffer. On
 * implicit TLS nothing is sent: a cleartext reply is unreadable to a client expecting
 * a ServerHello, and answering in TLS would mean doing the handshake the refusal is
 * meant to save; the client sees the connection closed and retries later. */
static void session_refuse(struct smtp_listener *l, int fd, const char *addr, const char *why,
			   unsigned nclient, int code, const char *enh, const char *text)
{
	char line[512];
	int n;
	log_info("smtp event=refused reason=%s listener=%s client=%s count=%u", why, l->lc->name, addr,
		 nclient);
	metrics_add(METRIC_SESSIONS_REFUSED, 1, l->lc->name, why, NULL);
	if (l->lc->tls != TLS_IMPLICIT) {
		n = snprintf(line, sizeof(line), "%d %s %s %s\r\n", code, enh, l->cfg->hostname, text);
		if (n > 0 && (size_t)n < sizeof(line))
			(void)send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	close(fd);
}

void session_accept(struct smtp_listener *l, int fd, const struct sockaddr *sa, int salen)
{
	struct smtp_server *srv = l->srv;
	const struct listener_conf *lc = l->lc;
	struct session *s;
	struct timeval tv;
	unsigned nclient;
	char addr[INET6_ADDRSTRLEN];
	const char *why, *enh, *text;
	int code, exempt;

	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof(addr));
	else if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof(addr));
	else
		snprintf(addr, sizeof(addr), "local");
	/* Local programs are not held to the per-client limits (all share one key). */
	exempt = lc->role == ROLE_LOCAL || netlist_match(&srv->client_exempt, sa);
	nclient = addrcount_inc(srv->clients, sa);
	if (l->nsessions >= lc->limits.max_sessions && (nclient <= lc->limits.max_client_sessions || exempt))
		session_evict_idle(l);
	if ((why = session_refusal(l, sa, exempt ? 0 : nclient, &code, &enh, &text))) {
		addrcount_dec(srv->clients, sa);
		session_refuse(l, fd, addr, why, nclient, code, enh, text);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->listener = l;
	s->cfg = config_ref(l->cfg);
	s->lc = lc;
	if ((s->tls_ctx = srv->tls))
		SSL_CTX_up_ref(s->tls_ctx);
	s->limits = &lc->limits;
	snprintf(s->id, sizeof(s->id), "%08" PRIx64, ++srv->next_id);
	memcpy(&s->sa, sa, (size_t)salen < sizeof(s->sa) ? (size_t)salen : sizeof(s->sa));
	memcpy(s->addr, addr, sizeof(s->addr));
	/* Exempt addresses (local programs) are not held to any per-client limit. */
	s->client_bytes = exempt ? NULL : addrcount_bytes(srv->clients, sa);
	s->peer_uid = s->peer_pid = -1;
	if (lc->role == ROLE_LOCAL) {
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
			/* Without the kernel's word on who calls, no trace field can be true. */
			log_warn("smtp session=%s event=refused reason=no-peer-credentials", s->id);
			close(fd);
			addrcount_dec(srv->clients, sa);
			free(s);
			return;
		}
		s->peer_uid = (long)cred.uid;
		s->peer_pid = (long)cred.pid;
	}
	s->lnext = l->sessions;
	if (l->sessions)
		l->sessions->lprev = s;
	l->sessions = s;
	l->nsessions++;
	srv->nsessions++;
	session_deadline_init(s);
	session_stress_update(l);
	s->conn = conn_create(srv->base, fd, lc->tls == TLS_IMPLICIT ? s->tls_ctx : NULL, &session_cbs, s);
	if (!s->conn) {
		log_warnx("smtp event=accept-failed client=%s", s->addr);
		session_free(s);
		return;
	}
	s->state = S_INIT;
	conn_set_timeout_ms(s->conn, session_timeout_ms(s, lc->limits.command_timeout_ms));
	if (lc->tls == TLS_IMPLICIT)
		session_deadline_set(s, DL_HANDSHAKE);
	linereader_init(&s->lr, lc->limits.max_command_line);
	if (s->peer_uid >= 0)
		log_info("smtp session=%s event=connect listener=%s client=%s uid=%ld pid=%ld", s->id,
			 lc->name, s->addr, s->peer_uid, s->peer_pid);
	else
		log_info("smtp session=%s event=connect listener=%s client=%s", s->id, lc->name, s->addr);
	metrics_add(METRIC_SESSIONS_TOTAL, 1, lc->name, NULL, NULL);
	if ((s->trace = trace_match_addr(srv->trace, sa)))
		log_info("trace session=%s start client=%s listener=%s", s->id, s->addr, lc->name);
	if (authlimit_addr_blocked(srv->authlimit, sa, time(NULL)) > 0) {
		/* This address spent its AUTH failure budget: refused for the cooldown. A
		 * session of its own (counted, under the handshake deadline) so that a user
		 * who mistyped a password reads why, also over implicit TLS. */
		log_info("smtp session=%s event=refused reason=auth-budget client=%s", s->id, s->addr);
		metrics_add(METRIC_SESSIONS_REFUSED, 1, lc->name, "auth-budget", NULL);
		session_reply(s, 421, "4.7.0", "%s Too many failed authentications, try again later",
			      s->cfg->hostname);
		session_close(s);
		return;
	}
	s->lifetime = evtimer_new(srv->base, session_lifetime_cb, s);
	tv.tv_sec = lc->limits.session_timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(lc->limits.session_timeout_ms % 1000) * 1000;
	evtimer_add(s->lifetime, &tv);
	session_reply(s, 220, NULL, "%s ESMTP cursus", s->cfg->hostname);
}
