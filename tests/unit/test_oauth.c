/* test_oauth: the pieces of OAuth 2 for smart hosts that read and write protocol text:
 * jsonscan (fed whole and cut short at every length), the token request's form and the
 * token endpoint's answers (RFC 6749 5.1/5.2, as Microsoft and Google send them), and
 * the XOAUTH2/OAUTHBEARER client messages (RFC 7628 3.1, 3.2.2-3.2.3). */
#include <stdlib.h>

#include "oauth/oauth_sasl.h"
#include "oauth/oauth_token.h"
#include "unit.h"
#include "util/jsonscan.h"

static void test_jsonscan(void)
{
	const char *doc = " {\"a\": {\"status\": \"inner\"}, \"status\" : \"invalid_token\", "
			  "\"n\": 3599, \"s\": \"3600\", \"f\": 12.5e1, \"esc\": \"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\","
			  "\"arr\": [1, \"x\", null, true, false, {}], \"neg\": -4} ";
	size_t len = strlen(doc);
	char *s = NULL;
	unsigned long long n = 0;

	CHECK(jsonscan_valid(doc, len));
	/* Only the top level's member, never the nested one of the same name. */
	CHECK(jsonscan_string(doc, len, "status", &s) == 1);
	CHECK_STR(s, "invalid_token");
	free(s);
	CHECK(jsonscan_string(doc, len, "esc", &s) == 1);
	CHECK_STR(s, "a\"b\\c\xc3\xa9\xf0\x9f\x98\x80");
	free(s);
	CHECK(jsonscan_string(doc, len, "n", &s) == 0 && s == NULL);
	CHECK(jsonscan_string(doc, len, "missing", &s) == 0);
	CHECK(jsonscan_uint(doc, len, "n", 86400, &n) == 1 && n == 3599);
	CHECK(jsonscan_uint(doc, len, "s", 86400, &n) == 1 && n == 3600);
	CHECK(jsonscan_uint(doc, len, "f", 86400, &n) == 1 && n == 12);
	CHECK(jsonscan_uint(doc, len, "n", 100, &n) == 1 && n == 100);
	CHECK(jsonscan_uint(doc, len, "neg", 100, &n) == 0);
	CHECK(jsonscan_uint(doc, len, "esc", 100, &n) == 0);
	/* Every proper prefix is refused (nothing is believed of a cut document). */
	for (size_t i = 0; i + 1 < len; i++)
		CHECK(!jsonscan_valid(doc, i) || i >= len - 1);
	/* Grammar corners. */
	static const char *const bad[] = {
		"", "[]", "\"x\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}",
		"{\"a\":1.}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"tab\there\"}",
		"{\"a\":tru}", "{} {}", "{\"a\":1 \"b\":2}",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!jsonscan_valid(bad[i], strlen(bad[i])));
	CHECK(jsonscan_string("{\"a\":1,}", 8, "a", &s) == -1);
	/* \u0000 would cut the string short: absent. */
	CHECK(jsonscan_string("{\"a\":\"x\\u0000y\"}", 16, "a", &s) == 0 && !s);
}

static void test_token_request(void)
{
	struct oauth_client c = { OAUTH_GRANT_REFRESH_TOKEN, "client id", "s&c=r+t", "rt/1",
				  "https://outlook.office.com/SMTP.Send offline_access" };
	char *body = oauth_token_request(&c);
	CHECK_STR(body, "grant_type=refresh_token&refresh_token=rt%2F1&client_id=client+id&"
			"client_secret=s%26c%3Dr%2Bt&scope=https%3A%2F%2Foutlook.office.com%2F"
			"SMTP.Send+offline_access");
	free(body);
	c.grant = OAUTH_GRANT_CLIENT_CREDENTIALS;
	c.client_secret = NULL; /* (refused by the store; the form just leaves it out) */
	c.scope = "";
	body = oauth_token_request(&c);
	CHECK_STR(body, "grant_type=client_credentials&client_id=client+id");
	free(body);
	CHECK(oauth_grant_parse("refresh_token") == OAUTH_GRANT_REFRESH_TOKEN);
	CHECK(oauth_grant_parse("client_credentials") == OAUTH_GRANT_CLIENT_CREDENTIALS);
	CHECK(oauth_grant_parse("password") == -1);
}

static enum oauth_token_result parse(int status, const char *body, struct oauth_token_reply *r)
{
	return oauth_token_parse(status, body, strlen(body), r);
}

static void test_token_reply(void)
{
	struct oauth_token_reply r;
	/* Microsoft's: expires_in and ext_expires_in, a rotated refresh token. */
	CHECK(parse(200, "{\"token_type\":\"Bearer\",\"scope\":\"https://outlook.office.com/SMTP.Send\","
		      "\"expires_in\":3599,\"ext_expires_in\":3599,\"access_token\":\"eyJ0.eyJ1.sig-_\","
		      "\"refresh_token\":\"0.AAAA-new\"}", &r) == OAUTH_TOKEN_OK);
	CHECK_STR(r.access_token, "eyJ0.eyJ1.sig-_");
	CHECK_STR(r.refresh_token, "0.AAAA-new");
	CHECK(r.expires_in == 3599 && r.error == NULL);
	oauth_token_reply_clear(&r);
	CHECK(r.access_token == NULL);
	/* Google's: lower-case bearer, no refresh token; a huge expires_in is capped. */
	CHECK(parse(200, "{\"access_token\":\"ya29.a0Af\",\"expires_in\":99999999,"
		      "\"token_type\":\"bearer\"}", &r) == OAUTH_TOKEN_OK);
	CHECK(r.refresh_token == NULL && r.expires_in == 86400);
	oauth_token_reply_clear(&r);
	/* RFC 6749 5.2 refusal. */
	CHECK(parse(400, "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70008: "
		      "expired\\n\\\"x\\\"\"}", &r) == OAUTH_TOKEN_REFUSED);
	CHECK_STR(r.error, "invalid_grant");
	CHECK_STR(r.error_description, "AADSTS70008: expired__x_");
	CHECK(r.access_token == NULL);
	oauth_token_reply_clear(&r);
	CHECK(parse(401, "{\"error\":\"invalid_client\"}", &r) == OAUTH_TOKEN_REFUSED);
	oauth_token_reply_clear(&r);
	/* Not understood: HTML from a proxy, a 500, no token, a token that cannot be
	 * carried, a MAC token. */
	CHECK(parse(502, "<html>bad gateway</html>", &r) == OAUTH_TOKEN_BAD);
	CHECK_STR(r.error, "HTTP status 502 without a JSON object");
	oauth_token_reply_clear(&r);
	CHECK(parse(500, "{}", &r) == OAUTH_TOKEN_BAD);
	oauth_token_reply_clear(&r);
	CHECK(parse(200, "{\"token_type\":\"Bearer\"}", &r) == OAUTH_TOKEN_BAD);
	oauth_token_reply_clear(&r);
	CHECK(parse(200, "{\"access_token\":\"a b\\u0001\",\"token_type\":\"Bearer\"}", &r) ==
	      OAUTH_TOKEN_BAD);
	CHECK(r.access_token == NULL);
	oauth_token_reply_clear(&r);
	CHECK(parse(200, "{\"access_token\":\"abc\",\"token_type\":\"mac\"}", &r) == OAUTH_TOKEN_BAD);
	oauth_token_reply_clear(&r);
}

static void test_sasl(void)
{
	size_t len;
	char *m, status[64];
	const char *resp;

	CHECK(oauth_sasl_mech("xoauth2") == OAUTH_MECH_XOAUTH2);
	CHECK(oauth_sasl_mech("OAUTHBEARER") == OAUTH_MECH_OAUTHBEARER);
	CHECK(oauth_sasl_mech("PLAIN") == -1);
	/* Google's XOAUTH2 document. */
	m = oauth_sasl_initial(OAUTH_MECH_XOAUTH2, "someuser@example.com", "h", 587,
			       "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", &len);
	CHECK(m && len == strlen(m));
	CHECK_STR(m, "user=someuser@example.com\001auth=Bearer "
		     "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001");
	free(m);
	/* RFC 7628 4.1's example, with the authzid's "," and "=" escaped (RFC 5801 4). */
	m = oauth_sasl_initial(OAUTH_MECH_OAUTHBEARER, "user@example.com", "server.example.com", 143,
			       "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", &len);
	CHECK_STR(m, "n,a=user@example.com,\001host=server.example.com\001port=143\001"
		     "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001");
	free(m);
	m = oauth_sasl_initial(OAUTH_MECH_OAUTHBEARER, "a,b=c", NULL, 0, "t", &len);
	CHECK_STR(m, "n,a=a=2Cb=3Dc,\001auth=Bearer t\001\001");
	free(m);
	/* A token or user that could smuggle a key/value is refused. */
	CHECK(oauth_sasl_initial(OAUTH_MECH_XOAUTH2, "u", NULL, 0, "a\001auth=x", &len) == NULL);
	CHECK(oauth_sasl_initial(OAUTH_MECH_XOAUTH2, "u", NULL, 0, "a b", &len) == NULL);
	CHECK(oauth_sasl_initial(OAUTH_MECH_XOAUTH2, "u\001x", NULL, 0, "t", &len) == NULL);
	CHECK(oauth_sasl_initial(OAUTH_MECH_XOAUTH2, "", NULL, 0, "t", &len) == NULL);
	CHECK(oauth_sasl_token_ok("abc==") && !oauth_sasl_token_ok("ab=c") && !oauth_sasl_token_ok(""));
	/* RFC 7628 3.2.2 error, and the answers of 3.2.3. */
	const char *err = "{\"status\":\"invalid_token\",\"scope\":\"example_scope\","
			  "\"openid-configuration\":\"https://example.com/.well-known/openid-configuration\"}";
	CHECK(oauth_sasl_parse_error(err, strlen(err), status, sizeof(status)) == 0);
	CHECK_STR(status, "invalid_token");
	CHECK(oauth_sasl_parse_error("{\"status\":\"401\",\"schemes\":\"bearer mac\"}", 39, status,
				     sizeof(status)) == 0);
	CHECK_STR(status, "401");
	CHECK(oauth_sasl_parse_error("not json", 8, status, sizeof(status)) == -1);
	CHECK_STR(status, "?");
	CHECK(oauth_sasl_parse_error("{\"status\":\"a b\\n\"}", 18, status, 4) == 0);
	CHECK_STR(status, "a_b");
	resp = oauth_sasl_error_response(OAUTH_MECH_OAUTHBEARER, &len);
	CHECK(len == 1 && resp[0] == '\001');
	resp = oauth_sasl_error_response(OAUTH_MECH_XOAUTH2, &len);
	CHECK(len == 0);
}

void unit_main(void)
{
	test_jsonscan();
	test_token_request();
	test_token_reply();
	test_sasl();
}
