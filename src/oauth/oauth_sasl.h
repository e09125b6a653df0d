/* oauth_sasl: the client side of the two SASL mechanisms that carry an OAuth 2 bearer
 * token: OAUTHBEARER (RFC 7628) and Google's and Microsoft's XOAUTH2, which GNU SASL
 * lacks. Both are one message from the client; a refused token comes back as a 334
 * challenge holding a JSON error, which the client must answer (RFC 7628 3.2.3) before
 * the server gives its final reply. Pure functions: smtpc drives the exchange. The
 * messages built here hold the token: wipe them after use. */
#ifndef CURSUS_OAUTH_SASL_H
#define CURSUS_OAUTH_SASL_H

#include <stddef.h>

enum oauth_mech {
	OAUTH_MECH_XOAUTH2,
	OAUTH_MECH_OAUTHBEARER,
};

/* The mechanism named (any case), or -1. */
int oauth_sasl_mech(const char *name);
const char *oauth_sasl_name(enum oauth_mech m);
/* Whether token is an RFC 6750 2.1 b64token, the only form both mechanisms can carry
 * (no separators to smuggle another key/value in). */
int oauth_sasl_token_ok(const char *token);
/* The initial client response, raw (before base64), malloc'd, length in *len_r.
 * host and port go in OAUTHBEARER's kvpairs when given (host NULL/"" or port 0:
 * left out). NULL when user holds a control character or the token is not a
 * b64token. */
char *oauth_sasl_initial(enum oauth_mech m, const char *user, const char *host, unsigned port,
			 const char *token, size_t *len_r);
/* A server challenge (raw, after base64) during the exchange is the error of RFC 7628
 * 3.2.2: its "status" (a short printable word, e.g. "invalid_token", or Google's
 * "401") into status[0..max). 0, or -1 when it is not such a JSON object (status is
 * then "?"). */
int oauth_sasl_parse_error(const char *chal, size_t len, char *status, size_t max);
/* What the client answers to the error challenge, raw: OAUTHBEARER a single %x01
 * (RFC 7628 3.2.3), XOAUTH2 an empty response. *len_r its length. */
const char *oauth_sasl_error_response(enum oauth_mech m, size_t *len_r);

#endif
