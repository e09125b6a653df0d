/* relay-one: delivers one message file through the SMTP transport and prints each
 * recipient's result, for tests/integration/test_relay_transport.py.
 *   relay-one --route 'relay 127.0.0.5 2526 1 -' [--tls none|may|encrypt|verify]
 *             [--ca FILE] [--auth-user U (password on stdin)] [--auth-unverified]
 *             [--from a@b] --to x@y [--to ...] [--8bit] [--smtputf8] [--env-auth X]
 *             [--ret full|hdrs] [--envid X] [--notify N] [--orcpt rfc822;x]
 *             [--dns ADDR@PORT] [--hostname H] [--timeout S] [--twice]
 *             [--max-received N] MSGFILE
 * Output, per delivery: "rcpt I RESULT STATUS DIAG" lines, then
 * "remote_host=H remote_addr=A tls=T verified=V dsn_passed=D dest_ok=O". */
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "deliver/transport.h"
#include "net/dns.h"
#include "queue/envelope.h"
#include "route/route.h"
#include "util/workers.h"
#include "util/xmalloc.h"

static struct event_base *base;
static int remaining;

static const char *result_name(enum delivery_result r)
{
	static const char *const n[] = { "none", "delivered", "tempfail", "permfail" };
	return n[r];
}

static void on_done(struct delivery *d, void *arg)
{
	int no = *(int *)arg;
	for (size_t i = 0; i < d->n_rcpts; i++)
		printf("%d rcpt %zu %s %s %s\n", no, d->rcpts[i].index, result_name(d->rcpts[i].result),
		       d->rcpts[i].status[0] ? d->rcpts[i].status : "-",
		       d->rcpts[i].diag ? d->rcpts[i].diag : "-");
	printf("%d remote_host=%s remote_addr=%s tls=%s verified=%d dsn_passed=%d dest_ok=%d\n", no,
	       d->remote_host ? d->remote_host : "-", d->remote_addr ? d->remote_addr : "-",
	       d->tls ? d->tls : "-", d->tls_verified, d->dsn_passed, d->dest_ok);
	fflush(stdout);
	if (--remaining == 0)
		event_base_loopbreak(base);
}

static int parse_route(char *text, struct route *r)
{
	char *f[6];
	int n = 0;
	for (char *tok = strtok(text, " "); tok && n < 6; tok = strtok(NULL, " "))
		f[n++] = tok;
	memset(r, 0, sizeof(*r));
	if (n == 4 && strcmp(f[0], "mx") == 0) {
		r->kind = ROUTE_MX;
		r->target = f[1];
		r->port = (unsigned)atoi(f[2]);
		r->policy = f[3];
		return 0;
	}
	if (n == 5 && strcmp(f[0], "relay") == 0) {
		r->kind = ROUTE_RELAY;
		r->target = f[1];
		r->port = (unsigned)atoi(f[2]);
		r->literal = atoi(f[3]);
		r->policy = f[4];
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	enum { O_ROUTE = 256, O_TLS, O_CA, O_USER, O_UNVERIFIED, O_FROM, O_TO, O_8BIT, O_UTF8,
	       O_ENVAUTH, O_RET, O_ENVID, O_NOTIFY, O_ORCPT, O_DNS, O_HOST, O_TIMEOUT, O_TWICE,
	       O_MAXRCV };
	static const struct option opts[] = {
		{ "route", 1, NULL, O_ROUTE }, { "tls", 1, NULL, O_TLS }, { "ca", 1, NULL, O_CA },
		{ "auth-user", 1, NULL, O_USER }, { "auth-unverified", 0, NULL, O_UNVERIFIED },
		{ "from", 1, NULL, O_FROM }, { "to", 1, NULL, O_TO }, { "8bit", 0, NULL, O_8BIT },
		{ "smtputf8", 0, NULL, O_UTF8 }, { "env-auth", 1, NULL, O_ENVAUTH },
		{ "ret", 1, NULL, O_RET }, { "envid", 1, NULL, O_ENVID },
		{ "notify", 1, NULL, O_NOTIFY }, { "orcpt", 1, NULL, O_ORCPT },
		{ "dns", 1, NULL, O_DNS }, { "hostname", 1, NULL, O_HOST },
		{ "timeout", 1, NULL, O_TIMEOUT }, { "twice", 0, NULL, O_TWICE },
		{ "max-received", 1, NULL, O_MAXRCV }, { NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct envelope env;
	struct route route;
	struct relay_policy pol = { .tls = RELAY_TLS_MAY };
	char *route_text = NULL, *user = NULL, *password = NULL, *dns_addr = NULL, *err = NULL;
	const char *from = "sender@example.org", *orcpt = NULL;
	unsigned notify = 0, timeout = 20;
	int twice = 0, c;

	memset(&cfg, 0, sizeof(cfg));
	memset(&env, 0, sizeof(env));
	cfg.hostname = "relay-one.example";
	cfg.relay_max_addresses = 10;
	cfg.relay_idle_time = 5;
	cfg.relay_reuse_limit = 100;
	cfg.max_received_headers = 30;
	char **tos = NULL;
	size_t n_tos = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_ROUTE: route_text = optarg; break;
		case O_TLS:
			pol.tls = strcmp(optarg, "none") == 0 ? RELAY_TLS_NONE
				: strcmp(optarg, "encrypt") == 0 ? RELAY_TLS_ENCRYPT
				: strcmp(optarg, "verify") == 0 ? RELAY_TLS_VERIFY : RELAY_TLS_MAY;
			break;
		case O_CA: pol.ca = optarg; break;
		case O_USER: user = optarg; break;
		case O_UNVERIFIED: pol.auth_unverified = 1; break;
		case O_FROM: from = optarg; break;
		case O_TO:
			tos = xrealloc(tos, (n_tos + 1) * sizeof(*tos));
			tos[n_tos++] = optarg;
			break;
		case O_8BIT: env.body = BODY_8BITMIME; break;
		case O_UTF8: env.smtputf8 = 1; break;
		case O_ENVAUTH: env.auth = optarg; break;
		case O_RET: env.ret = strcmp(optarg, "full") == 0 ? DSN_RET_FULL : DSN_RET_HDRS; break;
		case O_ENVID: env.envid = optarg; break;
		case O_NOTIFY: notify = (unsigned)atoi(optarg); break;
		case O_ORCPT: orcpt = optarg; break;
		case O_DNS: dns_addr = optarg; break;
		case O_HOST: cfg.hostname = optarg; break;
		case O_TIMEOUT: timeout = (unsigned)atoi(optarg); break;
		case O_TWICE: twice = 1; break;
		case O_MAXRCV: cfg.max_received_headers = (unsigned)atoi(optarg); break;
		default: return 2;
		}
	}
	if (!route_text || optind + 1 != argc || n_tos == 0 || parse_route(route_text, &route) < 0) {
		fprintf(stderr, "usage: relay-one --route ROUTE --to ADDR [...] MSGFILE\n");
		return 2;
	}
	cfg.relay_connect_timeout = cfg.relay_greeting_timeout = cfg.relay_command_timeout =
		cfg.relay_data_timeout = cfg.relay_dot_timeout = timeout;
	if (user) {
		/* The password from stdin, never argv. */
		size_t cap = 0;
		ssize_t n = getline(&password, &cap, stdin);
		if (n < 0) {
			fprintf(stderr, "relay-one: no password on stdin\n");
			return 2;
		}
		password[strcspn(password, "\r\n")] = '\0';
	}
	/* The transport reads the body from a file, as from the queue. */
	struct stat st;
	struct qbody body = { open(argv[optind], O_RDONLY | O_CLOEXEC), 0, 0, NULL, 0 };
	if (body.fd < 0 || fstat(body.fd, &st) < 0) {
		perror(argv[optind]);
		return 2;
	}
	body.len = (size_t)st.st_size;
	env.mail_from = (char *)from;
	env.rcpts = xcalloc(n_tos, sizeof(*env.rcpts));
	for (size_t i = 0; i < n_tos; i++) {
		env.rcpts[i].address = tos[i];
		env.rcpts[i].notify = notify;
		env.rcpts[i].orcpt = (char *)orcpt;
	}
	env.n_rcpts = n_tos;

	evthread_use_pthreads();
	base = event_base_new();
	struct workers *w = workers_create(base, 2);
	struct dns *dns = dns_create(base, dns_addr, NULL, &err);
	if (!dns) {
		fprintf(stderr, "relay-one: dns: %s\n", err ? err : "?");
		free(err);
	}
	struct transport *t = transport_smtp_create(&cfg, base, dns, w);
	int nos[2] = { 1, 2 };
	struct delivery d[2];
	for (int k = 0; k < 1 + twice; k++) {
		memset(&d[k], 0, sizeof(d[k]));
		d[k].id = "0123456789abcdef";
		d[k].env = &env;
		d[k].route = &route;
		d[k].sender = from;
		d[k].policy = &pol;
		d[k].auth_user = user;
		d[k].auth_password = password;
		d[k].body = body;
		d[k].hops = delivery_count_hops(&body);
		d[k].n_rcpts = n_tos;
		d[k].rcpts = xcalloc(n_tos, sizeof(struct delivery_rcpt));
		for (size_t i = 0; i < n_tos; i++)
			d[k].rcpts[i].index = i;
	}
	/* Deliveries one after the other: the second finds the first's connection idle. */
	for (int k = 0; k < 1 + twice; k++) {
		remaining = 1;
		t->deliver(t, &d[k], on_done, &nos[k]);
		event_base_dispatch(base);
	}
	workers_destroy(&w);
	t->destroy(t);
	dns_destroy(&dns);
	/* Let the idle connections' QUIT go out, a bounded while. */
	for (int k = 0; k < 30 && event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED |
							    EVENT_BASE_COUNT_ACTIVE) > 0; k++) {
		struct timeval tv = { 0, 100000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	event_base_free(base);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	for (int k = 0; k < 1 + twice; k++) {
		for (size_t i = 0; i < n_tos; i++)
			free(d[k].rcpts[i].diag);
		free(d[k].rcpts);
		free(d[k].remote_host);
		free(d[k].remote_addr);
		free(d[k].tls);
	}
	free(env.rcpts);
	free(tos);
	qbody_close(&body);
	return 0;
}
