/* oauth_token: the two messages of an OAuth 2 token request (RFC 6749): the form cursus
 * posts to a token endpoint for the refresh_token grant (6) or the client_credentials
 * grant (4.4), and the endpoint's JSON answer (5.1 success, 5.2 error). Pure: the HTTP
 * exchange is net/https's, the cache cursus-auth's. Both messages hold secrets: the
 * request and the parsed tokens are wiped by their _clear/free. */
#ifndef CURSUS_OAUTH_TOKEN_H
#define CURSUS_OAUTH_TOKEN_H

#include <stddef.h>

enum oauth_grant {
	OAUTH_GRANT_REFRESH_TOKEN,
	OAUTH_GRANT_CLIENT_CREDENTIALS,
};

/* "refresh_token" / "client_credentials", or -1. */
int oauth_grant_parse(const char *name);

struct oauth_client {
	enum oauth_grant grant;
	const char *client_id;
	const char *client_secret;   /* NULL or "": a public client */
	const char *refresh_token;   /* the refresh_token grant's */
	const char *scope;           /* NULL or "": none asked */
};

/* The application/x-www-form-urlencoded body (RFC 6749 4.4.2 / 6, the client
 * authenticating with client_id and client_secret in the body, 2.3.1), malloc'd. */
char *oauth_token_request(const struct oauth_client *c);

struct oauth_token_reply {
	char *access_token;
	char *refresh_token;          /* a new one, when the endpoint rotates them */
	unsigned long long expires_in; /* seconds; 0 when not said */
	char *error;                  /* RFC 6749 5.2's code ("invalid_grant"), printable */
	char *error_description;      /* printable, bounded, or NULL */
};

enum oauth_token_result {
	OAUTH_TOKEN_OK,               /* access_token (a bearer token) */
	OAUTH_TOKEN_REFUSED,          /* an RFC 6749 5.2 error: error set */
	OAUTH_TOKEN_BAD,              /* not an answer we understand: error says why */
};

/* Parses the endpoint's answer to the POST: its HTTP status and body. */
enum oauth_token_result oauth_token_parse(int http_status, const char *body, size_t len,
					  struct oauth_token_reply *r);
void oauth_token_reply_clear(struct oauth_token_reply *r);

#endif
