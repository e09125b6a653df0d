/* auth_oauth: OAuth 2 access tokens for relay credentials, in cursus-auth, the process
 * that holds the client secrets and refresh tokens (they never leave it; only an
 * access token goes to the network process, which sends it). Tokens are kept in
 * memory until margin before they expire, fetched from the token endpoint when
 * needed (blocking, bounded by a timeout: cursus-auth's connection threads may wait),
 * and a refresh token the endpoint rotates is written back to the store. One fetch
 * at a time per credential: a rotated refresh token is used by no second request. */
#ifndef CURSUS_AUTH_OAUTH_H
#define CURSUS_AUTH_OAUTH_H

#include <stddef.h>

struct userdb;
struct userdb_relay_oauth;

/* What one request asks, from the network process's configuration. */
struct auth_oauth_req {
	const char *ca;           /* the token endpoint's trust store; NULL: the system's */
	unsigned timeout_ms;      /* the whole HTTPS exchange */
	unsigned margin_ms;       /* refreshed this long before it expires */
	const char *rejected;     /* a token the next hop refused: not to be given again */
};

/* How the token was had: the label of the fetch counter (NULL: from the cache). */
enum auth_oauth_how {
	AUTH_OAUTH_CACHED,
	AUTH_OAUTH_FETCHED,       /* "ok" */
	AUTH_OAUTH_REFUSED,       /* the endpoint said no (invalid_grant, invalid_client) */
	AUTH_OAUTH_ERROR,         /* no usable answer (connection, TLS, HTTP 5xx, format) */
	AUTH_OAUTH_TIMEOUT,       /* no answer within the timeout */
};
const char *auth_oauth_how_name(enum auth_oauth_how h);

/* Once, before threads start. */
void auth_oauth_init(void);
/* An access token (malloc'd; wipe after use) for user's credential o at nexthop: 0,
 * or -1 with reason[] saying why in words fit for a log and a queue record (never a
 * secret). *how_r says whether the endpoint was asked and how it went. */
int auth_oauth_token(struct userdb *db, const char *nexthop, const char *user,
		     const struct userdb_relay_oauth *o, const struct auth_oauth_req *req,
		     char **token_r, enum auth_oauth_how *how_r, char *reason, size_t reasonlen);

#endif
