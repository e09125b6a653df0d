/* cursus: the administration tool. main.c holds the global options, the usage
 * text and the dispatch to one command group per file. Exit codes: 0 ok, 1 the
 * command failed, 2 usage error. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin.h"

static const char admin_usage_text[] =
	"usage: cursus [-c FILE] COMMAND ...\n"
	"\n"
	"  user add NAME [--legacy-mechanisms]\n"
	"                             add a user (NAME is local@domain); with\n"
	"                             --legacy-mechanisms CRAM-MD5/DIGEST-MD5 work for\n"
	"                             it, at the price of a password-equivalent secret\n"
	"  user passwd NAME [--legacy-mechanisms]\n"
	"                             change a user's password (without the option any\n"
	"                             stored legacy secret is removed)\n"
	"  user del NAME              delete a user\n"
	"  user list                  list the users\n"
	"  user show NAME             what a user has (grants, app passwords, ...)\n"
	"  user grant NAME --act-as OTHER\n"
	"                             NAME may log in as itself and act as OTHER\n"
	"  user grant NAME --send-as ADDRESS|@domain\n"
	"                             NAME may use ADDRESS (or any address of domain)\n"
	"                             as MAIL FROM\n"
	"  user revoke NAME --act-as OTHER|--send-as ADDRESS\n"
	"  user app-password add NAME LABEL\n"
	"                             make an app password (printed once)\n"
	"  user app-password list NAME\n"
	"  user app-password revoke NAME LABEL\n"
	"  user cert add|del NAME FINGERPRINT|SUBJECT\n"
	"                             map a TLS client certificate (SHA-256\n"
	"                             fingerprint, or subject name in RFC 2253 form\n"
	"                             such as \"CN=alice,O=Example\") to NAME\n"
	"  alias add ADDRESS TARGET   deliver mail for ADDRESS to TARGET; ADDRESS\n"
	"                             \"@domain\" is the domain's catch-all\n"
	"  alias del ADDRESS [TARGET] delete one target, or all of ADDRESS's\n"
	"  alias list                 list the aliases\n"
	"  store init|migrate         create or migrate the schema of user_store\n"
	"  store copy FROM TO         copy every table of one store into another,\n"
	"                             empty one (each sqlite:PATH, postgresql:CONNINFO\n"
	"                             or config)\n"
	"  check [--json] [--cert-days N]\n"
	"                             validate the configuration and lint its policy\n"
	"                             (AUTH, TLS, certificate, relay, postmaster). Exit\n"
	"                             0 no problem, 1 problems found, 2 cannot read it\n"
	"  probe HOST[:PORT] [--starttls|--tls|--plain] [--ehlo NAME] [--user USER\n"
	"        [--mech MECH]] [--allow-cleartext] [--timeout SECONDS] [--ca FILE]\n"
	"        [--insecure] [--json]\n"
	"                             check a submission server from the client side:\n"
	"                             TLS, certificate, AUTH mechanisms (with --user, each\n"
	"                             one tried); needs no configuration. Exit 0 nothing\n"
	"                             wrong, 1 problems found, 2 cannot connect or usage\n"
	"  probe --dane DOMAIN[:PORT] [--resolver ADDRESS[@PORT]] [--trust-anchor FILE]\n"
	"        [--timeout SECONDS] [--json]\n"
	"                             DANE status of DOMAIN's MX hosts: DNSSEC, TLSA\n"
	"                             records, whether each certificate matches them\n"
	"  mx DOMAIN [--resolver ADDRESS[@PORT]] [--port N] [--ipv4|--ipv6|\n"
	"        --prefer-ipv4|--prefer-ipv6] [--self NAME] [--timeout SECONDS] [--host]\n"
	"                             where mail for DOMAIN would go: the DNS status,\n"
	"                             then PREF HOST ADDRESS PORT per line, in order;\n"
	"                             needs no configuration. Exit 0 found, 1 permanent\n"
	"                             failure, 75 temporary failure\n"
	"  trace list|clear           the sessions cursusd traces (protocol log)\n"
	"  trace add|del client ADDRESS[/PREFIX] | user NAME\n"
	"                             applied at once through SIGHUP\n"
	"  relay-auth add NEXTHOP USER [--sender ADDRESS]\n"
	"                             credentials sent to a smart host (NEXTHOP host,\n"
	"                             host:port, [host] or [host]:port as in relay_host;\n"
	"                             without a port, relay_port); with --sender only for\n"
	"                             mail from ADDRESS; replaces an earlier entry\n"
	"  relay-auth add NEXTHOP USER --oauth URL --client-id ID [--scope SCOPE]\n"
	"             [--mechanism XOAUTH2|OAUTHBEARER] [--grant refresh_token|client_credentials]\n"
	"                             an OAuth 2 credential: cursus gets its tokens from\n"
	"                             the token endpoint URL; the client secret (may be\n"
	"                             empty with refresh_token), then the refresh token,\n"
	"                             are read like passwords (docs/relay-oauth.md)\n"
	"  relay-auth del NEXTHOP [--sender ADDRESS]\n"
	"  relay-auth list            the entries, without their passwords\n"
	"  dkim keygen DOMAIN SELECTOR --out FILE [--rsa BITS]\n"
	"                             make a DKIM signing key (Ed25519, or RSA of\n"
	"                             2048 to 4096 bits) in FILE (0600, never\n"
	"                             overwritten) and print its DNS TXT record\n"
	"  queue list [--json]        the queued messages and each recipient's state\n"
	"  queue show ID              one message: envelope, header, recipients\n"
	"  queue flush [ID|--domain DOMAIN]\n"
	"                             attempt delivery now\n"
	"  sendmail [-t] [-i] [-f SENDER] [-F NAME] [-bs|-bp|-bi] [--] [RECIPIENT ...]\n"
	"                             the sendmail(8) command: the message from stdin\n"
	"                             into the queue through cursusd's local_socket; also\n"
	"                             run as sendmail, mailq (queue list) and newaliases.\n"
	"                             Exit codes from sysexits.h (75: cursusd not running)\n"
	"  queue hold|release|delete|bounce ID\n"
	"                             keep from delivery, deliver again, remove (no DSN),\n"
	"                             return to the sender now (DSN). Exit 1 no such\n"
	"                             message, 75 the daemon is not reachable\n"
	"  checkpassword /path/to/checkpassword-reply\n"
	"                             the checkpassword interface for an IMAP server\n"
	"                             (Dovecot's passdb checkpassword): user and password\n"
	"                             on fd 3, checked as SMTP AUTH checks them\n"
	"                             (docs/dovecot.md). Exit 1 wrong, 111 store down\n"
	"  help                       this text\n"
	"\n"
	"Passwords and OAuth secrets (user, relay-auth) are read from the terminal without echo, or as one\n"
	"line from stdin when it is not a terminal; never from the command line.\n"
	"The configuration is FILE, else $CURSUS_CONFIG, else " CURSUS_DEFAULT_CONFIG ".\n";

struct admin_command {
	const char *name;
	int (*run)(const char *config_path, int argc, char **argv);
};

static const struct admin_command admin_commands[] = {
	{ "user", cmd_user },
	{ "alias", cmd_alias },
	{ "check", cmd_check },
	{ "probe", cmd_probe },
	{ "trace", cmd_trace },
	{ "mx", cmd_mx },
	{ "relay-auth", cmd_relay_auth },
	{ "dkim", cmd_dkim },
	{ "store", cmd_store },
	{ "queue", cmd_queue },
	{ "sendmail", cmd_sendmail },
	{ "checkpassword", cmd_checkpassword },
};

void admin_error(const char *fmt, ...)
{
	va_list ap;
	fputs("cursus: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int admin_usage_error(void)
{
	fputs(admin_usage_text, stderr);
	return ADMIN_EXIT_USAGE;
}

/* The names programs call instead of cursus: run as those, argv is theirs. */
static int admin_run_as(const char *name, const char *config_path, int argc, char **argv, int *rc_r)
{
	if (strcmp(name, "sendmail") == 0)
		*rc_r = cmd_sendmail(config_path, argc, argv);
	else if (strcmp(name, "mailq") == 0)
		*rc_r = cmd_mailq(config_path);
	else if (strcmp(name, "newaliases") == 0)
		*rc_r = cmd_newaliases();
	else
		return 0;
	return 1;
}

int main(int argc, char **argv)
{
	const char *config_path = getenv("CURSUS_CONFIG"), *name;
	int c, rc;

	log_init("cursus", 1);
	/* The user database holds password hashes: nothing we create is for others. */
	umask(077);
	if (!config_path || !*config_path)
		config_path = CURSUS_DEFAULT_CONFIG;
	name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name ? name + 1 : argc > 0 ? argv[0] : "";
	if (admin_run_as(name, config_path, argc, argv, &rc))
		return rc;
	/* '+': options end at the command, so a command's own arguments are its own. */
	while ((c = getopt(argc, argv, "+c:h")) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			fputs(admin_usage_text, stdout);
			return ADMIN_EXIT_OK;
		default:
			return admin_usage_error();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return admin_usage_error();
	if (strcmp(argv[0], "help") == 0) {
		fputs(admin_usage_text, stdout);
		return ADMIN_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(admin_commands) / sizeof(admin_commands[0]); i++)
		if (strcmp(argv[0], admin_commands[i].name) == 0)
			return admin_commands[i].run(config_path, argc, argv);
	admin_error("unknown command \"%s\"", argv[0]);
	return admin_usage_error();
}
