/* cmd_probe: `cursus probe HOST[:PORT]`, a client-side check of a submission
 * server. It needs no configuration file. One discovery connection (greeting, EHLO,
 * STARTTLS, EHLO, MAIL without AUTH then RSET, QUIT), then with --user one fresh
 * connection per mechanism. It promises never to send a credential anywhere but the
 * host named, never over a connection without TLS unless --allow-cleartext, never
 * to a certificate that does not verify unless --insecure, and never to print it. */
#include "admin/cmd_probe.h"

#include <event2/event.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin/admin.h"
#include "client/smtpc.h"
#include "oauth/oauth_sasl.h"
#include "net/tls_client.h"
#include "util/xmalloc.h"

#define PROBE_ADDRS_MAX 8

/* Where a connection is in its script. */
enum probe_phase { PH_GREETING, PH_EHLO1, PH_STARTTLS, PH_EHLO2, PH_MAIL, PH_RSET, PH_AUTH, PH_QUIT };

struct probe {
	struct probe_result res;
	struct event_base *base;
	SSL_CTX *ctx;
	struct sockaddr_storage addrs[PROBE_ADDRS_MAX];
	socklen_t addrlens[PROBE_ADDRS_MAX];
	size_t n_addrs, addr_i;
	const char *ehlo, *mech;
	char *password;
	unsigned timeout;
	/* The connection under way. */
	struct smtpc *cli;
	int conn_no, discovery;
	enum probe_phase phase;
	struct probe_tls tls;        /* this connection's TLS */
	struct probe_auth *attempt;  /* the mechanism this connection tries */
	char **mechs;
	size_t n_mechs, mech_i;
};

static void probe_next(struct probe *p);
#define PROBE_MECHS_MAX 16

static void probe_plan(struct probe *p);

/* A server's words go to the administrator's terminal and into JSON: control bytes
 * (escape sequences) and bytes that are not UTF-8 become '?'. Returns a copy. */
static char *probe_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = xstrdup(s), *o = out;
	while (*p) {
		size_t n = 1;
		if (*p >= 0xc2 && *p <= 0xf4)
			n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
		int ok = *p >= 0x20 && *p != 0x7f && (*p < 0x80 || n > 1);
		for (size_t i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (!ok) {
			*o++ = '?';
			p++;
			continue;
		}
		memcpy(o, p, n);
		o += n;
		p += n;
	}
	*o = '\0';
	return out;
}

static void probe_transcript(void *arg, char dir, const char *line)
{
	struct probe *p = arg;
	struct probe_result *pr = &p->res;
	char d = dir == SMTPC_SENT ? 'C' : dir == SMTPC_RECEIVED ? 'S' : '*';
	pr->lines = xrealloc(pr->lines, (pr->n_lines + 1) * sizeof(*pr->lines));
	pr->lines[pr->n_lines++] = (struct probe_line){ p->conn_no, d, probe_clean(line) };
	if (!pr->json)
		printf("  %c: %s\n", d, pr->lines[pr->n_lines - 1].text);
}

static void probe_note(struct probe *p, const char *line)
{
	probe_transcript(p, SMTPC_INFO, line);
}

static void probe_reply_text(const struct smtpc_reply *r, char *buf, size_t bufsz)
{
	size_t o = (size_t)snprintf(buf, bufsz, "%d", r->code);
	for (size_t i = 0; i < r->n_lines && o < bufsz; i++) {
		char *clean = probe_clean(r->lines[i]);
		o += (size_t)snprintf(buf + o, bufsz - o, "%s%s", i ? " / " : " ", clean);
		free(clean);
	}
}

static void probe_save_caps(struct probe_caps *dst, const struct smtpc_caps *c)
{
	dst->valid = c->valid;
	dst->starttls = c->starttls;
	dst->n_lines = c->n_lines;
	dst->lines = xcalloc(c->n_lines + 1, sizeof(char *));
	for (size_t i = 0; i < c->n_lines; i++)
		dst->lines[i] = probe_clean(c->lines[i]);
	dst->auth = c->auth ? probe_clean(c->auth) : NULL;
	dst->auth_legacy = c->auth_legacy ? probe_clean(c->auth_legacy) : NULL;
}

static void probe_quit(struct probe *p)
{
	p->phase = PH_QUIT;
	smtpc_command(p->cli, "QUIT");
}

static void probe_skip(struct probe *p, const char *why)
{
	p->attempt->result = AUTH_SKIPPED;
	snprintf(p->attempt->reply, sizeof(p->attempt->reply), "%s", why);
	probe_note(p, why);
	probe_quit(p);
}

/* The session is where the script's real work starts: MAIL test, or AUTH. */
static void probe_ready(struct probe *p)
{
	SSL *ssl = smtpc_ssl(p->cli);
	const struct probe_tls *t = &p->tls;
	char line[600];

	if (p->discovery) {
		/* Never DATA: RSET right after, whatever the answer. */
		snprintf(line, sizeof(line), "MAIL FROM:<probe@%s>", p->ehlo);
		p->phase = PH_MAIL;
		smtpc_command(p->cli, line);
		return;
	}
	if (!ssl && !p->res.allow_cleartext) {
		probe_skip(p, "not tried: no TLS, and the password is not sent in clear "
			      "without --allow-cleartext");
		return;
	}
	if (ssl && (!t->chain_ok || !t->name_match || t->proto < TLS1_2_VERSION) && !p->res.insecure) {
		probe_skip(p, "not tried: the certificate or TLS version does not verify "
			      "(--insecure to send the password anyway)");
		return;
	}
	/* smtpc speaks these, but they carry an OAuth access token, not a password. */
	if (oauth_sasl_mech(p->attempt->mech) >= 0) {
		probe_skip(p, "not tried: an OAuth mechanism (it takes an access token, not a "
			      "password)");
		return;
	}
	p->res.tried_auth = 1;
	if (smtpc_auth(p->cli, p->attempt->mech, p->res.user, p->password) < 0) {
		probe_skip(p, "not tried: this client (GNU SASL) does not support the mechanism");
		return;
	}
	p->phase = PH_AUTH;
}

static void probe_on_tls(struct smtpc *s, void *arg)
{
	struct probe *p = arg;
	probe_tls_inspect(smtpc_ssl(s), p->res.host, &p->tls);
	if (p->discovery)
		p->res.tls = p->tls;
	if (p->phase == PH_STARTTLS) {
		p->phase = PH_EHLO2;
		smtpc_ehlo(s, p->ehlo);
	}
	/* Implicit TLS: the greeting follows. */
}

static void probe_on_reply(struct smtpc *s, const struct smtpc_reply *r, void *arg)
{
	struct probe *p = arg;
	struct probe_result *pr = &p->res;
	char text[400];

	probe_reply_text(r, text, sizeof(text));
	switch (p->phase) {
	case PH_GREETING:
		if (p->discovery) {
			pr->banner_code = r->code;
			pr->banner = xstrdup(text);
		}
		if (r->code != 220) {
			if (!p->discovery)
				snprintf(p->attempt->reply, sizeof(p->attempt->reply), "greeting: %s", text);
			probe_quit(p);
			return;
		}
		p->phase = smtpc_ssl(s) ? PH_EHLO2 : PH_EHLO1;
		smtpc_ehlo(s, p->ehlo);
		return;
	case PH_EHLO1:
	case PH_EHLO2:
		if (r->code != 250) {
			snprintf(pr->lost, sizeof(pr->lost), "EHLO refused: %s", text);
			probe_quit(p);
			return;
		}
		if (p->discovery)
			probe_save_caps(p->phase == PH_EHLO1 ? &pr->before : &pr->after, smtpc_caps(s));
		if (p->phase == PH_EHLO1 && pr->mode == PROBE_STARTTLS && smtpc_caps(s)->starttls) {
			p->phase = PH_STARTTLS;
			smtpc_starttls(s, p->ctx);
			return;
		}
		probe_ready(p);
		return;
	case PH_STARTTLS:
		/* Not 220: the server offered STARTTLS and refused it. */
		if (p->discovery) {
			pr->starttls_failed = 1;
			snprintf(pr->starttls_error, sizeof(pr->starttls_error), "reply %s", text);
		}
		probe_ready(p);
		return;
	case PH_MAIL:
		pr->mail_tested = 1;
		pr->mail_accepted = r->code / 100 == 2;
		snprintf(pr->mail_reply, sizeof(pr->mail_reply), "%s", text);
		p->phase = PH_RSET;
		smtpc_command(s, "RSET");
		return;
	case PH_RSET:
		probe_quit(p);
		return;
	case PH_AUTH:
		p->attempt->result = r->code == 235 ? AUTH_WORKS : AUTH_FAILS;
		p->attempt->saw_330 = smtpc_auth_saw_330(s);
		snprintf(p->attempt->reply, sizeof(p->attempt->reply), "%s", text);
		probe_quit(p);
		return;
	case PH_QUIT:
		smtpc_close(s);
		return;
	}
}

static void probe_on_error(struct smtpc *s, void *arg, enum smtpc_error err, const char *detail)
{
	struct probe *p = arg;
	struct probe_result *pr = &p->res;
	char buf[400];

	snprintf(buf, sizeof(buf), "connection ended: %s", detail);
	if (p->phase != PH_QUIT || err != SMTPC_ERR_CLOSED)
		probe_note(p, buf);
	smtpc_destroy(&p->cli);
	if (err == SMTPC_ERR_CONNECT) {
		/* Try the host's next address before giving up. */
		if (p->addr_i + 1 < p->n_addrs) {
			p->addr_i++;
			p->conn_no--;
			probe_next(p);
			return;
		}
		if (p->discovery) {
			pr->connect_failed = 1;
			snprintf(pr->connect_error, sizeof(pr->connect_error), "%s", detail);
			event_base_loopbreak(p->base);
			return;
		}
	}
	if (p->phase != PH_QUIT) {
		if (err == SMTPC_ERR_TLS && p->phase == PH_STARTTLS && p->discovery) {
			pr->starttls_failed = 1;
			snprintf(pr->starttls_error, sizeof(pr->starttls_error), "handshake: %s", detail);
		} else if (err == SMTPC_ERR_TLS && p->discovery) {
			pr->tls_failed = 1;
			snprintf(pr->tls_error, sizeof(pr->tls_error), "%s", detail);
		} else if (p->discovery && !pr->banner) {
			/* Connected, but no SMTP greeting: as good as no connection. */
			pr->connect_failed = 1;
			snprintf(pr->connect_error, sizeof(pr->connect_error), "no greeting: %s", detail);
		} else if (p->discovery) {
			snprintf(pr->lost, sizeof(pr->lost), "%s", detail);
		}
		if (!p->discovery && p->attempt) {
			p->attempt->result = p->phase == PH_AUTH ? AUTH_FAILS : AUTH_ERROR;
			snprintf(p->attempt->reply, sizeof(p->attempt->reply), "connection ended: %s",
				 detail);
		}
	}
	/* No use trying mechanisms where discovery could not get through. */
	if (p->discovery && pr->user && !pr->tls_failed && !pr->starttls_failed && !pr->lost[0] &&
	    pr->banner_code == 220)
		probe_plan(p);
	p->discovery = 0;
	probe_next(p);
}

static const struct smtpc_cbs probe_cbs = {
	.on_reply = probe_on_reply,
	.on_tls = probe_on_tls,
	.on_error = probe_on_error,
	.transcript = probe_transcript,
};

static void probe_connect(struct probe *p, const char *what)
{
	struct smtpc_opts o = {
		.server_name = p->res.host,
		.implicit_tls = p->res.mode == PROBE_TLS ? p->ctx : NULL,
		.timeout = p->timeout,
	};
	char host[NI_MAXHOST], serv[NI_MAXSERV], line[NI_MAXHOST + 200];
	p->conn_no++;
	p->phase = PH_GREETING;
	memset(&p->tls, 0, sizeof(p->tls));
	if (getnameinfo((struct sockaddr *)&p->addrs[p->addr_i], p->addrlens[p->addr_i], host,
			sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(host, sizeof(host), "?");
	if (!p->res.json)
		printf("Connection %d (%s) to %s port %s\n", p->conn_no, what, host, serv);
	snprintf(line, sizeof(line), "connecting to %s port %s (%s)", host, serv, what);
	probe_note(p, line);
	p->cli = smtpc_create(p->base, (struct sockaddr *)&p->addrs[p->addr_i], p->addrlens[p->addr_i],
			      &o, &probe_cbs, p);
}

/* After the discovery connection: which mechanisms to try. */
static void probe_plan(struct probe *p)
{
	const struct probe_caps *c = p->res.after.valid ? &p->res.after : &p->res.before;
	const char *list = c->auth ? c->auth : c->auth_legacy;
	if (p->mech) {
		p->mechs = xcalloc(1, sizeof(char *));
		p->mechs[p->n_mechs++] = xstrdup(p->mech);
		return;
	}
	/* The server's list is its word: each name once, and never more attempts (each
	 * one sends the password) than there are mechanisms we know. */
	for (const char *s = list; s && *s && p->n_mechs < PROBE_MECHS_MAX;) {
		size_t w = strcspn(s, " ");
		char *m = xstrndup(s, w);
		int dup = 0;
		for (size_t i = 0; i < p->n_mechs; i++)
			dup |= strcasecmp(p->mechs[i], m) == 0;
		if (w && !dup) {
			p->mechs = xrealloc(p->mechs, (p->n_mechs + 1) * sizeof(char *));
			p->mechs[p->n_mechs++] = m;
		} else {
			free(m);
		}
		s += w + (s[w] == ' ');
	}
}

/* The next connection, or the end of the loop. */
static void probe_next(struct probe *p)
{
	struct probe_result *pr = &p->res;
	if (p->discovery) {
		probe_connect(p, "discovery");
		return;
	}
	if (p->mech_i < p->n_mechs) {
		char what[80];
		pr->auth = xrealloc(pr->auth, (pr->n_auth + 1) * sizeof(*pr->auth));
		p->attempt = &pr->auth[pr->n_auth++];
		memset(p->attempt, 0, sizeof(*p->attempt));
		snprintf(p->attempt->mech, sizeof(p->attempt->mech), "%s", p->mechs[p->mech_i++]);
		p->attempt->result = AUTH_ERROR;
		snprintf(what, sizeof(what), "AUTH %s", p->attempt->mech);
		if (!pr->json)
			putchar('\n');
		probe_connect(p, what);
		return;
	}
	event_base_loopbreak(p->base);
}

static const char probe_usage[] =
	"usage: cursus probe [--starttls|--tls|--plain] [--ehlo NAME] [--user USER [--mech MECH]]\n"
	"                    [--allow-cleartext] [--timeout SECONDS] [--ca FILE] [--insecure]\n"
	"                    [--json] HOST[:PORT]\n"
	"       cursus probe --dane DOMAIN[:PORT] [--resolver ADDRESS[@PORT]]\n"
	"                    [--trust-anchor FILE] [--timeout SECONDS] [--json]\n"
	"       cursus probe --mta-sts DOMAIN [--resolver ADDRESS[@PORT]] [--ca FILE]\n"
	"                    [--timeout SECONDS] [--json]\n";

static int probe_usage_error(const char *why)
{
	if (why)
		admin_error("probe: %s", why);
	fputs(probe_usage, stderr);
	return ADMIN_EXIT_USAGE;
}

/* HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address. */
static int probe_split_host(const char *arg, char **host_r, unsigned *port_r)
{
	const char *colon = strrchr(arg, ':');
	char *end;
	unsigned long port;
	*port_r = 0;
	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');
		if (!close || close == arg + 1 || (close[1] && close[1] != ':'))
			return -1;
		*host_r = xstrndup(arg + 1, (size_t)(close - arg - 1));
		colon = close[1] ? close + 1 : NULL;
	} else if (colon && strchr(arg, ':') != colon) {
		*host_r = xstrdup(arg);          /* a bare IPv6 address */
		return 0;
	} else {
		*host_r = colon ? xstrndup(arg, (size_t)(colon - arg)) : xstrdup(arg);
	}
	if (!**host_r)
		return -1;
	if (colon) {
		port = strtoul(colon + 1, &end, 10);
		if (!colon[1] || *end || port == 0 || port > 65535)
			return -1;
		*port_r = (unsigned)port;
	}
	return 0;
}

/* Accept what the server has, old versions included, so that we can report it; the
 * certificate is checked after the handshake (net/tls_client). */
static SSL_CTX *probe_ssl_ctx(const char *ca)
{
	char *err = NULL;
	SSL_CTX *ctx = tls_client_ctx_create(ca, 1, &err);
	free(err);
	return ctx;
}

static int probe_resolve(struct probe *p)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	char port[8];
	int rc;
	snprintf(port, sizeof(port), "%u", p->res.port);
	rc = getaddrinfo(p->res.host, port, &hints, &res);
	if (rc != 0) {
		snprintf(p->res.connect_error, sizeof(p->res.connect_error), "%s: %s", p->res.host,
			 gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *a = res; a && p->n_addrs < PROBE_ADDRS_MAX; a = a->ai_next) {
		memcpy(&p->addrs[p->n_addrs], a->ai_addr, a->ai_addrlen);
		p->addrlens[p->n_addrs++] = a->ai_addrlen;
	}
	freeaddrinfo(res);
	return 0;
}

int cmd_probe(const char *config_path, int argc, char **argv)
{
	enum { O_STARTTLS = 256, O_TLS, O_PLAIN, O_EHLO, O_USER, O_MECH, O_TIMEOUT, O_JSON, O_CA,
	       O_INSECURE, O_CLEARTEXT, O_HELP };
	static const struct option longopts[] = {
		{ "starttls", no_argument, NULL, O_STARTTLS }, { "tls", no_argument, NULL, O_TLS },
		{ "plain", no_argument, NULL, O_PLAIN }, { "ehlo", required_argument, NULL, O_EHLO },
		{ "user", required_argument, NULL, O_USER }, { "mech", required_argument, NULL, O_MECH },
		{ "timeout", required_argument, NULL, O_TIMEOUT }, { "json", no_argument, NULL, O_JSON },
		{ "ca", required_argument, NULL, O_CA }, { "insecure", no_argument, NULL, O_INSECURE },
		{ "allow-cleartext", no_argument, NULL, O_CLEARTEXT },
		{ "help", no_argument, NULL, O_HELP }, { NULL, 0, NULL, 0 },
	};
	struct probe p = { .discovery = 1, .timeout = 30 };
	struct probe_result *pr = &p.res;
	const char *ca = NULL;
	char hostname[256], *host = NULL, *end;
	int c, mode = -1, status;
	unsigned long v;

	(void)config_path; /* the probe is a client: it reads no configuration */
	/* A domain's DANE or MTA-STS status is another probe, with options of its own. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dane") == 0)
			return cmd_probe_dane(argc, argv);
		if (strcmp(argv[i], "--mta-sts") == 0 || strncmp(argv[i], "--mta-sts=", 10) == 0)
			return cmd_probe_mtasts(argc, argv);
	}
	optind = 0; /* GNU: start afresh; options may follow HOST */
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_STARTTLS: case O_TLS: case O_PLAIN:
			if (mode >= 0 && mode != c - O_STARTTLS)
				return probe_usage_error("--starttls, --tls and --plain exclude each other");
			mode = c - O_STARTTLS;
			break;
		case O_EHLO: p.ehlo = optarg; break;
		case O_USER: pr->user = optarg; break;
		case O_MECH: p.mech = optarg; break;
		case O_JSON: pr->json = 1; break;
		case O_CA: ca = optarg; break;
		case O_INSECURE: pr->insecure = 1; break;
		case O_CLEARTEXT: pr->allow_cleartext = 1; break;
		case O_TIMEOUT:
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v == 0 || v > 3600)
				return probe_usage_error("--timeout takes 1 to 3600 seconds");
			p.timeout = (unsigned)v;
			break;
		case O_HELP:
			fputs(probe_usage, stdout);
			return ADMIN_EXIT_OK;
		default:
			return probe_usage_error(NULL);
		}
	}
	if (optind != argc - 1)
		return probe_usage_error("one HOST[:PORT] expected");
	if (p.mech && !pr->user)
		return probe_usage_error("--mech needs --user");
	if (probe_split_host(argv[optind], &host, &pr->port) < 0) {
		free(host);
		return probe_usage_error("bad HOST[:PORT]");
	}
	pr->host = host;
	if (mode < 0)
		mode = pr->port == 465 ? PROBE_TLS : PROBE_STARTTLS;
	pr->mode = (enum probe_mode)mode;
	if (!pr->port)
		pr->port = pr->mode == PROBE_TLS ? 465 : 587;
	if (!p.ehlo) {
		if (gethostname(hostname, sizeof(hostname)) < 0 || !strchr(hostname, '.'))
			snprintf(hostname, sizeof(hostname), "localhost");
		hostname[sizeof(hostname) - 1] = '\0';
		p.ehlo = hostname;
	}
	if (strpbrk(p.ehlo, " \r\n\t<>") || !*p.ehlo) {
		free(host);
		return probe_usage_error("bad --ehlo name");
	}
	if (pr->user && !(p.password = admin_password_read(0))) {
		free(host);
		return ADMIN_EXIT_USAGE;
	}
	p.ctx = probe_ssl_ctx(ca);
	if (!p.ctx) {
		admin_error("probe: cannot load the trust store%s%s", ca ? " " : "", ca ? ca : "");
		status = ADMIN_EXIT_USAGE;
		goto out;
	}
	if (probe_resolve(&p) < 0) {
		pr->connect_failed = 1;
	} else {
		p.base = event_base_new();
		probe_next(&p);
		event_base_dispatch(p.base);
		smtpc_destroy(&p.cli);
		event_base_free(p.base);
	}
	probe_findings(pr);
	probe_print(pr);
	status = probe_exit_status(pr);
out:
	if (p.password)
		xfree_secret(p.password, strlen(p.password));
	for (size_t i = 0; i < p.n_mechs; i++)
		free(p.mechs[i]);
	free(p.mechs);
	SSL_CTX_free(p.ctx);
	probe_result_clear(pr);
	free(host);
	return status;
}
