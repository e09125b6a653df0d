/* Tests of the MAIL and RCPT parameters: each keyword's values, every error code,
 * the ENVID and ORCPT limits, and xtext decoding, encoding and round trips. */
#include "unit.h"
#include "smtp/params.h"
#include "smtp/tls_required.h"

#include <stdint.h>
#include <stdlib.h>

static const struct {
	const char *in;
	int code;               /* 0: accepted */
	const char *text;       /* the error text (NULL: not checked) */
} mail_errors[] = {
	{ "", 0, NULL },
	{ "   ", 0, NULL },
	{ " SIZE=1000", 0, NULL },
	{ "  SIZE=1000   BODY=8BITMIME  ", 0, NULL },
	/* unknown, or not a MAIL parameter */
	{ " FOO=bar", 555, "unsupported parameter" },
	{ " FOO", 555, "unsupported parameter" },
	{ " X-CUSTOM=1", 555, "unsupported parameter" },
	{ " NOTIFY=NEVER", 555, "unsupported parameter" },
	{ " ORCPT=rfc822;a@b", 555, "unsupported parameter" },
	{ " SIZES=1", 555, "unsupported parameter" },
	{ " SIZE=1 BODY=7BIT FOO=1", 555, "unsupported parameter" },
	/* duplicates, in any case */
	{ " SIZE=1 SIZE=2", 501, "duplicate parameter" },
	{ " SIZE=1 size=1", 501, "duplicate parameter" },
	{ " SMTPUTF8 smtputf8", 501, "duplicate parameter" },
	{ " BODY=7BIT RET=FULL Body=8BITMIME", 501, "duplicate parameter" },
	/* keyword and value syntax; a SP must follow the path */
	{ "SIZE=1", 501, "syntax error in parameters" },
	{ "junk", 501, "syntax error in parameters" },
	{ ">", 501, "syntax error in parameters" },
	{ " =1", 501, "syntax error in parameters" },
	{ " -SIZE=1", 501, "syntax error in parameters" },
	{ " SI_ZE=1", 501, "syntax error in parameters" },
	{ " SIZE=", 501, "syntax error in parameters" },
	{ " SIZE==1", 501, "syntax error in parameters" },
	{ " SIZE=1=2", 501, "syntax error in parameters" },
	{ " SIZE=1\t", 501, "syntax error in parameters" },
	{ " ENVID=\xc3\xa9", 501, "syntax error in parameters" },
	{ " SIZE", 501, "missing parameter value" },
	{ " BODY", 501, "missing parameter value" },
	{ " SMTPUTF8=yes", 501, "parameter takes no value" },
	/* SIZE */
	{ " SIZE=0", 0, NULL },
	{ " SIZE=-1", 501, "invalid SIZE value" },
	{ " SIZE=+1", 501, "invalid SIZE value" },
	{ " SIZE=1k", 501, "invalid SIZE value" },
	{ " SIZE=0x10", 501, "invalid SIZE value" },
	{ " SIZE=99999999999999999999999999999999", 0, NULL },
	/* BODY */
	{ " BODY=7bit", 0, NULL },
	{ " BODY=BINARYMIME", 0, NULL },
	{ " BODY=8BIT", 501, "invalid BODY value" },
	{ " BODY=8BITMIMEX", 501, "invalid BODY value" },
	/* RET */
	{ " RET=hdrs", 0, NULL },
	{ " RET=FULLY", 501, "invalid RET value" },
	{ " RET=FULL,HDRS", 501, "invalid RET value" },
	/* ENVID */
	{ " ENVID=abc+2Bdef", 0, NULL },
	{ " ENVID=abc+2bdef", 501, "invalid ENVID value" },
	{ " ENVID=a+2", 501, "invalid ENVID value" },
	{ " ENVID=a+00b", 501, "invalid ENVID value" },
	{ " ENVID=a+0Ab", 501, "invalid ENVID value" },
	{ " ENVID=a+", 501, "invalid ENVID value" },
	{ " ENVID=a+C3+A9", 501, "invalid ENVID value" },
	/* AUTH */
	{ " AUTH=<>", 0, NULL },
	{ " AUTH=alice+40example.org", 0, NULL },
	{ " AUTH=a+0Db", 501, "invalid AUTH value" },
	{ " AUTH=a+ZZ", 501, "invalid AUTH value" },
	/* REQUIRETLS (RFC 8689 2): no value, once */
	{ " REQUIRETLS", 0, NULL },
	{ " requiretls SIZE=10", 0, NULL },
	{ " REQUIRETLS=yes", 501, "parameter takes no value" },
	{ " REQUIRETLS=", 501, "syntax error in parameters" },
	{ " REQUIRETLS RequireTLS", 501, "duplicate parameter" },
	{ " REQUIRE-TLS", 555, "unsupported parameter" },
};

static const struct {
	const char *in;
	int code;
	const char *text;
} rcpt_errors[] = {
	{ "", 0, NULL },
	{ " NOTIFY=NEVER", 0, NULL },
	{ " NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;a@b", 0, NULL },
	{ " SIZE=10", 555, "unsupported parameter" },
	{ " BODY=8BITMIME", 555, "unsupported parameter" },
	{ " SMTPUTF8", 555, "unsupported parameter" },
	{ " RET=FULL", 555, "unsupported parameter" },
	{ " ENVID=x", 555, "unsupported parameter" },
	{ " AUTH=<>", 555, "unsupported parameter" },
	{ " REQUIRETLS", 555, "unsupported parameter" },
	{ " XFOO", 555, "unsupported parameter" },
	{ " NOTIFY=NEVER notify=NEVER", 501, "duplicate parameter" },
	{ " ORCPT=rfc822;a ORCPT=rfc822;b", 501, "duplicate parameter" },
	{ " NOTIFY", 501, "missing parameter value" },
	{ " NOTIFY=", 501, "syntax error in parameters" },
	{ "NOTIFY=NEVER", 501, "syntax error in parameters" },
	/* NOTIFY */
	{ " NOTIFY=NEVER,SUCCESS", 501, "invalid NOTIFY value" },
	{ " NOTIFY=DELAY,NEVER", 501, "invalid NOTIFY value" },
	{ " NOTIFY=SUCCESS,", 501, "invalid NOTIFY value" },
	{ " NOTIFY=,SUCCESS", 501, "invalid NOTIFY value" },
	{ " NOTIFY=SUCCESS,,DELAY", 501, "invalid NOTIFY value" },
	{ " NOTIFY=ALWAYS", 501, "invalid NOTIFY value" },
	{ " NOTIFY=SUCCESSFAILURE", 501, "invalid NOTIFY value" },
	/* ORCPT */
	{ " ORCPT=rfc822", 501, "invalid ORCPT value" },
	{ " ORCPT=;a@b", 501, "invalid ORCPT value" },
	{ " ORCPT=rfc822;", 501, "invalid ORCPT value" },
	{ " ORCPT=rfc(822);a@b", 501, "invalid ORCPT value" },
	{ " ORCPT=rfc822;a+2", 501, "invalid ORCPT value" },
	{ " ORCPT=rfc822;a+0Db", 501, "invalid ORCPT value" },
	{ " ORCPT=rfc822;+C3+A9@b", 501, "invalid ORCPT value" },
};

static void params_errors(void)
{
	size_t i;

	for (i = 0; i < sizeof(mail_errors) / sizeof(mail_errors[0]); i++) {
		struct mail_params mp;
		struct param_error err = { 0, NULL, NULL };
		int rc = params_parse_mail(mail_errors[i].in, strlen(mail_errors[i].in), &mp, &err);

		if ((rc == 0) != (mail_errors[i].code == 0) || (rc && err.code != mail_errors[i].code))
			fprintf(stderr, "MAIL case %zu: \"%s\" -> %d %d %s\n", i,
				mail_errors[i].in, rc, err.code, err.text ? err.text : "");
		if (mail_errors[i].code == 0) {
			CHECK(rc == 0);
		} else {
			CHECK(rc == -1);
			CHECK(err.code == mail_errors[i].code);
			CHECK_STR(err.enhanced, "5.5.4");
			if (mail_errors[i].text)
				CHECK_STR(err.text, mail_errors[i].text);
			/* a failed parse leaves nothing to free */
			CHECK(mp.envid == NULL && mp.auth == NULL);
		}
		params_mail_clear(&mp);
	}
	for (i = 0; i < sizeof(rcpt_errors) / sizeof(rcpt_errors[0]); i++) {
		struct rcpt_params rp;
		struct param_error err = { 0, NULL, NULL };
		int rc = params_parse_rcpt(rcpt_errors[i].in, strlen(rcpt_errors[i].in), &rp, &err);

		if ((rc == 0) != (rcpt_errors[i].code == 0) || (rc && err.code != rcpt_errors[i].code))
			fprintf(stderr, "RCPT case %zu: \"%s\" -> %d %d %s\n", i,
				rcpt_errors[i].in, rc, err.code, err.text ? err.text : "");
		if (rcpt_errors[i].code == 0) {
			CHECK(rc == 0);
		} else {
			CHECK(rc == -1);
			CHECK(err.code == rcpt_errors[i].code);
			CHECK_STR(err.enhanced, "5.5.4");
			if (rcpt_errors[i].text)
				CHECK_STR(err.text, rcpt_errors[i].text);
			CHECK(rp.orcpt == NULL);
		}
		params_rcpt_clear(&rp);
	}
}

static void params_values(void)
{
	struct mail_params mp;
	struct rcpt_params rp;
	struct param_error err;
	const char *s;

	s = "";
	CHECK(params_parse_mail(s, 0, &mp, &err) == 0);
	CHECK(mp.size == 0 && mp.body == BODY_7BIT && !mp.smtputf8 && mp.ret == DSN_RET_UNSET);
	CHECK(mp.envid == NULL && mp.auth == NULL && !mp.requiretls);
	params_mail_clear(&mp);

	s = " SIZE=10 RequireTLS";
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0);
	CHECK(mp.requiretls == 1 && mp.size == 10);
	params_mail_clear(&mp);

	s = " size=12345 body=8bitmime SmtpUtf8 ret=Hdrs envid=QQ+2B+3D1 auth=bob+40x.org";
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0);
	CHECK(mp.size == 12345);
	CHECK(mp.body == BODY_8BITMIME);
	CHECK(mp.smtputf8 == 1);
	CHECK(mp.ret == DSN_RET_HDRS);
	CHECK_STR(mp.envid, "QQ+=1");
	CHECK_STR(mp.auth, "bob@x.org");
	params_mail_clear(&mp);
	CHECK(mp.envid == NULL && mp.auth == NULL);
	params_mail_clear(&mp);     /* twice is harmless */

	s = " BODY=BINARYMIME RET=FULL AUTH=<>";
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0);
	CHECK(mp.body == BODY_BINARYMIME && mp.ret == DSN_RET_FULL);
	CHECK_STR(mp.auth, "<>");
	params_mail_clear(&mp);

	/* SIZE saturates instead of wrapping */
	s = " SIZE=18446744073709551615";
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0 && mp.size == SIZE_MAX);
	s = " SIZE=18446744073709551616";
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0 && mp.size == SIZE_MAX);
	s = " SIZE=184467440737095516150";
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0 && mp.size == SIZE_MAX);
	s = " SIZE=000000000000000000000000042";
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0 && mp.size == 42);

	/* the length given is honoured: parameters past it are not seen */
	s = " SIZE=10 FOO=1";
	CHECK(params_parse_mail(s, 8, &mp, &err) == 0 && mp.size == 10);
	s = " SIZE=10";
	CHECK(params_parse_mail(s, 7, &mp, &err) == 0 && mp.size == 1);

	/* NOTIFY */
	{
		static const struct {
			const char *in;
			unsigned bits;
		} notify[] = {
			{ " NOTIFY=NEVER", DSN_NOTIFY_NEVER },
			{ " NOTIFY=never", DSN_NOTIFY_NEVER },
			{ " NOTIFY=SUCCESS", DSN_NOTIFY_SUCCESS },
			{ " NOTIFY=FAILURE", DSN_NOTIFY_FAILURE },
			{ " NOTIFY=DELAY", DSN_NOTIFY_DELAY },
			{ " NOTIFY=delay,Success", DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS },
			{ " NOTIFY=SUCCESS,FAILURE,DELAY",
			  DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY },
			{ " NOTIFY=FAILURE,FAILURE", DSN_NOTIFY_FAILURE },
			{ "", 0 },
		};
		size_t i;
		for (i = 0; i < sizeof(notify) / sizeof(notify[0]); i++) {
			CHECK(params_parse_rcpt(notify[i].in, strlen(notify[i].in), &rp, &err) == 0);
			CHECK(rp.notify == notify[i].bits);
			CHECK(rp.orcpt == NULL);
			params_rcpt_clear(&rp);
		}
	}

	/* ORCPT keeps the addr-type as given and decodes the xtext */
	s = " ORCPT=rfc822;alice+2Bx@example.org NOTIFY=FAILURE";
	CHECK(params_parse_rcpt(s, strlen(s), &rp, &err) == 0);
	CHECK_STR(rp.orcpt, "rfc822;alice+x@example.org");
	CHECK(rp.notify == DSN_NOTIFY_FAILURE);
	params_rcpt_clear(&rp);
	CHECK(rp.orcpt == NULL);
	s = " ORCPT=utf-8;j\\x{F6}rg@x";
	CHECK(params_parse_rcpt(s, strlen(s), &rp, &err) == 0);
	CHECK_STR(rp.orcpt, "utf-8;j\\x{F6}rg@x");
	params_rcpt_clear(&rp);
	s = " ORCPT=RFC822;a+20b;c";
	CHECK(params_parse_rcpt(s, strlen(s), &rp, &err) == 0);
	CHECK_STR(rp.orcpt, "RFC822;a b;c");
	params_rcpt_clear(&rp);
}

/* Builds " KEY=" followed by n copies of c. */
static char *params_long(const char *key, size_t n, char c)
{
	size_t k = strlen(key);
	char *s = malloc(k + n + 1);
	memcpy(s, key, k);
	memset(s + k, c, n);
	s[k + n] = '\0';
	return s;
}

static void params_limits(void)
{
	struct mail_params mp;
	struct rcpt_params rp;
	struct param_error err;
	char *s;

	/* RFC 3461 4.4: ENVID up to 100 characters */
	s = params_long(" ENVID=", 100, 'e');
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == 0);
	CHECK(mp.envid && strlen(mp.envid) == 100);
	params_mail_clear(&mp);
	free(s);
	s = params_long(" ENVID=", 101, 'e');
	CHECK(params_parse_mail(s, strlen(s), &mp, &err) == -1);
	CHECK(err.code == 501);
	CHECK_STR(err.text, "ENVID too long");
	free(s);

	/* RFC 3461 4.2: ORCPT up to 500 characters ("rfc822;" is 7 of them) */
	s = params_long(" ORCPT=rfc822;", 493, 'o');
	CHECK(params_parse_rcpt(s, strlen(s), &rp, &err) == 0);
	CHECK(rp.orcpt && strlen(rp.orcpt) == 500);
	params_rcpt_clear(&rp);
	free(s);
	s = params_long(" ORCPT=rfc822;", 494, 'o');
	CHECK(params_parse_rcpt(s, strlen(s), &rp, &err) == -1);
	CHECK(err.code == 501);
	free(s);
}

static void params_xtext(void)
{
	static const struct {
		const char *in;
		const char *out;       /* NULL: malformed */
	} decode[] = {
		{ "", "" },
		{ "abc", "abc" },
		{ "!\"#$%&'()*,-./09:;<>?@AZ[\\]^_`az{|}~", "!\"#$%&'()*,-./09:;<>?@AZ[\\]^_`az{|}~" },
		{ "+2B", "+" },
		{ "+3D", "=" },
		{ "+20", " " },
		{ "a+2Bb+3Dc", "a+b=c" },
		{ "+7F", "\x7f" },
		{ "+FF", "\xff" },
		{ "+0A", "\n" },
		{ "+00", NULL },
		{ "+2b", NULL },
		{ "+fF", NULL },
		{ "+G0", NULL },
		{ "+2", NULL },
		{ "+", NULL },
		{ "a=b", NULL },
		{ "a b", NULL },
		{ "a\tb", NULL },
		{ "\x7f", NULL },
		{ "\xc3\xa9", NULL },
		{ "++2B", NULL },
	};
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} encode[] = {
		{ "", 0, "" },
		{ "abc", 3, "abc" },
		{ "a+b=c", 5, "a+2Bb+3Dc" },
		{ "a b", 3, "a+20b" },
		{ "\r\n", 2, "+0D+0A" },
		{ "\xc3\xa9", 2, "+C3+A9" },
		{ "\x7f~!", 3, "+7F~!" },
		{ "a\0b", 3, "a+00b" },
	};
	size_t i;
	int c, ok = 1;

	for (i = 0; i < sizeof(decode) / sizeof(decode[0]); i++) {
		char *d = xtext_decode(decode[i].in, strlen(decode[i].in));
		if (decode[i].out)
			CHECK_STR(d, decode[i].out);
		else
			CHECK(d == NULL);
		free(d);
	}
	/* the length is honoured: "+2B" cut after "+2" is malformed */
	CHECK(xtext_decode("+2B", 2) == NULL);
	{
		char *d = xtext_decode("ab+2B", 2);
		CHECK_STR(d, "ab");
		free(d);
	}
	for (i = 0; i < sizeof(encode) / sizeof(encode[0]); i++) {
		char *e = xtext_encode(encode[i].in, encode[i].len);
		CHECK_STR(e, encode[i].out);
		free(e);
	}

	/* every byte but NUL survives a round trip, alone and in company */
	for (c = 1; c < 256; c++) {
		char in[4] = { 'x', (char)c, 'y', '\0' };
		char *e = xtext_encode(in, 3), *d = e ? xtext_decode(e, strlen(e)) : NULL;
		size_t j;

		if (d == NULL || strcmp(d, in) != 0)
			ok = 0;
		/* the encoding itself is pure xtext: xchars and "+" */
		for (j = 0; e && e[j]; j++)
			if (e[j] < 33 || e[j] > 126 || e[j] == '=')
				ok = 0;
		free(e);
		free(d);
	}
	CHECK(ok);
	/* encoding xtext-safe text changes nothing */
	{
		const char *t = "alice@example.org";
		char *e = xtext_encode(t, strlen(t));
		CHECK_STR(e, t);
		free(e);
	}
}

/* Every prefix of a long parameter line parses or fails with a full error. */
static void params_prefixes(void)
{
	static const char *const lines[] = {
		" SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By AUTH=a+40b",
		" NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@c",
	};
	size_t i, n;
	int ok = 1;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		size_t full = strlen(lines[i]);
		for (n = 0; n <= full; n++) {
			char *buf = malloc(n ? n : 1);
			struct param_error err = { 0, NULL, NULL };
			int rc;

			memcpy(buf, lines[i], n);
			if (i == 0) {
				struct mail_params mp;
				rc = params_parse_mail(buf, n, &mp, &err);
				params_mail_clear(&mp);
			} else {
				struct rcpt_params rp;
				rc = params_parse_rcpt(buf, n, &rp, &err);
				params_rcpt_clear(&rp);
			}
			if (rc != 0 && (rc != -1 || (err.code != 501 && err.code != 555) ||
					err.enhanced == NULL || err.text == NULL))
				ok = 0;
			if (n == full && rc != 0)
				ok = 0;
			free(buf);
		}
	}
	CHECK(ok);
}

/* RFC 8689 3 and 4.1: the "TLS-Required: No" field of the header section, and only
 * without REQUIRETLS; fed whole and cut at every length. */
static void params_tls_required(void)
{
	static const struct {
		const char *msg;
		enum env_tlsreq want;
	} cases[] = {
		{ "Subject: x\r\nTLS-Required: No\r\n\r\nbody\r\n", TLSREQ_NO },
		{ "tls-required:no\r\n\r\n", TLSREQ_NO },
		{ "TLS-REQUIRED: \t NO \r\nFrom: a\r\n\r\n", TLSREQ_NO },
		{ "TLS-Required:\r\n No\r\n\r\n", TLSREQ_NO },
		{ "From: a\r\nTLS-Required: No", TLSREQ_NO },
		{ "TLS-Required: Yes\r\n\r\n", TLSREQ_DEFAULT },
		{ "TLS-Required: No thanks\r\n\r\n", TLSREQ_DEFAULT },
		{ "TLS-Required: N\r\n o\r\n\r\n", TLSREQ_DEFAULT },
		{ "TLS-Required : No\r\n\r\n", TLSREQ_DEFAULT },
		{ "X-TLS-Required: No\r\n\r\n", TLSREQ_DEFAULT },
		{ "Subject: x\r\n TLS-Required: No\r\n\r\n", TLSREQ_DEFAULT },
		{ "Subject: x\r\n\r\nTLS-Required: No\r\n", TLSREQ_DEFAULT },
		{ "\r\nTLS-Required: No\r\n", TLSREQ_DEFAULT },
		{ "", TLSREQ_DEFAULT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *m = cases[i].msg;
		size_t len = strlen(m);
		enum env_tlsreq got = tlsreq_tag(TLSREQ_DEFAULT, m, len);
		if (got != cases[i].want)
			fprintf(stderr, "TLS-Required case %zu: got %d\n", i, (int)got);
		CHECK(got == cases[i].want);
		/* REQUIRETLS wins whatever the header says. */
		CHECK(tlsreq_tag(TLSREQ_REQUIRETLS, m, len) == TLSREQ_REQUIRETLS);
		/* A prefix is read within its end (the sanitizer build checks), and
		 * finds no field that the whole message does not have. */
		for (size_t k = 0; k < len; k++) {
			char *cut = malloc(k + 1);
			memcpy(cut, m, k);
			cut[k] = '\0';
			got = tlsreq_tag(TLSREQ_DEFAULT, cut, k);
			CHECK(got == TLSREQ_DEFAULT || got == cases[i].want ||
			      strstr(m, "No thanks") != NULL);
			free(cut);
		}
	}
}

void unit_main(void)
{
	params_tls_required();
	params_errors();
	params_values();
	params_limits();
	params_xtext();
	params_prefixes();
}
