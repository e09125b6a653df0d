/* sasl: SMTP AUTH mechanisms (RFC 4954) from GNU SASL behind a small interface. A
 * mechanism's properties are data; the session computes its policy from them. */
#ifndef CURSUS_SASL_H
#define CURSUS_SASL_H

#include <stddef.h>

struct userdb;

#define SASLF_CLEARTEXT   0x01  /* the password crosses the wire (PLAIN, LOGIN) */
#define SASLF_PLAIN_EQUIV 0x02  /* needs a password-equivalent secret (CRAM-MD5, DIGEST-MD5) */
#define SASLF_CHANNEL     0x04  /* binds to the TLS channel (-PLUS): TLS only */
#define SASLF_EXTERNAL    0x08  /* identity from the TLS client certificate */

/* Mechanism ids; sasl_mechs() lists them in exactly this order, and configuration
 * stores sets of them as bits (1u << id). */
enum sasl_mech_id {
	MECH_SCRAM_SHA_256_PLUS, MECH_SCRAM_SHA_256, MECH_SCRAM_SHA_1_PLUS, MECH_SCRAM_SHA_1,
	MECH_PLAIN, MECH_LOGIN, MECH_CRAM_MD5, MECH_DIGEST_MD5, MECH_EXTERNAL, MECH__COUNT
};
#define MECH_BIT(id) (1u << (id))

struct sasl_mech {
	const char *name;
	unsigned flags;
};

/* Every mechanism cursus knows, strongest first (the EHLO order): indexed by
 * enum sasl_mech_id. */
const struct sasl_mech *sasl_mechs(size_t *n_r);
/* Case-insensitive; NULL when unknown. */
const struct sasl_mech *sasl_mech_find(const char *name, size_t len);

/* What the TLS layer tells a mechanism. Unused parts are NULL/0. */
struct sasl_channel {
	unsigned char tls_unique[64];      /* RFC 5929, TLS 1.2 */
	size_t tls_unique_len;
	unsigned char tls_exporter[32];    /* RFC 9266, TLS 1.3 */
	size_t tls_exporter_len;
	char cert_fingerprint[65];         /* verified client certificate, SHA-256 hex */
	char cert_subject[256];
	char client[56];                   /* the client's budget key (addrcount_client_text) */
};

/* Asked before any password is checked, with the authentication identity the client
 * claims: return nonzero to refuse the attempt (brute-force budget spent), or
 * SASL_PRECHECK_TEMPFAIL when the budget cannot be read (the store is down: a
 * temporary failure, never an open door). Called on the worker thread. */
#define SASL_PRECHECK_TEMPFAIL 2
typedef int (*sasl_precheck_fn)(void *arg, const char *authid);

struct sasl_server;   /* process-wide: the GNU SASL library context */
struct sasl_exchange; /* one AUTH command */

struct sasl_server *sasl_server_create(struct userdb *db);
void sasl_server_destroy(struct sasl_server **srv);

enum sasl_status {
	SASL_MORE,        /* send *out_r as a 334 challenge */
	SASL_OK,          /* authenticated: sasl_user() */
	SASL_FAIL,        /* 535 5.7.8 */
	SASL_TEMPFAIL,    /* store unavailable: 454 4.7.0 */
	SASL_REFUSED,     /* precheck refused: 454 4.7.0, nothing was checked */
	SASL_BAD_BASE64,  /* 501 5.5.2 */
};

/* BLOCKING (store lookups, password hashing): call on a worker thread. The exchange
 * is used by one thread at a time. */
struct sasl_exchange *sasl_exchange_start(struct sasl_server *srv, const struct sasl_mech *mech,
					  const struct sasl_channel *chan, sasl_precheck_fn precheck,
					  void *precheck_arg);
/* in: the client's base64 text (without CRLF; "" for an empty response); NULL when
 * the client sent no initial response. *out_r: malloc'd base64 challenge for
 * SASL_MORE (may be ""), else NULL. */
enum sasl_status sasl_exchange_step(struct sasl_exchange *x, const char *in, size_t len, char **out_r);
/* After SASL_OK: the user the session acts as (the authorization identity when one
 * was given and granted, else the authentication identity). After any step: the
 * identities the client claimed so far, for the log (may be NULL). */
const char *sasl_exchange_user(const struct sasl_exchange *x);
const char *sasl_exchange_authid(const struct sasl_exchange *x);
const char *sasl_exchange_authzid(const struct sasl_exchange *x);
/* Why it failed, for the log only (never sent to the client): "bad-password",
 * "unknown-user", "authzid-denied", "no-legacy-secret", ... or NULL. */
const char *sasl_exchange_reason(const struct sasl_exchange *x);
void sasl_exchange_end(struct sasl_exchange **x);

#endif
