/* Tests of the control protocol's request lines (queue/qctl): every accepted form,
 * the refusals, and that formatting and parsing agree. */
#include "unit.h"
#include "queue/qctl.h"

static int parse(const char *line, struct qctl_req *r)
{
	const char *why = NULL;
	int rc = qctl_parse(line, strlen(line), r, &why);
	CHECK(rc == 0 || why != NULL);
	return rc;
}

static void test_accepted(void)
{
	struct qctl_req r;
	char buf[QCTL_LINE_MAX + 2];

	CHECK(parse("flush", &r) == 0);
	CHECK(r.verb == QCTL_FLUSH && !r.id[0] && !r.domain[0]);
	CHECK(parse("flush\r", &r) == 0);
	CHECK(parse("flush 0123456789abcdef", &r) == 0);
	CHECK_STR(r.id, "0123456789abcdef");
	CHECK(parse("flush --domain Example.ORG", &r) == 0);
	CHECK_STR(r.domain, "example.org");
	CHECK(qctl_format(&r, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "flush --domain example.org\n");
	CHECK(parse("hold 00ff", &r) == 0);
	CHECK(r.verb == QCTL_HOLD);
	CHECK(parse("release 00ff", &r) == 0);
	CHECK(r.verb == QCTL_RELEASE);
	CHECK(parse("delete 00ff", &r) == 0);
	CHECK(r.verb == QCTL_DELETE);
	CHECK(parse("bounce 00ff", &r) == 0);
	CHECK(r.verb == QCTL_BOUNCE);
	CHECK(qctl_format(&r, buf, sizeof(buf)) == 12);
	CHECK_STR(buf, "bounce 00ff\n");
	CHECK(qctl_format(&r, buf, 5) == -1);
}

static void test_refused(void)
{
	static const char *const bad[] = {
		"", " ", "FLUSH", "flushx", "hold", "hold 00FF", "hold xyz", "hold 00ff 00ff",
		"release", "delete ../../etc", "bounce 0123456789abcdef01234567",
		"flush --domain", "flush --domain a/b", "flush --domain .x", "flush a b c d e",
		"flush --sender x", "hold\t00ff", "list",
	};
	struct qctl_req r;
	char big[QCTL_LINE_MAX + 10];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], &r);
		CHECK(rc == -1);
		if (rc != -1)
			fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
	}
	const char *why;
	CHECK(qctl_parse("hold\0 00ff", 10, &r, &why) == -1);
	memset(big, 'a', sizeof(big));
	CHECK(qctl_parse(big, sizeof(big), &r, &why) == -1);
	CHECK_STR(why, "request too long");
}

static void test_clean(void)
{
	char out[8];
	qctl_clean(out, sizeof(out), "a\r\nb\x1b[c");
	CHECK_STR(out, "a??b?[c");
	qctl_clean(out, 4, "abcdef");
	CHECK_STR(out, "abc");
}

void unit_main(void)
{
	test_accepted();
	test_refused();
	test_clean();
}
