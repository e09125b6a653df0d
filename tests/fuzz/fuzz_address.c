/* fuzz_address: the RFC 5321 path parser. Checks the promises of address.c: an
 * accepted address is within the size limits, free of control bytes, ASCII unless
 * SMTPUTF8 was given, and canonical: "<" canonical ">" parses again to the same
 * string (under both UTF-8 settings when it is ASCII). address_split and
 * address_has_routing are run on every accepted address.
 * Input: byte 0 bit 0 = allow_null, bit 1 = utf8; the rest is the text after
 * "MAIL FROM:" / "RCPT TO:". */
#include "fuzz.h"
#include "smtp/address.h"

/* RFC 5321 4.5.3.1.3: the path, "<" and ">" included, is at most 256 octets. */
#define FUZZ_PATH_MAX 256

static void addr_reparse(const char *addr, int allow_null, int utf8)
{
	size_t n = strlen(addr), end = 0;
	char *path = malloc(n + 2), *again = NULL;
	const char *why = NULL;

	FUZZ_CHECK(path != NULL);
	path[0] = '<';
	memcpy(path + 1, addr, n);
	path[n + 1] = '>';
	if (address_parse_path(path, n + 2, allow_null, utf8, &again, &end, &why) != 0) {
		fprintf(stderr, "canonical address does not parse again: %s\n", why);
		FUZZ_CHECK(!"canonical form parses again");
	}
	FUZZ_CHECK(end == n + 2);
	FUZZ_CHECK(strcmp(again, addr) == 0);
	free(again);
	free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int allow_null = data[0] & 1, utf8 = (data[0] >> 1) & 1;
	size_t len = size - 1, end = 12345, i, n;
	char *s = fuzz_copy(data + 1, len), *addr = NULL, *local = NULL, *domain = NULL;
	const char *why = NULL;

	if (address_parse_path(s, len, allow_null, utf8, &addr, &end, &why) != 0) {
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		free(s);
		return 0;
	}
	FUZZ_CHECK(addr != NULL);
	FUZZ_CHECK(end >= 2 && end <= len && s[0] == '<' && s[end - 1] == '>');
	n = strlen(addr);
	FUZZ_CHECK(n + 2 <= FUZZ_PATH_MAX);
	FUZZ_CHECK(n + 2 <= end); /* never longer than the text it came from */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];
		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
		FUZZ_CHECK(utf8 || c < 0x80);
	}
	if (n == 0) {
		FUZZ_CHECK(allow_null && end == 2);
		free(addr);
		free(s);
		return 0;
	}

	FUZZ_CHECK(address_split(addr, &local, &domain) == 0);
	FUZZ_CHECK(strlen(local) <= 64 && strlen(domain) <= 255);
	FUZZ_CHECK(strlen(local) + 1 + strlen(domain) == n);
	FUZZ_CHECK(domain[0] != '\0');
	(void)address_has_routing(local);

	addr_reparse(addr, allow_null, utf8);
	if (!utf8)
		addr_reparse(addr, allow_null, 1);
	free(local);
	free(domain);
	free(addr);
	free(s);
	return 0;
}
