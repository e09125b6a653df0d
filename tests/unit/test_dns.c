/* test_dns: the dns module's promises that need no zone: callbacks never from inside
 * the call, address literals answered without a query, the timeout against a
 * resolver that never answers (a silent UDP socket on 127.0.0.1), cancel and destroy
 * with queries in flight. The answers themselves: tests/integration/test_dns.py. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/dns.h"
#include "unit.h"

struct seen {
	int calls;
	struct dns_result *res;
	struct event_base *base;
};

static void on_result(void *arg, struct dns_result *res)
{
	struct seen *s = arg;
	s->calls++;
	dns_result_free(s->res);
	s->res = res;
	event_base_loopbreak(s->base);
}

/* A UDP socket on 127.0.0.1 that reads nothing and answers nothing. */
static int silent_resolver(char *buf, size_t bufsz)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return -1;
	snprintf(buf, bufsz, "127.0.0.1@%u", ntohs(sin.sin_port));
	return fd;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the loop until the callback or a 5 s safety limit. */
static void run(struct seen *s)
{
	struct timeval limit = { 5, 0 };
	event_base_loopexit(s->base, &limit);
	event_base_dispatch(s->base);
}

static void test_names_and_bad_resolver(struct event_base *base)
{
	char *err = NULL;
	CHECK_STR(dns_status_name(DNS_OK), "ok");
	CHECK_STR(dns_status_name(DNS_NXDOMAIN), "nxdomain");
	CHECK_STR(dns_status_name(DNS_NODATA), "nodata");
	CHECK_STR(dns_status_name(DNS_NULLMX), "nullmx");
	CHECK_STR(dns_status_name(DNS_LOOP), "loop");
	CHECK_STR(dns_status_name(DNS_TEMPFAIL), "tempfail");
	CHECK(dns_create(base, "127.0.0.1@0", NULL, &err) == NULL);
	CHECK_STR(err, "bad resolver \"127.0.0.1@0\": ADDRESS[@PORT] expected");
	free(err);
	err = NULL;
	CHECK(dns_create(base, "resolver.example", NULL, &err) == NULL);
	free(err);
}

static void test_literals(struct dns *d, struct seen *s)
{
	struct sockaddr_in6 *sin6;

	dns_resolve_host(d, "127.0.0.5", IPF_ANY, 2525, 10, on_result, s);
	CHECK(s->calls == 0); /* never from inside the call */
	run(s);
	CHECK(s->calls == 1);
	CHECK(s->res->status == DNS_OK && s->res->n_targets == 1);
	CHECK_STR(s->res->targets[0].host, "127.0.0.5");
	CHECK(s->res->targets[0].addr.ss_family == AF_INET);
	CHECK(ntohs(((struct sockaddr_in *)&s->res->targets[0].addr)->sin_port) == 2525);

	dns_resolve_host(d, "::1", IPF_PREFER_V4, 25, 10, on_result, s);
	run(s);
	CHECK(s->calls == 2 && s->res->status == DNS_OK && s->res->n_targets == 1);
	sin6 = (struct sockaddr_in6 *)&s->res->targets[0].addr;
	CHECK(sin6->sin6_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	CHECK(s->res->targets[0].addrlen == sizeof(struct sockaddr_in6));

	dns_resolve_host(d, "::1", IPF_V4_ONLY, 25, 10, on_result, s);
	run(s);
	CHECK(s->calls == 3 && s->res->status == DNS_NODATA && s->res->n_targets == 0);
	CHECK_STR(s->res->detail, "::1 is an IPv6 address and only IPv4 is allowed");
}

static void test_timeout(struct dns *d, struct seen *s)
{
	double t0 = now(), dt;

	s->calls = 0;
	dns_set_timeout(d, 300);
	dns_resolve_mx(d, "dest.example", IPF_ANY, 25, NULL, 10, on_result, s);
	CHECK(s->calls == 0);
	run(s);
	dt = now() - t0;
	CHECK(s->calls == 1 && s->res->status == DNS_TEMPFAIL);
	CHECK_STR(s->res->detail, "no answer within 300 ms looking up the MX of dest.example");
	CHECK(dt >= 0.25 && dt < 2.0);
}

/* Cancelled and destroyed queries never call back, even past their timeout. */
static void test_cancel_and_destroy(struct event_base *base, const char *resolver,
				    struct seen *s)
{
	struct timeval wait = { 0, 400000 };
	char *err = NULL;
	struct dns *d = dns_create(base, resolver, NULL, &err);

	CHECK(d != NULL);
	if (!d)
		return;
	s->calls = 0;
	dns_set_timeout(d, 100);
	struct dns_query *q = dns_resolve_mx(d, "one.example", IPF_ANY, 25, NULL, 10, on_result, s);
	dns_resolve_mx(d, "two.example", IPF_ANY, 25, NULL, 10, on_result, s);
	dns_resolve_host(d, "127.0.0.9", IPF_ANY, 25, 10, on_result, s);
	dns_cancel(q);
	dns_destroy(&d);
	CHECK(d == NULL);
	event_base_loopexit(base, &wait);
	event_base_dispatch(base);
	CHECK(s->calls == 0);
}

void unit_main(void)
{
	struct event_base *base = event_base_new();
	struct seen s = { .base = base };
	char resolver[64], *err = NULL;
	int fd = silent_resolver(resolver, sizeof(resolver));
	struct dns *d;

	CHECK(fd >= 0);
	test_names_and_bad_resolver(base);
	d = dns_create(base, resolver, NULL, &err);
	CHECK(d != NULL);
	if (d) {
		test_literals(d, &s);
		test_timeout(d, &s);
		dns_destroy(&d);
	}
	test_cancel_and_destroy(base, resolver, &s);
	dns_result_free(s.res);
	free(err);
	close(fd);
	event_base_free(base);
}
