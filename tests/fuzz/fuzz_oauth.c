/* fuzz_oauth: what cursus reads of OAuth 2 peers: a token endpoint's answer
 * (oauth_token_parse over jsonscan) and a next hop's error challenge
 * (oauth_sasl_parse_error). Byte 0: the HTTP status's class (200, 400, 401, 500 by
 * its low 2 bits); rest: the body, also taken as the challenge. Checks: a success
 * carries a b64token (it goes on a SASL line as is) and nothing else; a refusal or an
 * unreadable answer carries a printable error of bounded length and no token; the
 * challenge's status is printable and short; jsonscan agrees with itself (a document
 * that gives a member is a valid one); and the initial responses built from any
 * accepted token have the RFC 7628 / XOAUTH2 shape. */
#include "fuzz.h"
#include "oauth/oauth_sasl.h"
#include "oauth/oauth_token.h"
#include "util/jsonscan.h"

static void fuzz_printable(const char *s, size_t max)
{
	FUZZ_CHECK(strlen(s) <= max);
	for (; *s; s++)
		FUZZ_CHECK(*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\');
}

static void fuzz_initial(const char *token)
{
	for (int m = 0; m < 2; m++) {
		size_t len;
		char *msg = oauth_sasl_initial((enum oauth_mech)m, "u@example.test", "smtp.example", 587,
					       token, &len);
		FUZZ_CHECK(msg != NULL);
		/* Ends in two %x01 and holds exactly one "auth=Bearer TOKEN". */
		FUZZ_CHECK(len >= 2 && msg[len - 1] == '\001' && msg[len - 2] == '\001');
		FUZZ_CHECK(memmem(msg, len, token, strlen(token)) != NULL);
		FUZZ_CHECK(memchr(msg, '\0', len) == NULL);
		free(msg);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 400, 401, 500 };
	struct oauth_token_reply r;
	char status[64], *body, *s = NULL;
	unsigned long long n;
	int st;

	if (size < 1)
		return 0;
	st = statuses[data[0] & 3];
	body = fuzz_copy(data + 1, size - 1);
	switch (oauth_token_parse(st, body, size - 1, &r)) {
	case OAUTH_TOKEN_OK:
		FUZZ_CHECK(st == 200);
		FUZZ_CHECK(r.access_token && oauth_sasl_token_ok(r.access_token));
		FUZZ_CHECK(!r.error && r.expires_in <= 86400);
		if (r.refresh_token)
			FUZZ_CHECK(*r.refresh_token && !strpbrk(r.refresh_token, "\r\n"));
		fuzz_initial(r.access_token);
		break;
	default:
		FUZZ_CHECK(!r.access_token && !r.refresh_token && r.error);
		fuzz_printable(r.error, 160);
		if (r.error_description)
			fuzz_printable(r.error_description, 160);
		break;
	}
	oauth_token_reply_clear(&r);

	if (oauth_sasl_parse_error(body, size - 1, status, sizeof(status)) == 0)
		FUZZ_CHECK(jsonscan_valid(body, size - 1));
	fuzz_printable(status, sizeof(status) - 1);

	if (jsonscan_string(body, size - 1, "access_token", &s) == 1) {
		FUZZ_CHECK(jsonscan_valid(body, size - 1));
		FUZZ_CHECK(strlen(s) <= size);
	}
	free(s);
	if (jsonscan_uint(body, size - 1, "expires_in", 1000, &n) == 1)
		FUZZ_CHECK(n <= 1000);
	free(body);
	return 0;
}
