/* Tests of config: defaults, per-listener overrides and inheritance, suffixes, bounds,
 * every error message with its line number, path resolution, and that the shipped
 * development and example configurations load. Runs from the repository root. */
#include "unit.h"
#include "config/config.h"
#include "sasl/sasl.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <unistd.h>

/* Minimal valid preamble, so each error test shows only its own error. */
#define BASE "local_domains example.test\nlistener smtp {\naddress 127.0.0.1:2525\n}\n"

static char tmp_path[64];

/* Loads `text` from a temp file; *errs_r gets what was printed, with the file name
 * replaced by "F" so expected messages read "F:3: ...". */
static struct config *load_text(const char *text, char **errs_r)
{
	char *buf = NULL, *out, *q;
	size_t len = 0, plen;
	FILE *f, *errs;
	int fd;
	struct config *cfg;

	snprintf(tmp_path, sizeof(tmp_path), "/tmp/cursus-test-config-XXXXXX");
	fd = mkstemp(tmp_path);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		perror("mkstemp");
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	errs = open_memstream(&buf, &len);
	cfg = config_load(tmp_path, errs);
	fclose(errs);
	unlink(tmp_path);

	plen = strlen(tmp_path);
	out = xmalloc(len + 1);
	out[0] = '\0';
	for (const char *s = buf; *s;) {
		if ((q = strstr(s, tmp_path))) {
			strncat(out, s, (size_t)(q - s));
			strcat(out, "F");
			s = q + plen;
		} else {
			strcat(out, s);
			break;
		}
	}
	free(buf);
	if (errs_r)
		*errs_r = out;
	else
		free(out);
	return cfg;
}

/* Expects the load to fail with exactly the messages `want`. */
static void fails(const char *text, const char *want)
{
	char *errs;
	struct config *cfg = load_text(text, &errs);
	CHECK(cfg == NULL);
	CHECK_STR(errs, want);
	config_free(&cfg);
	free(errs);
}

static struct config *loads(const char *text)
{
	char *errs;
	struct config *cfg = load_text(text, &errs);
	CHECK(cfg != NULL);
	CHECK_STR(errs, "");
	free(errs);
	return cfg;
}

static const struct listener_conf *find(const struct config *cfg, const char *name)
{
	for (const struct listener_conf *l = cfg->listeners; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			return l;
	return NULL;
}

static void test_defaults(void)
{
	struct config *cfg = loads(BASE);
	const struct listener_conf *l;
	if (!cfg)
		return;
	/* Absolute, whatever the working directory. */
	CHECK_STR(cfg->state_dir, "/var/lib/cursus");
	CHECK_STR(cfg->queue_dir, "/var/lib/cursus/queue");
	CHECK_STR(cfg->mail_dir, "/var/lib/cursus/mail");
	CHECK_STR(cfg->user_db, "/var/lib/cursus/db/users.db");
	CHECK_STR(cfg->tls_cert, "/var/lib/cursus/tls/cert.pem");
	CHECK_STR(cfg->tls_key, "/var/lib/cursus/tls/key.pem");
	CHECK_STR(cfg->control_socket, "/var/lib/cursus/run/cursusd.sock");
	CHECK_STR(cfg->pid_file, "/var/lib/cursus/run/cursusd.pid");
	CHECK_STR(cfg->trace_file, "/var/lib/cursus/trace");
	CHECK(cfg->user == NULL && cfg->group == NULL);
	CHECK(cfg->hostname != NULL && cfg->hostname[0] != '\0');
	CHECK(cfg->tls_self_signed == 0);
	CHECK_STR(cfg->tls_min_version, "TLSv1.2");
	CHECK(cfg->worker_threads == 4 && cfg->queue_threads == 16 && cfg->delivery_threads == 4);
	CHECK(cfg->retry_min == 300 && cfg->retry_max == 3600 && cfg->queue_lifetime == 432000);
	CHECK(cfg->log_debug == 0);
	CHECK(cfg->limits.max_command_line == 512 && cfg->limits.max_auth_line == 12288);
	CHECK(cfg->limits.max_text_line == 1000 && cfg->limits.max_message_size == 36700160);
	CHECK(cfg->limits.max_recipients == 100 && cfg->limits.max_errors == 10);
	CHECK(cfg->limits.command_timeout_ms == 300000 && cfg->limits.data_timeout_ms == 300000);
	CHECK(cfg->limits.session_timeout_ms == 3600000 && cfg->limits.max_sessions == 1000);
	CHECK(cfg->limits.data_phase_timeout_ms == 600000);
	CHECK(cfg->limits.tls_handshake_timeout_ms == 30000);
	CHECK(cfg->limits.stress_threshold == 80 && cfg->limits.stress_timeout_ms == 10000);
	CHECK(cfg->client_ipv6_prefix == 64 && cfg->max_client_inflight_bytes == 134217728);
	l = cfg->listeners;
	CHECK(l && !l->next);
	if (l) {
		CHECK_STR(l->name, "smtp");
		CHECK(l->role == ROLE_SMTP && l->tls == TLS_STARTTLS && l->line == 2);
		CHECK_STR(l->host, "127.0.0.1");
		CHECK_STR(l->port, "2525");
		CHECK(memcmp(&l->limits, &cfg->limits, sizeof(l->limits)) == 0);
	}
	CHECK_STR(cfg->path, tmp_path);
	config_free(&cfg);
	CHECK(cfg == NULL);
	config_free(&cfg); /* NULL is fine */
}

static void test_overrides(void)
{
	struct config *cfg = loads(
		"# comment line\n"
		"hostname Mail.Example.Test\n"
		"local_domains Example.TEST \"localhost\"   # trailing comment\n"
		"local_domains other.test\n"
		"max_recipients 50\n"
		"listener submission {\n"
		"\taddress [::1]:587\n"
		"\tmax_recipients 20\n"
		"\tmax_message_size 10M\n"
		"}\n"
		"listener submissions {\n"
		"\taddress 127.0.0.1:465\n"
		"}\n"
		"listener mx2{\n"
		"\trole smtp\n"
		"\taddress \"0.0.0.0:25\"\n"
		"\ttls none\n"
		"}\n"
		"max_message_size 1G           # after the blocks: still inherited\n"
		"max_auth_line 64K\n"
		"command_timeout 600\n"
		"tls_min_version tlsv1.3\n"
		"tls_self_signed no\n"
		"log_debug yes\n"
		"retry_min 10\nretry_max 20\nqueue_lifetime 3600\n"
		"worker_threads 1\nqueue_threads 2\ndelivery_threads 3\n");
	const struct listener_conf *l;
	if (!cfg)
		return;
	CHECK_STR(cfg->hostname, "Mail.Example.Test");
	CHECK(cfg->n_local_domains == 3);
	if (cfg->n_local_domains == 3) {
		CHECK_STR(cfg->local_domains[0], "example.test");
		CHECK_STR(cfg->local_domains[1], "localhost");
		CHECK_STR(cfg->local_domains[2], "other.test");
	}
	CHECK(config_is_local_domain(cfg, "EXAMPLE.test"));
	CHECK(config_is_local_domain(cfg, "example.test."));
	CHECK(config_is_local_domain(cfg, "Other.Test"));
	CHECK(!config_is_local_domain(cfg, "example.tes"));
	CHECK(!config_is_local_domain(cfg, "xexample.test"));
	CHECK(!config_is_local_domain(cfg, ""));
	CHECK_STR(cfg->tls_min_version, "TLSv1.3");
	CHECK(cfg->tls_self_signed == 0 && cfg->log_debug == 1);
	CHECK(cfg->retry_min == 10 && cfg->retry_max == 20 && cfg->queue_lifetime == 3600);
	CHECK(cfg->worker_threads == 1 && cfg->queue_threads == 2 && cfg->delivery_threads == 3);
	CHECK(cfg->limits.max_message_size == 1073741824);
	CHECK(cfg->limits.max_auth_line == 65536);

	/* File order is kept. */
	CHECK(cfg->listeners && strcmp(cfg->listeners->name, "submission") == 0);
	l = find(cfg, "submission");
	CHECK(l != NULL);
	if (l) {
		CHECK(l->role == ROLE_SUBMISSION && l->tls == TLS_STARTTLS && l->line == 6);
		CHECK_STR(l->host, "::1");
		CHECK_STR(l->port, "587");
		CHECK(l->limits.max_recipients == 20);            /* own */
		CHECK(l->limits.max_message_size == 10485760);    /* own, suffix */
		CHECK(l->limits.max_auth_line == 65536);          /* global, set later */
		CHECK(l->limits.command_timeout_ms == 600000);
		CHECK(l->limits.max_command_line == 512);         /* default */
	}
	l = find(cfg, "submissions");
	CHECK(l != NULL);
	if (l) {
		CHECK(l->role == ROLE_SUBMISSIONS && l->tls == TLS_IMPLICIT);
		CHECK(l->limits.max_recipients == 50);
		CHECK(l->limits.max_message_size == 1073741824);
	}
	l = find(cfg, "mx2");
	CHECK(l != NULL);
	if (l) {
		CHECK(l->role == ROLE_SMTP && l->tls == TLS_NONE);
		CHECK_STR(l->host, "0.0.0.0");
		CHECK_STR(l->port, "25");
	}
	config_free(&cfg);
}

static void test_suffixes_and_bounds(void)
{
	struct config *cfg = loads("max_message_size 2k\nmax_text_line 1000\n" BASE);
	if (cfg)
		CHECK(cfg->limits.max_message_size == 2048);
	config_free(&cfg);
	cfg = loads("max_message_size 2G\nmax_recipients 1\nmax_command_line 512\n" BASE);
	if (cfg)
		CHECK(cfg->limits.max_message_size == 2147483648ULL && cfg->limits.max_recipients == 1);
	config_free(&cfg);

	fails("max_recipients 0\n" BASE, "F:1: max_recipients: 0 is below the minimum 1\n");
	fails("max_command_line 511\n" BASE,
	      "F:1: max_command_line: 511 is below the minimum 512\n");
	fails("max_text_line 999\n" BASE, "F:1: max_text_line: 999 is below the minimum 1000\n");
	fails("max_auth_line 100\n" BASE, "F:1: max_auth_line: 100 is below the minimum 512\n");
	fails("max_message_size 1023\n" BASE,
	      "F:1: max_message_size: 1023 is below the minimum 1024\n");
	fails("max_errors 0\n" BASE, "F:1: max_errors: 0 is below the minimum 1\n");
	fails("max_message_size 3G\n" BASE,
	      "F:1: max_message_size: 3G is above the maximum 2147483648\n");
	fails("max_message_size 10T\n" BASE,
	      "F:1: max_message_size: \"10T\" is not a number (suffixes: K, M, G)\n");
	fails("max_message_size 99999999999999999999999\n" BASE,
	      "F:1: max_message_size: \"99999999999999999999999\" is not a number "
	      "(suffixes: K, M, G)\n");
	fails("max_message_size 17179869184G\n" BASE,
	      "F:1: max_message_size: \"17179869184G\" is not a number (suffixes: K, M, G)\n");
	fails("max_recipients 10K\n" BASE, "F:1: max_recipients: \"10K\" is not a number\n");
	fails("max_recipients -1\n" BASE, "F:1: max_recipients: \"-1\" is not a number\n");
	fails("max_recipients\n" BASE, "F:1: max_recipients: missing value\n");
	fails("max_recipients 1 2\n" BASE, "F:1: max_recipients: expected one value, got 2 "
	      "(quote a value that contains spaces)\n");
	fails(BASE "listener submission {\naddress 127.0.0.1:587\nmax_recipients 0\n}\n",
	      "F:7: max_recipients: 0 is below the minimum 1\n");
	fails("retry_min 100\nretry_max 50\n" BASE, "F:2: retry_max 50 is below retry_min 100\n");
	fails("retry_min 7200\n" BASE, "F:1: retry_max 3600 is below retry_min 7200\n");
	fails("log_debug true\n" BASE, "F:1: log_debug: \"true\" is not yes or no\n");
	fails("tls_min_version TLSv1.1\n" BASE, "F:1: tls_min_version: unknown value "
	      "\"TLSv1.1\" (expected TLSv1.2, TLSv1.3)\n");
}

static void test_errors(void)
{
	fails("max_recipiants 10\n" BASE,
	      "F:1: unknown option \"max_recipiants\" (did you mean \"max_recipients\"?)\n");
	fails(BASE "frobnicate yes\n", "F:5: unknown option \"frobnicate\"\n");
	fails("hostname a.test\nhostname b.test\n" BASE,
	      "F:2: duplicate option \"hostname\" (first set on line 1)\n");
	fails("local_domains example.test\nlistener smtp {\naddress 127.0.0.1:25\n"
	      "tls none\ntls starttls\n}\n",
	      "F:5: duplicate option \"tls\" (first set on line 4)\n");
	fails("local_domains example.test\nlistener smtp {\n}\n",
	      "F:2: listener \"smtp\": missing address\n");
	fails("local_domains example.test\nlistener smtp {\naddress 127.0.0.1:25\n",
	      "F:2: listener \"smtp\": unterminated block (missing '}')\n");
	fails(BASE "listener relay {\naddress 127.0.0.1:26\n}\n",
	      "F:5: listener \"relay\": missing role (the name is not smtp, submission or "
	      "submissions)\n");
	fails(BASE "listener relay {\nrole lmtp\naddress 127.0.0.1:26\n}\n",
	      "F:6: role: unknown role \"lmtp\" (expected smtp, submission, submissions)\n"
	      "F:5: listener \"relay\": missing role (the name is not smtp, submission or "
	      "submissions)\n");
	fails(BASE "listener submission {\naddress 127.0.0.1:2525\n}\n",
	      "F:6: listener \"submission\": address 127.0.0.1:2525 is already used by "
	      "listener \"smtp\" (line 2)\n");
	fails(BASE "listener s2 {\nrole smtp\naddress 0.0.0.0:2525\n}\n",
	      "F:7: listener \"s2\": address 0.0.0.0:2525 is already used by "
	      "listener \"smtp\" (line 2)\n");
	fails(BASE "listener smtp {\naddress 127.0.0.1:26\n}\n",
	      "F:5: duplicate listener \"smtp\" (first on line 2)\n");
	fails(BASE "listener submissions {\naddress 127.0.0.1:465\ntls none\n}\n",
	      "F:7: listener \"submissions\": role submissions requires tls implicit "
	      "(RFC 8314), not tls none\n");
	fails(BASE "listener submissions {\naddress 127.0.0.1:465\ntls starttls\n}\n",
	      "F:7: listener \"submissions\": role submissions requires tls implicit "
	      "(RFC 8314), not tls starttls\n");
	fails("local_domains example.test\n", "F:1: no listener defined (e.g. listener smtp "
	      "{ address 127.0.0.1:25 })\n");
	fails("listener smtp {\naddress 127.0.0.1:25\n}\n",
	      "F:3: missing local_domains (at least one domain this server receives mail for)\n");
	fails("", "F:1: missing local_domains (at least one domain this server receives mail "
	      "for)\nF:1: no listener defined (e.g. listener smtp { address 127.0.0.1:25 })\n");
	fails("local_domains user@example.test\nlistener smtp {\naddress 127.0.0.1:25\n}\n",
	      "F:1: local_domains: \"user@example.test\" is not a domain\n"
	      "F:4: missing local_domains (at least one domain this server receives mail for)\n");

	/* Addresses. */
	fails("local_domains a.test\nlistener smtp {\naddress localhost:25\n}\n",
	      "F:3: address: host \"localhost\" is not a numeric IPv4 address\n"
	      "F:2: listener \"smtp\": missing address\n");
	fails("local_domains a.test\nlistener smtp {\naddress 127.0.0.1\n}\n",
	      "F:3: address: \"127.0.0.1\" is not host:port (e.g. 127.0.0.1:25 or [::1]:587)\n"
	      "F:2: listener \"smtp\": missing address\n");
	fails("local_domains a.test\nlistener smtp {\naddress 127.0.0.1:0\n}\n",
	      "F:3: address: bad port \"0\" (1-65535)\n"
	      "F:2: listener \"smtp\": missing address\n");
	fails("local_domains a.test\nlistener smtp {\naddress 127.0.0.1:65536\n}\n",
	      "F:3: address: bad port \"65536\" (1-65535)\n"
	      "F:2: listener \"smtp\": missing address\n");
	fails("local_domains a.test\nlistener smtp {\naddress ::1:25\n}\n",
	      "F:3: address: \"::1:25\": an IPv6 address needs brackets, e.g. [::1]:587\n"
	      "F:2: listener \"smtp\": missing address\n");
	fails("local_domains a.test\nlistener smtp {\naddress [::1]\n}\n",
	      "F:3: address: \"[::1]\" is not host:port (e.g. 127.0.0.1:25 or [::1]:587)\n"
	      "F:2: listener \"smtp\": missing address\n");
	fails("local_domains a.test\nlistener smtp {\naddress [1.2.3.4]:25\n}\n",
	      "F:3: address: host \"1.2.3.4\" is not a numeric IPv6 address\n"
	      "F:2: listener \"smtp\": missing address\n");

	/* Scope and structure. */
	fails(BASE "address 127.0.0.1:25\n",
	      "F:5: \"address\" is only allowed inside a listener block\n");
	fails("local_domains a.test\nlistener smtp {\naddress 127.0.0.1:25\nhostname x.test\n}\n",
	      "F:4: \"hostname\" is a global option, not allowed inside listener \"smtp\"\n");
	fails(BASE "}\n", "F:5: unexpected '}' outside a block\n");
	fails("local_domains a.test\nlistener smtp\naddress 127.0.0.1:25\n}\n",
	      "F:2: listener \"smtp\": expected '{' after the name (listener NAME {)\n");
	fails("local_domains a.test\nlistener smtp {\naddress 127.0.0.1:25\n"
	      "listener submission {\naddress 127.0.0.1:587\n}\n",
	      "F:4: listener \"submission\" inside listener \"smtp\" (missing '}' on an "
	      "earlier line?)\n");
	fails(BASE "listener {\n}\n",
	      "F:5: listener: missing or bad name \"\" (letters, digits, '_' and '-')\n");
	fails(BASE "hostname \"mail\n", "F:5: unterminated quoted string\n");
	fails(BASE "hostname \"mail\"x\n", "F:5: unexpected text after a closing quote\n");
	fails(BASE "hostname \"\"\n", "F:5: hostname: empty value\n");
	fails(BASE "hostname \"a b\"\n", "F:5: hostname: \"a b\" is not a host name\n");
	fails(BASE "\"hostname\" x\n", "F:5: expected an option name, not \"hostname\"\n");
	/* Control bytes are escaped, never echoed raw. */
	fails(BASE "bad\001opt 1\n", "F:5: unknown option \"bad\\x01opt\"\n");

	/* Every error is reported, not only the first. */
	fails("max_recipients 0\nnope 1\nlistener smtp {\nmax_errors 0\n}\n",
	      "F:1: max_recipients: 0 is below the minimum 1\n"
	      "F:2: unknown option \"nope\"\n"
	      "F:4: max_errors: 0 is below the minimum 1\n"
	      "F:5: missing local_domains (at least one domain this server receives mail for)\n"
	      "F:3: listener \"smtp\": missing address\n");

	/* A file that cannot be opened. */
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *errs = open_memstream(&buf, &len);
		CHECK(config_load("/nonexistent/cursus.conf", errs) == NULL);
		fclose(errs);
		CHECK_STR(buf, "/nonexistent/cursus.conf: cannot open: No such file or directory\n");
		free(buf);
		CHECK(config_load("/nonexistent/cursus.conf", NULL) == NULL);
	}
}

/* Relative paths: against state_dir, and a relative state_dir against the directory of
 * the file (load_text writes it in /tmp), never against the working directory. */
static void test_paths(void)
{
	static const char text[] = "state_dir ./st\nqueue_dir ./q\nmail_dir /srv/mail\n"
				   "user_db db/u.db\ntls_cert \"with space/c.pem\"\n"
				   "tls_key ./././k.pem\n" BASE;
	char cwd[4096];
	struct config *cfg;

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	for (int pass = 0; pass < 2; pass++) {
		CHECK(chdir(pass ? "/" : cwd) == 0);
		if (!(cfg = loads(text)))
			break;
		CHECK_STR(cfg->state_dir, "/tmp/st");
		CHECK_STR(cfg->queue_dir, "/tmp/st/q");
		CHECK_STR(cfg->mail_dir, "/srv/mail");
		CHECK_STR(cfg->user_db, "/tmp/st/db/u.db");
		CHECK_STR(cfg->tls_cert, "/tmp/st/with space/c.pem");
		CHECK_STR(cfg->tls_key, "/tmp/st/k.pem");
		CHECK_STR(cfg->pid_file, "/tmp/st/run/cursusd.pid");
		config_free(&cfg);
	}
	CHECK(chdir(cwd) == 0);
	cfg = loads("state_dir /srv/cursus/\n" BASE);
	if (cfg)
		CHECK_STR(cfg->control_socket, "/srv/cursus/run/cursusd.sock");
	config_free(&cfg);
	cfg = loads("state_dir .\n" BASE);
	if (cfg)
		CHECK_STR(cfg->queue_dir, "/tmp/queue");
	config_free(&cfg);
}

/* user and group: names, looked up only by the daemon (the example names "cursus"). */
static void test_identity(void)
{
	struct config *cfg = loads("user nobody\n" BASE);
	if (cfg)
		CHECK(strcmp(cfg->user, "nobody") == 0 && cfg->group == NULL);
	config_free(&cfg);
	cfg = loads("user no-such-user-cursus\ngroup nogroup\n" BASE);
	if (cfg)
		CHECK_STR(cfg->group, "nogroup");
	config_free(&cfg);
	fails("group nogroup\n" BASE, "F:1: group: set user too\n");
	fails("user \"\"\n" BASE, "F:1: user: empty value\n");
}

static void test_role_names(void)
{
	CHECK_STR(config_role_name(ROLE_SMTP), "smtp");
	CHECK_STR(config_role_name(ROLE_SUBMISSION), "submission");
	CHECK_STR(config_role_name(ROLE_SUBMISSIONS), "submissions");
}

/* The shipped files: `make run` uses the first, the second must stay valid. */
static void test_shipped(void)
{
	char cwd[4096], want[4200];
	struct config *cfg = config_load("etc/cursus-dev.conf", stderr);
	const struct listener_conf *l;
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	snprintf(want, sizeof(want), "%s/etc/cursus-dev.conf", cwd);
	CHECK_STR(cfg->path, want);
	CHECK_STR(cfg->hostname, "localhost");
	CHECK(config_is_local_domain(cfg, "example.test") && config_is_local_domain(cfg, "localhost"));
	/* state_dir ../var, relative to etc/: the checkout's var/, from anywhere. */
	snprintf(want, sizeof(want), "%s/etc/../var/queue", cwd);
	CHECK_STR(cfg->queue_dir, want);
	snprintf(want, sizeof(want), "%s/etc/../var/users.db", cwd);
	CHECK_STR(cfg->user_db, want);
	CHECK(cfg->tls_self_signed == 1);
	l = find(cfg, "smtp");
	CHECK(l && l->role == ROLE_SMTP && l->tls == TLS_STARTTLS && strcmp(l->port, "2525") == 0);
	l = find(cfg, "submission");
	CHECK(l && l->role == ROLE_SUBMISSION && l->tls == TLS_STARTTLS &&
	      strcmp(l->port, "2587") == 0);
	l = find(cfg, "submissions");
	CHECK(l && l->role == ROLE_SUBMISSIONS && l->tls == TLS_IMPLICIT &&
	      strcmp(l->port, "2465") == 0 && strcmp(l->host, "127.0.0.1") == 0);
	config_free(&cfg);

	cfg = config_load("etc/cursus.conf.example", stderr);
	CHECK(cfg != NULL);
	if (cfg) {
		/* Production: absolute paths, and not root after start. */
		CHECK_STR(cfg->queue_dir, "/var/lib/cursus/queue");
		CHECK_STR(cfg->pid_file, "/var/lib/cursus/run/cursusd.pid");
		CHECK(cfg->user && strcmp(cfg->user, "cursus") == 0);
		l = find(cfg, "smtp6");
		CHECK(l && l->role == ROLE_SMTP && strcmp(l->host, "::") == 0);
		l = find(cfg, "submission");
		CHECK(l && l->limits.max_recipients == 50);
	}
	config_free(&cfg);
}

/* Options added with SMTP AUTH, the trace and the per-client limit. */
static void test_auth_trace_client_options(void)
{
	struct config *cfg = loads(BASE);
	CHECK(cfg && cfg->limits.auth_cleartext == 0 && cfg->limits.auth_mechanisms != 0);
	CHECK(cfg && cfg->n_client_limit_exempt == 2 && cfg->limits.max_client_sessions == 50);
	CHECK(cfg && cfg->auth.addr_budget == 10 && cfg->auth.account_budget == 30);
	config_free(&cfg);
	cfg = loads("auth_mechanisms PLAIN login\nclient_limit_exempt none\n"
		    "trace_clients 192.0.2.1 2001:db8::/32\ntrace_users a@example.test\n" BASE);
	CHECK(cfg && cfg->limits.auth_mechanisms == (MECH_BIT(MECH_PLAIN) | MECH_BIT(MECH_LOGIN)));
	CHECK(cfg && cfg->n_client_limit_exempt == 1 && cfg->n_trace_clients == 2 && cfg->n_trace_users == 1);
	CHECK(cfg && cfg->listeners->limits.auth_mechanisms == cfg->limits.auth_mechanisms);
	config_free(&cfg);
	fails("auth_mechanisms PLAIN FOO\n" BASE,
	      "F:1: auth_mechanisms: unknown value \"FOO\" (expected SCRAM-SHA-256-PLUS, "
	      "SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1, PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, "
	      "EXTERNAL, none)\n");
	fails("client_limit_exempt 10.0.0.0/40\n" BASE,
	      "F:1: client_limit_exempt: \"10.0.0.0/40\" is not an address or CIDR prefix\n");
	fails("auth_fail_addr_budget 2000\n" BASE,
	      "F:1: auth_fail_addr_budget: 2000 is above the maximum 1024\n");
}

/* metrics_listen: off unless set; an address like a listener's. */
static void test_metrics_options(void)
{
	struct config *cfg = loads(BASE);
	CHECK(cfg && !cfg->metrics_host && !cfg->metrics_port && cfg->metrics_timeout_ms == 10000);
	config_free(&cfg);
	cfg = loads("metrics_listen [::1]:9125\nmetrics_timeout 0.5\n" BASE);
	CHECK(cfg && strcmp(cfg->metrics_host, "::1") == 0 && strcmp(cfg->metrics_port, "9125") == 0);
	CHECK(cfg && cfg->metrics_timeout_ms == 500);
	config_free(&cfg);
	fails("metrics_listen 9125\n" BASE,
	      "F:1: metrics_listen: \"9125\" is not host:port (e.g. 127.0.0.1:25 or [::1]:587)\n");
	fails("metrics_listen ::1:9125\n" BASE,
	      "F:1: metrics_listen: \"::1:9125\": an IPv6 address needs brackets, e.g. [::1]:587\n");
}

/* Outbound delivery options: defaults. */
static void test_relay_defaults(void)
{
	struct config *cfg = loads(BASE);
	if (!cfg)
		return;
	CHECK(cfg->relay_host.host == NULL && cfg->relay_host.text == NULL);
	CHECK(cfg->relay_host.port == 0 && cfg->relay_host.literal == 0);
	CHECK(cfg->relay_tls == RELAY_TLS_AUTO && cfg->relay_ca == NULL);
	CHECK(cfg->dns_trust_anchor == NULL);
	CHECK(cfg->relay_auth_unverified == 0 && cfg->dns_resolver == NULL);
	CHECK(cfg->mta_sts_fetch_timeout_ms == 10000 && cfg->mta_sts_max_size == 65536);
	CHECK(cfg->mta_sts_refresh_interval_ms == 86400000 && cfg->mta_sts_fetch_retry_ms == 300000);
	CHECK(cfg->dns_timeout == 10 && cfg->relay_port == 25);
	CHECK(cfg->relay_ip_family == IPF_ANY && cfg->relay_max_addresses == 10);
	CHECK(cfg->relay_concurrency_init == 5 && cfg->relay_concurrency_max == 20);
	CHECK(cfg->relay_rcpts_per_transaction == 50);
	CHECK(cfg->relay_connect_timeout == 30 && cfg->relay_greeting_timeout == 300);
	CHECK(cfg->relay_command_timeout == 300 && cfg->relay_data_timeout == 180);
	CHECK(cfg->relay_dot_timeout == 600 && cfg->relay_idle_time == 2);
	CHECK(cfg->relay_reuse_limit == 100 && cfg->max_received_headers == 100);
	CHECK(cfg->delay_warning_time == 14400);
	CHECK(cfg->routes == NULL);
	CHECK_STR(cfg->control_socket, "/var/lib/cursus/run/cursusd.sock");
	config_free(&cfg);
}

static void test_relay_options(void)
{
	struct config *cfg = loads(
		"relay_tls VERIFY\nrelay_ca ca.pem\nrelay_auth_unverified yes\n"
		"dns_resolver 127.0.0.1@5353\ndns_timeout 1\nrelay_port 2525\n"
		"relay_ip_family prefer-ipv6\nrelay_max_addresses 3\nrelay_concurrency_init 1\n"
		"relay_concurrency_max 1\nrelay_rcpts_per_transaction 2\nrelay_connect_timeout 1\n"
		"relay_greeting_timeout 2\nrelay_command_timeout 3\nrelay_data_timeout 4\n"
		"relay_dot_timeout 5\nrelay_idle_time 0\nrelay_reuse_limit 7\n"
		"max_received_headers 30\ndelay_warning_time 0\ncontrol_socket /run/c.sock\n"
		"queue_lifetime 1\n" BASE);
	if (!cfg)
		return;
	CHECK(cfg->relay_tls == RELAY_TLS_VERIFY && cfg->relay_auth_unverified == 1);
	CHECK_STR(cfg->relay_ca, "/var/lib/cursus/ca.pem");
	CHECK_STR(cfg->dns_resolver, "127.0.0.1@5353");
	CHECK(cfg->dns_timeout == 1 && cfg->relay_port == 2525);
	CHECK(cfg->relay_ip_family == IPF_PREFER_V6 && cfg->relay_max_addresses == 3);
	CHECK(cfg->relay_concurrency_init == 1 && cfg->relay_concurrency_max == 1);
	CHECK(cfg->relay_rcpts_per_transaction == 2 && cfg->relay_connect_timeout == 1);
	CHECK(cfg->relay_greeting_timeout == 2 && cfg->relay_command_timeout == 3);
	CHECK(cfg->relay_data_timeout == 4 && cfg->relay_dot_timeout == 5);
	CHECK(cfg->relay_idle_time == 0 && cfg->relay_reuse_limit == 7);
	CHECK(cfg->max_received_headers == 30 && cfg->delay_warning_time == 0);
	CHECK_STR(cfg->control_socket, "/run/c.sock");
	CHECK(cfg->queue_lifetime == 1);
	config_free(&cfg);

	static const struct { const char *v; int fam; } fams[] = {
		{ "any", IPF_ANY }, { "ipv4", IPF_V4_ONLY }, { "ipv6", IPF_V6_ONLY },
		{ "prefer-ipv4", IPF_PREFER_V4 }, { "prefer-ipv6", IPF_PREFER_V6 },
	};
	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "relay_ip_family %s\n" BASE, fams[i].v);
		cfg = loads(text);
		CHECK(cfg && (int)cfg->relay_ip_family == fams[i].fam);
		config_free(&cfg);
	}
	static const struct { const char *v; int tls; } tlss[] = {
		{ "none", RELAY_TLS_NONE }, { "may", RELAY_TLS_MAY },
		{ "encrypt", RELAY_TLS_ENCRYPT }, { "verify", RELAY_TLS_VERIFY },
		{ "dane", RELAY_TLS_DANE }, { "dane-only", RELAY_TLS_DANE_ONLY },
		{ "mta-sts", RELAY_TLS_MTA_STS }, { "auto", RELAY_TLS_AUTO },
	};
	for (size_t i = 0; i < sizeof(tlss) / sizeof(tlss[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "relay_tls %s\n" BASE, tlss[i].v);
		cfg = loads(text);
		CHECK(cfg && (int)cfg->relay_tls == tlss[i].tls);
		config_free(&cfg);
	}
	static const char *const resolvers[] = { "192.0.2.53", "::1", "::1@53", "2001:db8::1@65535" };
	for (size_t i = 0; i < sizeof(resolvers) / sizeof(resolvers[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "dns_resolver %s\n" BASE, resolvers[i]);
		cfg = loads(text);
		CHECK(cfg && strcmp(cfg->dns_resolver, resolvers[i]) == 0);
		config_free(&cfg);
	}
}

/* Every form of relay_host. */
static void test_relay_host(void)
{
	static const struct {
		const char *in, *host, *text;
		unsigned port;
		int literal;
	} ok[] = {
		{ "smtp.example.org", "smtp.example.org", "smtp.example.org", 0, 0 },
		{ "Smtp.Example.ORG:587", "smtp.example.org", "smtp.example.org:587", 587, 0 },
		{ "[Smtp.Example.org]", "smtp.example.org", "[smtp.example.org]", 0, 1 },
		{ "[smtp.example.org]:2525", "smtp.example.org", "[smtp.example.org]:2525", 2525, 1 },
		{ "[127.0.0.1]:2525", "127.0.0.1", "[127.0.0.1]:2525", 2525, 1 },
		{ "[::1]:25", "::1", "[::1]:25", 25, 1 },
		{ "[2001:DB8::1]", "2001:db8::1", "[2001:db8::1]", 0, 1 },
		/* An address without brackets is still not looked up as an MX. */
		{ "127.0.0.1:26", "127.0.0.1", "127.0.0.1:26", 26, 1 },
		{ "localhost:65535", "localhost", "localhost:65535", 65535, 0 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "relay_host %s\n" BASE, ok[i].in);
		struct config *cfg = loads(text);
		if (!cfg)
			continue;
		CHECK_STR(cfg->relay_host.host, ok[i].host);
		CHECK_STR(cfg->relay_host.text, ok[i].text);
		CHECK(cfg->relay_host.port == ok[i].port);
		CHECK(cfg->relay_host.literal == ok[i].literal);
		config_free(&cfg);
	}
	static const struct { const char *in, *why; } bad[] = {
		{ "\"\"", "\"\": empty host" },
		{ "[]", "\"[]\": empty host" },
		{ "[]:25", "\"[]:25\": empty host" },
		{ ":25", "\":25\": empty host" },
		{ "host:", "\"host:\": bad port (1-65535)" },
		{ "host:0", "\"host:0\": bad port (1-65535)" },
		{ "host:65536", "\"host:65536\": bad port (1-65535)" },
		{ "host:2x", "\"host:2x\": bad port (1-65535)" },
		{ "[host", "\"[host\": missing ']' (e.g. [192.0.2.1]:587)" },
		{ "[host]x", "\"[host]x\": unexpected text after ']' (expected [HOST] or [HOST]:PORT)" },
		{ "::1", "\"::1\": an IPv6 address needs brackets, e.g. [2001:db8::1]:25" },
		{ "a_b.test", "\"a_b.test\": not a host name or IP address" },
		{ "host]:25", "\"host]:25\": not a host name or IP address" },
		{ "a..b", "\"a..b\": not a host name or IP address" },
		{ "\"a b\"", "\"a b\": not a host name or IP address" },
		{ "user@host", "\"user@host\": not a host name or IP address" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256], want[256];
		snprintf(text, sizeof(text), "relay_host %s\n" BASE, bad[i].in);
		snprintf(want, sizeof(want), "F:1: relay_host: %s\n", bad[i].why);
		fails(text, want);
	}
	fails("relay_host a.test b.test\n" BASE, "F:1: relay_host: expected one value, got 2 "
	      "(quote a value that contains spaces)\n");
	fails("relay_host\n" BASE, "F:1: relay_host: missing value\n");
	fails("relay_host a.test\nrelay_host b.test\n" BASE,
	      "F:2: duplicate option \"relay_host\" (first set on line 1)\n");
}

static void test_routes(void)
{
	const struct route_conf *r;
	struct config *cfg = loads(
		"relay_host [smart.example.org]:587\n"
		"route Example.ORG {\n  relay_host [mx.example.org]\n  relay_tls verify\n}\n"
		"route .example.net {\n  relay_ca ca/net.pem\n  relay_auth_unverified yes\n}\n"
		"sender_route @Example.Test {\n  relay_host smtp.example.test:2525\n"
		"  relay_tls encrypt\n}\n"
		"sender_route Bob@example.test {\n}\n"
		"route example.net {\n}\n" BASE);
	if (!cfg)
		return;
	CHECK_STR(cfg->relay_host.host, "smart.example.org");
	r = cfg->routes;
	CHECK(r && !r->by_sender && r->line == 2);
	if (!r)
		goto out;
	CHECK_STR(r->match, "example.org");
	CHECK_STR(r->name, "route example.org");
	CHECK_STR(r->relay_host.host, "mx.example.org");
	CHECK(r->relay_host.literal == 1 && r->relay_host.port == 0);
	CHECK(r->relay_tls == RELAY_TLS_VERIFY && r->relay_ca == NULL);
	CHECK(r->relay_auth_unverified == -1);
	r = r->next;
	CHECK(r && !r->by_sender);
	if (!r)
		goto out;
	CHECK_STR(r->match, ".example.net");
	CHECK_STR(r->name, "route .example.net");
	CHECK(r->relay_host.host == NULL && r->relay_tls == -1 && r->relay_auth_unverified == 1);
	CHECK_STR(r->relay_ca, "/var/lib/cursus/ca/net.pem");
	r = r->next;
	CHECK(r && r->by_sender);
	if (!r)
		goto out;
	CHECK_STR(r->match, "@example.test");
	CHECK_STR(r->name, "sender_route @example.test");
	CHECK_STR(r->relay_host.text, "smtp.example.test:2525");
	CHECK(r->relay_host.port == 2525 && r->relay_host.literal == 0);
	CHECK(r->relay_tls == RELAY_TLS_ENCRYPT);
	r = r->next;
	CHECK(r && r->by_sender);
	if (!r)
		goto out;
	CHECK_STR(r->name, "sender_route bob@example.test");
	CHECK(r->relay_host.host == NULL && r->relay_tls == -1 && r->relay_ca == NULL &&
	      r->relay_auth_unverified == -1);
	r = r->next;
	CHECK(r && !r->by_sender && r->next == NULL);
	if (r)
		CHECK_STR(r->name, "route example.net");
out:
	config_free(&cfg);

	/* Errors. */
	fails(BASE "route example.org {\nrelay_hots x.test\n}\n",
	      "F:6: unknown option \"relay_hots\" (did you mean \"relay_host\"?)\n");
	fails(BASE "route example.org {\nfrobnicate 1\n}\n", "F:6: unknown option \"frobnicate\"\n");
	fails(BASE "route example.org {\n}\nroute EXAMPLE.org {\n}\n",
	      "F:7: duplicate route example.org (first on line 5)\n");
	fails(BASE "sender_route @a.test {\n}\nsender_route @A.test {\n}\n",
	      "F:7: duplicate sender_route @a.test (first on line 5)\n");
	fails(BASE "route example.org {\nrelay_tls none\nrelay_tls may\n}\n",
	      "F:7: duplicate option \"relay_tls\" (first set on line 6)\n");
	fails(BASE "route example..org {\n}\n", "F:5: route: \"example..org\": not a domain "
	      "(example.org, or .example.org for its subdomains too)\n");
	fails(BASE "route @example.org {\n}\n", "F:5: route: \"@example.org\": not a domain "
	      "(example.org, or .example.org for its subdomains too)\n");
	fails(BASE "route {\n}\n", "F:5: route: \"\": not a domain "
	      "(example.org, or .example.org for its subdomains too)\n");
	fails(BASE "route example.org\n}\n",
	      "F:5: route example.org: expected '{' after the domain (route DOMAIN {)\n");
	fails(BASE "sender_route example.org {\n}\n", "F:5: sender_route: \"example.org\": "
	      "not an address (user@example.org or @example.org)\n");
	fails(BASE "sender_route a@ {\n}\n", "F:5: sender_route: \"a@\": "
	      "bad domain (user@example.org or @example.org)\n");
	fails(BASE "sender_route \"a b@x.test\" {\n}\n", "F:5: sender_route: \"a b@x.test\": "
	      "bad local part (user@example.org or @example.org)\n");
	fails(BASE "sender_route a@x.test\n}\n", "F:5: sender_route a@x.test: expected '{' after "
	      "the address (sender_route ADDRESS {)\n");
	fails(BASE "route example.org {\nmax_recipients 5\naddress 127.0.0.1:25\n"
	      "hostname x.test\n}\n",
	      "F:6: \"max_recipients\" is not allowed inside route example.org (only relay_host, "
	      "relay_tls, relay_ca, relay_auth_unverified, lmtp, lmtp_tls, lmtp_ca)\n"
	      "F:7: \"address\" is not allowed inside route example.org (only relay_host, "
	      "relay_tls, relay_ca, relay_auth_unverified, lmtp, lmtp_tls, lmtp_ca)\n"
	      "F:8: \"hostname\" is not allowed inside route example.org (only relay_host, "
	      "relay_tls, relay_ca, relay_auth_unverified, lmtp, lmtp_tls, lmtp_ca)\n");
	fails(BASE "sender_route @x.test {\nrelay_port 26\n}\n",
	      "F:6: \"relay_port\" is not allowed inside sender_route @x.test (only relay_host, "
	      "relay_tls, relay_ca, relay_auth_unverified)\n");
	fails("local_domains a.test\nlistener smtp {\naddress 127.0.0.1:25\nrelay_tls verify\n}\n",
	      "F:4: \"relay_tls\" is a global option, not allowed inside listener \"smtp\" "
	      "(set it per destination in a route block)\n");
	fails(BASE "route example.org {\nrelay_tls sometimes\n}\n",
	      "F:6: relay_tls: unknown relay_tls \"sometimes\" (expected none, may, encrypt, "
	      "verify, dane, dane-only, mta-sts, auto)\n");
	fails(BASE "route example.org {\nrelay_host \"\"\n}\n",
	      "F:6: relay_host: \"\": empty host\n");
	fails(BASE "route example.org {\nroute example.net {\n}\n",
	      "F:6: route example.net inside route example.org (missing '}' on an earlier "
	      "line?)\n");
	fails("local_domains a.test\nlistener smtp {\naddress 127.0.0.1:25\n"
	      "sender_route @a.test {\n}\n",
	      "F:4: sender_route @a.test inside listener \"smtp\" (missing '}' on an earlier "
	      "line?)\n");
	fails(BASE "route example.org {\nrelay_tls none\n",
	      "F:5: route example.org: unterminated block (missing '}')\n");
	fails(BASE "route example.org {\n} x\n", "F:6: unexpected text after '}'\n");
}

/* lmtp: global default and per route block: a socket, an address or a host name. */
static void test_lmtp(void)
{
	struct config *cfg = loads("lmtp unix:/run/dovecot/lmtp\n"
				   "route example.org {\n  lmtp [127.0.0.1]:24\n}\n"
				   "route example.net {\n  lmtp maildir\n}\n"
				   "route example.com {\n  lmtp 127.0.0.2:2424\n}\n"
				   "route example.info {\n  lmtp [::1]:24\n}\n" BASE);
	if (cfg) {
		const struct route_conf *r = cfg->routes;
		CHECK_STR(cfg->lmtp, "unix:/run/dovecot/lmtp");
		CHECK_STR(r->lmtp, "[127.0.0.1]:24");
		CHECK_STR(r->next->lmtp, "maildir");
		CHECK_STR(r->next->next->lmtp, "[127.0.0.2]:2424");
		CHECK_STR(r->next->next->next->lmtp, "[::1]:24");
	}
	config_free(&cfg);
	cfg = loads(BASE);
	CHECK(cfg && cfg->lmtp == NULL);
	config_free(&cfg);
	fails("lmtp unix:run/lmtp\n" BASE, "F:1: lmtp: \"unix:run/lmtp\": the socket's path must "
	      "be absolute (unix:/run/dovecot/lmtp)\n");
	fails("lmtp [imap.example]:24\n" BASE, "F:1: lmtp: \"[imap.example]:24\": not a numeric "
	      "IP address (write a host name without brackets)\n");
	fails("lmtp imap..example:24\n" BASE, "F:1: lmtp: \"imap..example:24\": not a host name "
	      "or IP address\n");
	fails("lmtp imap.example\n" BASE, "F:1: lmtp: \"imap.example\": expected unix:/PATH, "
	      "[ADDRESS]:PORT or ADDRESS:PORT (an IPv6 address needs brackets)\n");
	fails("lmtp [127.0.0.1]\n" BASE, "F:1: lmtp: \"[127.0.0.1]\": expected unix:/PATH, "
	      "[ADDRESS]:PORT or ADDRESS:PORT\n");
	fails("lmtp 127.0.0.1:0\n" BASE, "F:1: lmtp: \"127.0.0.1:0\": bad port (1-65535)\n");
	fails("lmtp ::1:24\n" BASE, "F:1: lmtp: \"::1:24\": expected unix:/PATH, [ADDRESS]:PORT "
	      "or ADDRESS:PORT (an IPv6 address needs brackets)\n");
	fails(BASE "sender_route @x.test {\nlmtp unix:/run/lmtp\n}\n",
	      "F:6: \"lmtp\" is not allowed inside sender_route @x.test (only relay_host, "
	      "relay_tls, relay_ca, relay_auth_unverified)\n");
	fails(BASE "sender_route @x.test {\nlmtp_tls verify\nlmtp_ca /ca.pem\n}\n",
	      "F:6: \"lmtp_tls\" is not allowed inside sender_route @x.test (only relay_host, "
	      "relay_tls, relay_ca, relay_auth_unverified)\n"
	      "F:7: \"lmtp_ca\" is not allowed inside sender_route @x.test (only relay_host, "
	      "relay_tls, relay_ca, relay_auth_unverified)\n");
	fails("lmtp_tls dane\n" BASE, "F:1: lmtp_tls: unknown lmtp_tls \"dane\" (expected none, "
	      "may, encrypt, verify)\n");
}

/* lmtp by host name, lmtp_tls and lmtp_ca: global and per route block; unset is -1 and
 * NULL (the server decides: router_policy). */
static void test_lmtp_tls(void)
{
	struct config *cfg = loads("lmtp IMAP.Example.NET:24\nlmtp_tls verify\nlmtp_ca ca/lmtp.pem\n"
				   "route example.org {\n  lmtp 10.0.0.5:24\n  lmtp_tls encrypt\n"
				   "  lmtp_ca /etc/ssl/org.pem\n}\n"
				   "route example.net {\n  lmtp_tls none\n}\n"
				   "route example.com {\n  lmtp_ca rel.pem\n}\n"
				   "route example.info {\n}\n" BASE);
	if (cfg) {
		const struct route_conf *r = cfg->routes;
		CHECK_STR(cfg->lmtp, "imap.example.net:24");
		CHECK(cfg->lmtp_tls == RELAY_TLS_VERIFY);
		CHECK_STR(cfg->lmtp_ca, "/var/lib/cursus/ca/lmtp.pem");
		CHECK_STR(r->lmtp, "[10.0.0.5]:24");
		CHECK(r->lmtp_tls == RELAY_TLS_ENCRYPT);
		CHECK_STR(r->lmtp_ca, "/etc/ssl/org.pem");
		r = r->next;
		CHECK(r->lmtp == NULL && r->lmtp_tls == RELAY_TLS_NONE && r->lmtp_ca == NULL);
		r = r->next;
		CHECK(r->lmtp_tls == -1);
		CHECK_STR(r->lmtp_ca, "/var/lib/cursus/rel.pem");
		r = r->next;
		CHECK(r->lmtp_tls == -1 && r->lmtp_ca == NULL);
		CHECK(cfg->relay_ca == NULL);
	}
	config_free(&cfg);
	cfg = loads(BASE);
	CHECK(cfg && cfg->lmtp_tls == -1 && cfg->lmtp_ca == NULL);
	config_free(&cfg);
	fails(BASE "route example.org {\nlmtp_tls may\nlmtp_tls verify\n}\n",
	      "F:7: duplicate option \"lmtp_tls\" (first set on line 6)\n");
}

static void test_relay_errors(void)
{
	fails("relay_concurrency_init 30\n" BASE,
	      "F:1: relay_concurrency_max 20 is below relay_concurrency_init 30\n");
	fails("relay_concurrency_init 8\nrelay_concurrency_max 7\n" BASE,
	      "F:2: relay_concurrency_max 7 is below relay_concurrency_init 8\n");
	fails("relay_tls always\n" BASE, "F:1: relay_tls: unknown relay_tls \"always\" "
	      "(expected none, may, encrypt, verify, dane, dane-only, mta-sts, auto)\n");
	fails("relay_ip_family inet\n" BASE, "F:1: relay_ip_family: unknown relay_ip_family "
	      "\"inet\" (expected any, ipv4, ipv6, prefer-ipv4, prefer-ipv6)\n");
	fails("relay_auth_unverified maybe\n" BASE,
	      "F:1: relay_auth_unverified: \"maybe\" is not yes or no\n");
	fails("dns_resolver localhost\n" BASE, "F:1: dns_resolver: \"localhost\": not a numeric "
	      "IPv4 or IPv6 address (ADDRESS or ADDRESS@PORT)\n");
	fails("dns_resolver @53\n" BASE, "F:1: dns_resolver: \"@53\": not a numeric "
	      "IPv4 or IPv6 address (ADDRESS or ADDRESS@PORT)\n");
	fails("dns_resolver [::1]:53\n" BASE, "F:1: dns_resolver: \"[::1]:53\": not a numeric "
	      "IPv4 or IPv6 address (ADDRESS or ADDRESS@PORT)\n");
	fails("dns_resolver 127.0.0.1@0\n" BASE,
	      "F:1: dns_resolver: \"127.0.0.1@0\": bad port (1-65535)\n");
	fails("dns_resolver 127.0.0.1@\n" BASE,
	      "F:1: dns_resolver: \"127.0.0.1@\": bad port (1-65535)\n");
	fails("dns_resolver 127.0.0.1@65536\n" BASE,
	      "F:1: dns_resolver: \"127.0.0.1@65536\": bad port (1-65535)\n");
	fails("dns_timeout 0\n" BASE, "F:1: dns_timeout: 0 is below the minimum 1\n");
	fails("relay_port 0\n" BASE, "F:1: relay_port: 0 is below the minimum 1\n");
	fails("relay_port 65536\n" BASE, "F:1: relay_port: 65536 is above the maximum 65535\n");
	fails("relay_max_addresses 0\n" BASE, "F:1: relay_max_addresses: 0 is below the minimum 1\n");
	fails("relay_concurrency_init 0\n" BASE,
	      "F:1: relay_concurrency_init: 0 is below the minimum 1\n");
	fails("relay_rcpts_per_transaction 0\n" BASE,
	      "F:1: relay_rcpts_per_transaction: 0 is below the minimum 1\n");
	static const char *const timeouts[] = {
		"relay_connect_timeout", "relay_greeting_timeout", "relay_command_timeout",
		"relay_data_timeout", "relay_dot_timeout",
	};
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
		char text[256], want[256];
		snprintf(text, sizeof(text), "%s 0\n" BASE, timeouts[i]);
		snprintf(want, sizeof(want), "F:1: %s: 0 is below the minimum 1\n", timeouts[i]);
		fails(text, want);
	}
	fails("relay_reuse_limit 0\n" BASE, "F:1: relay_reuse_limit: 0 is below the minimum 1\n");
	fails("max_received_headers 0\n" BASE,
	      "F:1: max_received_headers: 0 is below the minimum 1\n");
	fails("queue_lifetime 0\n" BASE, "F:1: queue_lifetime: 0 is below the minimum 1\n");
	fails("delay_warning_time -1\n" BASE,
	      "F:1: delay_warning_time: \"-1\" is not a number\n");
	fails("control_socket \"\"\n" BASE, "F:1: control_socket: empty value\n");
}

static void test_seconds(void)
{
	struct config *cfg = loads("command_timeout 0.25\ndata_timeout 2\ndata_phase_timeout 1.5\n"
				   "tls_handshake_timeout 0.3\nsession_timeout 7\nstress_timeout 0.1\n"
				   "client_ipv6_prefix 48\nmax_client_inflight_bytes 2M\n" BASE);
	if (cfg) {
		CHECK(cfg->limits.command_timeout_ms == 250 && cfg->limits.data_timeout_ms == 2000);
		CHECK(cfg->limits.data_phase_timeout_ms == 1500);
		CHECK(cfg->limits.tls_handshake_timeout_ms == 300);
		CHECK(cfg->limits.session_timeout_ms == 7000 && cfg->limits.stress_timeout_ms == 100);
		CHECK(cfg->client_ipv6_prefix == 48 && cfg->max_client_inflight_bytes == 2097152);
		/* a listener inherits them */
		CHECK(cfg->listeners && cfg->listeners->limits.command_timeout_ms == 250);
	}
	config_free(&cfg);
	fails("command_timeout 0.05\n" BASE, "F:1: command_timeout: 0.05 is below the minimum 0.1\n");
	fails("tls_handshake_timeout 3601\n" BASE,
	      "F:1: tls_handshake_timeout: 3601 is above the maximum 3600\n");
	fails("data_timeout 1.2345\n" BASE,
	      "F:1: data_timeout: \"1.2345\" is not a number of seconds (e.g. 30 or 0.5)\n");
	fails("session_timeout .5\n" BASE,
	      "F:1: session_timeout: \".5\" is not a number of seconds (e.g. 30 or 0.5)\n");
	fails("session_timeout 5.\n" BASE,
	      "F:1: session_timeout: \"5.\" is not a number of seconds (e.g. 30 or 0.5)\n");
	fails("client_ipv6_prefix 129\n" BASE,
	      "F:1: client_ipv6_prefix: 129 is above the maximum 128\n");
}

/* Holders share one configuration; the last to let go frees it (ASan would see a
 * double free or a leak); a zeroed one of a test's own is never freed. */
static void test_refs(void)
{
	struct config *cfg = loads(BASE), *held = config_ref(cfg), *again;
	const struct config *ro = config_ref(cfg);
	struct config mine = {0}, *p = &mine;
	CHECK(held == cfg);
	config_free(&cfg);
	CHECK(cfg == NULL && held->listeners != NULL);
	config_release(&ro);
	CHECK(ro == NULL && strcmp(held->local_domains[0], "example.test") == 0);
	config_free(&held);
	CHECK(held == NULL);
	again = config_ref(p);
	config_free(&again);
	config_free(&p);
	CHECK(p == NULL && atomic_load(&mine.refs) == 0);
}

/* Where each option was set, for `cursus check`: global, per listener, per route; 0
 * for a default and for a value a block inherits. */
static void test_option_lines(void)
{
	struct config *cfg = loads("# comment\n"
				   "local_domains example.test\n"
				   "local_domains example.org\n"
				   "relay_tls verify\n"
				   "listener smtp {\n"
				   "address 127.0.0.1:2525\n"
				   "auth_mechanisms none\n"
				   "}\n"
				   "route partner.example {\n"
				   "relay_host [192.0.2.5]:587\n"
				   "relay_auth_unverified yes\n"
				   "}\n");
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	CHECK(config_option_line(cfg, "local_domains") == 2);
	CHECK(config_option_line(cfg, "relay_tls") == 4);
	CHECK(config_option_line(cfg, "hostname") == 0);
	CHECK(config_option_line(cfg, "no_such_option") == 0);
	CHECK(config_option_line(cfg, "auth_mechanisms") == 0);
	CHECK(config_listener_line(cfg->listeners, "auth_mechanisms") == 7);
	CHECK(config_listener_line(cfg->listeners, "address") == 6);
	CHECK(config_listener_line(cfg->listeners, "max_recipients") == 0);
	CHECK(config_route_line(cfg->routes, "relay_host") == 10);
	CHECK(config_route_line(cfg->routes, "relay_auth_unverified") == 11);
	CHECK(config_route_line(cfg->routes, "relay_tls") == 0);
	config_free(&cfg);
}

void unit_main(void)
{
	test_refs();
	test_option_lines();
	test_seconds();
	test_relay_defaults();
	test_relay_options();
	test_relay_host();
	test_routes();
	test_relay_errors();
	test_lmtp();
	test_lmtp_tls();
	test_auth_trace_client_options();
	test_defaults();
	test_overrides();
	test_suffixes_and_bounds();
	test_errors();
	test_paths();
	test_identity();
	test_role_names();
	test_shipped();
	test_metrics_options();
}
