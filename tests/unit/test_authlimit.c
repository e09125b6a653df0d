/* Tests of authlimit: each scenario is a script of failures and questions with the
 * answer expected at that moment; time is passed in, so every answer is exact. */
#include "unit.h"
#include "sasl/authlimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

/* Not in the header: the test's window into the table sizes. */
void authlimit_size(struct authlimit *al, size_t *addrs_r, size_t *accounts_r);

static const struct authlimit_conf defaults = {
	.addr_budget = 10, .account_budget = 30, .window = 900, .cooldown = 900,
	.delay_after = 3, .delay_base_ms = 500, .delay_max_ms = 8000, .max_entries = 1024,
};

/* Builds a sockaddr from text; "" gives NULL (no address). */
static const struct sockaddr *sa(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!text || !*text)
		return NULL;
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &s4->sin_addr) != 1)
			abort();
	}
	return (const struct sockaddr *)ss;
}

enum op {
	FAIL,    /* authlimit_failure: want is the delay in ms */
	ADDR,    /* authlimit_addr_blocked: want is the seconds left */
	ACCT,    /* authlimit_account_blocked: want is the seconds left */
	END,
};

struct step {
	enum op op;
	time_t now;
	const char *addr;
	const char *account;
	unsigned want;
};

static void run(const char *name, const struct authlimit_conf *conf, const struct step *s)
{
	struct authlimit *al = authlimit_create(conf);
	for (int i = 0; s[i].op != END; i++) {
		struct sockaddr_storage ss;
		const struct sockaddr *a = sa(s[i].addr, &ss);
		unsigned got = 0;
		switch (s[i].op) {
		case FAIL: got = authlimit_failure(al, a, s[i].account, s[i].now); break;
		case ADDR: got = authlimit_addr_blocked(al, a, s[i].now); break;
		case ACCT: got = authlimit_account_blocked(al, s[i].account, a, s[i].now); break;
		case END: break;
		}
		CHECK(got == s[i].want);
		if (got != s[i].want)
			fprintf(stderr, "  %s step %d: got %u, want %u\n", name, i, got, s[i].want);
	}
	authlimit_destroy(&al);
	CHECK(al == NULL);
}

/* 9 failures are allowed, the 10th spends the budget; the delays walk up to the cap;
 * the cooldown counts from the 10th failure. */
static const struct step boundary[] = {
	{ FAIL, 0, "192.0.2.1", "alice", 0 },
	{ FAIL, 1, "192.0.2.1", "alice", 0 },
	{ FAIL, 2, "192.0.2.1", "alice", 0 },
	{ FAIL, 3, "192.0.2.1", "alice", 500 },
	{ FAIL, 4, "192.0.2.1", "alice", 1000 },
	{ FAIL, 5, "192.0.2.1", "alice", 2000 },
	{ FAIL, 6, "192.0.2.1", "alice", 4000 },
	{ FAIL, 7, "192.0.2.1", "alice", 8000 },
	{ FAIL, 8, "192.0.2.1", "alice", 8000 },
	{ ADDR, 8, "192.0.2.1", NULL, 0 },
	{ FAIL, 9, "192.0.2.1", "alice", 8000 },
	{ ADDR, 9, "192.0.2.1", NULL, 900 },
	{ ADDR, 500, "192.0.2.1", NULL, 409 },
	{ ADDR, 908, "192.0.2.1", NULL, 1 },
	{ ADDR, 909, "192.0.2.1", NULL, 0 },
	{ ADDR, 9, "192.0.2.2", NULL, 0 },
	{ END, 0, NULL, NULL, 0 },
};

/* A failure stops counting exactly `window` seconds after it happened. */
static const struct step window_expiry[] = {
	{ FAIL, 0, "198.51.100.1", NULL, 0 },
	{ FAIL, 100, "198.51.100.1", NULL, 0 },
	{ FAIL, 101, "198.51.100.1", NULL, 0 },
	{ FAIL, 102, "198.51.100.1", NULL, 500 },
	{ FAIL, 103, "198.51.100.1", NULL, 1000 },
	{ FAIL, 104, "198.51.100.1", NULL, 2000 },
	{ FAIL, 105, "198.51.100.1", NULL, 4000 },
	{ FAIL, 106, "198.51.100.1", NULL, 8000 },
	{ FAIL, 107, "198.51.100.1", NULL, 8000 },
	/* 900 s after the first: it dropped out, 9 remain */
	{ FAIL, 900, "198.51.100.1", NULL, 8000 },
	{ ADDR, 900, "198.51.100.1", NULL, 0 },
	{ FAIL, 901, "198.51.100.1", NULL, 8000 },
	{ ADDR, 901, "198.51.100.1", NULL, 900 },
	/* the same one second earlier does block */
	{ FAIL, 0, "198.51.100.2", NULL, 0 },
	{ FAIL, 100, "198.51.100.2", NULL, 0 },
	{ FAIL, 101, "198.51.100.2", NULL, 0 },
	{ FAIL, 102, "198.51.100.2", NULL, 500 },
	{ FAIL, 103, "198.51.100.2", NULL, 1000 },
	{ FAIL, 104, "198.51.100.2", NULL, 2000 },
	{ FAIL, 105, "198.51.100.2", NULL, 4000 },
	{ FAIL, 106, "198.51.100.2", NULL, 8000 },
	{ FAIL, 107, "198.51.100.2", NULL, 8000 },
	{ FAIL, 899, "198.51.100.2", NULL, 8000 },
	{ ADDR, 899, "198.51.100.2", NULL, 900 },
	/* long quiet: the delays start again from zero */
	{ FAIL, 5000, "198.51.100.2", NULL, 0 },
	{ ADDR, 5000, "198.51.100.2", NULL, 0 },
	{ END, 0, NULL, NULL, 0 },
};

/* One /64 is one client; its neighbour is another. */
static const struct step ipv6[] = {
	{ FAIL, 0, "2001:db8:1:2::1", NULL, 0 },
	{ FAIL, 0, "2001:db8:1:2::2", NULL, 0 },
	{ FAIL, 0, "2001:db8:1:2:ffff:ffff:ffff:ffff", NULL, 0 },
	{ FAIL, 0, "2001:db8:1:2:abcd::1", NULL, 500 },
	{ FAIL, 0, "2001:db8:1:2::5", NULL, 1000 },
	{ FAIL, 0, "2001:db8:1:2::6", NULL, 2000 },
	{ FAIL, 0, "2001:db8:1:2::7", NULL, 4000 },
	{ FAIL, 0, "2001:db8:1:2::8", NULL, 8000 },
	{ FAIL, 0, "2001:db8:1:2::9", NULL, 8000 },
	{ FAIL, 0, "2001:db8:1:3::1", NULL, 0 },
	{ ADDR, 0, "2001:db8:1:2::1", NULL, 0 },
	{ ADDR, 0, "2001:db8:1:3::1", NULL, 0 },
	{ FAIL, 1, "2001:db8:1:2::a", NULL, 8000 },
	{ ADDR, 1, "2001:db8:1:2::1", NULL, 900 },
	{ ADDR, 1, "2001:db8:1:2:1:2:3:4", NULL, 900 },
	{ ADDR, 1, "2001:db8:1:3::1", NULL, 0 },
	{ ADDR, 1, "2001:db8:1:1:ffff:ffff:ffff:ffff", NULL, 0 },
	{ ADDR, 1, "2001:db9:1:2::1", NULL, 0 },
	{ END, 0, NULL, NULL, 0 },
};

/* An IPv4-mapped IPv6 address is the IPv4 address it maps. */
static const struct step mapped[] = {
	{ FAIL, 0, "203.0.113.7", NULL, 0 },
	{ FAIL, 0, "::ffff:203.0.113.7", NULL, 0 },
	{ FAIL, 0, "203.0.113.7", NULL, 0 },
	{ FAIL, 0, "::ffff:203.0.113.7", NULL, 500 },
	{ FAIL, 0, "203.0.113.7", NULL, 1000 },
	{ FAIL, 0, "::ffff:203.0.113.7", NULL, 2000 },
	{ FAIL, 0, "203.0.113.7", NULL, 4000 },
	{ FAIL, 0, "::ffff:203.0.113.7", NULL, 8000 },
	{ FAIL, 0, "203.0.113.7", NULL, 8000 },
	{ FAIL, 0, "::ffff:203.0.113.7", NULL, 8000 },
	{ ADDR, 0, "203.0.113.7", NULL, 900 },
	{ ADDR, 0, "::ffff:203.0.113.7", NULL, 900 },
	{ ADDR, 0, "203.0.113.8", NULL, 0 },
	{ ADDR, 0, "::ffff:203.0.113.8", NULL, 0 },
	/* the mapped prefix is not a /64 of its own */
	{ ADDR, 0, "::ffff:198.51.100.1", NULL, 0 },
	{ END, 0, NULL, NULL, 0 },
};

/* No address/account, and a NULL account, must not crash and count sensibly. */
static const struct step nulls[] = {
	{ FAIL, 0, "192.0.2.50", NULL, 0 },
	{ ACCT, 0, "192.0.2.50", NULL, 0 },
	{ FAIL, 0, "", NULL, 0 },
	{ FAIL, 0, "", "", 0 },
	{ ADDR, 0, "", NULL, 0 },
	{ ACCT, 0, "", "", 0 },
	{ ACCT, 0, "", "nobody", 0 },
	{ END, 0, NULL, NULL, 0 },
};

/* A small account budget (3) so the script stays short; addresses are not blocked. */
static const struct authlimit_conf acct_conf = {
	.addr_budget = 10, .account_budget = 3, .window = 900, .cooldown = 600,
	.delay_after = 3, .delay_base_ms = 500, .delay_max_ms = 8000, .max_entries = 1024,
};

/* An attack on one account from many addresses refuses the attackers, not the
 * owner on a clean address. The name is compared without case. */
static const struct step account[] = {
	{ FAIL, 0, "10.0.0.1", "Alice@Example.org", 0 },
	{ FAIL, 1, "10.0.0.2", "alice@example.org", 0 },
	{ ACCT, 1, "10.0.0.1", "alice@example.org", 0 },
	{ FAIL, 2, "2001:db8::1", "ALICE@EXAMPLE.ORG", 0 },
	{ ACCT, 2, "10.0.0.1", "alice@example.org", 600 },
	{ ACCT, 2, "10.0.0.2", "aLiCe@eXaMpLe.OrG", 600 },
	{ ACCT, 100, "2001:db8::2", "alice@example.org", 502 },
	/* clean addresses: the owner is let in */
	{ ACCT, 100, "10.0.1.1", "alice@example.org", 0 },
	{ ACCT, 100, "2001:db8:0:1::1", "alice@example.org", 0 },
	/* the addresses themselves are not blocked, and other accounts are fine */
	{ ADDR, 100, "10.0.0.1", NULL, 0 },
	{ ACCT, 100, "10.0.0.1", "bob@example.org", 0 },
	/* one failure of its own makes an address dirty, for the whole window */
	{ FAIL, 200, "10.0.1.1", "bob@example.org", 0 },
	{ ACCT, 200, "10.0.1.1", "alice@example.org", 402 },
	/* the account cooldown ends 600 s after the failure that spent the budget */
	{ ACCT, 601, "10.0.0.1", "alice@example.org", 1 },
	{ ACCT, 602, "10.0.0.1", "alice@example.org", 0 },
	{ END, 0, NULL, NULL, 0 },
};

static const struct authlimit_conf small_conf = {
	.addr_budget = 10, .account_budget = 30, .window = 900, .cooldown = 900,
	.delay_after = 3, .delay_base_ms = 500, .delay_max_ms = 8000, .max_entries = 4,
};

/* The least recently used entry goes first; a question counts as a use. */
static const struct step lru[] = {
	{ FAIL, 0, "192.0.2.1", NULL, 0 },
	{ FAIL, 0, "192.0.2.1", NULL, 0 },
	{ FAIL, 0, "192.0.2.1", NULL, 0 },
	{ FAIL, 0, "192.0.2.1", NULL, 500 },
	{ FAIL, 0, "192.0.2.1", NULL, 1000 },
	{ FAIL, 0, "192.0.2.1", NULL, 2000 },
	{ FAIL, 0, "192.0.2.1", NULL, 4000 },
	{ FAIL, 0, "192.0.2.1", NULL, 8000 },
	{ FAIL, 0, "192.0.2.1", NULL, 8000 },
	{ FAIL, 1, "192.0.2.2", NULL, 0 },
	{ FAIL, 1, "192.0.2.2", NULL, 0 },
	{ FAIL, 2, "192.0.2.3", NULL, 0 },
	{ ADDR, 3, "192.0.2.1", NULL, 0 },
	{ FAIL, 4, "192.0.2.4", NULL, 0 },
	{ FAIL, 5, "192.0.2.5", NULL, 0 },      /* table full: .2 goes */
	{ FAIL, 6, "192.0.2.2", NULL, 0 },      /* .2 starts over: first failure */
	{ FAIL, 7, "192.0.2.1", NULL, 8000 },   /* .1 was kept: its 10th */
	{ ADDR, 7, "192.0.2.1", NULL, 900 },
	{ END, 0, NULL, NULL, 0 },
};

static void test_bounded(void)
{
	struct authlimit_conf c = defaults;
	struct authlimit *al;
	size_t na, nc, worst_a = 0, worst_c = 0;
	char name[64];

	c.max_entries = 64;
	al = authlimit_create(&c);
	for (unsigned i = 0; i < 10 * 64; i++) {
		struct sockaddr_storage ss;
		char text[64];
		if (i % 2)
			snprintf(text, sizeof(text), "10.%u.%u.1", i / 256, i % 256);
		else
			snprintf(text, sizeof(text), "2001:db8:%x::1", i);
		snprintf(name, sizeof(name), "user%u@example.org", i);
		authlimit_failure(al, sa(text, &ss), name, (time_t)i);
		authlimit_size(al, &na, &nc);
		if (na > worst_a)
			worst_a = na;
		if (nc > worst_c)
			worst_c = nc;
	}
	CHECK(worst_a == 64);
	CHECK(worst_c == 64);

	/* entries with nothing left to remember are dropped when a lookup meets them */
	authlimit_destroy(&al);
	al = authlimit_create(&c);
	{
		struct sockaddr_storage s1, s2;
		const struct sockaddr *a1 = sa("192.0.2.1", &s1), *a2 = sa("192.0.2.2", &s2);
		authlimit_failure(al, a1, "x", 0);
		authlimit_failure(al, a2, "y", 0);
		authlimit_size(al, &na, &nc);
		CHECK(na == 2 && nc == 2);
		CHECK(authlimit_addr_blocked(al, a1, 900) == 0);
		CHECK(authlimit_account_blocked(al, "y", a2, 900) == 0);
		authlimit_size(al, &na, &nc);
		CHECK(na == 1 && nc == 1);
	}
	authlimit_destroy(&al);
	authlimit_destroy(&al); /* already NULL: harmless */
}

/* A budget of 0 disables that limit; delays still apply. */
static const struct authlimit_conf off_conf = {
	.addr_budget = 0, .account_budget = 0, .window = 900, .cooldown = 900,
	.delay_after = 1, .delay_base_ms = 100, .delay_max_ms = 250, .max_entries = 8,
};

static const struct step off[] = {
	{ FAIL, 0, "192.0.2.9", "u", 0 },
	{ FAIL, 0, "192.0.2.9", "u", 100 },
	{ FAIL, 0, "192.0.2.9", "u", 200 },
	{ FAIL, 0, "192.0.2.9", "u", 250 },
	{ FAIL, 0, "192.0.2.9", "u", 250 },
	{ ADDR, 0, "192.0.2.9", NULL, 0 },
	{ ACCT, 0, "192.0.2.9", "u", 0 },
	{ END, 0, NULL, NULL, 0 },
};

/* A reload: the same budgets keep the counts; new ones start them over, with the new
 * budget in force at once. */
static void test_configure(void)
{
	struct authlimit_conf two = defaults;
	struct sockaddr_storage ss;
	const struct sockaddr *a = sa("192.0.2.9", &ss);
	struct authlimit *al = authlimit_create(&defaults);
	for (time_t t = 0; t < 10; t++)
		(void)authlimit_failure(al, a, "alice", t);
	CHECK(authlimit_addr_blocked(al, a, 10) > 0);
	CHECK(authlimit_configure(al, &defaults) == 0);
	CHECK(authlimit_addr_blocked(al, a, 10) > 0);
	two.addr_budget = 2;
	CHECK(authlimit_configure(al, &two) == 1);
	CHECK(authlimit_addr_blocked(al, a, 10) == 0);
	(void)authlimit_failure(al, a, "alice", 11);
	CHECK(authlimit_addr_blocked(al, a, 11) == 0);
	(void)authlimit_failure(al, a, "alice", 12);
	CHECK(authlimit_addr_blocked(al, a, 12) == 900);
	authlimit_destroy(&al);
}

void unit_main(void)
{
	test_configure();
	run("boundary", &defaults, boundary);
	run("window_expiry", &defaults, window_expiry);
	run("ipv6", &defaults, ipv6);
	run("mapped", &defaults, mapped);
	run("nulls", &defaults, nulls);
	run("account", &acct_conf, account);
	run("lru", &small_conf, lru);
	run("off", &off_conf, off);
	test_bounded();
}
