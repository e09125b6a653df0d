/* fuzz_params: the ESMTP parameters of MAIL and RCPT and the xtext codec. Every
 * input is parsed both as MAIL and as RCPT parameters, and as xtext. Checks the
 * promises of params.c: a failure carries a 501 or 555 reply and leaves nothing
 * allocated; every decoded value is free of control bytes (ASCII where the RFC says
 * so); NOTIFY=NEVER stands alone; and xtext round-trips: decode(encode(x)) == x for
 * any decoded x and for the input itself (up to its first NUL).
 * Input: the text after the path's '>' (it must start with SP to hold parameters). */
#include "fuzz.h"
#include "smtp/params.h"

static void params_check_err(const struct param_error *err)
{
	FUZZ_CHECK(err->code == 501 || err->code == 555);
	FUZZ_CHECK(err->enhanced != NULL && err->text != NULL && err->text[0] != '\0');
}

static void params_check_printable(const char *s, int ascii)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
		FUZZ_CHECK(!ascii || c < 0x80);
	}
}

/* decode(encode(x)) == x, and the encoding is itself valid xtext of safe bytes. */
static void xtext_round_trip(const char *x)
{
	size_t n = strlen(x);
	char *enc = xtext_encode(x, n), *dec;

	for (const char *p = enc; *p; p++)
		FUZZ_CHECK(*p >= 33 && *p <= 126 && *p != '=');
	dec = xtext_decode(enc, strlen(enc));
	FUZZ_CHECK(dec != NULL);
	FUZZ_CHECK(strcmp(dec, x) == 0);
	free(dec);
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_copy(data, size), *x, *raw;
	struct mail_params mp;
	struct rcpt_params rp;
	struct param_error err;

	memset(&err, 0, sizeof(err));
	if (params_parse_mail(s, size, &mp, &err) == 0) {
		if (mp.envid)
			params_check_printable(mp.envid, 1);
		if (mp.auth)
			params_check_printable(mp.auth, 0);
		FUZZ_CHECK(mp.body == BODY_7BIT || mp.body == BODY_8BITMIME || mp.body == BODY_BINARYMIME);
		FUZZ_CHECK(mp.ret == DSN_RET_UNSET || mp.ret == DSN_RET_FULL || mp.ret == DSN_RET_HDRS);
		params_mail_clear(&mp);
	} else {
		params_check_err(&err);
		FUZZ_CHECK(mp.envid == NULL && mp.auth == NULL);
	}

	memset(&err, 0, sizeof(err));
	if (params_parse_rcpt(s, size, &rp, &err) == 0) {
		FUZZ_CHECK((rp.notify & ~0xfu) == 0);
		FUZZ_CHECK(!(rp.notify & DSN_NOTIFY_NEVER) || rp.notify == DSN_NOTIFY_NEVER);
		if (rp.orcpt) {
			FUZZ_CHECK(strchr(rp.orcpt, ';') != NULL && rp.orcpt[0] != ';');
			params_check_printable(rp.orcpt, 1);
		}
		params_rcpt_clear(&rp);
	} else {
		params_check_err(&err);
		FUZZ_CHECK(rp.orcpt == NULL);
	}

	x = xtext_decode(s, size);
	if (x) {
		/* A decoded NUL is refused, so the string is the whole value. */
		FUZZ_CHECK(strlen(x) <= size);
		xtext_round_trip(x);
		free(x);
	}
	raw = fuzz_strndup(data, size);
	xtext_round_trip(raw);
	free(raw);
	free(s);
	return 0;
}
