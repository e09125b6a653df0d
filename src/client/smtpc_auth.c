/* smtpc_auth: the client's side of AUTH (RFC 4954): the exchange started through
 * GNU SASL (with channel binding for -PLUS) or as one XOAUTH2/OAUTHBEARER message,
 * each challenge answered or the exchange cancelled. Secrets are never traced and are
 * wiped after use. */
#include "client/smtpc_int.h"

#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oauth/oauth_sasl.h"
#include "util/xmalloc.h"

void smtpc_auth_end(struct smtpc *s)
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
void smtpc_auth_challenge(struct smtpc *s, const struct smtpc_reply *r)
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
