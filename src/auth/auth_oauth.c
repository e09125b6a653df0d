/* auth_oauth: see auth_oauth.h. The cache is a short list (one entry per OAuth
 * credential in use), each entry with its own lock held across a fetch, so requests
 * for one credential wait for the one fetch in flight and then share its token. */
#include "auth/auth_oauth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/https.h"
#include "oauth/oauth_token.h"
#include "store/userdb.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* Without expires_in (RFC 6749 5.1 only RECOMMENDS it) a token is believed for this
 * long; a refusal by the next hop refreshes it sooner. */
#define AUTH_OAUTH_DEFAULT_LIFETIME 600
/* A token endpoint's answer is a small JSON object. */
#define OAUTH_ANSWER_MAX (64 * 1024)

struct auth_oauth_ent {
	char *key;                 /* grant, endpoint, client, scope, user */
	pthread_mutex_t mu;        /* held across a fetch */
	char *token;               /* NULL: none */
	struct timespec fresh_until;
	/* The last fetch that failed: when it ended, how and why. A request that waited
	 * for it shares its outcome rather than trying again, so no request waits for
	 * two fetches (the network process gives cursus-auth 60 s for an answer). */
	struct timespec failed_at;
	char failed_why[600];
	struct auth_oauth_ent *next;
};

static pthread_mutex_t auth_oauth_mu = PTHREAD_MUTEX_INITIALIZER;
static struct auth_oauth_ent *auth_oauth_ents;

const char *auth_oauth_how_name(enum auth_oauth_how h)
{
	static const char *const names[] = { "cached", "ok", "refused", "error", "timeout" };
	return names[h];
}

void auth_oauth_init(void)
{
	https_init();
}

static struct auth_oauth_ent *auth_oauth_ent_get(const char *key)
{
	struct auth_oauth_ent *e;
	pthread_mutex_lock(&auth_oauth_mu);
	for (e = auth_oauth_ents; e && strcmp(e->key, key) != 0; e = e->next)
		;
	if (!e) {
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		pthread_mutex_init(&e->mu, NULL);
		e->next = auth_oauth_ents;
		auth_oauth_ents = e;
	}
	pthread_mutex_unlock(&auth_oauth_mu);
	return e;
}

static void auth_oauth_forget(struct auth_oauth_ent *e)
{
	if (e->token)
		xfree_secret(e->token, strlen(e->token));
	e->token = NULL;
}

static int auth_oauth_fresh(const struct auth_oauth_ent *e, const struct auth_oauth_req *req)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!e->token || (req->rejected && strcmp(req->rejected, e->token) == 0))
		return 0;
	return now.tv_sec < e->fresh_until.tv_sec ||
	       (now.tv_sec == e->fresh_until.tv_sec && now.tv_nsec < e->fresh_until.tv_nsec);
}

/* Used until margin before it expires, and at least half its life when the margin
 * is longer than that (a provider's short-lived test token). */
static void auth_oauth_set_expiry(struct auth_oauth_ent *e, unsigned long long expires_in,
				  unsigned margin_ms)
{
	unsigned long long life_ms = (expires_in ? expires_in : AUTH_OAUTH_DEFAULT_LIFETIME) * 1000;
	unsigned long long use_ms = margin_ms < life_ms / 2 ? life_ms - margin_ms : life_ms / 2;
	clock_gettime(CLOCK_MONOTONIC, &e->fresh_until);
	e->fresh_until.tv_sec += (time_t)(use_ms / 1000);
	e->fresh_until.tv_nsec += (long)(use_ms % 1000) * 1000000L;
	if (e->fresh_until.tv_nsec >= 1000000000L) {
		e->fresh_until.tv_sec++;
		e->fresh_until.tv_nsec -= 1000000000L;
	}
}

/* One exchange with the endpoint; the entry's lock is held. */
static int auth_oauth_fetch(struct userdb *db, const char *nexthop, const char *hop_log,
			    struct auth_oauth_ent *e, const struct userdb_relay_oauth *o,
			    const struct auth_oauth_req *req, enum auth_oauth_how *how_r,
			    char *reason, size_t reasonlen)
{
	struct oauth_client cl = {
		.grant = (enum oauth_grant)oauth_grant_parse(o->grant), .client_id = o->client_id,
		.client_secret = o->client_secret, .refresh_token = o->refresh_token,
		.scope = o->scope,
	};
	struct oauth_token_reply r;
	struct https_answer a;
	char err[300], url[LOG_ESCAPE_BUFSZ], *body;
	int ret = -1;
	enum https_result hr;

	log_escape(url, sizeof(url), o->url, strlen(o->url));
	body = oauth_token_request(&cl);
	hr = https_request(&(struct https_req){ .url = o->url, .post = body,
						.accept = "application/json", .ca = req->ca,
						.timeout_ms = req->timeout_ms,
						.max_answer = OAUTH_ANSWER_MAX },
			   &a, err, sizeof(err));
	xfree_secret(body, strlen(body));
	if (hr != HTTPS_OK) {
		*how_r = hr == HTTPS_TIMEOUT ? AUTH_OAUTH_TIMEOUT : AUTH_OAUTH_ERROR;
		snprintf(reason, reasonlen, "OAuth token endpoint %s %s: %s", url,
			 hr == HTTPS_TIMEOUT ? "timed out" : "failed", err);
		log_warnx("oauth event=token-failed nexthop=%s grant=%s result=%s url=%s error=\"%s\"",
			  hop_log, o->grant, auth_oauth_how_name(*how_r), url, err);
		return -1;
	}
	switch (oauth_token_parse(a.status, a.body, a.len, &r)) {
	case OAUTH_TOKEN_OK:
		*how_r = AUTH_OAUTH_FETCHED;
		auth_oauth_forget(e);
		e->token = r.access_token;
		r.access_token = NULL;
		auth_oauth_set_expiry(e, r.expires_in, req->margin_ms);
		log_info("oauth event=token-fetched nexthop=%s grant=%s expires_in=%llu%s", hop_log,
			 o->grant, r.expires_in, r.refresh_token && o->refresh_token &&
			 strcmp(r.refresh_token, o->refresh_token) != 0 ? " refresh_token=rotated" : "");
		/* RFC 6749 6: "The authorization server MAY issue a new refresh token, in
		 * which case the client MUST discard the old refresh token and replace it
		 * with the new refresh token." */
		if (r.refresh_token && o->refresh_token && strcmp(r.refresh_token, o->refresh_token) != 0 &&
		    userdb_relay_oauth_rotate(db, nexthop, o->refresh_token, r.refresh_token) < 0)
			log_warnx("oauth event=rotate-failed nexthop=%s: the new refresh token is "
				  "lost; the next refresh may be refused", hop_log);
		ret = 0;
		break;
	case OAUTH_TOKEN_REFUSED:
		*how_r = AUTH_OAUTH_REFUSED;
		snprintf(reason, reasonlen, "OAuth token endpoint %s refused the %s grant: %s%s%s",
			 url, o->grant, r.error, r.error_description ? ": " : "",
			 r.error_description ? r.error_description : "");
		log_warnx("oauth event=token-refused nexthop=%s grant=%s url=%s status=%d error=%s "
			  "description=\"%s\"", hop_log, o->grant, url, a.status, r.error,
			  r.error_description ? r.error_description : "");
		break;
	default:
		*how_r = AUTH_OAUTH_ERROR;
		snprintf(reason, reasonlen, "OAuth token endpoint %s: %s (HTTP %d)", url, r.error,
			 a.status);
		log_warnx("oauth event=token-failed nexthop=%s grant=%s result=error url=%s status=%d "
			  "error=\"%s\"", hop_log, o->grant, url, a.status, r.error);
		break;
	}
	oauth_token_reply_clear(&r);
	https_answer_clear(&a);
	return ret;
}

static int auth_oauth_after(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

int auth_oauth_token(struct userdb *db, const char *nexthop, const char *user,
		     const struct userdb_relay_oauth *o, const struct auth_oauth_req *req,
		     char **token_r, enum auth_oauth_how *how_r, char *reason, size_t reasonlen)
{
	struct timespec arrived;
	char hop_log[LOG_ESCAPE_BUFSZ];
	char *key = xasprintf("%s\n%s\n%s\n%s\n%s", o->grant, o->url, o->client_id,
			      o->scope ? o->scope : "", user);
	struct auth_oauth_ent *e = auth_oauth_ent_get(key);
	int ret = 0;

	free(key);
	*token_r = NULL;
	*how_r = AUTH_OAUTH_CACHED;
	log_escape(hop_log, sizeof(hop_log), nexthop, strlen(nexthop));
	if (oauth_grant_parse(o->grant) < 0) {
		snprintf(reason, reasonlen, "unknown OAuth grant in the relay credentials");
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &arrived);
	pthread_mutex_lock(&e->mu);
	/* Whoever waited here may find the token the fetch before it brought, or share
	 * its failure (a failure without a counted fetch of its own: how stays cached). */
	if (auth_oauth_fresh(e, req)) {
		ret = 0;
	} else if (auth_oauth_after(&e->failed_at, &arrived)) {
		snprintf(reason, reasonlen, "%s", e->failed_why);
		ret = -1;
	} else {
		if (req->rejected && e->token && strcmp(req->rejected, e->token) == 0)
			log_info("oauth event=token-rejected nexthop=%s: refreshing", hop_log);
		ret = auth_oauth_fetch(db, nexthop, hop_log, e, o, req, how_r, reason, reasonlen);
		if (ret < 0) {
			clock_gettime(CLOCK_MONOTONIC, &e->failed_at);
			snprintf(e->failed_why, sizeof(e->failed_why), "%s", reason);
		}
	}
	if (ret == 0)
		*token_r = xstrdup(e->token);
	pthread_mutex_unlock(&e->mu);
	return ret;
}
