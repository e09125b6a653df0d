/* test_mtasts: RFC 8461's texts as mtasts_policy reads them: the _mta-sts TXT record
 * (3.1), the policy file (3.2, whole and cut at every length), the HTTP framing (3.3)
 * and the MX patterns (4.1); the names of a fetch's results. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "relay/mtasts_fetch.h"
#include "relay/mtasts_policy.h"
#include "relay/mtasts_store.h"
#include "unit.h"
#include "util/xmalloc.h"

static int txt1(const char *rec, char *id)
{
	const char *why = NULL;
	char *v[] = { (char *)rec };
	return mtasts_txt_select(v, 1, id, &why);
}

static void test_txt(void)
{
	char id[MTASTS_ID_MAX + 1];
	const char *why = NULL;
	CHECK(txt1("v=STSv1; id=20160831085700Z;", id) == 1);
	CHECK_STR(id, "20160831085700Z");
	CHECK(txt1("v=STSv1;id=abc", id) == 1);
	CHECK_STR(id, "abc");
	CHECK(txt1("v=STSv1 ; id=abc ; ext_1=x.y ;", id) == 1);
	CHECK_STR(id, "abc");
	CHECK(txt1("v=STSv1; id=12345678901234567890123456789012", id) == 1);
	CHECK(txt1("v=STSv1; id=123456789012345678901234567890123", id) == 0); /* 33 */
	CHECK(txt1("v=STSv1; id=ab-c", id) == 0);
	CHECK(txt1("v=STSv1; id=", id) == 0);
	CHECK(txt1("v=STSv1;", id) == 0);
	CHECK(txt1("v=STSv1", id) == 0);
	CHECK(txt1("v=STSv1; id=a; id=b", id) == 0);
	CHECK(txt1("v=STSv1 id=a", id) == 0);
	CHECK(txt1("v=STSv2; id=a", id) == 0);
	CHECK(txt1("v=STSv10; id=a", id) == 0);
	CHECK(txt1(" v=STSv1; id=a", id) == 0);
	CHECK(txt1("v=STSv1; id=a; =x", id) == 0);
	/* Other records are discarded; two STS records mean none. */
	char *two[] = { "v=spf1 -all", "v=STSv1; id=x1" };
	CHECK(mtasts_txt_select(two, 2, id, &why) == 1);
	CHECK_STR(id, "x1");
	char *dup[] = { "v=STSv1; id=x1", "v=STSv1; id=x2" };
	CHECK(mtasts_txt_select(dup, 2, id, &why) == 0);
	CHECK_STR(why, "more than one v=STSv1 TXT record");
	CHECK(mtasts_txt_select(two, 1, id, &why) == 0);
}

static const char good[] = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
			   "mx: *.example.net\r\nmx: backupmx.example.com.\r\nmax_age: 604800\r\n";

static void test_policy(void)
{
	struct mtasts_policy p;
	const char *why = NULL;
	CHECK(mtasts_policy_parse(good, strlen(good), &p, &why) == 0);
	CHECK(p.mode == MTASTS_ENFORCE && p.max_age == 604800 && p.n_mx == 3);
	CHECK_STR(p.mx[1], "*.example.net");
	CHECK_STR(p.mx[2], "backupmx.example.com");
	CHECK(mtasts_mx_match(&p, "mail.example.com"));
	CHECK(mtasts_mx_match(&p, "MAIL.Example.COM."));
	CHECK(mtasts_mx_match(&p, "mx1.example.net"));
	CHECK(!mtasts_mx_match(&p, "example.net"));
	CHECK(!mtasts_mx_match(&p, "a.mx1.example.net"));
	CHECK(!mtasts_mx_match(&p, ".example.net"));
	CHECK(!mtasts_mx_match(&p, "xmail.example.com"));
	CHECK(!mtasts_mx_match(&p, "mail.example.com.evil"));
	struct mtasts_policy c;
	mtasts_policy_copy(&c, &p);
	CHECK(c.n_mx == 3 && c.mx[0] != p.mx[0]);
	mtasts_policy_clear(&c);
	mtasts_policy_clear(&p);

	/* Every proper prefix: parsed or refused, never read past its end. */
	for (size_t i = 0; i < strlen(good); i++) {
		char *cut = malloc(i ? i : 1);
		memcpy(cut, good, i);
		if (mtasts_policy_parse(cut, i, &p, &why) == 0)
			mtasts_policy_clear(&p);
		free(cut);
	}

	static const struct { const char *text; const char *why; } cases[] = {
		{ "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 99999999999\n",
		  "policy: max_age is not 1 to 10 digits" },
		{ "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
		  "policy: version is not STSv1" },
		{ "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
		  "policy: mode is not enforce, testing or none" },
		{ "version: STSv1\nmode: enforce\nmax_age: 1\n", "policy: no mx pattern" },
		{ "mode: enforce\nmx: a.example\nmax_age: 1\n", "policy: no version" },
		{ "version: STSv1\nmx: a.example\nmax_age: 1\n", "policy: no mode" },
		{ "version: STSv1\nmode: enforce\nmx: a.example\n", "policy: no max_age" },
		{ "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n",
		  "policy: mode given twice" },
		{ "version: STSv1\nmode: enforce\nmx: mx*.example\nmax_age: 1\n",
		  "policy: an mx value is not a host name or *.domain pattern" },
		{ "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
		  "policy: an mx value is not a host name or *.domain pattern" },
		{ "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n",
		  "policy: an mx value is not a host name or *.domain pattern" },
		{ "version: STSv1\nmode: enforce\n\nmx: a.example\nmax_age: 1\n",
		  "policy: empty line" },
		{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
		  "policy: max_age is not a number" },
		{ "version: STSv1\nmode: enforce\nmx a.example\nmax_age: 1\n",
		  "policy: a line is not KEY: VALUE" },
		{ "<html>\n", "policy: a line is not KEY: VALUE" },
		{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age:\n",
		  "policy: a field has no value" },
		{ "version: STSv1\nmode: enforce\x01\nmx: a.example\nmax_age: 1\n",
		  "policy: control character" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why = NULL;
		CHECK(mtasts_policy_parse(cases[i].text, strlen(cases[i].text), &p, &why) == -1);
		CHECK_STR(why, cases[i].why);
	}
	/* Capped, unknown fields ignored, LF or CRLF, no final line end, mode none
	 * without mx. */
	const char *ok = "version: STSv1\nmode: none\nmax_age: 4000000000\nx-ext: any thing";
	CHECK(mtasts_policy_parse(ok, strlen(ok), &p, &why) == 0);
	CHECK(p.mode == MTASTS_NONE && p.max_age == MTASTS_MAX_AGE_MAX && p.n_mx == 0);
	mtasts_policy_clear(&p);
}

static void test_http(void)
{
	CHECK(mtasts_http_check(200, "text/plain") == NULL);
	CHECK(mtasts_http_check(200, "Text/Plain; charset=utf-8") == NULL);
	CHECK_STR(mtasts_http_check(200, "text/html"), "Content-Type is not text/plain");
	CHECK_STR(mtasts_http_check(200, ""), "Content-Type is not text/plain");
	CHECK_STR(mtasts_http_check(200, "text/plainx"), "Content-Type is not text/plain");
	CHECK_STR(mtasts_http_check(301, "text/plain"), "a redirect (RFC 8461 3.3: not followed)");
	CHECK_STR(mtasts_http_check(404, "text/plain"), "HTTP status not 200");
}

/* The log and the metric keep their words; TLS-RPT gets RFC 8460 4.3.2.2's. */
static void test_fetch_results(void)
{
	static const struct {
		enum mtasts_fetch_result r;
		const char *name, *rpt;
	} cases[] = {
		{ MTASTS_FETCH_OK, "ok", NULL },
		{ MTASTS_FETCH_TIMEOUT, "timeout", "sts-policy-fetch-error" },
		{ MTASTS_FETCH_TOO_LARGE, "too-large", "sts-policy-fetch-error" },
		{ MTASTS_FETCH_ERROR, "error", "sts-policy-fetch-error" },
		{ MTASTS_FETCH_REFUSED, "invalid", "sts-policy-fetch-error" },
		{ MTASTS_FETCH_CERT, "error", "sts-webpki-invalid" },
		{ MTASTS_FETCH_INVALID, "invalid", "sts-policy-invalid" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		CHECK_STR(mtasts_fetch_result_name(cases[i].r), cases[i].name);
		if (cases[i].rpt)
			CHECK_STR(mtasts_fetch_rpt_result(cases[i].r), cases[i].rpt);
		else
			CHECK(mtasts_fetch_rpt_result(cases[i].r) == NULL);
	}
}

static int loaded;
static void store_cb(void *arg, struct mtasts_stored *s)
{
	struct mtasts_stored *out = arg;
	loaded++;
	mtasts_stored_clear(out);
	*out = *s;
}

/* The cache file: written, read back through the strict parser; a tampered or foreign
 * file is skipped, a name that is not a domain never written. */
static void test_store(void)
{
	char dir[] = "/tmp/cursus-mtasts-XXXXXX";
	struct mtasts_stored s = { 0 }, got = { 0 };
	const char *why = NULL;
	char *path;
	FILE *f;
	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	s.domain = xstrdup("dest.example");
	snprintf(s.id, sizeof(s.id), "20261202");
	s.fetched = 1796170000;
	s.text = xstrdup(good);
	s.len = strlen(good);
	CHECK(mtasts_policy_parse(s.text, s.len, &s.policy, &why) == 0);
	CHECK(mtasts_store_save(dir, &s) == 0);
	CHECK(mtasts_store_load(dir, store_cb, &got) == 1 && loaded == 1);
	CHECK_STR(got.domain, "dest.example");
	CHECK_STR(got.id, "20261202");
	CHECK(got.fetched == 1796170000 && got.len == strlen(good) && got.policy.n_mx == 3);
	CHECK(got.policy.mode == MTASTS_ENFORCE && got.policy.max_age == 604800);
	free(s.domain);
	s.domain = xstrdup("../etc");
	CHECK(mtasts_store_save(dir, &s) == EINVAL);
	/* A policy changed on disk into one that does not parse, and a file of another
	 * name than its domain: both skipped. */
	path = xasprintf("%s/bad.example", dir);
	f = fopen(path, "w");
	fputs("cursus-mta-sts 1\ndomain bad.example\nid 1\nfetched 5\n\nversion: STSv1\n"
	      "mode: enforce\nmax_age: 1\n", f);
	fclose(f);
	free(path);
	path = xasprintf("%s/other.example", dir);
	f = fopen(path, "w");
	fputs("cursus-mta-sts 1\ndomain dest.example\nid 1\nfetched 5\n\n", f);
	fclose(f);
	free(path);
	loaded = 0;
	CHECK(mtasts_store_load(dir, store_cb, &got) == 1 && loaded == 1);
	mtasts_store_remove(dir, "dest.example");
	mtasts_store_remove(dir, "bad.example");
	mtasts_store_remove(dir, "other.example");
	loaded = 0;
	CHECK(mtasts_store_load(dir, store_cb, &got) == 0 && loaded == 0);
	CHECK(rmdir(dir) == 0);
	mtasts_stored_clear(&s);
	mtasts_stored_clear(&got);
}

void unit_main(void)
{
	test_txt();
	test_policy();
	test_http();
	test_fetch_results();
	test_store();
}
