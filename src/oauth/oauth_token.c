/* oauth_token: see oauth_token.h. */
#include "oauth/oauth_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oauth/oauth_sasl.h"
#include "util/jsonscan.h"
#include "util/xmalloc.h"

/* Server text kept for the log and the queue: bounded and printable. */
#define OAUTH_TOKEN_TEXT_MAX 160
/* An expires_in past a day is believed to be a day. */
#define OAUTH_TOKEN_EXPIRES_MAX 86400

int oauth_grant_parse(const char *name)
{
	if (strcmp(name, "refresh_token") == 0)
		return OAUTH_GRANT_REFRESH_TOKEN;
	if (strcmp(name, "client_credentials") == 0)
		return OAUTH_GRANT_CLIENT_CREDENTIALS;
	return -1;
}

/* Appends "&name=value" (or "name=value" first) form-encoded (HTML's
 * application/x-www-form-urlencoded: unreserved octets kept, space "+", the rest
 * %HH), when value is not empty. */
static void oauth_form_add(char **buf, size_t *len, const char *name, const char *value)
{
	char *o;
	if (!value || !*value)
		return;
	*buf = xrealloc(*buf, *len + strlen(name) + strlen(value) * 3 + 3);
	o = *buf + *len;
	o += sprintf(o, "%s%s=", *len ? "&" : "", name);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p))
			*o++ = (char)*p;
		else if (*p == ' ')
			*o++ = '+';
		else
			o += sprintf(o, "%%%02X", *p);
	}
	*o = '\0';
	*len = (size_t)(o - *buf);
}

char *oauth_token_request(const struct oauth_client *c)
{
	char *buf = NULL;
	size_t len = 0;
	oauth_form_add(&buf, &len, "grant_type", c->grant == OAUTH_GRANT_REFRESH_TOKEN
						  ? "refresh_token" : "client_credentials");
	if (c->grant == OAUTH_GRANT_REFRESH_TOKEN)
		oauth_form_add(&buf, &len, "refresh_token", c->refresh_token);
	oauth_form_add(&buf, &len, "client_id", c->client_id);
	oauth_form_add(&buf, &len, "client_secret", c->client_secret);
	oauth_form_add(&buf, &len, "scope", c->scope);
	return buf;
}

/* A copy of server text fit for a log line and a queue record. */
static char *oauth_token_text(char *s)
{
	size_t n = 0;
	if (!s)
		return NULL;
	for (char *p = s; *p && n < OAUTH_TOKEN_TEXT_MAX; p++)
		s[n++] = (unsigned char)*p >= ' ' && *p != 0x7f && *p != '"' && *p != '\\' &&
			 (unsigned char)*p < 0x80 ? *p : '_';
	s[n] = '\0';
	return s;
}

enum oauth_token_result oauth_token_parse(int http_status, const char *body, size_t len,
					  struct oauth_token_reply *r)
{
	char *type = NULL;
	memset(r, 0, sizeof(*r));
	if (!jsonscan_valid(body, len)) {
		r->error = xasprintf("HTTP status %d without a JSON object", http_status);
		return OAUTH_TOKEN_BAD;
	}
	/* RFC 6749 5.2: errors come with 400 (401 for a client that failed to
	 * authenticate); either way "error" says which. */
	if (jsonscan_string(body, len, "error", &r->error) == 1 || http_status != 200) {
		if (!r->error)
			r->error = xasprintf("HTTP status %d", http_status);
		oauth_token_text(r->error);
		jsonscan_string(body, len, "error_description", &r->error_description);
		oauth_token_text(r->error_description);
		return http_status / 100 == 4 ? OAUTH_TOKEN_REFUSED : OAUTH_TOKEN_BAD;
	}
	/* RFC 6749 5.1: access_token and token_type are REQUIRED; only a bearer
	 * token (RFC 6750) can go in XOAUTH2 or OAUTHBEARER. */
	if (jsonscan_string(body, len, "access_token", &r->access_token) != 1 ||
	    !oauth_sasl_token_ok(r->access_token)) {
		oauth_token_reply_clear(r);
		r->error = xstrdup("no usable access_token in the answer");
		return OAUTH_TOKEN_BAD;
	}
	if (jsonscan_string(body, len, "token_type", &type) != 1 || strcasecmp(type, "bearer") != 0) {
		free(type);
		oauth_token_reply_clear(r);
		r->error = xstrdup("token_type is not Bearer");
		return OAUTH_TOKEN_BAD;
	}
	free(type);
	jsonscan_uint(body, len, "expires_in", OAUTH_TOKEN_EXPIRES_MAX, &r->expires_in);
	if (jsonscan_string(body, len, "refresh_token", &r->refresh_token) == 1 &&
	    (!*r->refresh_token || strpbrk(r->refresh_token, "\r\n") ||
	     strlen(r->refresh_token) > 8192)) {
		/* Not one we could store and send back: keep the old one. */
		xfree_secret(r->refresh_token, strlen(r->refresh_token));
		r->refresh_token = NULL;
	}
	return OAUTH_TOKEN_OK;
}

void oauth_token_reply_clear(struct oauth_token_reply *r)
{
	if (r->access_token)
		xfree_secret(r->access_token, strlen(r->access_token));
	if (r->refresh_token)
		xfree_secret(r->refresh_token, strlen(r->refresh_token));
	free(r->error);
	free(r->error_description);
	memset(r, 0, sizeof(*r));
}
