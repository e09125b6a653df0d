/* Tests of the path parser: the RFC 5321 4.1.2 grammar rule by rule, the size limits
 * at their exact boundaries, the canonical spelling, and every prefix of a few paths. */
#include "unit.h"
#include "smtp/address.h"

#include <stdlib.h>

#define NUL_OK 1
#define U8 1

static const struct {
	const char *in;
	int allow_null, utf8;
	const char *want;      /* canonical address, or NULL when the parse must fail */
	const char *why;       /* the reason on failure (NULL: not checked) */
	size_t end;            /* 0: strlen(in) */
} address_cases[] = {
	/* plain mailboxes and canonical domains */
	{ "<alice@example.org>", 0, 0, "alice@example.org", NULL, 0 },
	{ "<Alice@Example.ORG>", 0, 0, "Alice@example.org", NULL, 0 },
	{ "<a@b>", 0, 0, "a@b", NULL, 0 },
	{ "<a.b.c@x-y.z9>", 0, 0, "a.b.c@x-y.z9", NULL, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@x>", 0, 0, "!#$%&'*+-/=?^_`{|}~@x", NULL, 0 },
	{ "<a@1.2.3.4>", 0, 0, "a@1.2.3.4", NULL, 0 },
	{ "<a@x--y.org>", 0, 0, "a@x--y.org", NULL, 0 },
	{ "<a@b> SIZE=10", 0, 0, "a@b", NULL, 5 },
	{ "<a@b>junk", 0, 0, "a@b", NULL, 5 },
	/* null path */
	{ "<>", NUL_OK, 0, "", NULL, 0 },
	{ "<> BODY=8BITMIME", NUL_OK, 0, "", NULL, 2 },
	{ "<>", 0, 0, NULL, "null address not allowed", 0 },
	{ "< >", NUL_OK, 0, NULL, NULL, 0 },
	{ "<@x:>", NUL_OK, 0, NULL, NULL, 0 },
	/* source routes: accepted and dropped */
	{ "<@relay.example:bob@example.org>", 0, 0, "bob@example.org", NULL, 0 },
	{ "<@a,@b.c:bob@D.E>", 0, 0, "bob@d.e", NULL, 0 },
	{ "<@a,b:bob@x>", 0, 0, NULL, "syntax error in source route", 0 },
	{ "<@a:@b:bob@x>", 0, 0, NULL, NULL, 0 },
	{ "<@:bob@x>", 0, 0, NULL, "syntax error in source route", 0 },
	{ "<@a bob@x>", 0, 0, NULL, "syntax error in source route", 0 },
	{ "<@a,:bob@x>", 0, 0, NULL, "syntax error in source route", 0 },
	{ "<@[1.2.3.4]:bob@x>", 0, 0, NULL, "syntax error in source route", 0 },
	{ "<@a:>", 0, 0, NULL, NULL, 0 },
	/* quoted local parts */
	{ "<\"alice\"@x>", 0, 0, "alice@x", NULL, 0 },
	{ "<\"a.b\"@x>", 0, 0, "a.b@x", NULL, 0 },
	{ "<\"\\a\\l\\i\\c\\e\"@x>", 0, 0, "alice@x", NULL, 0 },
	{ "<\"john doe\"@x>", 0, 0, "\"john doe\"@x", NULL, 0 },
	{ "<\"john\\ doe\"@x>", 0, 0, "\"john doe\"@x", NULL, 0 },
	{ "<\"a\\\"b\"@x>", 0, 0, "\"a\\\"b\"@x", NULL, 0 },
	{ "<\"a\\\\b\"@x>", 0, 0, "\"a\\\\b\"@x", NULL, 0 },
	{ "<\"a..b\"@x>", 0, 0, "\"a..b\"@x", NULL, 0 },
	{ "<\".a\"@x>", 0, 0, "\".a\"@x", NULL, 0 },
	{ "<\"a.\"@x>", 0, 0, "\"a.\"@x", NULL, 0 },
	{ "<\"\"@x>", 0, 0, "\"\"@x", NULL, 0 },
	{ "<\"a@b\"@x>", 0, 0, "\"a@b\"@x", NULL, 0 },
	{ "<\"a>b\"@x>", 0, 0, "\"a>b\"@x", NULL, 0 },
	{ "<\"a,b:c\"@x>", 0, 0, "\"a,b:c\"@x", NULL, 0 },
	{ "<\"a\tb\"@x>", 0, 0, NULL, "syntax error in local part", 0 },
	{ "<\"a\\\tb\"@x>", 0, 0, NULL, "syntax error in local part", 0 },
	{ "<\"abc@x>", 0, 0, NULL, "syntax error in local part", 0 },
	{ "<\"abc\\\"@x>", 0, 0, NULL, "syntax error in local part", 0 },
	{ "<\"a\"b@x>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<a\"b\"@x>", 0, 0, NULL, "syntax error in mailbox", 0 },
	/* dot-string rules */
	{ "<.a@x>", 0, 0, NULL, "syntax error in local part", 0 },
	{ "<a.@x>", 0, 0, NULL, "syntax error in local part", 0 },
	{ "<a..b@x>", 0, 0, NULL, "syntax error in local part", 0 },
	{ "<@x>", 0, 0, NULL, NULL, 0 },
	{ "<a b@x>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<a(b)@x>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<a[b]@x>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<a\\b@x>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<alice>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<alice@>", 0, 0, NULL, "syntax error in domain", 0 },
	{ "<a@b@c>", 0, 0, NULL, "syntax error in mailbox", 0 },
	/* domains: Let-dig [Ldh-str] */
	{ "<a@-b.org>", 0, 0, NULL, "syntax error in domain", 0 },
	{ "<a@b-.org>", 0, 0, NULL, "syntax error in domain", 0 },
	{ "<a@b.org.>", 0, 0, NULL, "syntax error in domain", 0 },
	{ "<a@.b.org>", 0, 0, NULL, "syntax error in domain", 0 },
	{ "<a@b..org>", 0, 0, NULL, "syntax error in domain", 0 },
	{ "<a@b_c.org>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<a@b .org>", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "<a@b.org >", 0, 0, NULL, "syntax error in mailbox", 0 },
	/* address literals */
	{ "<a@[192.0.2.1]>", 0, 0, "a@[192.0.2.1]", NULL, 0 },
	{ "<a@[IPv6:2001:DB8::1]>", 0, 0, "a@[IPv6:2001:db8::1]", NULL, 0 },
	{ "<a@[ipv6:::1]>", 0, 0, "a@[IPv6:::1]", NULL, 0 },
	{ "<a@[IPv6:::ffff:192.0.2.1]>", 0, 0, "a@[IPv6:::ffff:192.0.2.1]", NULL, 0 },
	{ "<a@[256.0.0.1]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[1.2.3]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[01.2.3.4]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[1.2.3.4.5]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[IPv6:1.2.3.4]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[IPv6:2001:db8::1::2]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[IPv6:]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[2001:db8::1]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[x-tag:foo]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[1.2.3.4>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[1.2.3.4 ]>", 0, 0, NULL, "invalid address literal", 0 },
	{ "<a@[1.2.3.4]x>", 0, 0, NULL, "syntax error in mailbox", 0 },
	/* enclosure */
	{ "alice@example.org", 0, 0, NULL, "path must be enclosed in <>", 0 },
	{ " <a@b>", 0, 0, NULL, "path must be enclosed in <>", 0 },
	{ "", NUL_OK, 0, NULL, "path must be enclosed in <>", 0 },
	{ "<", NUL_OK, 0, NULL, NULL, 0 },
	{ "<a@b", 0, 0, NULL, "path must be enclosed in <>", 0 },
	{ "<a@b.", 0, 0, NULL, NULL, 0 },
	{ "<a@b]", 0, 0, NULL, "syntax error in mailbox", 0 },
	{ "< a@b>", 0, 0, NULL, NULL, 0 },
	/* UTF-8: only with SMTPUTF8, only well-formed */
	{ "<j\xc3\xb6rg@example.org>", 0, 0, NULL, "non-ASCII address without SMTPUTF8", 0 },
	{ "<j\xc3\xb6rg@example.org>", 0, U8, "j\xc3\xb6rg@example.org", NULL, 0 },
	{ "<a@b\xc3\xbc" "cher.example>", 0, 0, NULL, "non-ASCII address without SMTPUTF8", 0 },
	{ "<a@B\xc3\xbc" "cher.EXAMPLE>", 0, U8, "a@b\xc3\xbc" "cher.example", NULL, 0 },
	{ "<\"j\xc3\xb6rg\"@x>", 0, U8, "j\xc3\xb6rg@x", NULL, 0 },
	{ "<\"j\xc3\xb6 rg\"@x>", 0, U8, "\"j\xc3\xb6 rg\"@x", NULL, 0 },
	{ "<\"\\\xc3\xb6\"@x>", 0, U8, NULL, "syntax error in local part", 0 },
	{ "<\xe2\x82\xac@x>", 0, U8, "\xe2\x82\xac@x", NULL, 0 },
	{ "<\xf0\x9f\x98\x80@x>", 0, U8, "\xf0\x9f\x98\x80@x", NULL, 0 },
	{ "<\xc0\xaf@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\xc1\xbf@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\xe0\x80\xaf@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\xf0\x80\x80\xaf@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\xed\xa0\x80@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\xf4\x90\x80\x80@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\xf5\x80\x80\x80@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\xff@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<\x80@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<a\xc3@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<a@x\xe2\x82>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<@r\xc3\xa9:a@x>", 0, U8, "a@x", NULL, 0 },
	{ "<@r\xc3:a@x>", 0, U8, NULL, "invalid UTF-8 in address", 0 },
	{ "<a@[\xc3\xa9]>", 0, U8, NULL, "invalid address literal", 0 },
	/* controls never pass */
	{ "<a\x01@x>", 0, U8, NULL, NULL, 0 },
	{ "<a@x\x7f>", 0, U8, NULL, NULL, 0 },
	{ "<\"a\x7f\"@x>", 0, U8, NULL, NULL, 0 },
};

static void address_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(address_cases) / sizeof(address_cases[0]); i++) {
		const char *in = address_cases[i].in;
		size_t len = strlen(in), end = 12345;
		char *addr = NULL;
		const char *why = NULL;
		int rc = address_parse_path(in, len, address_cases[i].allow_null,
					    address_cases[i].utf8, &addr, &end, &why);

		if ((rc == 0) != (address_cases[i].want != NULL))
			fprintf(stderr, "case %zu: %s -> %d %s\n", i, in, rc, why ? why : "");
		if (address_cases[i].want) {
			CHECK(rc == 0);
			CHECK_STR(addr, address_cases[i].want);
			CHECK(end == (address_cases[i].end ? address_cases[i].end : len));
		} else {
			CHECK(rc == -1);
			CHECK(why != NULL);
			if (address_cases[i].why)
				CHECK_STR(why, address_cases[i].why);
		}
		free(addr);
	}
}

/* Parses "<" local "@" domain ">" built from repeated characters. */
static int address_try(size_t llen, size_t dlen, char **addr_r, const char **why_r)
{
	char buf[1024];
	size_t n = 0, i, end;

	buf[n++] = '<';
	for (i = 0; i < llen; i++)
		buf[n++] = 'l';
	buf[n++] = '@';
	/* labels of 9 letters and a dot, ending on a letter */
	for (i = 0; i < dlen; i++)
		buf[n++] = (i % 10 == 9 && i + 1 < dlen) ? '.' : 'D';
	buf[n++] = '>';
	*addr_r = NULL;
	return address_parse_path(buf, n, 0, 0, addr_r, &end, why_r);
}

static void address_limits(void)
{
	static const struct {
		size_t llen, dlen;
		const char *why;        /* NULL: accepted */
	} limits[] = {
		/* RFC 5321 4.5.3.1.1: local part 64 octets */
		{ 64, 10, NULL },
		{ 65, 10, "local part too long" },
		/* 4.5.3.1.3: the path "<" 64 "@" 189 ">" is 256 octets, one more is too many */
		{ 64, 189, NULL },
		{ 64, 190, "path too long" },
		{ 1, 252, NULL },
		{ 1, 253, "path too long" },
		/* 4.5.3.1.2: domain 255 octets: a 255-octet domain is only refused for
		 * the path; 256 octets is refused as a domain */
		{ 1, 255, "path too long" },
		{ 1, 256, "domain too long" },
		{ 65, 256, "local part too long" },
		{ 500, 10, "local part too long" },
		{ 1, 900, "domain too long" },
	};
	size_t i;

	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		char *addr;
		const char *why = NULL;
		int rc = address_try(limits[i].llen, limits[i].dlen, &addr, &why);

		if (limits[i].why == NULL) {
			CHECK(rc == 0);
			CHECK(addr && strlen(addr) == limits[i].llen + 1 + limits[i].dlen);
		} else {
			CHECK(rc == -1);
			CHECK_STR(why, limits[i].why);
		}
		free(addr);
	}

	/* a quoted local part counts its quotes: 62 letters quoted is 64 octets */
	{
		char buf[128], *addr = NULL;
		const char *why = NULL;
		size_t end, n = 0, i2;

		buf[n++] = '<';
		buf[n++] = '"';
		for (i2 = 0; i2 < 62; i2++)
			buf[n++] = 'q';
		memcpy(buf + n, "\"@x>", 4);
		CHECK(address_parse_path(buf, n + 4, 0, 0, &addr, &end, &why) == 0);
		CHECK(addr && strlen(addr) == 64);
		free(addr);
		addr = NULL;
		memmove(buf + 3, buf + 2, n + 4 - 2);
		buf[2] = 'q';
		CHECK(address_parse_path(buf, n + 5, 0, 0, &addr, &end, &why) == -1);
		CHECK_STR(why, "local part too long");
	}
	/* a source route counts toward the path */
	{
		char buf[512], *addr = NULL;
		const char *why = NULL;
		size_t end;
		/* A source route of short labels: every label is valid, the path is not. */
		char route[300] = "";
		for (int k = 0; k < 125; k++)
			strcat(route, "x.");
		strcat(route, "x");
		int n = snprintf(buf, sizeof(buf), "<@%s:a@b>", route);

		CHECK(address_parse_path(buf, (size_t)n, 0, 0, &addr, &end, &why) == -1);
		CHECK_STR(why, "path too long");
		free(addr);
	}
}

/* Every prefix of valid paths fails cleanly (none is a path but the whole) and
 * reads nothing past its length. */
static void address_prefixes(void)
{
	static const char *const paths[] = {
		"<@relay.example,@r2:\"john \\\" doe\"@[IPv6:2001:db8::1]>",
		"<j\xc3\xb6rg.m@b\xc3\xbc" "cher.example>",
		"<a@[192.0.2.1]>",
	};
	size_t i, n;
	int ok = 1;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		size_t full = strlen(paths[i]);
		for (n = 0; n <= full; n++) {
			char *buf = malloc(n ? n : 1), *addr = NULL;
			const char *why = NULL;
			size_t end;
			int rc;

			memcpy(buf, paths[i], n);
			rc = address_parse_path(buf, n, 1, 1, &addr, &end, &why);
			if (n < full && (rc != -1 || why == NULL))
				ok = 0;
			if (n == full && (rc != 0 || end != full))
				ok = 0;
			free(addr);
			free(buf);
		}
	}
	CHECK(ok);
}

static void address_split_and_routing(void)
{
	static const struct {
		const char *addr, *local, *domain;
		int routing;
	} cases[] = {
		{ "alice@example.org", "alice", "example.org", 0 },
		{ "\"a@b\"@x", "\"a@b\"", "x", 1 },
		{ "user%other@x", "user%other", "x", 1 },
		{ "host!user@x", "host!user", "x", 1 },
		{ "\"john doe\"@x", "\"john doe\"", "x", 0 },
		{ "a@[IPv6:::1]", "a", "[IPv6:::1]", 0 },
		{ "@x", "", "x", 0 },
	};
	size_t i;
	char *l, *d;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		l = d = NULL;
		CHECK(address_split(cases[i].addr, &l, &d) == 0);
		CHECK_STR(l, cases[i].local);
		CHECK_STR(d, cases[i].domain);
		CHECK(!!address_has_routing(l) == cases[i].routing);
		free(l);
		free(d);
	}
	l = d = NULL;
	CHECK(address_split("postmaster", &l, &d) == -1);
	CHECK(address_split("", &l, &d) == -1);
	CHECK(l == NULL && d == NULL);
	CHECK(!address_has_routing(""));
	CHECK(address_has_routing("a@b"));
	CHECK(address_has_routing("\"a\\@b\""));

	/* round trip: a parsed quoted address splits into its canonical parts */
	{
		char *addr = NULL;
		const char *why;
		size_t end;
		CHECK(address_parse_path("<\"a%b\"@X.org>", 13, 0, 0, &addr, &end, &why) == 0);
		CHECK_STR(addr, "a%b@x.org");
		CHECK(address_split(addr, &l, &d) == 0);
		CHECK_STR(l, "a%b");
		CHECK(address_has_routing(l));
		free(l);
		free(d);
		free(addr);
	}
}

void unit_main(void)
{
	address_table();
	address_limits();
	address_prefixes();
	address_split_and_routing();
}
