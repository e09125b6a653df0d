/* test_dane: which TLSA records are usable for SMTP (RFC 7672 3.1.3, RFC 7671 4.1),
 * table-driven, and the rdata parser fed short and odd records. Matching against
 * certificates is OpenSSL's and is tested end to end in tests/integration/test_dane.py. */
#include <stdlib.h>
#include <string.h>

#include "net/dane.h"
#include "unit.h"

static const struct {
	unsigned char usage, selector, mtype;
	size_t len;
	int usable;
} cases[] = {
	{ 3, 1, 1, 32, 1 },  /* DANE-EE SPKI SHA2-256: the common one */
	{ 3, 0, 1, 32, 1 },
	{ 3, 1, 2, 64, 1 },  /* SHA2-512 */
	{ 3, 1, 0, 91, 1 },  /* the full key */
	{ 2, 0, 1, 32, 1 },  /* DANE-TA */
	{ 2, 1, 2, 64, 1 },
	{ 0, 0, 1, 32, 0 },  /* PKIX-TA: unusable for SMTP */
	{ 1, 1, 1, 32, 0 },  /* PKIX-EE: unusable for SMTP */
	{ 4, 1, 1, 32, 0 },  /* unknown usage */
	{ 3, 2, 1, 32, 0 },  /* unknown selector */
	{ 3, 1, 3, 32, 0 },  /* unknown matching type */
	{ 3, 1, 1, 31, 0 },  /* a SHA2-256 digest of the wrong length */
	{ 3, 1, 2, 32, 0 },
};

static void test_usable_table(void)
{
	unsigned char data[128] = { 0 };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dane_tlsa t = { cases[i].usage, cases[i].selector, cases[i].mtype, data,
				       cases[i].len, 0 };
		if (dane_tlsa_usable(&t) != cases[i].usable)
			fprintf(stderr, "case %zu\n", i);
		CHECK(dane_tlsa_usable(&t) == cases[i].usable);
	}
}

static void test_parse(void)
{
	unsigned char good[35] = { 3, 1, 1 }, pkix[35] = { 0, 0, 1 }, shortr[3] = { 3, 1, 1 };
	unsigned char *rd[] = { good, shortr, pkix };
	size_t len[] = { sizeof(good), sizeof(shortr), sizeof(pkix) };
	struct dane_rrset set;
	char text[200];

	good[3] = 0xab;
	dane_rrset_parse(&set, rd, len, 3);
	CHECK(set.n == 2);        /* the 3-octet record is malformed: left out */
	CHECK(set.n_usable == 1);
	CHECK(set.recs[0].usable && !set.recs[1].usable);
	CHECK(set.recs[0].len == 32 && set.recs[0].data[0] == 0xab);
	dane_tlsa_text(&set.recs[0], text, sizeof(text));
	CHECK(strncmp(text, "3 1 1 ab00", 10) == 0 && strlen(text) == 6 + 64);
	dane_tlsa_text(&set.recs[0], text, 12); /* cut, never overrun */
	CHECK(strlen(text) < 12);
	dane_rrset_clear(&set);
	CHECK(set.n == 0 && set.recs == NULL);
	dane_rrset_parse(&set, rd, len, 0);
	CHECK(set.n == 0 && set.n_usable == 0);
	dane_rrset_clear(&set);
}

void unit_main(void)
{
	test_usable_table();
	test_parse();
}
