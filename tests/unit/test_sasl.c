/* Tests of the SASL glue against the real store (a temporary SQLite database): each
 * mechanism is run end to end with libgsasl's own client on the other side, plus the
 * RFC 4616 example message fed verbatim, failures of every kind, the precheck, the
 * authorization identity, channel binding and EXTERNAL. */
#include "unit.h"
#include "sasl/sasl.h"
#include "store/userdb.h"

#include <gsasl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#define FP_KURT "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP_NOBODY "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static char tmpdir[64];
static Gsasl *client_ctx;

/* What the test client knows; its callback answers libgsasl from here. */
struct creds {
	const char *authid, *authzid, *password;
	const char *cb_unique, *cb_exporter; /* base64, as libgsasl wants them */
};

static int client_cb(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
	const struct creds *c = gsasl_session_hook_get(s);
	const char *val = NULL;

	(void)ctx;
	switch (prop) {
	case GSASL_AUTHID: val = c->authid; break;
	case GSASL_AUTHZID: val = c->authzid; break;
	case GSASL_PASSWORD: val = c->password; break;
	case GSASL_SERVICE: val = "smtp"; break;
	case GSASL_HOSTNAME: val = "mail.example.test"; break;
	case GSASL_CB_TLS_UNIQUE: val = c->cb_unique; break;
	case GSASL_CB_TLS_EXPORTER: val = c->cb_exporter; break;
	default: break;
	}
	if (val == NULL)
		return GSASL_NO_CALLBACK;
	return gsasl_property_set(s, prop, val);
}

/* The precheck: counts its calls, remembers the name, refuses on demand. */
struct pre {
	int calls, refuse;
	char authid[128];
};

static int precheck(void *arg, const char *authid)
{
	struct pre *p = arg;
	p->calls++;
	snprintf(p->authid, sizeof(p->authid), "%s", authid);
	return p->refuse;
}

struct result {
	enum sasl_status st;
	int client_rc;     /* the client's last step: GSASL_OK when it accepted the server */
	int rounds;        /* server steps */
	char first[128];   /* the client's first message, decoded */
	char reason[64], user[128], authid[128], authzid[128];
};

static void result_fill(struct result *r, struct sasl_exchange *x, enum sasl_status st)
{
	const char *s;
	r->st = st;
	snprintf(r->reason, sizeof(r->reason), "%s", (s = sasl_exchange_reason(x)) ? s : "");
	snprintf(r->user, sizeof(r->user), "%s", (s = sasl_exchange_user(x)) ? s : "");
	snprintf(r->authid, sizeof(r->authid), "%s", (s = sasl_exchange_authid(x)) ? s : "");
	snprintf(r->authzid, sizeof(r->authzid), "%s", (s = sasl_exchange_authzid(x)) ? s : "");
}

static void remember_first(struct result *r, const char *b64)
{
	char *raw = NULL;
	size_t len = 0;
	if (b64 && gsasl_base64_from(b64, strlen(b64), &raw, &len) == GSASL_OK) {
		snprintf(r->first, sizeof(r->first), "%.*s", (int)len, raw);
		free(raw);
	}
}

/* Runs one AUTH between libgsasl's client and our server until both are done. With
 * ir, the client's first message goes with the command (an initial response). */
static struct result run(struct sasl_server *srv, const char *mechname, const struct creds *c,
			 const struct sasl_channel *chan, struct pre *pre, int ir)
{
	const struct sasl_mech *mech = sasl_mech_find(mechname, strlen(mechname));
	struct result r;
	struct sasl_exchange *x;
	Gsasl_session *cs = NULL;
	char *msg = NULL, *chal = NULL;
	enum sasl_status st;

	memset(&r, 0, sizeof(r));
	r.client_rc = -1;
	if (mech == NULL || gsasl_client_start(client_ctx, mechname, &cs) != GSASL_OK) {
		r.st = SASL_FAIL;
		snprintf(r.reason, sizeof(r.reason), "test-setup");
		return r;
	}
	gsasl_session_hook_set(cs, (void *)c);
	x = sasl_exchange_start(srv, mech, chan, pre ? precheck : NULL, pre);
	if (ir) {
		r.client_rc = gsasl_step64(cs, "", &msg);
		remember_first(&r, msg);
	}
	st = sasl_exchange_step(x, msg, msg ? strlen(msg) : 0, &chal);
	CHECK((st == SASL_MORE) == (chal != NULL));
	r.rounds++;
	while (st == SASL_MORE && r.rounds < 10) {
		free(msg);
		msg = NULL;
		r.client_rc = gsasl_step64(cs, chal, &msg);
		free(chal);
		chal = NULL;
		if (r.client_rc != GSASL_OK && r.client_rc != GSASL_NEEDS_MORE)
			break;
		if (r.first[0] == '\0')
			remember_first(&r, msg);
		st = sasl_exchange_step(x, msg, strlen(msg), &chal);
		CHECK((st == SASL_MORE) == (chal != NULL));
		r.rounds++;
	}
	free(chal);
	free(msg);
	result_fill(&r, x, st);
	sasl_exchange_end(&x);
	CHECK(x == NULL);
	gsasl_finish(cs);
	return r;
}

/* Feeds one raw message (base64-encoded here) as the initial response. */
static struct result feed_raw(struct sasl_server *srv, const char *mechname, const char *raw,
			      size_t rawlen, struct pre *pre)
{
	const struct sasl_mech *mech = sasl_mech_find(mechname, strlen(mechname));
	struct sasl_exchange *x = sasl_exchange_start(srv, mech, NULL, pre ? precheck : NULL, pre);
	struct result r;
	char *b64 = NULL, *out = NULL;

	memset(&r, 0, sizeof(r));
	CHECK(gsasl_base64_to(raw, rawlen, &b64, NULL) == GSASL_OK);
	result_fill(&r, x, sasl_exchange_step(x, b64, strlen(b64), &out));
	free(out);
	free(b64);
	sasl_exchange_end(&x);
	return r;
}

static void test_table(void)
{
	size_t n = 0;
	const struct sasl_mech *m = sasl_mechs(&n);
	static const char *const order[] = {
		"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1",
		"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "EXTERNAL",
	};

	CHECK(n == 9);
	for (size_t i = 0; i < n && i < 9; i++)
		CHECK_STR(m[i].name, order[i]);
	CHECK(sasl_mech_find("plain", 5)->flags == SASLF_CLEARTEXT);
	CHECK(sasl_mech_find("LOGIN", 5)->flags == SASLF_CLEARTEXT);
	CHECK(sasl_mech_find("cram-md5", 8)->flags == SASLF_PLAIN_EQUIV);
	CHECK(sasl_mech_find("DIGEST-MD5", 10)->flags == SASLF_PLAIN_EQUIV);
	CHECK(sasl_mech_find("scram-sha-256-plus", 18)->flags == SASLF_CHANNEL);
	CHECK(sasl_mech_find("SCRAM-SHA-1-PLUS", 16)->flags == SASLF_CHANNEL);
	CHECK(sasl_mech_find("SCRAM-SHA-1", 11)->flags == 0);
	CHECK(sasl_mech_find("EXTERNAL", 8)->flags == SASLF_EXTERNAL);
	/* Length-bounded: a prefix or a longer name is not a match. */
	CHECK(sasl_mech_find("PLAINX", 4) == NULL);
	CHECK_STR(sasl_mech_find("PLAINX", 5)->name, "PLAIN");
	CHECK(sasl_mech_find("GSSAPI", 6) == NULL);
	CHECK(sasl_mech_find("", 0) == NULL);
}

static void test_plain(struct sasl_server *srv)
{
	struct creds tim = { "tim@example.test", NULL, "tanstaaftanstaaf", NULL, NULL };
	struct creds bad = { "tim@example.test", NULL, "tanstaaf", NULL, NULL };
	struct creds nobody = { "nobody@example.test", NULL, "tanstaaftanstaaf", NULL, NULL };
	struct creds kurt_as_ursel = { "kurt@example.test", "ursel@example.test", "xipj3plmq", NULL, NULL };
	struct creds tim_as_ursel = { "tim@example.test", "ursel@example.test", "tanstaaftanstaaf", NULL, NULL };
	struct creds tim_as_tim = { "tim@example.test", "TIM@example.test", "tanstaaftanstaaf", NULL, NULL };
	struct result r;
	struct pre pre = { 0, 0, "" };

	/* RFC 4616 section 4: "C: \0tim\0tanstaaftanstaaf" -- fed verbatim. The store
	 * names users by address, so the RFC's bare "tim" parses, reaches the store and
	 * is an unknown user; the same message for tim's address authenticates. */
	r = feed_raw(srv, "PLAIN", "\0tim\0tanstaaftanstaaf", 21, &pre);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.authid, "tim");
	CHECK_STR(r.reason, "unknown-user");
	CHECK(pre.calls == 1);
	CHECK_STR(pre.authid, "tim");
	r = feed_raw(srv, "PLAIN", "\0tim@example.test\0tanstaaftanstaaf", 34, NULL);
	CHECK(r.st == SASL_OK);
	CHECK_STR(r.user, "tim@example.test");
	CHECK_STR(r.reason, "");
	CHECK_STR(r.authzid, "");
	/* The user is the canonical (lower-case) name whatever the client typed. */
	r = feed_raw(srv, "PLAIN", "\0Tim@Example.TEST\0tanstaaftanstaaf", 34, NULL);
	CHECK(r.st == SASL_OK);
	CHECK_STR(r.user, "tim@example.test");
	CHECK_STR(r.authid, "Tim@Example.TEST");
	/* RFC 4616 section 4: "C: Ursel\0Kurt\0xipj3plmq" -- authzid, authcid, passwd. */
	r = feed_raw(srv, "PLAIN", "ursel@example.test\0kurt@example.test\0xipj3plmq", 46, NULL);
	CHECK(r.st == SASL_OK);
	CHECK_STR(r.user, "ursel@example.test");
	CHECK_STR(r.authid, "kurt@example.test");
	CHECK_STR(r.authzid, "ursel@example.test");
	/* Malformed: one NUL only. */
	r = feed_raw(srv, "PLAIN", "tim@example.test\0tanstaaf", 25, NULL);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "protocol-error");

	/* With libgsasl's client, with and without an initial response. */
	r = run(srv, "PLAIN", &tim, NULL, NULL, 1);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 1);
	CHECK_STR(r.user, "tim@example.test");
	r = run(srv, "PLAIN", &tim, NULL, NULL, 0);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 2); /* "AUTH PLAIN", 334 "", then the message */
	CHECK_STR(r.user, "tim@example.test");

	r = run(srv, "PLAIN", &bad, NULL, NULL, 1);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "bad-password");
	CHECK_STR(r.user, "");
	r = run(srv, "PLAIN", &nobody, NULL, NULL, 1);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "unknown-user");
	CHECK_STR(r.authid, "nobody@example.test");

	/* Authorization identity: granted, not granted, oneself. */
	r = run(srv, "PLAIN", &kurt_as_ursel, NULL, NULL, 1);
	CHECK(r.st == SASL_OK);
	CHECK_STR(r.user, "ursel@example.test");
	r = run(srv, "PLAIN", &tim_as_ursel, NULL, NULL, 1);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "authzid-denied");
	CHECK_STR(r.user, "");
	CHECK_STR(r.authzid, "ursel@example.test");
	r = run(srv, "PLAIN", &tim_as_tim, NULL, NULL, 1);
	CHECK(r.st == SASL_OK);
	CHECK_STR(r.user, "tim@example.test");
}

static void test_login(struct sasl_server *srv)
{
	struct creds tim = { "tim@example.test", NULL, "tanstaaftanstaaf", NULL, NULL };
	struct creds bad = { "tim@example.test", NULL, "TANSTAAFTANSTAAF", NULL, NULL };
	struct creds nobody = { "nobody@example.test", NULL, "x", NULL, NULL };
	struct result r;

	r = run(srv, "LOGIN", &tim, NULL, NULL, 0);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 3); /* "User Name", "Password", verdict */
	CHECK_STR(r.user, "tim@example.test");
	/* "AUTH LOGIN <base64 user>": the initial response is the user name. */
	r = run(srv, "LOGIN", &tim, NULL, NULL, 1);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 2);
	CHECK_STR(r.user, "tim@example.test");
	r = run(srv, "LOGIN", &bad, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "bad-password");
	r = run(srv, "LOGIN", &nobody, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "unknown-user");
}

static void test_legacy(struct sasl_server *srv)
{
	/* RFC 2195 section 2: user "tim", shared secret "tanstaaftanstaaf". */
	struct creds tim = { "tim@example.test", NULL, "tanstaaftanstaaf", NULL, NULL };
	struct creds bad = { "tim@example.test", NULL, "tanstaaf", NULL, NULL };
	struct creds nolegacy = { "kurt@example.test", NULL, "xipj3plmq", NULL, NULL };
	struct creds nobody = { "nobody@example.test", NULL, "tanstaaftanstaaf", NULL, NULL };
	struct creds tim_as_ursel = { "tim@example.test", "ursel@example.test", "tanstaaftanstaaf", NULL, NULL };
	struct result r;

	r = run(srv, "CRAM-MD5", &tim, NULL, NULL, 0);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 2);
	CHECK_STR(r.user, "tim@example.test");
	r = run(srv, "CRAM-MD5", &bad, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "bad-password");
	r = run(srv, "CRAM-MD5", &nolegacy, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "no-legacy-secret");
	r = run(srv, "CRAM-MD5", &nobody, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "unknown-user");

	/* DIGEST-MD5 (RFC 2831): challenge, response, rspauth sent as a 334 that the
	 * client answers empty, then success. */
	r = run(srv, "DIGEST-MD5", &tim, NULL, NULL, 0);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 3);
	CHECK(r.client_rc == GSASL_OK);
	CHECK_STR(r.user, "tim@example.test");
	r = run(srv, "DIGEST-MD5", &bad, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "bad-password");
	r = run(srv, "DIGEST-MD5", &nolegacy, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "no-legacy-secret");
	r = run(srv, "DIGEST-MD5", &tim_as_ursel, NULL, NULL, 0);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "authzid-denied");
}

static void test_scram(struct sasl_server *srv)
{
	/* RFC 5802 section 5 and RFC 7677 section 3: user "user", password "pencil";
	 * here the store's address for that user. */
	struct creds user = { "user@example.test", NULL, "pencil", NULL, NULL };
	struct creds bad = { "user@example.test", NULL, "pencil2", NULL, NULL };
	struct creds nobody = { "nobody@example.test", NULL, "pencil", NULL, NULL };
	struct creds kurt_as_ursel = { "kurt@example.test", "ursel@example.test", "xipj3plmq", NULL, NULL };
	struct creds user_as_ursel = { "user@example.test", "ursel@example.test", "pencil", NULL, NULL };
	static const char *const mechs[] = { "SCRAM-SHA-1", "SCRAM-SHA-256" };
	struct result r;

	for (size_t i = 0; i < 2; i++) {
		r = run(srv, mechs[i], &user, NULL, NULL, 1);
		CHECK(r.st == SASL_OK);
		/* client-first, client-final, then the empty answer to server-final */
		CHECK(r.rounds == 3);
		CHECK(r.client_rc == GSASL_OK); /* the client verified the server signature */
		CHECK_STR(r.user, "user@example.test");
		r = run(srv, mechs[i], &user, NULL, NULL, 0);
		CHECK(r.st == SASL_OK);
		CHECK(r.rounds == 4);
		r = run(srv, mechs[i], &bad, NULL, NULL, 1);
		CHECK(r.st == SASL_FAIL);
		CHECK(r.rounds == 2); /* failed at the proof, not before */
		CHECK_STR(r.reason, "bad-password");
		r = run(srv, mechs[i], &nobody, NULL, NULL, 1);
		CHECK(r.st == SASL_FAIL);
		CHECK(r.rounds == 2); /* the store's fake keys carry it to the proof */
		CHECK_STR(r.reason, "unknown-user");
		r = run(srv, mechs[i], &kurt_as_ursel, NULL, NULL, 1);
		CHECK(r.st == SASL_OK);
		CHECK_STR(r.user, "ursel@example.test");
		r = run(srv, mechs[i], &user_as_ursel, NULL, NULL, 1);
		CHECK(r.st == SASL_FAIL);
		CHECK_STR(r.reason, "authzid-denied");
	}
}

/* Channel data as the TLS layer would fill it, and the client's view in base64. */
static void make_channel(struct sasl_channel *ch, int tls13, unsigned char seed)
{
	memset(ch, 0, sizeof(*ch));
	for (size_t i = 0; i < 32; i++) {
		ch->tls_exporter[i] = (unsigned char)(seed + i);
		ch->tls_unique[i] = (unsigned char)(seed * 3 + i);
	}
	if (tls13)
		ch->tls_exporter_len = 32;
	else
		ch->tls_unique_len = 12; /* TLS 1.2 Finished verify_data */
}

static char *channel_b64(const struct sasl_channel *ch, int tls13)
{
	char *b64 = NULL;
	if (tls13)
		gsasl_base64_to((const char *)ch->tls_exporter, 32, &b64, NULL);
	else
		gsasl_base64_to((const char *)ch->tls_unique, 12, &b64, NULL);
	return b64;
}

static void test_scram_plus(struct sasl_server *srv)
{
	static const char *const mechs[] = { "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS" };
	struct sasl_channel ch, other;
	struct result r;

	for (size_t i = 0; i < 2; i++) {
		for (int tls13 = 0; tls13 <= 1; tls13++) {
			char *good, *wrong;
			struct creds c = { "user@example.test", NULL, "pencil", NULL, NULL };

			make_channel(&ch, tls13, 7);
			make_channel(&other, tls13, 99);
			good = channel_b64(&ch, tls13);
			wrong = channel_b64(&other, tls13);
			if (tls13)
				c.cb_exporter = good;
			else
				c.cb_unique = good;
			r = run(srv, mechs[i], &c, &ch, NULL, 1);
			CHECK(r.st == SASL_OK);
			CHECK(r.client_rc == GSASL_OK);
			CHECK_STR(r.user, "user@example.test");
			CHECK(strncmp(r.first, tls13 ? "p=tls-exporter," : "p=tls-unique,",
				      tls13 ? 15 : 13) == 0);

			/* The client sees another channel (a man in the middle). */
			if (tls13)
				c.cb_exporter = wrong;
			else
				c.cb_unique = wrong;
			r = run(srv, mechs[i], &c, &ch, NULL, 1);
			CHECK(r.st == SASL_FAIL);
			CHECK_STR(r.reason, "channel-binding-mismatch");

			/* The server has no channel data for the client's binding type. */
			if (tls13)
				c.cb_exporter = good;
			else
				c.cb_unique = good;
			r = run(srv, mechs[i], &c, NULL, NULL, 1);
			CHECK(r.st == SASL_FAIL);
			CHECK_STR(r.reason, "no-channel-binding");
			free(good);
			free(wrong);
		}
	}

	/* RFC 5802 section 6: a client that supports channel binding but was offered
	 * no -PLUS says "y"; a server that does support it fails the exchange, since
	 * someone stripped the -PLUS mechanisms (a downgrade). Without channel data
	 * (no TLS, nothing was stripped) the exchange goes on. libgsasl's client never
	 * sends "y" itself, so the message is written by hand. */
	{
		static const char y[] = "y,,n=user@example.test,r=fyko+d2lbbFgONRv9qkxdawL";
		const struct sasl_mech *m = sasl_mech_find("SCRAM-SHA-256", 13);
		struct sasl_exchange *x;
		char *b64 = NULL, *out = NULL;

		CHECK(gsasl_base64_to(y, strlen(y), &b64, NULL) == GSASL_OK);
		make_channel(&ch, 1, 7);
		x = sasl_exchange_start(srv, m, &ch, NULL, NULL);
		CHECK(sasl_exchange_step(x, b64, strlen(b64), &out) == SASL_FAIL);
		sasl_exchange_end(&x);
		x = sasl_exchange_start(srv, m, NULL, NULL, NULL);
		CHECK(sasl_exchange_step(x, b64, strlen(b64), &out) == SASL_MORE);
		CHECK(out != NULL && out[0] != '\0');
		free(out);
		sasl_exchange_end(&x);
		free(b64);
	}
}

static void test_precheck(struct sasl_server *srv, struct sasl_server *broken)
{
	struct creds tim = { "tim@example.test", NULL, "tanstaaftanstaaf", NULL, NULL };
	struct creds user = { "user@example.test", NULL, "pencil", NULL, NULL };
	struct pre pre = { 0, 1, "" };
	struct result r;

	/* Refused before anything is checked: even the right password gets REFUSED. */
	r = run(srv, "PLAIN", &tim, NULL, &pre, 1);
	CHECK(r.st == SASL_REFUSED);
	CHECK_STR(r.reason, "refused");
	CHECK_STR(r.user, "");
	CHECK(pre.calls == 1);
	CHECK_STR(pre.authid, "tim@example.test");
	pre.calls = 0;
	r = run(srv, "LOGIN", &tim, NULL, &pre, 0);
	CHECK(r.st == SASL_REFUSED);
	CHECK(pre.calls == 1);
	pre.calls = 0;
	r = run(srv, "CRAM-MD5", &tim, NULL, &pre, 0);
	CHECK(r.st == SASL_REFUSED);
	CHECK(pre.calls == 1);
	pre.calls = 0;
	r = run(srv, "DIGEST-MD5", &tim, NULL, &pre, 0);
	CHECK(r.st == SASL_REFUSED);
	CHECK(pre.calls == 1);
	pre.calls = 0;
	/* SCRAM: refused at the client-first message, before salt or keys. */
	r = run(srv, "SCRAM-SHA-256", &user, NULL, &pre, 1);
	CHECK(r.st == SASL_REFUSED);
	CHECK(r.rounds == 1);
	CHECK(pre.calls == 1);
	CHECK_STR(pre.authid, "user@example.test");

	/* The precheck is asked once per exchange, and allowing goes on normally. */
	pre.refuse = 0;
	pre.calls = 0;
	r = run(srv, "SCRAM-SHA-1", &user, NULL, &pre, 1);
	CHECK(r.st == SASL_OK);
	CHECK(pre.calls == 1);

	/* Proof that a refusal consults nothing: against a store whose tables are gone,
	 * any lookup is a store failure (TEMPFAIL), yet a refusal stays REFUSED. */
	pre.refuse = 1;
	r = run(broken, "PLAIN", &tim, NULL, &pre, 1);
	CHECK(r.st == SASL_REFUSED);
	r = run(broken, "SCRAM-SHA-256", &user, NULL, &pre, 1);
	CHECK(r.st == SASL_REFUSED);
	r = run(broken, "CRAM-MD5", &tim, NULL, &pre, 0);
	CHECK(r.st == SASL_REFUSED);
	pre.refuse = 0;
	r = run(broken, "PLAIN", &tim, NULL, &pre, 1);
	CHECK(r.st == SASL_TEMPFAIL);
	CHECK_STR(r.reason, "store-failure");
	r = run(broken, "SCRAM-SHA-256", &user, NULL, &pre, 1);
	CHECK(r.st == SASL_TEMPFAIL);
	r = run(broken, "CRAM-MD5", &tim, NULL, &pre, 0);
	CHECK(r.st == SASL_TEMPFAIL);
}

static void test_base64(struct sasl_server *srv)
{
	static const char *const bad[] = { "!!!!", "dGlt ZQ==", "dGltZQ", "=", "AA=" };
	const struct sasl_mech *plain = sasl_mech_find("PLAIN", 5);
	const struct sasl_mech *scram = sasl_mech_find("SCRAM-SHA-256", 13);
	struct sasl_exchange *x;
	char *out = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		x = sasl_exchange_start(srv, plain, NULL, NULL, NULL);
		CHECK(sasl_exchange_step(x, bad[i], strlen(bad[i]), &out) == SASL_BAD_BASE64);
		CHECK(out == NULL);
		CHECK_STR(sasl_exchange_reason(x), "bad-base64");
		/* The exchange is over: a further step fails. */
		CHECK(sasl_exchange_step(x, "", 0, &out) == SASL_FAIL);
		sasl_exchange_end(&x);
	}
	/* Mid-exchange: after a 334, an invalid response. */
	x = sasl_exchange_start(srv, scram, NULL, NULL, NULL);
	CHECK(sasl_exchange_step(x, NULL, 0, &out) == SASL_MORE);
	CHECK_STR(out, "");
	free(out);
	CHECK(sasl_exchange_step(x, "bi*sbj11", 8, &out) == SASL_BAD_BASE64);
	sasl_exchange_end(&x);
	/* The length bounds the input: valid base64 followed by junk not counted. */
	x = sasl_exchange_start(srv, plain, NULL, NULL, NULL);
	CHECK(sasl_exchange_step(x, "AHRpbUBleGFtcGxlLnRlc3QAdGFuc3RhYWZ0YW5zdGFhZg==!!", 48, &out) == SASL_OK);
	CHECK_STR(sasl_exchange_user(x), "tim@example.test");
	sasl_exchange_end(&x);
}

/* After SCRAM's server-final 334, only an empty answer completes the exchange. */
static void test_final_data(struct sasl_server *srv)
{
	struct creds user = { "user@example.test", NULL, "pencil", NULL, NULL };
	const struct sasl_mech *mech = sasl_mech_find("SCRAM-SHA-1", 11);
	struct sasl_exchange *x = sasl_exchange_start(srv, mech, NULL, NULL, NULL);
	Gsasl_session *cs = NULL;
	char *msg = NULL, *chal = NULL;

	CHECK(gsasl_client_start(client_ctx, "SCRAM-SHA-1", &cs) == GSASL_OK);
	gsasl_session_hook_set(cs, &user);
	CHECK(gsasl_step64(cs, "", &msg) == GSASL_NEEDS_MORE);
	CHECK(sasl_exchange_step(x, msg, strlen(msg), &chal) == SASL_MORE);
	free(msg);
	CHECK(gsasl_step64(cs, chal, &msg) == GSASL_NEEDS_MORE);
	free(chal);
	CHECK(sasl_exchange_step(x, msg, strlen(msg), &chal) == SASL_MORE);
	free(msg);
	CHECK(strlen(chal) > 0);
	CHECK(sasl_exchange_user(x) == NULL); /* not yet */
	free(chal);
	chal = NULL;
	CHECK(sasl_exchange_step(x, "eA==", 4, &chal) == SASL_FAIL);
	CHECK(chal == NULL);
	CHECK_STR(sasl_exchange_reason(x), "protocol-error");
	CHECK(sasl_exchange_user(x) == NULL);
	sasl_exchange_end(&x);
	gsasl_finish(cs);
}

static void test_external(struct sasl_server *srv)
{
	struct creds none = { NULL, NULL, NULL, NULL, NULL };
	struct creds as_ursel = { NULL, "ursel@example.test", NULL, NULL, NULL };
	struct creds as_tim = { NULL, "tim@example.test", NULL, NULL, NULL };
	struct sasl_channel ch;
	struct result r;

	memset(&ch, 0, sizeof(ch));
	snprintf(ch.cert_fingerprint, sizeof(ch.cert_fingerprint), "%s", FP_KURT);
	snprintf(ch.cert_subject, sizeof(ch.cert_subject), "CN=Kurt");
	r = run(srv, "EXTERNAL", &none, &ch, NULL, 1);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 1);
	CHECK_STR(r.user, "kurt@example.test");
	CHECK_STR(r.authid, "kurt@example.test");
	/* No initial response: an empty 334 first. */
	r = run(srv, "EXTERNAL", &none, &ch, NULL, 0);
	CHECK(r.st == SASL_OK);
	CHECK(r.rounds == 2);
	CHECK_STR(r.user, "kurt@example.test");
	r = run(srv, "EXTERNAL", &as_ursel, &ch, NULL, 1);
	CHECK(r.st == SASL_OK);
	CHECK_STR(r.user, "ursel@example.test");
	r = run(srv, "EXTERNAL", &as_tim, &ch, NULL, 1);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "authzid-denied");

	/* Mapped by subject when the fingerprint is not on file. */
	snprintf(ch.cert_fingerprint, sizeof(ch.cert_fingerprint), "%s", FP_NOBODY);
	snprintf(ch.cert_subject, sizeof(ch.cert_subject), "CN=Tim,O=Example");
	r = run(srv, "EXTERNAL", &none, &ch, NULL, 1);
	CHECK(r.st == SASL_OK);
	CHECK_STR(r.user, "tim@example.test");
	snprintf(ch.cert_subject, sizeof(ch.cert_subject), "CN=Nobody");
	r = run(srv, "EXTERNAL", &none, &ch, NULL, 1);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "unknown-certificate");
	r = run(srv, "EXTERNAL", &none, NULL, NULL, 1);
	CHECK(r.st == SASL_FAIL);
	CHECK_STR(r.reason, "no-certificate");
}

static struct userdb *make_db(const char *path)
{
	char *err = NULL;
	struct userdb *db = userdb_open(path, 1, &err);
	if (db == NULL) {
		fprintf(stderr, "userdb_open: %s\n", err ? err : "?");
		free(err);
	}
	return db;
}

static int must(int rc, char *err)
{
	if (rc != 0) {
		fprintf(stderr, "setup: %s\n", err ? err : "?");
		free(err);
	}
	return rc;
}

static void remove_db(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < 4; i++) {
		char p[200];
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		unlink(p);
	}
}

void unit_main(void)
{
	char path[128], bpath[128];
	char *err = NULL;
	struct userdb *db, *bdb;
	struct sasl_server *srv, *bsrv;
	sqlite3 *raw = NULL;
	int ok = 1;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cursus-sasl-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/users.db", tmpdir);
	snprintf(bpath, sizeof(bpath), "%s/broken.db", tmpdir);
	CHECK(gsasl_init(&client_ctx) == GSASL_OK);
	gsasl_callback_set(client_ctx, client_cb);

	db = make_db(path);
	bdb = make_db(bpath);
	CHECK(db != NULL && bdb != NULL);
	if (db == NULL || bdb == NULL)
		return;
	ok &= must(userdb_user_add(db, "tim@example.test", "x", &err), err) == 0;
	ok &= must(userdb_user_set_password(db, "tim@example.test", "tanstaaftanstaaf", 1, &err), err) == 0;
	ok &= must(userdb_user_add(db, "user@example.test", "pencil", &err), err) == 0;
	ok &= must(userdb_user_add(db, "kurt@example.test", "xipj3plmq", &err), err) == 0;
	ok &= must(userdb_user_add(db, "ursel@example.test", "other-password", &err), err) == 0;
	ok &= must(userdb_grant_act_as(db, "kurt@example.test", "ursel@example.test", &err), err) == 0;
	ok &= must(userdb_cert_add(db, "kurt@example.test", FP_KURT, &err), err) == 0;
	ok &= must(userdb_cert_add(db, "tim@example.test", "CN=Tim,O=Example", &err), err) == 0;
	ok &= must(userdb_user_add(bdb, "tim@example.test", "tanstaaftanstaaf", &err), err) == 0;
	CHECK(ok);
	/* Break the second store under its handle: every lookup now fails. */
	CHECK(sqlite3_open(bpath, &raw) == SQLITE_OK);
	CHECK(sqlite3_exec(raw, "DROP TABLE users", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(raw);

	srv = sasl_server_create(db);
	bsrv = sasl_server_create(bdb);
	test_table();
	test_plain(srv);
	test_login(srv);
	test_legacy(srv);
	test_scram(srv);
	test_scram_plus(srv);
	test_precheck(srv, bsrv);
	test_base64(srv);
	test_final_data(srv);
	test_external(srv);
	sasl_server_destroy(&srv);
	sasl_server_destroy(&bsrv);
	CHECK(srv == NULL && bsrv == NULL);

	userdb_close(&db);
	userdb_close(&bdb);
	gsasl_done(client_ctx);
	remove_db(path);
	remove_db(bpath);
	rmdir(tmpdir);
}
