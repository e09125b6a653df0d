/* userdb: the credential and address store, behind one narrow interface with two
 * backends (userdb_backend.h): SQLite for one machine, PostgreSQL shared by many
 * nodes. Every call blocks: the daemon calls it only from worker threads (in
 * cursus-auth). Handles are safe to share between threads.
 *
 * Names: a user is a full address, "alice@example.test", stored lower case. Its
 * mailbox is "<domain>/<local-part>". An alias maps an address, or "@domain" for the
 * domain's catch-all, to one or more target addresses. */
#ifndef CURSUS_USERDB_H
#define CURSUS_USERDB_H

#include <stddef.h>

struct userdb;

/* SCRAM keys for one hash (RFC 5802), as stored: base64 strings. */
struct scram_keys {
	char *salt;
	unsigned iterations;
	char *stored_key;
	char *server_key;
};

struct user_record {
	char *name;
	char *hash;               /* yescrypt, "$y$..." */
	struct scram_keys sha1, sha256;
	long long created;
};

/* Opens a store: spec is "sqlite:PATH", "postgresql:CONNINFO" (a libpq connection
 * string or URI), or a bare PATH (SQLite). flags: USERDB_CREATE creates or migrates
 * the schema; USERDB_LAZY (PostgreSQL) opens even when the server is unreachable and
 * connects on use, with backoff. On error returns NULL and sets *err to a malloc'd
 * message that never holds the connection string (it may hold a password). */
#define USERDB_CREATE 1
#define USERDB_LAZY 2
/* With USERDB_LAZY: connections are not refused for a missing or older schema
 * (`cursus check` asks userdb_schema_version itself). */
#define USERDB_ANY_SCHEMA 4
#define USERDB_TIMEOUT_MS_DEFAULT 5000
#define USERDB_CONNECTIONS_DEFAULT 4
struct userdb *userdb_open(const char *spec, int flags, char **err);
/* The same with store_timeout (milliseconds: connecting, and each statement) and
 * store_connections (the PostgreSQL pool's size). */
struct userdb *userdb_open_opts(const char *spec, int flags, unsigned timeout_ms,
				unsigned connections, char **err);
void userdb_close(struct userdb **db);
/* "sqlite" or "postgresql". */
const char *userdb_backend(const struct userdb *db);
/* The schema version the store has and the one this program writes. 0, -1 with *err
 * (e.g. the server is unreachable). */
int userdb_schema_version(struct userdb *db, int *have_r, int *want_r, char **err);

/* Shared brute-force budgets (PostgreSQL: one table all nodes count in; SQLite: none,
 * the daemon's own counters suffice). Set once before sharing the handle. */
void userdb_set_budgets(struct userdb *db, unsigned addr_budget, unsigned account_budget,
			unsigned window, unsigned cooldown);
/* 1 when the store keeps shared budgets. */
int userdb_shares_budgets(const struct userdb *db);
/* addr is the client's key (an IPv4 address or IPv6 prefix, as text); account may be
 * NULL. Seconds the attempt is still refused (0: go on), or -1 when the store cannot
 * tell (the caller refuses: never an open door). Without shared budgets: 0. */
long userdb_budget_blocked(struct userdb *db, const char *addr, const char *account);
/* Counts one failure for addr and account (may be NULL). 0, or -1. */
int userdb_budget_failure(struct userdb *db, const char *addr, const char *account);

/* `cursus store copy`: every table of from into to, which must hold no users,
 * aliases or relay credentials yet; the per-database secret goes too, so app
 * passwords and fake SCRAM keys stay valid. One transaction on to. 0, or -1 with
 * *err. The counts copied go to fn (table, rows) when fn is set. */
int userdb_copy(struct userdb *from, struct userdb *to,
		void (*fn)(void *arg, const char *table, long long rows), void *arg, char **err);

/* Resolves a recipient for local delivery: the user itself, its aliases (recursively,
 * bounded depth), else the domain's catch-all. Fills *mailboxes_r with malloc'd
 * "domain/local-part" strings (free with userdb_free_list).
 * Returns 1 found, 0 no such recipient, -1 store failure. */
int userdb_resolve(struct userdb *db, const char *address, char ***mailboxes_r, size_t *n_r);
/* The same, giving up once the expansion passes max mailboxes (an alias must not
 * outgrow max_recipients): returns USERDB_RESOLVE_TOO_MANY then, with nothing in
 * *mailboxes_r. */
#define USERDB_RESOLVE_TOO_MANY (-2)
int userdb_resolve_max(struct userdb *db, const char *address, size_t max, char ***mailboxes_r,
		       size_t *n_r);
void userdb_free_list(char **list, size_t n);

/* Fetches a user's record. 1 found, 0 not found, -1 failure. */
int userdb_user_get(struct userdb *db, const char *name, struct user_record *rec_r);
void user_record_clear(struct user_record *rec);

/* The SCRAM iteration count for keys made from now on (scram_iterations), clamped to
 * 4096..10000000. Stored keys keep the count they were made with: SCRAM sends it to
 * the client, so older keys go on working. Call before sharing the handle. */
void userdb_set_scram_iterations(struct userdb *db, unsigned iterations);

/* Administration (the cursus tool). Each returns 0 on success, -1 with *err set.
 * The password is hashed here (yescrypt) and the SCRAM-SHA-1/256 keys derived. */
int userdb_user_add(struct userdb *db, const char *name, const char *password, char **err);
int userdb_user_passwd(struct userdb *db, const char *name, const char *password, char **err);
int userdb_user_del(struct userdb *db, const char *name, char **err);
/* Calls fn for each user name in order. */
int userdb_user_list(struct userdb *db, void (*fn)(void *arg, const char *name), void *arg, char **err);
int userdb_alias_add(struct userdb *db, const char *address, const char *target, char **err);
int userdb_alias_del(struct userdb *db, const char *address, const char *target, char **err);
int userdb_alias_list(struct userdb *db, void (*fn)(void *arg, const char *address, const char *target),
		      void *arg, char **err);

/* ---- Authentication (SMTP AUTH). All blocking: worker threads only. ---- */

/* Checks a password for PLAIN/LOGIN against the user's yescrypt hash and its app
 * passwords (updating that app password's last use). An unknown user costs the same
 * work as a wrong password (a dummy hash is checked). Successful checks are cached
 * briefly (keyed by a digest of user, password and stored hash, never the password
 * itself) because yescrypt is deliberately slow. On success *user_r is the canonical
 * user name (malloc'd). Returns 1 ok, 0 wrong or unknown, -1 store failure. */
int userdb_verify_password(struct userdb *db, const char *name, const char *password, char **user_r);

/* SCRAM keys for hash "SHA-1" or "SHA-256". For an unknown user, fills keys that are
 * fake but stable for that name (salt derived from a per-database secret), so the
 * exchange does not reveal whether the user exists; *exists_r tells the caller.
 * Returns 0, or -1 on store failure. */
int userdb_scram_keys(struct userdb *db, const char *name, const char *hash, struct scram_keys *keys_r,
		      int *exists_r);

/* The password-equivalent secret CRAM-MD5 and DIGEST-MD5 need: present only for users
 * an administrator enabled with --legacy-mechanisms. *secret_r malloc'd (wipe with
 * xfree_secret). 1 present, 0 absent or unknown user, -1 failure. */
int userdb_legacy_secret(struct userdb *db, const char *name, char **secret_r);

/* Grants. May authid act as authzid (SASL authorization identity)? 1 yes, 0 no, -1 failure.
 * A user may always act as itself. */
int userdb_may_act_as(struct userdb *db, const char *authid, const char *authzid);
/* May user send with this MAIL FROM address: its own name, an alias whose target is
 * the user, an address or "@domain" granted with --send-as. 1 yes, 0 no, -1 failure. */
int userdb_may_send_as(struct userdb *db, const char *user, const char *address);
/* The credential generation of authid, which changes whenever one of its credentials
 * is withdrawn (password changed, app password revoked, certificate mapping removed,
 * user deleted and perhaps added again). user is who authid acts as (the same, or
 * an authzid it was granted): that user must still exist and the grant still hold.
 * 1 with *gen_r, 0 when authid or user is gone or the grant is, -1 failure. One
 * indexed read: sessions call it at every MAIL. */
int userdb_credential_gen(struct userdb *db, const char *authid, const char *user, long long *gen_r);
/* The user a TLS client certificate maps to, by SHA-256 fingerprint (hex, lower case,
 * no colons) or by subject name. 1 found (*user_r malloc'd), 0 none, -1 failure. */
int userdb_cert_user(struct userdb *db, const char *fingerprint, const char *subject, char **user_r);

/* ---- Administration of the above ---- */
/* legacy: also store the password-equivalent secret for CRAM-MD5/DIGEST-MD5; when 0
 * any stored one is removed. */
int userdb_user_set_password(struct userdb *db, const char *name, const char *password, int legacy,
			     char **err);
int userdb_grant_act_as(struct userdb *db, const char *user, const char *other, char **err);
int userdb_grant_send_as(struct userdb *db, const char *user, const char *address, char **err);
/* what: "act-as:OTHER" or "send-as:ADDRESS" (or "send-as:@domain") revokes that
 * grant; a bare value revokes the grants of either kind with that value. */
int userdb_revoke(struct userdb *db, const char *user, const char *what, char **err);
/* Calls fn with each grant of user: kind "act-as" or "send-as", and its value. */
int userdb_grant_list(struct userdb *db, const char *user,
		      void (*fn)(void *arg, const char *kind, const char *value), void *arg,
		      char **err);
/* Makes a random app password, stores its hash, returns it (malloc'd) to print once. */
char *userdb_app_password_add(struct userdb *db, const char *user, const char *label, char **err);
int userdb_app_password_revoke(struct userdb *db, const char *user, const char *label, char **err);
/* last_used is 0 for never; times are Unix seconds. */
int userdb_app_password_list(struct userdb *db, const char *user,
			     void (*fn)(void *arg, const char *label, long long created, long long last_used),
			     void *arg, char **err);
/* A SHA-256 fingerprint is recognised (64 hex digits, colons and case allowed) and
 * stored in the lookup form; anything else is a subject name, stored as given. */
int userdb_cert_add(struct userdb *db, const char *user, const char *fingerprint_or_subject, char **err);
int userdb_cert_del(struct userdb *db, const char *user, const char *fingerprint_or_subject, char **err);
/* Calls fn with each certificate match (fingerprint or subject) mapped to user. */
int userdb_cert_list(struct userdb *db, const char *user, void (*fn)(void *arg, const char *match),
		     void *arg, char **err);

/* Relay credentials (`cursus relay-auth`): what cursus sends to a smart host. nexthop
 * is the route's name for it (route_nexthop(): "[host]:port" or "host:port", lower
 * case); sender NULL for the next hop's default, else an envelope sender address
 * (lower case) that has its own account there. The password is stored as given (it
 * must be sent), readable by the daemon only (the database is 0600). Setting
 * replaces. */
int userdb_relay_auth_set(struct userdb *db, const char *nexthop, const char *sender,
			  const char *user, const char *password, char **err);
/* Returns 1 when deleted, 0 when there was none, -1 on error. */
int userdb_relay_auth_del(struct userdb *db, const char *nexthop, const char *sender, char **err);
/* Calls fn for each entry (sender NULL for a default); never passes the password nor
 * an OAuth secret. oauth_mech is NULL for a password, else the entry's mechanism. */
int userdb_relay_auth_list(struct userdb *db,
			   void (*fn)(void *arg, const char *nexthop, const char *sender,
				      const char *user, const char *oauth_mech),
			   void *arg, char **err);
/* An OAuth 2 relay credential (docs/relay-oauth.md): cursus gets the access token it
 * sends from url itself. client_secret may be NULL (a public client), refresh_token
 * NULL for the client_credentials grant, scope NULL for none. */
struct userdb_relay_oauth {
	char *url, *client_id, *client_secret, *refresh_token, *scope;
	char *mech;   /* "XOAUTH2" or "OAUTHBEARER" */
	char *grant;  /* "refresh_token" or "client_credentials" */
};
/* Frees the strings, wiping the secrets; the struct is left zeroed. */
void userdb_relay_oauth_clear(struct userdb_relay_oauth *o);
/* As userdb_relay_auth_set, for an OAuth credential (its fields checked here: an
 * https URL, one-line values, a known mechanism and grant, a refresh token when the
 * grant needs one). */
int userdb_relay_oauth_set(struct userdb *db, const char *nexthop, const char *sender,
			   const char *user, const struct userdb_relay_oauth *o, char **err);
/* The credentials for mail from sender to nexthop: the sender's own, else the next
 * hop's default. Returns 1 (malloc'd; wipe the password after use), 0 when none,
 * -1 on error. For an OAuth credential *password_r is "" and, when oauth_r is not
 * NULL, *oauth_r is filled (userdb_relay_oauth_clear after use); without oauth_r an
 * OAuth credential is returned as one with an empty password. */
int userdb_relay_auth_find(struct userdb *db, const char *nexthop, const char *sender,
			   char **user_r, char **password_r, struct userdb_relay_oauth *oauth_r);
/* The token endpoint rotated a refresh token: old_token becomes new_token wherever
 * nexthop's credentials hold it (compare and set: an entry the administrator replaced
 * meanwhile is left alone). 1 replaced, 0 none held it, -1 error. */
int userdb_relay_oauth_rotate(struct userdb *db, const char *nexthop, const char *old_token,
			      const char *new_token);

#endif
