/* cmd_session: the commands that manage the session rather than a message: EHLO,
 * HELO, STARTTLS, RSET, NOOP, QUIT, HELP, VRFY, EXPN. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "smtp/session.h"
#include "smtp/tls_required.h"
#include "util/xmalloc.h"

/* The EHLO/HELO argument: a domain or address literal. Clients in the wild send
 * bare host names and underscores, so any printable token is accepted; it is only
 * ever shown (escaped) in Received and logs. */
static int hello_arg_ok(const char *args, size_t len)
{
	if (len == 0 || len > 255)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)args[i];
		if (c <= ' ' || c >= 0x7f)
			return 0;
	}
	return 1;
}

static int hello_common(struct session *s, const char *verb, const char *args, size_t len)
{
	if (!hello_arg_ok(args, len)) {
		session_reply(s, 501, "5.5.4", "Syntax: %s hostname", verb);
		return -1;
	}
	/* RFC 5321 4.1.4: EHLO in a session resets it as RSET would. */
	session_reset_tx(s);
	free(s->helo);
	s->helo = xstrndup(args, len);
	session_enter(s, S_READY);
	return 0;
}

void cmd_ehlo(struct session *s, const char *args, size_t len)
{
	const char *lines[16];
	char greet[320], size[64], auth[256], legacy[256];
	size_t n = 0, o = 0;
	unsigned offered;
	const struct sasl_mech *mechs;

	if (hello_common(s, "EHLO", args, len) < 0)
		return;
	s->esmtp = 1;
	snprintf(greet, sizeof(greet), "%s Hello %s [%s]", s->cfg->hostname, s->helo, s->addr);
	snprintf(size, sizeof(size), "SIZE %zu", s->limits->max_message_size);
	lines[n++] = greet;
	lines[n++] = "PIPELINING";
	lines[n++] = size;
	lines[n++] = "8BITMIME";
	lines[n++] = "ENHANCEDSTATUSCODES";
	lines[n++] = "SMTPUTF8";
	lines[n++] = "CHUNKING";
	lines[n++] = "DSN";
	if (session_can_starttls(s))
		lines[n++] = "STARTTLS";
	if (tlsreq_offered(s))
		lines[n++] = "REQUIRETLS";
	offered = session_auth_offered(s);
	if (offered) {
		size_t nmechs;
		mechs = sasl_mechs(&nmechs);
		o = (size_t)snprintf(auth, sizeof(auth), "AUTH");
		for (unsigned i = 0; i < nmechs && i < MECH__COUNT; i++)
			if (offered & MECH_BIT(i))
				o += (size_t)snprintf(auth + o, sizeof(auth) - o, " %s", mechs[i].name);
		lines[n++] = auth;
		/* Outlook Express and Outlook 2000 only understood the draft's "AUTH=" form,
		 * and only for LOGIN and PLAIN: offer those there, when they are offered. */
		unsigned old_mechs = offered & (MECH_BIT(MECH_LOGIN) | MECH_BIT(MECH_PLAIN));
		if (s->limits->auth_legacy_line && old_mechs) {
			snprintf(legacy, sizeof(legacy), "AUTH=%s%s%s",
				 (old_mechs & MECH_BIT(MECH_LOGIN)) ? "LOGIN" : "",
				 old_mechs == (MECH_BIT(MECH_LOGIN) | MECH_BIT(MECH_PLAIN)) ? " " : "",
				 (old_mechs & MECH_BIT(MECH_PLAIN)) ? "PLAIN" : "");
			lines[n++] = legacy;
		}
	}
	lines[n++] = "HELP";
	session_reply_lines(s, 250, lines, n);
}

void cmd_helo(struct session *s, const char *args, size_t len)
{
	if (hello_common(s, "HELO", args, len) < 0)
		return;
	s->esmtp = 0;
	session_reply(s, 250, NULL, "%s", s->cfg->hostname);
}

void cmd_starttls(struct session *s, const char *args, size_t len)
{
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	session_enter(s, S_TLS);
	conn_starttls(s->conn, s->tls_ctx);
}

void cmd_rset(struct session *s, const char *args, size_t len)
{
	session_reset_tx(s);
	if (s->state != S_INIT)
		session_enter(s, S_READY);
	session_reply(s, 250, "2.0.0", "Ok");
}

void cmd_noop(struct session *s, const char *args, size_t len)
{
	session_reply(s, 250, "2.0.0", "Ok");
}

void cmd_quit(struct session *s, const char *args, size_t len)
{
	session_reply(s, 221, "2.0.0", "Bye");
	session_close(s);
}

void cmd_help(struct session *s, const char *args, size_t len)
{
	static const char *const lines[] = {
		"2.0.0 cursus: commands are",
		"2.0.0 EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS",
		"2.0.0 End of HELP",
	};
	session_reply_lines(s, 214, lines, 3);
}

void cmd_vrfy(struct session *s, const char *args, size_t len)
{
	/* RFC 5321 3.5.3: 252 when the server will not say whether a user exists. */
	session_reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

void cmd_expn(struct session *s, const char *args, size_t len)
{
	session_reply(s, 502, "5.5.1", "EXPN not available");
}
