/* Tests of TLS-RPT's pure parts (relay/tlsrpt_data.h, relay/tlsrpt.h): aggregation,
 * the JSON report (exact text, hostile strings escaped), the state file read back
 * (torn files refused), the _smtp._tls record's rua, gzip, and the report mail. */
#include "unit.h"
#include "relay/tlsrpt.h"
#include "relay/tlsrpt_data.h"

#include <stdlib.h>
#include <zlib.h>

#define DAY_MS (86400LL * 1000)
#define START (19723LL * DAY_MS) /* 2024-01-01T00:00:00Z */

static char *sts_strings[] = { "version: STSv1", "mode: enforce", "mx: mx.example.org",
			       "max_age: 86400" };
static char *tlsa_strings[] = { "3 1 1 abcd" };

static const struct tlsrpt_policy sts = { TLSRPT_STS, "example.org", sts_strings, 4,
					  "mx.example.org" };
static const struct tlsrpt_policy tlsa = { TLSRPT_TLSA, "example.org", tlsa_strings, 1,
					   "mx2.example.org" };
static const struct tlsrpt_policy none = { TLSRPT_NO_POLICY, "other.example", NULL, 0, NULL };

static void fill(struct tlsrpt_period *pd)
{
	memset(pd, 0, sizeof(*pd));
	pd->start_ms = START;
	pd->end_ms = START + DAY_MS;
	for (int i = 0; i < 3; i++)
		tlsrpt_period_add(pd, &sts, NULL, NULL, NULL, NULL, NULL, 1);
	tlsrpt_period_add(pd, &sts, "certificate-host-mismatch", "mx.example.org", "192.0.2.1",
			  "198.51.100.1", "hostname mismatch", 1);
	tlsrpt_period_add(pd, &sts, "certificate-host-mismatch", "mx.example.org", "192.0.2.1",
			  "198.51.100.1", "hostname mismatch", 1);
	tlsrpt_period_add(pd, &tlsa, "tlsa-invalid", "mx2.example.org", "192.0.2.2", NULL,
			  "tab\there \"quoted\"\nline\\", 1);
	tlsrpt_period_add(pd, &none, NULL, NULL, NULL, NULL, NULL, 1);
	tlsrpt_period_add(pd, &none, "starttls-not-supported", "-", NULL, NULL, "", 1);
}

static const char expected[] =
	"{\"organization-name\":\"Org\",\"date-range\":{\"start-datetime\":\"2024-01-01T00:00:00Z\","
	"\"end-datetime\":\"2024-01-01T23:59:59Z\"},\"contact-info\":\"noreply@x.test\","
	"\"report-id\":\"1.a@x.test\",\"policies\":["
	"{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"version: STSv1\",\"mode: enforce\","
	"\"mx: mx.example.org\",\"max_age: 86400\"],\"policy-domain\":\"example.org\","
	"\"mx-host\":\"mx.example.org\"},\"summary\":{\"total-successful-session-count\":3,"
	"\"total-failure-session-count\":2},\"failure-details\":[{\"result-type\":"
	"\"certificate-host-mismatch\",\"sending-mta-ip\":\"198.51.100.1\","
	"\"receiving-mx-hostname\":\"mx.example.org\",\"receiving-ip\":\"192.0.2.1\","
	"\"failed-session-count\":2,\"additional-information\":\"hostname mismatch\"}]},"
	"{\"policy\":{\"policy-type\":\"tlsa\",\"policy-string\":[\"3 1 1 abcd\"],"
	"\"policy-domain\":\"example.org\",\"mx-host\":\"mx2.example.org\"},\"summary\":"
	"{\"total-successful-session-count\":0,\"total-failure-session-count\":1},"
	"\"failure-details\":[{\"result-type\":\"tlsa-invalid\",\"receiving-mx-hostname\":"
	"\"mx2.example.org\",\"receiving-ip\":\"192.0.2.2\",\"failed-session-count\":1,"
	"\"additional-information\":\"tab\\u0009here \\\"quoted\\\"\\u000aline\\\\\"}]}]}\n";

static void test_json(void)
{
	struct tlsrpt_period pd;
	struct tlsrpt_meta m = { "Org", "noreply@x.test", "1.a@x.test" };
	size_t len;
	char *j;
	fill(&pd);
	CHECK(pd.n_pols == 3);
	j = tlsrpt_json_build(&pd, "example.org", &m, &len);
	CHECK_STR(j, expected);
	CHECK(j && len == strlen(j));
	free(j);
	CHECK(tlsrpt_json_build(&pd, "nobody.example", &m, &len) == NULL);
	j = tlsrpt_json_build(&pd, "other.example", &m, &len);
	CHECK(j && strstr(j, "\"policy-type\":\"no-policy-found\",\"policy-domain\":\"other.example\"}"));
	CHECK(j && strstr(j, "\"receiving-mx-hostname\":\"-\",\"failed-session-count\":1,"
			   "\"additional-information\":\"\"}"));
	free(j);
	tlsrpt_period_clear(&pd);
}

static void test_state_roundtrip(void)
{
	struct tlsrpt_period pd, back = { 0 };
	struct tlsrpt_meta m = { "Org", "noreply@x.test", "1.a@x.test" };
	char *text = NULL, *j1, *j2;
	size_t len = 0, l1, l2;
	FILE *f = open_memstream(&text, &len);
	fill(&pd);
	CHECK(tlsrpt_period_save(&pd, f) == 0);
	fclose(f);
	f = fmemopen(text, len, "r");
	CHECK(tlsrpt_period_load(&back, f) == 0);
	fclose(f);
	CHECK(back.start_ms == START && back.end_ms == START + DAY_MS);
	for (int d = 0; d < 2; d++) {
		const char *dom = d ? "other.example" : "example.org";
		j1 = tlsrpt_json_build(&pd, dom, &m, &l1);
		j2 = tlsrpt_json_build(&back, dom, &m, &l2);
		CHECK_STR(j2, j1);
		free(j1);
		free(j2);
	}
	/* Counts add up when more of the same is loaded (restart: file + new sessions). */
	tlsrpt_period_add(&back, &sts, NULL, NULL, NULL, NULL, NULL, 1);
	CHECK(back.pols[0].ok == 4);
	tlsrpt_period_clear(&back);
	/* A torn file (no "end") is refused. */
	memset(&back, 0, sizeof(back));
	f = fmemopen(text, len - 4, "r");
	CHECK(tlsrpt_period_load(&back, f) == -1);
	fclose(f);
	tlsrpt_period_clear(&back);
	free(text);
	tlsrpt_period_clear(&pd);
}

/* An MTA-STS policy announced and not fetched (RFC 8460 4.3.2.2): type sts with
 * neither policy-string nor mx-host, in the report and through the state file. */
static void test_sts_fetch_failure(void)
{
	static const struct tlsrpt_policy unfetched = { TLSRPT_STS, "fail.example", NULL, 0,
							NULL };
	static const char want[] =
		"{\"policy\":{\"policy-type\":\"sts\",\"policy-domain\":\"fail.example\"},"
		"\"summary\":{\"total-successful-session-count\":0,\"total-failure-session-count\":2},"
		"\"failure-details\":[{\"result-type\":\"sts-webpki-invalid\",\"sending-mta-ip\":"
		"\"198.51.100.1\",\"receiving-mx-hostname\":\"mx.fail.example\",\"receiving-ip\":"
		"\"192.0.2.9\",\"failed-session-count\":2,\"additional-information\":"
		"\"https://mta-sts.fail.example/.well-known/mta-sts.txt: SSL: no alternative "
		"certificate subject name matches\"}]}]}\n";
	const char *info = "https://mta-sts.fail.example/.well-known/mta-sts.txt: SSL: no "
			   "alternative certificate subject name matches";
	struct tlsrpt_period pd = { START, START + DAY_MS, NULL, 0 }, back = { 0 };
	struct tlsrpt_meta m = { "Org", "noreply@x.test", "1.a@x.test" };
	char *text = NULL, *j;
	size_t len = 0, jlen;
	FILE *f;
	for (int i = 0; i < 2; i++)
		tlsrpt_period_add(&pd, &unfetched, "sts-webpki-invalid", "mx.fail.example",
				  "192.0.2.9", "198.51.100.1", info, 1);
	j = tlsrpt_json_build(&pd, "fail.example", &m, &jlen);
	CHECK(j && strstr(j, want));
	free(j);
	f = open_memstream(&text, &len);
	CHECK(tlsrpt_period_save(&pd, f) == 0);
	fclose(f);
	f = fmemopen(text, len, "r");
	CHECK(tlsrpt_period_load(&back, f) == 0);
	fclose(f);
	j = tlsrpt_json_build(&back, "fail.example", &m, &jlen);
	CHECK(j && strstr(j, want));
	CHECK(back.n_pols == 1 && back.pols[0].p.n_strings == 0 && !back.pols[0].p.mx_host);
	free(j);
	free(text);
	tlsrpt_period_clear(&back);
	tlsrpt_period_clear(&pd);
}

static void test_rua(void)
{
	char *one[] = { "v=TLSRPTv1; rua=mailto:tls@example.org, https://r.example/x" };
	char *two[] = { "v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1; rua=mailto:b@example.org" };
	char *other[] = { "v=spf1 -all", "v=TLSRPTv1;rua=mailto:c@example.org" };
	char *bad[] = { "v=TLSRPTv10; rua=mailto:a@example.org" };
	char **u;
	size_t n = tlsrpt_rua_parse(one, 1, &u);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(u[0], "mailto:tls@example.org");
		CHECK_STR(u[1], "https://r.example/x");
	}
	for (size_t i = 0; i < n; i++)
		free(u[i]);
	free(u);
	/* RFC 8460 3: not exactly one record, no TLSRPT. */
	CHECK(tlsrpt_rua_parse(two, 2, &u) == 0 && !u);
	CHECK(tlsrpt_rua_parse(bad, 1, &u) == 0);
	n = tlsrpt_rua_parse(other, 2, &u);
	CHECK(n == 1 && strcmp(u[0], "mailto:c@example.org") == 0);
	for (size_t i = 0; i < n; i++)
		free(u[i]);
	free(u);
}

static void test_gzip_and_mail(void)
{
	const char *data = "{\"a\":1}";
	size_t gzlen, len;
	unsigned char *gz = tlsrpt_gzip(data, strlen(data), &gzlen), out[64];
	z_stream z = { 0 };
	CHECK(gz && gzlen > 18 && gz[0] == 0x1f && gz[1] == 0x8b);
	inflateInit2(&z, 15 + 16);
	z.next_in = gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = out;
	z.avail_out = sizeof(out);
	CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == strlen(data) &&
	      memcmp(out, data, strlen(data)) == 0);
	inflateEnd(&z);
	char *mail = tlsrpt_mail_build("noreply@s.test", "tls@example.org", "s.test",
				       "example.org", "ABC@s.test", START,
				       START + DAY_MS, gz, gzlen, &len);
	CHECK(strstr(mail, "\r\nSubject: Report Domain: example.org Submitter: s.test "
			   "Report-ID: <ABC@s.test>\r\n") != NULL);
	CHECK(strstr(mail, "\r\nTLS-Report-Domain: example.org\r\nTLS-Report-Submitter: s.test\r\n"));
	CHECK(strstr(mail, "multipart/report; report-type=\"tlsrpt\""));
	CHECK(strstr(mail, "filename=\"s.test!example.org!1704067200!1704153600!ABC.json.gz\""));
	/* CRLF only. */
	for (size_t i = 0; i < len; i++)
		if (mail[i] == '\n' && (i == 0 || mail[i - 1] != '\r')) {
			CHECK(!"bare LF");
			break;
		}
	free(mail);
	free(gz);
}

static void test_cert_result(void)
{
	CHECK_STR(tlsrpt_cert_result("hostname mismatch"), "certificate-host-mismatch");
	CHECK_STR(tlsrpt_cert_result("certificate has expired"), "certificate-expired");
	CHECK_STR(tlsrpt_cert_result("unable to get local issuer certificate"),
		  "certificate-not-trusted");
}

void unit_main(void)
{
	test_json();
	test_state_roundtrip();
	test_sts_fetch_failure();
	test_rua();
	test_gzip_and_mail();
	test_cert_result();
}
