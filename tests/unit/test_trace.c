/* Tests of the trace rules: CIDR prefixes, IPv6, IPv4-mapped clients, users, the file. */
#include "unit.h"
#include "config/config.h"
#include "smtp/trace.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>

static int match(const struct trace_rules *r, const char *addr)
{
	struct sockaddr_in in4 = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	if (inet_pton(AF_INET, addr, &in4.sin_addr) == 1)
		return trace_match_addr(r, (struct sockaddr *)&in4);
	if (inet_pton(AF_INET6, addr, &in6.sin6_addr) == 1)
		return trace_match_addr(r, (struct sockaddr *)&in6);
	return -1;
}

void unit_main(void)
{
	char file[] = "/tmp/cursus-trace-XXXXXX";
	char *clients[] = {"192.0.2.0/24", "2001:db8::/32"};
	char *users[] = {"Alice@Example.Test"};
	struct config cfg = {0};
	struct trace_rules *r;
	FILE *errs = tmpfile();
	int fd = mkstemp(file);
	char buf[512] = "";

	CHECK(fd >= 0);
	CHECK(write(fd, "# comment\nclient 10.1.2.3\nuser bob@example.test\nclient 10.0.0.0/33\nbogus\n", 74) == 74);
	close(fd);
	cfg.path = "cursus.conf";
	cfg.trace_clients = clients;
	cfg.n_trace_clients = 2;
	cfg.trace_users = users;
	cfg.n_trace_users = 1;
	cfg.trace_file = file;
	r = trace_rules_load(&cfg, errs);
	CHECK(trace_rules_count(r) == 5);
	CHECK(match(r, "192.0.2.77") == 1);
	CHECK(match(r, "192.0.3.1") == 0);
	CHECK(match(r, "10.1.2.3") == 1);
	CHECK(match(r, "10.1.2.4") == 0);
	CHECK(match(r, "2001:db8:1::5") == 1);
	CHECK(match(r, "2001:db9::5") == 0);
	CHECK(match(r, "::ffff:192.0.2.9") == 1);   /* IPv4-mapped matches the IPv4 rule */
	CHECK(match(r, "::ffff:10.1.2.3") == 1);
	CHECK(trace_match_user(r, "alice@example.test") == 1);
	CHECK(trace_match_user(r, "BOB@example.test") == 1);
	CHECK(trace_match_user(r, "carol@example.test") == 0);
	CHECK(trace_match_user(r, NULL) == 0);
	rewind(errs);
	CHECK(fread(buf, 1, sizeof(buf) - 1, errs) > 0);
	CHECK(strstr(buf, ":4: trace: \"10.0.0.0/33\" is not an address or CIDR prefix") != NULL);
	CHECK(strstr(buf, ":5: trace: expected \"client ADDRESS\" or \"user NAME\"") != NULL);
	CHECK(trace_parse_client("::1") == 0 && trace_parse_client("1.2.3.4/0") == 0);
	CHECK(trace_parse_client("1.2.3") < 0 && trace_parse_client("1.2.3.4/") < 0 &&
	      trace_parse_client("host.example") < 0);
	trace_rules_free(&r);
	CHECK(r == NULL);
	CHECK(match(NULL, "10.1.2.3") == 0);
	fclose(errs);
	unlink(file);
}
