/* Tests of route (text form round trips, odd bytes, strictness of the parser, the
 * destination and next-hop names) and router (every routing rule, in order of
 * precedence, and the policy fallbacks). */
#include "unit.h"
#include "config/config.h"
#include "queue/envelope.h"
#include "route/route.h"
#include "route/router.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <unistd.h>

#define BASE "local_domains example.test\nlistener smtp {\naddress 127.0.0.1:2525\n}\n"

static struct config *load(const char *text)
{
	char path[] = "/tmp/cursus-test-route-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	struct config *cfg;
	if (!f) {
		perror("mkstemp");
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	cfg = config_load(path, stderr);
	unlink(path);
	CHECK(cfg != NULL);
	return cfg;
}

static void round_trip(const struct route *in, const char *want_text)
{
	struct route out;
	char *t = route_format(in);
	CHECK(t != NULL);
	if (!t)
		return;
	if (want_text)
		CHECK_STR(t, want_text);
	CHECK(route_parse(t, &out) == 0);
	CHECK(out.kind == in->kind);
	CHECK_STR(out.target, in->target);
	if (in->kind != ROUTE_LOCAL && in->kind != ROUTE_LMTP) {
		CHECK(out.port == in->port && out.literal == (in->literal ? 1 : 0));
		CHECK_STR(out.policy, in->policy ? in->policy : "-");
	} else if (in->kind == ROUTE_LMTP && in->policy) {
		CHECK_STR(out.policy, in->policy);
		CHECK(out.port == 0 && out.literal == 0);
	} else {
		CHECK(out.policy == NULL && out.port == 0 && out.literal == 0);
	}
	route_clear(&out);
	free(t);
}

static void test_round_trips(void)
{
	struct route r = { ROUTE_LOCAL, "example.test/alice", 0, 0, NULL };
	round_trip(&r, "local example.test/alice");
	r = (struct route){ ROUTE_MX, "example.org", 25, 0, "-" };
	round_trip(&r, "mx example.org 25 -");
	r = (struct route){ ROUTE_MX, "example.org", 2525, 0, "route .example.org" };
	round_trip(&r, "mx example.org 2525 route+20.example.org");
	r = (struct route){ ROUTE_RELAY, "smtp.example.org", 587, 0, "sender_route @example.test" };
	round_trip(&r, "relay smtp.example.org 587 0 sender_route+20@example.test");
	r = (struct route){ ROUTE_RELAY, "::1", 65535, 1, "-" };
	round_trip(&r, "relay ::1 65535 1 -");
	r = (struct route){ ROUTE_MX, "example.org", 1, 0, NULL };
	round_trip(&r, "mx example.org 1 -");
	r = (struct route){ ROUTE_LMTP, "unix:/run/dovecot/lmtp", 0, 0, NULL };
	round_trip(&r, "lmtp unix:/run/dovecot/lmtp");
	r = (struct route){ ROUTE_LMTP, "[::1]:24", 0, 0, NULL };
	round_trip(&r, "lmtp [::1]:24");
	r = (struct route){ ROUTE_LMTP, "unix:/a dir/lmtp", 0, 0, NULL };
	round_trip(&r, "lmtp unix:/a+20dir/lmtp");
	/* A route block's lmtp options: named after the server. */
	r = (struct route){ ROUTE_LMTP, "imap.example.net:24", 0, 0, "route example.net" };
	round_trip(&r, "lmtp imap.example.net:24 route+20example.net");
	/* Odd bytes: spaces, '+', '=', controls, 8-bit, a lone "-". */
	r = (struct route){ ROUTE_LOCAL, "d\xc3\xa9.test/a b+c=d\t\x01\x7f", 0, 0, NULL };
	round_trip(&r, "local d+C3+A9.test/a+20b+2Bc+3Dd+09+01+7F");
	r = (struct route){ ROUTE_RELAY, "-", 25, 1, "route x\ny" };
	round_trip(&r, "relay - 25 1 route+20x+0Ay");
	r = (struct route){ ROUTE_MX, "+", 25, 0, "+" };
	round_trip(&r, "mx +2B 25 +2B");
	/* Nothing route_format cannot write. */
	r = (struct route){ ROUTE_LOCAL, "", 0, 0, NULL };
	CHECK(route_format(&r) == NULL);
	r = (struct route){ ROUTE_MX, NULL, 25, 0, NULL };
	CHECK(route_format(&r) == NULL);
	r = (struct route){ ROUTE_MX, "x", 25, 0, "" };
	CHECK(route_format(&r) == NULL);
}

static void test_parse_rejects(void)
{
	static const char *const bad[] = {
		"", "local", "local ", " local a", "local a ", "local  a", "local a b",
		"LOCAL a", "lmtp", "lmtp a b c", "lmtp a +", "LMTP a", "mx a 25", "mx a 25 - x", "mx a 0 -", "mx a 65536 -",
		"mx a 025 -", "mx a +25 -", "mx a 2x -", "mx a -1 -", "relay a 25 -",
		"relay a 25 2 -", "relay a 25 01 -", "relay a 25 0 - x", "local a+2", "local a+00",
		"local a+zz", "local a=b", "local +2b", "mx a\t 25 -", "mx a 25 -\n",
		"local a\xc3\xa9", "relay a 25 0 p+0", "mx  25 -",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct route r = { ROUTE_RELAY, (char *)"junk", 7, 1, (char *)"junk" };
		int rc = route_parse(bad[i], &r);
		CHECK(rc == -1);
		CHECK(r.target == NULL && r.policy == NULL && r.port == 0 && r.literal == 0);
		if (rc == 0) {
			fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
			route_clear(&r);
		}
	}
}

static void test_names(void)
{
	struct route r = { ROUTE_LOCAL, "example.test/alice", 0, 0, NULL };
	char *s;
	CHECK_STR(s = route_dest(&r), "local");
	free(s);
	CHECK(route_nexthop(&r) == NULL);
	/* A socket's path keeps its case. */
	r = (struct route){ ROUTE_LMTP, "unix:/Run/LMTP", 0, 0, NULL };
	CHECK_STR(s = route_dest(&r), "lmtp:unix:/Run/LMTP");
	free(s);
	CHECK(route_nexthop(&r) == NULL);
	r = (struct route){ ROUTE_MX, "Example.ORG", 25, 0, "-" };
	CHECK_STR(s = route_dest(&r), "mx:example.org:25");
	free(s);
	CHECK(route_nexthop(&r) == NULL);
	r = (struct route){ ROUTE_RELAY, "Smtp.Example.org", 587, 0, "-" };
	CHECK_STR(s = route_dest(&r), "relay:smtp.example.org:587");
	free(s);
	CHECK_STR(s = route_nexthop(&r), "smtp.example.org:587");
	free(s);
	r = (struct route){ ROUTE_RELAY, "127.0.0.1", 2525, 1, "-" };
	CHECK_STR(s = route_dest(&r), "relay:[127.0.0.1]:2525");
	free(s);
	CHECK_STR(s = route_nexthop(&r), "[127.0.0.1]:2525");
	free(s);
	r = (struct route){ ROUTE_RELAY, "2001:DB8::1", 25, 1, "-" };
	CHECK_STR(s = route_dest(&r), "relay:[2001:db8::1]:25");
	free(s);
	/* A route block is a destination of its own (its TLS policy). */
	r = (struct route){ ROUTE_RELAY, "Smtp.Example.org", 587, 1, "route verify.example" };
	CHECK_STR(s = route_dest(&r), "relay:[smtp.example.org]:587 (route verify.example)");
	free(s);
	r = (struct route){ ROUTE_LMTP, "imap.example:24", 0, 0, "route Example.NET" };
	CHECK_STR(s = route_dest(&r), "lmtp:imap.example:24 (route Example.NET)");
	free(s);
}

/* Routes recipient `to` of a message from `from`; compares the text form. */
static void routes_to(const struct config *cfg, const char *from, const char *to,
		      const char *mailbox, const char *want)
{
	struct envelope env = { 0 };
	struct route r;
	char *t;
	envelope_set_str(&env.mail_from, from);
	envelope_add_rcpt(&env, "other@example.test", NULL, 0, "example.test/other");
	envelope_add_rcpt(&env, to, NULL, 0, mailbox);
	if (!want) {
		CHECK(router_route(cfg, &env, 1, &r) == -1);
		CHECK(r.target == NULL && r.policy == NULL);
	} else if (router_route(cfg, &env, 1, &r) == 0) {
		t = route_format(&r);
		CHECK_STR(t, want);
		if (!t || strcmp(t, want) != 0)
			fprintf(stderr, "  from <%s> to <%s>\n", from, to);
		free(t);
		route_clear(&r);
	} else {
		CHECK(!"router_route failed");
	}
	envelope_clear(&env);
}

static void test_router(void)
{
	struct config *cfg = load(BASE "relay_port 2525\n");
	if (!cfg)
		return;
	/* No configuration at all: MX delivery of the recipient's domain on relay_port. */
	routes_to(cfg, "a@example.test", "Bob@Example.ORG", NULL, "mx example.org 2525 -");
	routes_to(cfg, "", "bob@example.org.", NULL, "mx example.org 2525 -");
	routes_to(cfg, "a@example.test", "alice@example.test", "example.test/alice",
		  "local example.test/alice");
	routes_to(cfg, "a@example.test", "nodomain", NULL, NULL);
	routes_to(cfg, "a@example.test", "trailing@", NULL, NULL);
	config_free(&cfg);

	cfg = load(BASE
		   "relay_host [smart.example.net]\n"
		   "route example.org {\n relay_host mx.example.org:26\n}\n"
		   "route .example.org {\n relay_host [sub.example.org]:27\n}\n"
		   "route .deep.example.org {\n relay_tls verify\n}\n"
		   "route .com {\n relay_host com-relay.example\n}\n"
		   "sender_route @example.test {\n relay_host [dom-sender.example]:28\n}\n"
		   "sender_route boss@example.test {\n relay_host [boss.example]:29\n}\n"
		   "sender_route first@example.test {\n relay_host [first.example]:30\n}\n"
		   "sender_route first@example.test2 {\n}\n"
		   "sender_route @mx.test {\n relay_tls encrypt\n}\n");
	if (!cfg)
		return;
	/* The global smart host, on relay_port (25) as it names none. */
	routes_to(cfg, "x@other.test", "bob@example.net", NULL, "relay smart.example.net 25 1 -");
	routes_to(cfg, "", "bob@example.net", NULL, "relay smart.example.net 25 1 -");
	/* Exact domain route beats ".example.org". */
	routes_to(cfg, "x@other.test", "bob@EXAMPLE.org", NULL,
		  "relay mx.example.org 26 0 route+20example.org");
	/* Subdomains: the nearest ".parent"; a block without relay_host is MX delivery. */
	routes_to(cfg, "x@other.test", "bob@a.example.org", NULL,
		  "relay sub.example.org 27 1 route+20.example.org");
	routes_to(cfg, "x@other.test", "bob@a.b.example.org", NULL,
		  "relay sub.example.org 27 1 route+20.example.org");
	routes_to(cfg, "x@other.test", "bob@deep.example.org", NULL,
		  "mx deep.example.org 25 route+20.deep.example.org");
	routes_to(cfg, "x@other.test", "bob@x.deep.example.org", NULL,
		  "mx x.deep.example.org 25 route+20.deep.example.org");
	routes_to(cfg, "x@other.test", "bob@shop.com", NULL,
		  "relay com-relay.example 25 0 route+20.com");
	/* Not a suffix match on labels: "notexample.org" is not under example.org. */
	routes_to(cfg, "x@other.test", "bob@notexample.org", NULL, "relay smart.example.net 25 1 -");
	/* Sender routes win over recipient routes: exact address before "@domain",
	 * whatever the file order. */
	routes_to(cfg, "boss@Example.Test", "bob@example.org", NULL,
		  "relay boss.example 29 1 sender_route+20boss@example.test");
	routes_to(cfg, "first@example.test", "bob@example.net", NULL,
		  "relay first.example 30 1 sender_route+20first@example.test");
	routes_to(cfg, "clerk@example.test", "bob@a.example.org", NULL,
		  "relay dom-sender.example 28 1 sender_route+20@example.test");
	routes_to(cfg, "first@example.test2", "bob@example.org", NULL,
		  "mx example.org 25 sender_route+20first@example.test2");
	routes_to(cfg, "x@mx.test", "bob@example.net", NULL,
		  "mx example.net 25 sender_route+20@mx.test");
	/* Subdomains of a sender's domain are not that domain. */
	routes_to(cfg, "x@sub.example.test", "bob@example.net", NULL,
		  "relay smart.example.net 25 1 -");
	/* Local recipients stay local whatever the routes say. */
	routes_to(cfg, "boss@example.test", "alice@example.test", "example.test/alice",
		  "local example.test/alice");
	config_free(&cfg);
}

/* LMTP: the global server for every local domain, a route block's for its own (and,
 * with a dot, its subdomains'), "maildir" back to Maildirs; remote mail untouched. */
static void test_router_lmtp(void)
{
	struct config *cfg = load("local_domains example.test other.test sub.lists.test\n"
				  "listener smtp {\naddress 127.0.0.1:2525\n}\n"
				  "lmtp unix:/run/dovecot/lmtp\n"
				  "route other.test {\n lmtp 127.0.0.1:24\n}\n"
				  "route .lists.test {\n lmtp maildir\n}\n"
				  "route tls.test {\n lmtp_tls verify\n}\n"
				  "route example.org {\n relay_host [smart.example.org]\n}\n");
	if (!cfg)
		return;
	routes_to(cfg, "a@example.test", "alice@example.test", "example.test/alice",
		  "lmtp unix:/run/dovecot/lmtp");
	/* An alias: the route follows the mailbox's domain, not the address's. */
	routes_to(cfg, "a@example.test", "sales@example.test", "other.test/bob",
		  "lmtp [127.0.0.1]:24 route+20other.test");
	/* The global server, under its block's lmtp_tls. */
	routes_to(cfg, "a@example.test", "c@tls.test", "tls.test/c",
		  "lmtp unix:/run/dovecot/lmtp route+20tls.test");
	routes_to(cfg, "a@example.test", "x@sub.lists.test", "sub.lists.test/x",
		  "local sub.lists.test/x");
	routes_to(cfg, "a@example.test", "bob@example.org", NULL,
		  "relay smart.example.org 25 1 route+20example.org");
	config_free(&cfg);
}

static void policy_is(const struct config *cfg, const char *policy, int tls, const char *ca,
		      int auth_unverified)
{
	struct route r = { ROUTE_MX, (char *)"example.org", 25, 0, (char *)policy };
	struct relay_policy p;
	char want[4200];
	router_policy(cfg, &r, &p);
	CHECK(p.tls == tls && p.auth_unverified == auth_unverified);
	if (!ca) {
		CHECK(p.ca == NULL);
	} else {
		/* Relative to state_dir, whose default is absolute. */
		snprintf(want, sizeof(want), "/var/lib/cursus/%s", ca);
		CHECK_STR(p.ca, want);
	}
}

static void test_policy(void)
{
	struct config *cfg = load(BASE);
	if (!cfg)
		return;
	/* The default: DANE where it applies, else each domain's MTA-STS policy
	 * (docs/tls-policy.md). */
	policy_is(cfg, "-", RELAY_TLS_AUTO, NULL, 0);
	policy_is(cfg, NULL, RELAY_TLS_AUTO, NULL, 0);
	policy_is(cfg, "route gone.example", RELAY_TLS_AUTO, NULL, 0);
	config_free(&cfg);

	cfg = load(BASE "relay_tls encrypt\nrelay_ca global.pem\n"
		   "route example.org {\n relay_tls verify\n}\n"
		   "route .example.org {\n relay_ca org.pem\n relay_auth_unverified yes\n}\n"
		   "sender_route @example.test {\n relay_tls none\n relay_auth_unverified no\n}\n"
		   "route example.net {\n}\n");
	if (!cfg)
		return;
	policy_is(cfg, "-", RELAY_TLS_ENCRYPT, "global.pem", 0);
	policy_is(cfg, "route example.org", RELAY_TLS_VERIFY, "global.pem", 0);
	policy_is(cfg, "route .example.org", RELAY_TLS_ENCRYPT, "org.pem", 1);
	policy_is(cfg, "sender_route @example.test", RELAY_TLS_NONE, "global.pem", 0);
	policy_is(cfg, "route example.net", RELAY_TLS_ENCRYPT, "global.pem", 0);
	/* A block removed since the route was stored: the global policy. */
	policy_is(cfg, "route example.com", RELAY_TLS_ENCRYPT, "global.pem", 0);
	config_free(&cfg);

	/* What router_route stores is what router_policy finds. */
	cfg = load(BASE "route .example.org {\n relay_tls verify\n}\n");
	if (cfg) {
		struct envelope env = { 0 };
		struct route r;
		struct relay_policy p;
		envelope_set_str(&env.mail_from, "a@example.test");
		envelope_add_rcpt(&env, "b@x.example.org", NULL, 0, NULL);
		CHECK(router_route(cfg, &env, 0, &r) == 0);
		router_policy(cfg, &r, &p);
		CHECK(p.tls == RELAY_TLS_VERIFY);
		route_clear(&r);
		envelope_clear(&env);
	}
	config_free(&cfg);
}

static void lmtp_policy_is(const struct config *cfg, const char *target, const char *policy,
			   int tls, const char *ca)
{
	struct route r = { ROUTE_LMTP, (char *)target, 0, 0, (char *)policy };
	struct relay_policy p;
	router_policy(cfg, &r, &p);
	CHECK(p.tls == tls && p.auth_unverified == 0);
	if (!ca)
		CHECK(p.ca == NULL);
	else
		CHECK_STR(p.ca, ca);
}

/* lmtp_tls: may by default over TCP, never over a UNIX socket; a block's beats the
 * global one; relay_tls and relay_ca never apply to LMTP. */
static void test_lmtp_policy(void)
{
	struct config *cfg = load(BASE "relay_tls verify\nrelay_ca /relay.pem\n"
				  "route a.example {\n lmtp_tls verify\n lmtp_ca /a.pem\n}\n"
				  "route b.example {\n lmtp_tls none\n}\n");
	if (!cfg)
		return;
	lmtp_policy_is(cfg, "[192.0.2.1]:24", NULL, RELAY_TLS_MAY, NULL);
	lmtp_policy_is(cfg, "imap.example:24", NULL, RELAY_TLS_MAY, NULL);
	lmtp_policy_is(cfg, "unix:/run/lmtp", NULL, RELAY_TLS_NONE, NULL);
	lmtp_policy_is(cfg, "imap.example:24", "route a.example", RELAY_TLS_VERIFY, "/a.pem");
	lmtp_policy_is(cfg, "unix:/run/lmtp", "route a.example", RELAY_TLS_NONE, "/a.pem");
	lmtp_policy_is(cfg, "imap.example:24", "route b.example", RELAY_TLS_NONE, NULL);
	lmtp_policy_is(cfg, "imap.example:24", "route gone.example", RELAY_TLS_MAY, NULL);
	config_free(&cfg);
	cfg = load(BASE "lmtp_tls encrypt\nlmtp_ca /g.pem\nroute a.example {\n lmtp_tls verify\n}\n");
	if (!cfg)
		return;
	lmtp_policy_is(cfg, "imap.example:24", NULL, RELAY_TLS_ENCRYPT, "/g.pem");
	lmtp_policy_is(cfg, "imap.example:24", "route a.example", RELAY_TLS_VERIFY, "/g.pem");
	config_free(&cfg);
}

void unit_main(void)
{
	test_round_trips();
	test_parse_rejects();
	test_names();
	test_router();
	test_router_lmtp();
	test_policy();
	test_lmtp_policy();
}
