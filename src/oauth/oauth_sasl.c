/* oauth_sasl: see oauth_sasl.h. The formats:
 *   OAUTHBEARER (RFC 7628 3.1): gs2-header kvsep *kvpair kvsep, with
 *     gs2-header "n,a=" authzid "," and kvpairs "host=", "port=", "auth=Bearer TOKEN",
 *     each ended by %x01.
 *   XOAUTH2 (Google's and Microsoft's documents): "user=" USER %x01
 *     "auth=Bearer " TOKEN %x01 %x01. */
#include "oauth/oauth_sasl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/jsonscan.h"
#include "util/xmalloc.h"

/* A token endpoint's access tokens run to a few KiB (Microsoft's JWTs ~2-3). */
#define OAUTH_SASL_TOKEN_MAX 8192
#define OAUTH_SASL_USER_MAX 512

int oauth_sasl_mech(const char *name)
{
	if (strcasecmp(name, "XOAUTH2") == 0)
		return OAUTH_MECH_XOAUTH2;
	if (strcasecmp(name, "OAUTHBEARER") == 0)
		return OAUTH_MECH_OAUTHBEARER;
	return -1;
}

const char *oauth_sasl_name(enum oauth_mech m)
{
	return m == OAUTH_MECH_OAUTHBEARER ? "OAUTHBEARER" : "XOAUTH2";
}

/* RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
int oauth_sasl_token_ok(const char *token)
{
	size_t n = strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				 "0123456789-._~+/");
	if (n == 0 || strlen(token) > OAUTH_SASL_TOKEN_MAX)
		return 0;
	return token[n + strspn(token + n, "=")] == '\0';
}

static int oauth_sasl_user_ok(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > OAUTH_SASL_USER_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)user; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

char *oauth_sasl_initial(enum oauth_mech m, const char *user, const char *host, unsigned port,
			 const char *token, size_t *len_r)
{
	char *out, *o;
	if (!oauth_sasl_user_ok(user) || !oauth_sasl_token_ok(token) ||
	    (host && strpbrk(host, "\x01\r\n")))
		return NULL;
	/* Room for the user escaped (3 per octet at worst), the host, the fixed parts. */
	out = xmalloc(strlen(user) * 3 + (host ? strlen(host) : 0) + strlen(token) + 64);
	o = out;
	if (m == OAUTH_MECH_XOAUTH2) {
		o += sprintf(o, "user=%s\001auth=Bearer %s\001\001", user, token);
	} else {
		/* RFC 5801 4: in the authzid, "," is "=2C" and "=" is "=3D". */
		o += sprintf(o, "n,a=");
		for (const char *p = user; *p; p++)
			o += *p == ',' ? sprintf(o, "=2C") : *p == '=' ? sprintf(o, "=3D")
				       : sprintf(o, "%c", *p);
		o += sprintf(o, ",\001");
		if (host && *host)
			o += sprintf(o, "host=%s\001", host);
		if (port)
			o += sprintf(o, "port=%u\001", port);
		o += sprintf(o, "auth=Bearer %s\001\001", token);
	}
	*len_r = (size_t)(o - out);
	return out;
}

int oauth_sasl_parse_error(const char *chal, size_t len, char *status, size_t max)
{
	char *s = NULL;
	size_t n = 0;
	snprintf(status, max, "?");
	if (jsonscan_string(chal, len, "status", &s) != 1)
		return -1;
	/* Server text for our log: printable ASCII only, bounded. */
	for (const char *p = s; *p && n + 1 < max; p++)
		status[n++] = *p > ' ' && *p < 0x7f && *p != '"' && *p != '\\' ? *p : '_';
	free(s);
	if (n == 0) {
		snprintf(status, max, "?");
		return -1;
	}
	status[n] = '\0';
	return 0;
}

const char *oauth_sasl_error_response(enum oauth_mech m, size_t *len_r)
{
	*len_r = m == OAUTH_MECH_OAUTHBEARER ? 1 : 0;
	return m == OAUTH_MECH_OAUTHBEARER ? "\001" : "";
}
