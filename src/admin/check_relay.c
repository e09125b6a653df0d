/* check_relay: where the relay password could go. SPEC "Queue and delivery": it is
 * sent only to the smart host it is stored for, only over TLS with a verified
 * certificate unless explicitly allowed. Each place a smart host is named (the global
 * relay_host, each route or sender_route block with one) is a context with its own
 * effective relay_tls and relay_auth_unverified; the stored credentials
 * (`cursus relay-auth`) are matched to contexts by the name route_nexthop() gives.
 * An OAuth 2 credential is a credential like a password here (its access token is
 * what goes to the next hop, under the same rules); what is its own is that relay_ca
 * also verifies its token endpoint. */
#include <stdlib.h>
#include <string.h>

#include "admin/check.h"
#include "route/route.h"
#include "store/userdb.h"
#include "util/strset.h"
#include "util/xmalloc.h"

struct check_relay_ctx {
	const char *where;         /* "relay_host" or a block's name */
	char *nexthop;             /* as credentials are stored: "[host]:port" */
	int tls, tls_line;
	int unverified, unverified_line;
	const char *ca;            /* the effective relay_ca, or NULL */
	int ca_line;
};

/* Indexed by enum relay_tls (config/config.h), in its order. */
static const char *const check_relay_tls_names[] = { "none", "may", "encrypt", "verify", "dane",
						      "dane-only", "mta-sts", "auto" };

static char *check_relay_nexthop(const struct config *cfg, const struct nexthop_conf *nh)
{
	struct route rt = { .kind = ROUTE_RELAY, .target = nh->host,
			    .port = nh->port ? nh->port : cfg->relay_port, .literal = nh->literal };
	return route_nexthop(&rt);
}

/* A block's setting, else the global one; its line likewise, else the block's. */
static void check_relay_ctx_route(const struct config *cfg, const struct route_conf *rc,
				  struct check_relay_ctx *c)
{
	int g_tls = config_option_line(cfg, "relay_tls");
	int g_unv = config_option_line(cfg, "relay_auth_unverified");
	c->where = rc->name;
	c->nexthop = check_relay_nexthop(cfg, &rc->relay_host);
	c->tls = rc->relay_tls >= 0 ? rc->relay_tls : (int)cfg->relay_tls;
	c->tls_line = rc->relay_tls >= 0 ? config_route_line(rc, "relay_tls") : g_tls;
	if (!c->tls_line)
		c->tls_line = rc->line;
	c->unverified = rc->relay_auth_unverified >= 0 ? rc->relay_auth_unverified
						       : cfg->relay_auth_unverified;
	c->unverified_line = rc->relay_auth_unverified >= 0
			     ? config_route_line(rc, "relay_auth_unverified") : g_unv;
	if (!c->unverified_line)
		c->unverified_line = rc->line;
	c->ca = rc->relay_ca ? rc->relay_ca : cfg->relay_ca;
	c->ca_line = rc->relay_ca ? config_route_line(rc, "relay_ca")
				  : config_option_line(cfg, "relay_ca");
}

/* The next hops credentials are stored for, each once. */
struct check_relay_creds {
	struct strset set;
	struct strset oauth;       /* those with an OAuth credential */
	char **names;
	size_t n;
};

static void check_relay_list_cb(void *arg, const char *nexthop, const char *sender,
				const char *user, const char *oauth_mech)
{
	struct check_relay_creds *c = arg;
	if (oauth_mech)
		strset_add(&c->oauth, nexthop);
	if (!strset_add(&c->set, nexthop))
		return;
	c->names = xrealloc(c->names, (c->n + 1) * sizeof(*c->names));
	c->names[c->n++] = xstrdup(nexthop);
}

static void check_relay_ctx(struct check_report *r, const struct check_relay_ctx *c,
			    const struct strset *creds, const struct strset *oauth)
{
	/* Not wrong in itself (a private token endpoint), but a public provider's will
	 * not chain to a private CA, and then no token is had. */
	if (c->ca && strset_has(oauth, c->nexthop))
		check_add(r, CHECK_INFO, "relay-oauth-ca", c->ca_line ? c->ca_line : c->tls_line,
			  "leave relay_ca unset for a public provider (the system's store then "
			  "verifies both), or make it hold the token endpoint's root as well",
			  "%s: OAuth credentials are stored for %s and relay_ca is set: the token "
			  "endpoint's certificate is verified against %s too", c->where, c->nexthop,
			  c->ca);
	/* With relay_tls none no password is sent at all: it never goes in clear. */
	/* dane (and auto, which is dane for a smart host) is may where nothing is
	 * DNSSEC-secure, mta-sts is may for a smart host; dane-only always authenticates. */
	if (c->unverified && (c->tls == RELAY_TLS_MAY || c->tls == RELAY_TLS_ENCRYPT ||
			      c->tls == RELAY_TLS_DANE || c->tls == RELAY_TLS_MTA_STS ||
			      c->tls == RELAY_TLS_AUTO))
		check_add(r, CHECK_ERROR, "relay-auth-unverified", c->unverified_line,
			  "set relay_tls verify (relay_ca for a private CA) and remove "
			  "relay_auth_unverified",
			  "%s: relay_auth_unverified with relay_tls %s sends the relay password "
			  "for %s to any server that answers with a certificate", c->where,
			  check_relay_tls_names[c->tls], c->nexthop);
	else if (c->tls == RELAY_TLS_NONE && strset_has(creds, c->nexthop))
		check_add(r, CHECK_ERROR, "relay-auth-no-tls", c->tls_line,
			  "set relay_tls verify for this next hop (relay_ca for a private CA)",
			  "%s: credentials are stored for %s but relay_tls is none: they are never "
			  "sent in clear, so mail through it is always deferred", c->where,
			  c->nexthop);
	/* The transport sends them only over a verified certificate anyway (unless
	 * relay_auth_unverified): safe, but the policy should say so. */
	else if (c->tls != RELAY_TLS_VERIFY && strset_has(creds, c->nexthop))
		check_add(r, CHECK_INFO, "relay-tls-not-verify", c->tls_line,
			  "set relay_tls verify for this next hop, so that the policy says what "
			  "happens (relay_ca for a private CA)",
			  "%s: credentials are stored for %s with relay_tls %s: they go only "
			  "over a verified certificate, and mail is deferred where it does not "
			  "verify", c->where, c->nexthop, check_relay_tls_names[c->tls]);
}

static int check_relay_named(const struct check_relay_ctx *ctx, size_t n, const char *nexthop)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ctx[i].nexthop, nexthop) == 0)
			return 1;
	return 0;
}

/* dane-only defers every delivery it governs when nothing can be DNSSEC-secure. */
static void check_relay_dane(struct check_report *r, const struct config *cfg)
{
	if (cfg->dns_trust_anchor)
		return;
	if (cfg->relay_tls == RELAY_TLS_DANE_ONLY)
		check_add(r, CHECK_ERROR, "relay-dane-no-trust-anchor",
			  config_option_line(cfg, "relay_tls"),
			  "set dns_trust_anchor (/usr/share/dns/root.key from dns-root-data)",
			  "relay_tls dane-only without dns_trust_anchor: no answer can be "
			  "DNSSEC-secure, so every delivery is deferred");
	for (const struct route_conf *rc = cfg->routes; rc; rc = rc->next)
		if (rc->relay_tls == RELAY_TLS_DANE_ONLY)
			check_add(r, CHECK_ERROR, "relay-dane-no-trust-anchor",
				  config_route_line(rc, "relay_tls"),
				  "set dns_trust_anchor (/usr/share/dns/root.key from dns-root-data)",
				  "%s: relay_tls dane-only without dns_trust_anchor: no answer can be "
				  "DNSSEC-secure, so its mail is always deferred", rc->name);
}

void check_relay(struct check_report *r, struct userdb *db)
{
	const struct config *cfg = r->cfg;
	struct check_relay_ctx *ctx = NULL;
	struct check_relay_creds creds = {0};
	size_t n = 0;
	char *err = NULL;

	if (cfg->relay_host.host) {
		ctx = xrealloc(ctx, (n + 1) * sizeof(*ctx));
		ctx[n] = (struct check_relay_ctx){
			"relay_host", check_relay_nexthop(cfg, &cfg->relay_host), (int)cfg->relay_tls,
			config_option_line(cfg, "relay_tls"), cfg->relay_auth_unverified,
			config_option_line(cfg, "relay_auth_unverified"), cfg->relay_ca,
			config_option_line(cfg, "relay_ca") };
		if (!ctx[n].tls_line)
			ctx[n].tls_line = config_option_line(cfg, "relay_host");
		n++;
	}
	for (const struct route_conf *rc = cfg->routes; rc; rc = rc->next) {
		if (!rc->relay_host.host)
			continue;
		ctx = xrealloc(ctx, (n + 1) * sizeof(*ctx));
		check_relay_ctx_route(cfg, rc, &ctx[n++]);
	}
	if (db) {
		/* A failure here leaves the list empty; check_store says the store is bad. */
		userdb_relay_auth_list(db, check_relay_list_cb, &creds, &err);
		free(err);
	}
	check_relay_dane(r, cfg);
	for (size_t i = 0; i < n; i++)
		check_relay_ctx(r, &ctx[i], &creds.set, &creds.oauth);
	/* relay_ca replaces the system's store for MTA-STS too: a private CA there makes
	 * every public policy host unverifiable (no policy is had), and the MX hosts of a
	 * policy cached before it fail in enforce mode. */
	if (cfg->relay_ca && !cfg->relay_host.host &&
	    (cfg->relay_tls == RELAY_TLS_MTA_STS || cfg->relay_tls == RELAY_TLS_AUTO))
		check_add(r, CHECK_INFO, "relay-mta-sts-ca", config_option_line(cfg, "relay_ca"),
			  "set relay_ca only inside the route blocks that need a private CA, so "
			  "that MTA-STS uses the system's store",
			  "relay_ca %s is the trust store of MX delivery under MTA-STS too: policy "
			  "hosts and the MX hosts of domains with an enforce policy must chain to it",
			  cfg->relay_ca);
	for (size_t i = 0; i < creds.n; i++) {
		if (!check_relay_named(ctx, n, creds.names[i]))
			check_add(r, CHECK_INFO, "relay-auth-unused", 0,
				  "name the host in relay_host, or delete them with cursus relay-auth "
				  "del", "credentials are stored for %s, which no relay_host names",
				  creds.names[i]);
		free(creds.names[i]);
	}
	free(creds.names);
	for (size_t i = 0; i < n; i++)
		free(ctx[i].nexthop);
	free(ctx);
	strset_clear(&creds.set);
	strset_clear(&creds.oauth);
}
