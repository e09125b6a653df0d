/* Tests of addrcount: clients are IPv4 addresses or IPv6 prefixes. */
#include "unit.h"
#include "util/addrcount.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		CHECK(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		CHECK(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_prefix(void)
{
	struct addrcount *ac = addrcount_create(64);
	struct sockaddr_storage a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2:ffff::9"),
				c = addr("2001:db8:1:3::1"), m = addr("::ffff:192.0.2.1"),
				v4 = addr("192.0.2.1");
	CHECK(addrcount_inc(ac, SA(a)) == 1);
	CHECK(addrcount_inc(ac, SA(b)) == 2);       /* same /64 */
	CHECK(addrcount_inc(ac, SA(c)) == 1);       /* another /64 */
	CHECK(addrcount_inc(ac, SA(v4)) == 1);
	CHECK(addrcount_inc(ac, SA(m)) == 2);       /* mapped IPv4 is IPv4 */
	size_t *bytes = addrcount_bytes(ac, SA(a));
	CHECK(bytes && *bytes == 0);
	if (bytes)
		*bytes = 100;
	CHECK(addrcount_bytes(ac, SA(b)) == bytes);
	addrcount_dec(ac, SA(a));
	addrcount_dec(ac, SA(b));
	CHECK(addrcount_bytes(ac, SA(a)) == NULL);  /* gone with its last session */
	addrcount_destroy(&ac);

	/* Prefixes not on a byte boundary mask the last byte. */
	unsigned char k1[ADDR_CLIENT_KEY_MAX], k2[ADDR_CLIENT_KEY_MAX];
	struct sockaddr_storage x = addr("2001:db8:1f::"), y = addr("2001:db8:10::"),
				z = addr("2001:db8:20::");
	size_t n1 = addrcount_client_key(SA(x), 44, k1), n2 = addrcount_client_key(SA(y), 44, k2);
	CHECK(n1 == 7 && n2 == 7 && memcmp(k1, k2, n1) == 0);
	n2 = addrcount_client_key(SA(z), 44, k2);
	CHECK(memcmp(k1, k2, n1) != 0);
	CHECK(addrcount_client_key(SA(x), 128, k1) == 17);
	CHECK(addrcount_client_key(SA(v4), 64, k1) == 5 && k1[0] == 4);
}

/* The text form a shared (PostgreSQL) budget counts by: one key per client, as above. */
static void test_client_text(void)
{
	struct sockaddr_storage a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2:ffff::9"),
				c = addr("2001:db8:1:3::1"), v4 = addr("192.0.2.7"),
				m = addr("::ffff:192.0.2.7");
	char ta[ADDR_CLIENT_TEXT_MAX], tb[ADDR_CLIENT_TEXT_MAX], tc[ADDR_CLIENT_TEXT_MAX];
	struct sockaddr_un { sa_family_t f; } none = { AF_UNIX };

	addrcount_client_text(SA(a), 64, ta);
	addrcount_client_text(SA(b), 64, tb);
	addrcount_client_text(SA(c), 64, tc);
	CHECK_STR(ta, "2001:db8:1:2::/64");
	CHECK_STR(tb, ta);
	CHECK(strcmp(tc, ta) != 0);
	addrcount_client_text(SA(a), 48, ta);
	addrcount_client_text(SA(c), 48, tc);
	CHECK_STR(ta, "2001:db8:1::/48");
	CHECK_STR(tc, ta);
	addrcount_client_text(SA(a), 128, ta);
	CHECK_STR(ta, "2001:db8:1:2::1/128");
	addrcount_client_text(SA(v4), 64, ta);
	addrcount_client_text(SA(m), 64, tb);
	CHECK_STR(ta, "192.0.2.7");
	CHECK_STR(tb, "192.0.2.7");
	addrcount_client_text((const struct sockaddr *)&none, 64, ta);
	CHECK_STR(ta, "");
}

void unit_main(void)
{
	test_prefix();
	test_client_text();
}
