/* auth_client: the network process's side of cursus-auth. The calls mirror userdb.h's
 * (same arguments, same results) and, like them, block: worker threads only, never the
 * event loop. Each call takes one of the connections to cursus-auth for its request
 * and answer. If cursus-auth dies, calls fail (-1, SASL_TEMPFAIL) until the loop has
 * restarted it: at once the first time, with a growing pause when it keeps dying
 * young. */
#ifndef CURSUS_AUTH_CLIENT_H
#define CURSUS_AUTH_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "sasl/sasl.h"

struct event_base;
struct auth_client;
struct auth_client_sasl;

struct auth_client_conf {
	const char *user_store;
	unsigned store_timeout_ms, store_connections;
	unsigned addr_budget, account_budget, window, cooldown;
	unsigned scram_iterations;
	unsigned nconns;   /* the most threads that call at once; capped */
	int foreground, debug;
};

/* Starts cursus-auth and waits (blocking, bounded) until its database is open.
 * NULL with *err_r (malloc'd) when it cannot start. Call before any worker exists. */
struct auth_client *auth_client_create(struct event_base *base, const struct auth_client_conf *conf,
				       char **err_r);
/* Closes the connections (cursus-auth exits) and reaps it. Workers must be gone. */
void auth_client_destroy(struct auth_client **c);

/* As userdb_resolve_max (max SIZE_MAX: as userdb_resolve). */
int auth_client_resolve(struct auth_client *c, const char *address, size_t max, char ***mailboxes_r,
			size_t *n_r);
int auth_client_may_send_as(struct auth_client *c, const char *user, const char *address);
int auth_client_may_act_as(struct auth_client *c, const char *authid, const char *authzid);
int auth_client_credential_gen(struct auth_client *c, const char *authid, const char *user,
			       long long *gen_r);
/* Relay credentials (userdb_relay_auth_find), asked on a worker thread. For an OAuth
 * credential cursus-auth gets the access token (from its cache or the token
 * endpoint, which may take up to req's timeout) and it comes back as the password,
 * with mech set. */
struct auth_client_relay_req {
	const char *ca;            /* the token endpoint's trust store (relay_ca), or NULL */
	unsigned timeout_ms;       /* relay_oauth_timeout */
	unsigned margin_ms;        /* relay_oauth_refresh_margin */
	const char *rejected;      /* the access token the next hop refused, or NULL */
};
struct auth_client_relay_cred {
	char *user, *password;     /* password: the access token for OAuth; wipe after use */
	char *mech;                /* "XOAUTH2" / "OAUTHBEARER" for OAuth, else NULL */
	const char *fetch;         /* NULL, or the token endpoint was asked: "ok", "refused",
				    * "error", "timeout" (the fetch counter's label) */
	char *reason;              /* r == -2: why there is no token (no secret in it) */
};
/* 1 found, 0 none, -1 cursus-auth or the store failed, -2 an OAuth credential whose
 * token could not be had (cred->reason). Clear cred after use, whatever r. */
int auth_client_relay_auth_find(struct auth_client *c, const char *nexthop, const char *sender,
				const struct auth_client_relay_req *req,
				struct auth_client_relay_cred *cred);
void auth_client_relay_cred_clear(struct auth_client_relay_cred *cred);

/* SMTP AUTH, run in cursus-auth: this side relays the client's messages and gets the
 * challenges and the verdict back, never a secret. start does no I/O. */
struct auth_client_sasl *auth_client_sasl_start(struct auth_client *c, const struct sasl_mech *mech,
						const struct sasl_channel *chan);
/* As sasl_exchange_step. precheck runs here, on the calling thread, when cursus-auth
 * asks before it looks at a secret. */
enum sasl_status auth_client_sasl_step(struct auth_client_sasl *x, const char *in, size_t len,
				       char **out_r, sasl_precheck_fn precheck, void *precheck_arg);
const char *auth_client_sasl_user(const struct auth_client_sasl *x);
const char *auth_client_sasl_authid(const struct auth_client_sasl *x);
const char *auth_client_sasl_authzid(const struct auth_client_sasl *x);
const char *auth_client_sasl_reason(const struct auth_client_sasl *x);
/* After SASL_OK: 1 with the authid's credential generation (read before the check),
 * 0 when it could not be read. */
int auth_client_sasl_cred_gen(const struct auth_client_sasl *x, long long *gen_r);
/* Any thread; does not block (cursus-auth forgets the exchange with the next request). */
void auth_client_sasl_end(struct auth_client_sasl **x);

#endif
