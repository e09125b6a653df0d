/* sasl: the SMTP AUTH mechanisms, all from GNU SASL (libgsasl); this file only answers
 * the library's questions from the credential store and turns its verdicts into the
 * session's vocabulary. Promises: no mechanism is implemented here; the precheck is
 * asked before any secret is looked at, and a refusal ends the exchange with nothing
 * checked; an authorization identity is honoured only where the store grants it;
 * decoded client data and every secret handed to the library are wiped after use;
 * nothing per attempt is logged here (the session logs the outcome). */
#include "sasl/sasl.h"

#include <gsasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/username.h"
#include "store/userdb.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* Strongest first: the order EHLO advertises them in. */
static const struct sasl_mech sasl_mech_table[] = {
	{ "SCRAM-SHA-256-PLUS", SASLF_CHANNEL },
	{ "SCRAM-SHA-256", 0 },
	{ "SCRAM-SHA-1-PLUS", SASLF_CHANNEL },
	{ "SCRAM-SHA-1", 0 },
	{ "PLAIN", SASLF_CLEARTEXT },
	{ "LOGIN", SASLF_CLEARTEXT },
	{ "CRAM-MD5", SASLF_PLAIN_EQUIV },
	{ "DIGEST-MD5", SASLF_PLAIN_EQUIV },
	{ "EXTERNAL", SASLF_EXTERNAL },
};
#define SASL_N_MECHS (sizeof(sasl_mech_table) / sizeof(sasl_mech_table[0]))

struct sasl_server {
	Gsasl *ctx;
	struct userdb *db;
};

struct sasl_exchange {
	struct sasl_server *srv;
	const struct sasl_mech *mech;
	Gsasl_session *sctx;        /* NULL when the library could not start the mechanism */
	struct sasl_channel chan;   /* a copy: the TLS layer's buffer may not outlive us */
	sasl_precheck_fn precheck;
	void *precheck_arg;
	unsigned steps;
	int prechecked, refused, tempfail;
	int done;
	enum sasl_status status;    /* once done */
	int ok_pending;             /* authenticated; the success data went out as a challenge */
	unsigned client_msgs;       /* non-empty-or-empty responses the client has sent */
	int secret_consulted;       /* a failure from here on is a wrong secret, not a protocol slip */
	int scram_fetched, scram_exists;
	struct scram_keys scram;
	char *authid, *authzid;     /* as claimed, for the log */
	char *user;                 /* canonical, once known */
	const char *reason;
};

const struct sasl_mech *sasl_mechs(size_t *n_r)
{
	*n_r = SASL_N_MECHS;
	return sasl_mech_table;
}

const struct sasl_mech *sasl_mech_find(const char *name, size_t len)
{
	for (size_t i = 0; i < SASL_N_MECHS; i++) {
		const char *m = sasl_mech_table[i].name;
		if (strlen(m) == len && strncasecmp(m, name, len) == 0)
			return &sasl_mech_table[i];
	}
	return NULL;
}

static void sasl_free_secret_str(char *s)
{
	if (s)
		xfree_secret(s, strlen(s));
}

static char *sasl_lower_dup(const char *s)
{
	char *d = xstrdup(s);
	username_lower(d);
	return d;
}

/* Replaces *dst with a copy of src (or NULL). */
static void sasl_set_str(char **dst, const char *src)
{
	if (*dst && src && strcmp(*dst, src) == 0)
		return;
	free(*dst);
	*dst = src ? xstrdup(src) : NULL;
}

static void sasl_store_failed(struct sasl_exchange *x, const char *what)
{
	x->tempfail = 1;
	x->reason = "store-failure";
	log_warnx("sasl: credential store failure looking up %s", what);
}

/* The budget check, once per exchange, before any secret is consulted. Returns 0 to
 * go on, -1 when refused. */
static int sasl_precheck(struct sasl_exchange *x, const char *authid)
{
	if (x->refused)
		return -1;
	if (x->prechecked)
		return 0;
	x->prechecked = 1;
	int rc = x->precheck ? x->precheck(x->precheck_arg, authid ? authid : "") : 0;
	if (rc == SASL_PRECHECK_TEMPFAIL) {
		x->tempfail = 1;
		x->reason = "store-failure";
		return -1;
	}
	if (rc != 0) {
		x->refused = 1;
		x->reason = "refused";
		return -1;
	}
	return 0;
}

/* For the log only: does a failed name exist at all? */
static const char *sasl_miss_reason(struct sasl_exchange *x, const char *authid, const char *known)
{
	struct user_record rec;
	int r = userdb_user_get(x->srv->db, authid, &rec);
	if (r == 1)
		user_record_clear(&rec);
	return r == 0 ? "unknown-user" : known;
}

/* PLAIN, LOGIN: the library hands us the password to check. */
static int sasl_cb_validate_simple(struct sasl_exchange *x)
{
	const char *authid = gsasl_property_fast(x->sctx, GSASL_AUTHID);
	const char *pw = gsasl_property_fast(x->sctx, GSASL_PASSWORD);
	char *user = NULL;
	int r;

	if (authid == NULL || pw == NULL) {
		x->reason = "protocol-error";
		return GSASL_AUTHENTICATION_ERROR;
	}
	if (sasl_precheck(x, authid) < 0)
		return GSASL_AUTHENTICATION_ERROR;
	x->secret_consulted = 1;
	r = userdb_verify_password(x->srv->db, authid, pw, &user);
	if (r < 0) {
		sasl_store_failed(x, "a password");
		return GSASL_AUTHENTICATION_ERROR;
	}
	if (r == 0) {
		x->reason = sasl_miss_reason(x, authid, "bad-password");
		return GSASL_AUTHENTICATION_ERROR;
	}
	free(x->user);
	x->user = user;
	return GSASL_OK;
}

/* CRAM-MD5, DIGEST-MD5: the library wants the password-equivalent secret. */
static int sasl_cb_legacy_secret(struct sasl_exchange *x)
{
	const char *authid = gsasl_property_fast(x->sctx, GSASL_AUTHID);
	char *secret = NULL;
	int r;

	if (authid == NULL)
		return GSASL_NO_CALLBACK;
	if (sasl_precheck(x, authid) < 0)
		return GSASL_NO_CALLBACK;
	r = userdb_legacy_secret(x->srv->db, authid, &secret);
	if (r < 0) {
		sasl_store_failed(x, "a legacy secret");
		return GSASL_NO_CALLBACK;
	}
	if (r == 0) {
		x->reason = sasl_miss_reason(x, authid, "no-legacy-secret");
		return GSASL_NO_CALLBACK;
	}
	x->secret_consulted = 1;
	r = gsasl_property_set(x->sctx, GSASL_PASSWORD, secret);
	sasl_free_secret_str(secret);
	return r;
}

/* SCRAM: salt, iterations and keys, fetched once. The store answers an unknown name
 * with stable fake keys so the exchange runs to the proof either way. */
static int sasl_cb_scram(struct sasl_exchange *x, Gsasl_property prop)
{
	const char *authid = gsasl_property_fast(x->sctx, GSASL_AUTHID);
	char iter[16];
	const char *val = NULL;

	if (authid == NULL)
		return GSASL_NO_CALLBACK;
	if (!x->scram_fetched) {
		const char *hash = strstr(x->mech->name, "SHA-256") ? "SHA-256" : "SHA-1";
		if (sasl_precheck(x, authid) < 0)
			return GSASL_NO_CALLBACK;
		if (userdb_scram_keys(x->srv->db, authid, hash, &x->scram, &x->scram_exists) < 0) {
			sasl_store_failed(x, "SCRAM keys");
			return GSASL_NO_CALLBACK;
		}
		x->scram_fetched = 1;
	}
	/* libgsasl 2.2 reads all four as the store keeps them: the iteration count in
	 * decimal, salt, StoredKey and ServerKey in base64 (its header comment says hex
	 * for the keys, but the code decodes base64). */
	switch (prop) {
	case GSASL_SCRAM_ITER:
		snprintf(iter, sizeof(iter), "%u", x->scram.iterations);
		val = iter;
		break;
	case GSASL_SCRAM_SALT:
		val = x->scram.salt;
		break;
	case GSASL_SCRAM_STOREDKEY:
		val = x->scram.stored_key;
		x->secret_consulted = 1;
		break;
	case GSASL_SCRAM_SERVERKEY:
		val = x->scram.server_key;
		x->secret_consulted = 1;
		break;
	default:
		break;
	}
	if (val == NULL)
		return GSASL_NO_CALLBACK;
	return gsasl_property_set(x->sctx, prop, val);
}

/* RFC 5929 tls-unique, RFC 9266 tls-exporter: whichever the TLS layer filled. The
 * library also asks in non-PLUS SCRAM when the client says "y": having the data then
 * exposes a downgrade (RFC 5802 section 6). */
static int sasl_cb_channel(struct sasl_exchange *x, Gsasl_property prop)
{
	const unsigned char *data = prop == GSASL_CB_TLS_EXPORTER ? x->chan.tls_exporter : x->chan.tls_unique;
	size_t len = prop == GSASL_CB_TLS_EXPORTER ? x->chan.tls_exporter_len : x->chan.tls_unique_len;
	char *b64 = NULL;
	int rc;

	if (len == 0)
		return GSASL_NO_CALLBACK;
	rc = gsasl_base64_to((const char *)data, len, &b64, NULL);
	if (rc != GSASL_OK)
		return rc;
	rc = gsasl_property_set(x->sctx, prop, b64);
	free(b64);
	return rc;
}

/* EXTERNAL: the verified client certificate names the user. */
static int sasl_cb_external(struct sasl_exchange *x)
{
	const char *fp = x->chan.cert_fingerprint[0] ? x->chan.cert_fingerprint : NULL;
	const char *subject = x->chan.cert_subject[0] ? x->chan.cert_subject : NULL;
	char *user = NULL;
	int r;

	if (fp == NULL && subject == NULL) {
		x->reason = "no-certificate";
		return GSASL_AUTHENTICATION_ERROR;
	}
	r = userdb_cert_user(x->srv->db, fp, subject, &user);
	if (r < 0) {
		sasl_store_failed(x, "a certificate");
		return GSASL_AUTHENTICATION_ERROR;
	}
	if (r == 0) {
		x->reason = "unknown-certificate";
		return GSASL_AUTHENTICATION_ERROR;
	}
	sasl_set_str(&x->authid, user);
	if (sasl_precheck(x, user) < 0) {
		free(user);
		return GSASL_AUTHENTICATION_ERROR;
	}
	free(x->user);
	x->user = user;
	return GSASL_OK;
}

static int sasl_callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
	struct sasl_exchange *x = sctx ? gsasl_session_hook_get(sctx) : NULL;

	(void)ctx;
	if (x == NULL)
		return GSASL_NO_CALLBACK;
	/* Once refused or the store failed, the verdict is made: answer nothing more
	 * (the library goes on asking for the other SCRAM properties). */
	if (x->refused || x->tempfail)
		return prop >= GSASL_VALIDATE_SIMPLE ? GSASL_AUTHENTICATION_ERROR : GSASL_NO_CALLBACK;
	switch (prop) {
	case GSASL_VALIDATE_SIMPLE:
		return sasl_cb_validate_simple(x);
	case GSASL_PASSWORD:
		/* Only the password-equivalent mechanisms may see the legacy secret:
		 * PLAIN/LOGIN fall back to asking for it when validation declines, and
		 * SCRAM when it has no keys. */
		if (!(x->mech->flags & SASLF_PLAIN_EQUIV))
			return GSASL_NO_CALLBACK;
		return sasl_cb_legacy_secret(x);
	case GSASL_SCRAM_ITER:
	case GSASL_SCRAM_SALT:
	case GSASL_SCRAM_STOREDKEY:
	case GSASL_SCRAM_SERVERKEY:
		return sasl_cb_scram(x, prop);
	case GSASL_CB_TLS_UNIQUE:
	case GSASL_CB_TLS_EXPORTER:
		return sasl_cb_channel(x, prop);
	case GSASL_VALIDATE_EXTERNAL:
		return sasl_cb_external(x);
	case GSASL_QOPS:
		/* DIGEST-MD5: authentication only; SMTP has no use for a SASL security
		 * layer once TLS protects the session. */
		return gsasl_property_set(sctx, GSASL_QOPS, "qop-auth");
	default:
		/* No GSASL_REALM: DIGEST-MD5 offers no realm, and with the secret itself
		 * we can check whatever realm the client picks. */
		return GSASL_NO_CALLBACK;
	}
}

struct sasl_server *sasl_server_create(struct userdb *db)
{
	struct sasl_server *srv = xcalloc(1, sizeof(*srv));
	int rc;

	if ((rc = gsasl_init(&srv->ctx)) != GSASL_OK)
		fatalx("sasl: cannot initialise GNU SASL: %s", gsasl_strerror(rc));
	srv->db = db;
	gsasl_callback_set(srv->ctx, sasl_callback);
	for (size_t i = 0; i < SASL_N_MECHS; i++)
		if (!gsasl_server_support_p(srv->ctx, sasl_mech_table[i].name))
			log_warnx("sasl: GNU SASL lacks the %s mechanism", sasl_mech_table[i].name);
	return srv;
}

void sasl_server_destroy(struct sasl_server **srvp)
{
	struct sasl_server *srv = *srvp;
	if (srv == NULL)
		return;
	gsasl_done(srv->ctx);
	free(srv);
	*srvp = NULL;
}

struct sasl_exchange *sasl_exchange_start(struct sasl_server *srv, const struct sasl_mech *mech,
					  const struct sasl_channel *chan, sasl_precheck_fn precheck,
					  void *precheck_arg)
{
	struct sasl_exchange *x = xcalloc(1, sizeof(*x));
	int rc;

	x->srv = srv;
	x->mech = mech;
	if (chan)
		x->chan = *chan;
	x->chan.cert_fingerprint[sizeof(x->chan.cert_fingerprint) - 1] = '\0';
	x->chan.cert_subject[sizeof(x->chan.cert_subject) - 1] = '\0';
	if (x->chan.tls_unique_len > sizeof(x->chan.tls_unique))
		x->chan.tls_unique_len = 0;
	if (x->chan.tls_exporter_len > sizeof(x->chan.tls_exporter))
		x->chan.tls_exporter_len = 0;
	x->precheck = precheck;
	x->precheck_arg = precheck_arg;
	rc = gsasl_server_start(srv->ctx, mech->name, &x->sctx);
	if (rc != GSASL_OK) {
		/* The first step fails; the session logs the reason. */
		log_warnx("sasl: cannot start %s: %s", mech->name, gsasl_strerror(rc));
		x->sctx = NULL;
	} else {
		gsasl_session_hook_set(x->sctx, x);
	}
	return x;
}

/* Secrets the library keeps as session properties: wiped in place, then dropped. */
static void sasl_wipe_props(struct sasl_exchange *x)
{
	static const Gsasl_property secret_props[] = {
		GSASL_PASSWORD, GSASL_SCRAM_SALTED_PASSWORD, GSASL_SCRAM_STOREDKEY,
		GSASL_SCRAM_SERVERKEY, GSASL_DIGEST_MD5_HASHED_PASSWORD,
	};
	for (size_t i = 0; i < sizeof(secret_props) / sizeof(secret_props[0]); i++) {
		const char *p = gsasl_property_fast(x->sctx, secret_props[i]);
		if (p) {
			explicit_bzero((char *)p, strlen(p));
			gsasl_property_free(x->sctx, secret_props[i]);
		}
	}
}

static enum sasl_status sasl_finish(struct sasl_exchange *x, enum sasl_status st, const char *reason)
{
	x->done = 1;
	x->status = st;
	if (st == SASL_OK)
		x->reason = NULL;
	else if (x->reason == NULL)
		x->reason = reason;
	return st;
}

/* After the library's success: the authorization identity, when one was given that
 * is not the authentication identity itself, must be granted (RFC 4422 section 3.4.1:
 * the server decides whether the one may act as the other; here the store does). */
static enum sasl_status sasl_authorize(struct sasl_exchange *x)
{
	const char *authzid = x->authzid;
	int r;

	if (x->user == NULL) {
		if (x->authid == NULL)
			return sasl_finish(x, SASL_FAIL, "protocol-error");
		x->user = sasl_lower_dup(x->authid);
	}
	if (authzid == NULL || authzid[0] == '\0' || strcasecmp(authzid, x->user) == 0 ||
	    (x->authid && strcmp(authzid, x->authid) == 0))
		return SASL_OK;
	r = userdb_may_act_as(x->srv->db, x->user, authzid);
	if (r < 0) {
		sasl_store_failed(x, "a grant");
		return sasl_finish(x, SASL_TEMPFAIL, NULL);
	}
	if (r == 0)
		return sasl_finish(x, SASL_FAIL, "authzid-denied");
	free(x->user);
	x->user = sasl_lower_dup(authzid);
	return SASL_OK;
}

/* One libgsasl step on decoded input; output base64 in *out_r. */
static int sasl_gsasl_step(struct sasl_exchange *x, const char *raw, size_t rawlen, char **out_r)
{
	char *out = NULL;
	size_t outlen = 0;
	int rc = gsasl_step(x->sctx, raw, rawlen, &out, &outlen);

	sasl_wipe_props(x);
	if (gsasl_property_fast(x->sctx, GSASL_AUTHID))
		sasl_set_str(&x->authid, gsasl_property_fast(x->sctx, GSASL_AUTHID));
	if (gsasl_property_fast(x->sctx, GSASL_AUTHZID))
		sasl_set_str(&x->authzid, gsasl_property_fast(x->sctx, GSASL_AUTHZID));
	*out_r = NULL;
	if (out != NULL && (rc == GSASL_OK || rc == GSASL_NEEDS_MORE) && outlen > 0) {
		int brc = gsasl_base64_to(out, outlen, out_r, NULL);
		if (brc != GSASL_OK)
			rc = brc;
	}
	if (out) {
		explicit_bzero(out, outlen);
		gsasl_free(out);
	}
	return rc;
}

static const char *sasl_failure_reason(struct sasl_exchange *x, int rc)
{
	switch (rc) {
	case GSASL_NO_CB_TLS_UNIQUE:
	case GSASL_NO_CB_TLS_EXPORTER:
		return "no-channel-binding";
	case GSASL_AUTHENTICATION_ERROR:
		break;
	default:
		if (!x->secret_consulted)
			return "protocol-error";
		break;
	}
	if (x->scram_fetched && x->secret_consulted)
		return x->scram_exists ? "bad-password" : "unknown-user";
	if (!x->secret_consulted)
		/* SCRAM fails before the keys on a nonce or channel-binding mismatch. */
		return (x->mech->flags & SASLF_CHANNEL) ? "channel-binding-mismatch" : "protocol-error";
	return "bad-password";
}

enum sasl_status sasl_exchange_step(struct sasl_exchange *x, const char *in, size_t len, char **out_r)
{
	char *raw = NULL, *out = NULL;
	size_t rawlen = 0;
	int rc;

	*out_r = NULL;
	if (x->done)
		return SASL_FAIL; /* a step after the end is the caller's slip */
	if (x->sctx == NULL)
		return sasl_finish(x, SASL_FAIL, "mechanism-unavailable");
	/* RFC 4954 section 4: "If the server cannot BASE64 decode any client
	 * response, it MUST reject the AUTH command with a 501 response". Decoded here
	 * rather than by gsasl_step64 so that base64 errors inside a mechanism's own
	 * fields (SCRAM's proof) stay failures, and so the decoded bytes (a PLAIN
	 * password) are wiped. */
	if (in != NULL && gsasl_base64_from(in, len, &raw, &rawlen) != GSASL_OK)
		return sasl_finish(x, SASL_BAD_BASE64, "bad-base64");
	if (raw) {
		/* Always NUL-terminated: libgsasl's DIGEST-MD5 reads a zero length as "a C
		 * string" and would run past the decoder's unterminated buffer. */
		char *z = xmalloc(rawlen + 1);
		memcpy(z, raw, rawlen);
		z[rawlen] = '\0';
		xfree_secret(raw, rawlen);
		raw = z;
	}
	x->steps++;

	if (x->ok_pending) {
		/* SMTP's 235 carries no data, so SASL's additional data with success went
		 * out as a 334 (RFC 4422 section 5); the client's answer must be empty. */
		int empty = rawlen == 0;
		xfree_secret(raw, rawlen);
		return empty ? sasl_finish(x, SASL_OK, NULL) : sasl_finish(x, SASL_FAIL, "protocol-error");
	}
	/* RFC 4954 4: "=" (or an empty line) is a response of zero length. Only
	 * EXTERNAL has a meaning for it as the client's first message; elsewhere it
	 * fails at once rather than letting libgsasl prompt again. */
	if (in != NULL && x->client_msgs++ == 0 && rawlen == 0 && !(x->mech->flags & SASLF_EXTERNAL)) {
		xfree_secret(raw, rawlen);
		return sasl_finish(x, SASL_FAIL, "empty-response");
	}
	if (x->steps == 1 && in == NULL && (x->mech->flags & SASLF_EXTERNAL)) {
		/* RFC 4422 EXTERNAL without an initial response: an empty challenge asks
		 * for the (possibly empty) authorization identity. */
		*out_r = xstrdup("");
		return SASL_MORE;
	}
	if (x->steps == 1 && in != NULL && strcmp(x->mech->name, "LOGIN") == 0) {
		/* An initial response to LOGIN is the user name; libgsasl's LOGIN always
		 * opens with its "User Name" prompt, so let it and discard the prompt. */
		rc = sasl_gsasl_step(x, NULL, 0, &out);
		free(out);
		out = NULL;
		if (rc != GSASL_NEEDS_MORE) {
			xfree_secret(raw, rawlen);
			return sasl_finish(x, SASL_FAIL, "protocol-error");
		}
	}
	rc = sasl_gsasl_step(x, raw, rawlen, &out);
	xfree_secret(raw, rawlen);

	if (x->tempfail) {
		free(out);
		return sasl_finish(x, SASL_TEMPFAIL, NULL);
	}
	if (x->refused) {
		free(out);
		return sasl_finish(x, SASL_REFUSED, NULL);
	}
	if (rc == GSASL_NEEDS_MORE) {
		*out_r = out ? out : xstrdup("");
		return SASL_MORE;
	}
	if (rc == GSASL_OK) {
		enum sasl_status st = sasl_authorize(x);
		if (st != SASL_OK) {
			free(out);
			return st;
		}
		if (out != NULL) {
			/* e.g. SCRAM's server signature, DIGEST-MD5's rspauth */
			x->ok_pending = 1;
			*out_r = out;
			return SASL_MORE;
		}
		return sasl_finish(x, SASL_OK, NULL);
	}
	free(out);
	return sasl_finish(x, SASL_FAIL, sasl_failure_reason(x, rc));
}

const char *sasl_exchange_user(const struct sasl_exchange *x)
{
	return x->done && x->status == SASL_OK ? x->user : NULL;
}

const char *sasl_exchange_authid(const struct sasl_exchange *x)
{
	return x->authid;
}

const char *sasl_exchange_authzid(const struct sasl_exchange *x)
{
	/* PLAIN sets it to the authentication identity when the client gave none. */
	if (x->authzid && x->authid && strcmp(x->authzid, x->authid) == 0)
		return NULL;
	return x->authzid;
}

const char *sasl_exchange_reason(const struct sasl_exchange *x)
{
	return x->reason;
}

void sasl_exchange_end(struct sasl_exchange **xp)
{
	struct sasl_exchange *x = *xp;
	if (x == NULL)
		return;
	if (x->sctx) {
		sasl_wipe_props(x);
		gsasl_finish(x->sctx);
	}
	sasl_free_secret_str(x->scram.salt);
	sasl_free_secret_str(x->scram.stored_key);
	sasl_free_secret_str(x->scram.server_key);
	free(x->authid);
	free(x->authzid);
	free(x->user);
	explicit_bzero(x, sizeof(*x));
	free(x);
	*xp = NULL;
}
