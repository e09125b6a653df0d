/* check_lmtp: where local mail leaves the host. An LMTP server on a UNIX socket or a
 * loopback address is reached without a network; one elsewhere gets every mailbox's
 * mail over it, and only lmtp_tls verify makes sure it is the server it claims to be
 * (may and encrypt take any certificate, or none). Each place that decides the policy
 * of a server (the global lmtp options, each route block that sets its own, as the
 * router reads them) is checked with its effective server and lmtp_tls. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "admin/check.h"
#include "util/xmalloc.h"

/* Indexed by lmtp_tls (enum relay_tls up to verify). */
static const char *const check_lmtp_tls_names[] = { "none", "may", "encrypt", "verify" };

/* Whether server ("[address]:port" or "host:port") stays on this host. */
static int check_lmtp_local(const char *server)
{
	const char *colon = strrchr(server, ':');
	unsigned char a[4];
	struct in6_addr a6;
	char *host;
	int local;
	if (!colon)
		return 0;
	if (server[0] == '[')
		host = xstrndup(server + 1, (size_t)(colon - server - 2));
	else
		host = xstrndup(server, (size_t)(colon - server));
	local = strcmp(host, "localhost") == 0 ||
		(inet_pton(AF_INET, host, a) == 1 && a[0] == 127) ||
		(inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6));
	free(host);
	return local;
}

static void check_lmtp_one(struct check_report *r, const char *where, const char *server,
			   int tls, int line)
{
	if (!server || strcmp(server, "maildir") == 0 || strncmp(server, "unix:", 5) == 0 ||
	    check_lmtp_local(server) || tls == RELAY_TLS_VERIFY)
		return;
	check_add(r, CHECK_WARNING, "lmtp-tls-unverified", line,
		  "set lmtp_tls verify (lmtp_ca for a private CA), or reach the server on a UNIX "
		  "socket or a loopback address",
		  "%s: LMTP to %s with lmtp_tls %s: local mail crosses the network to a server "
		  "whose certificate is not verified%s", where, server, check_lmtp_tls_names[tls],
		  tls == RELAY_TLS_NONE || tls == RELAY_TLS_MAY ? ", or in clear" : "");
}

void check_lmtp(struct check_report *r)
{
	const struct config *cfg = r->cfg;
	int g_tls = cfg->lmtp_tls >= 0 ? cfg->lmtp_tls : RELAY_TLS_MAY;
	int g_line = config_option_line(cfg, "lmtp_tls");

	check_lmtp_one(r, "lmtp", cfg->lmtp, g_tls,
		       g_line ? g_line : config_option_line(cfg, "lmtp"));
	for (const struct route_conf *rc = cfg->routes; rc; rc = rc->next) {
		int line;
		/* Without lmtp options of its own a block's mailboxes go as the global ones. */
		if (rc->by_sender || (!rc->lmtp && rc->lmtp_tls < 0 && !rc->lmtp_ca))
			continue;
		line = rc->lmtp_tls >= 0 ? config_route_line(rc, "lmtp_tls") : g_line;
		if (!line)
			line = rc->lmtp ? config_route_line(rc, "lmtp") : rc->line;
		check_lmtp_one(r, rc->name, rc->lmtp ? rc->lmtp : cfg->lmtp,
			       rc->lmtp_tls >= 0 ? rc->lmtp_tls : g_tls, line);
	}
}
