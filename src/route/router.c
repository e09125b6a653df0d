/* router: the configuration's routing rules as one function of (configuration,
 * envelope, recipient). Pure and lock-free: it reads cfg and env only, so delivery
 * threads may call it at will. Promises: every non-local route names its port (never
 * 0) and its policy ("-" or a block's name, which router_policy looks up again). */
#include "route/router.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/envelope.h"
#include "util/ascii.h"
#include "util/xmalloc.h"

/* The first sender_route naming this exact address, else the first naming its
 * "@domain"; NULL for the null sender. */
static const struct route_conf *router_by_sender(const struct config *cfg, const char *from)
{
	const char *at = from ? strrchr(from, '@') : NULL;
	if (!at || !at[1])
		return NULL;
	for (const struct route_conf *rc = cfg->routes; rc; rc = rc->next)
		if (rc->by_sender && rc->match[0] != '@' && strcasecmp(rc->match, from) == 0)
			return rc;
	for (const struct route_conf *rc = cfg->routes; rc; rc = rc->next)
		if (rc->by_sender && rc->match[0] == '@' && strcasecmp(rc->match + 1, at + 1) == 0)
			return rc;
	return NULL;
}

static const struct route_conf *router_find(const struct config *cfg, const char *match)
{
	for (const struct route_conf *rc = cfg->routes; rc; rc = rc->next)
		if (!rc->by_sender && strcmp(rc->match, match) == 0)
			return rc;
	return NULL;
}

/* domain (lower case): "route domain", then ".domain", then ".parent" upwards: the
 * most specific block wins. */
static const struct route_conf *router_by_domain(const struct config *cfg, const char *domain)
{
	const struct route_conf *rc;
	char *dotted;
	if ((rc = router_find(cfg, domain)))
		return rc;
	dotted = xasprintf(".%s", domain);
	for (const char *d = dotted; d && !rc; d = strchr(d + 1, '.'))
		rc = router_find(cfg, d);
	free(dotted);
	return rc;
}

/* The LMTP server of a mailbox ("domain/local-part"): its domain's route block, else
 * the global lmtp; NULL for a Maildir. *rc_r: the block whose lmtp options apply (one
 * that sets any of them), else NULL for the global ones. */
static const char *router_lmtp(const struct config *cfg, const char *mailbox,
			       const struct route_conf **rc_r)
{
	const char *slash = strchr(mailbox, '/');
	const struct route_conf *rc = NULL;
	const char *lmtp;
	if (slash) {
		char *domain = xstrndup(mailbox, (size_t)(slash - mailbox));
		ascii_lower_str(domain);
		rc = router_by_domain(cfg, domain);
		free(domain);
	}
	lmtp = rc && rc->lmtp ? rc->lmtp : cfg->lmtp;
	*rc_r = rc && (rc->lmtp || rc->lmtp_tls >= 0 || rc->lmtp_ca) ? rc : NULL;
	return lmtp && strcmp(lmtp, "maildir") != 0 ? lmtp : NULL;
}

int router_route(const struct config *cfg, const struct envelope *env, size_t i,
		 struct route *r)
{
	const struct env_rcpt *rcpt = &env->rcpts[i];
	const struct route_conf *rc;
	const struct nexthop_conf *nh;
	const char *at;
	char *domain;
	size_t n;

	memset(r, 0, sizeof(*r));
	if (rcpt->mailbox) {
		const char *lmtp = router_lmtp(cfg, rcpt->mailbox, &rc);
		r->kind = lmtp ? ROUTE_LMTP : ROUTE_LOCAL;
		r->target = xstrdup(lmtp ? lmtp : rcpt->mailbox);
		/* Named, so that mailboxes of two blocks with their own TLS never share a
		 * transaction or a connection. */
		if (lmtp && rc)
			r->policy = xstrdup(rc->name);
		return 0;
	}
	if (!(at = strrchr(rcpt->address, '@')) || !at[1])
		return -1;
	domain = xstrdup(at + 1);
	ascii_lower_str(domain);
	/* "example.org." is example.org. */
	if ((n = strlen(domain)) > 1 && domain[n - 1] == '.')
		domain[n - 1] = '\0';

	if (!(rc = router_by_sender(cfg, env->mail_from)))
		rc = router_by_domain(cfg, domain);
	/* A block without relay_host means MX delivery under that block's policy. */
	nh = rc ? &rc->relay_host : &cfg->relay_host;
	if (nh->host) {
		r->kind = ROUTE_RELAY;
		r->target = xstrdup(nh->host);
		r->port = nh->port ? nh->port : cfg->relay_port;
		r->literal = nh->literal;
		free(domain);
	} else {
		r->kind = ROUTE_MX;
		r->target = domain;
		r->port = cfg->relay_port;
	}
	r->policy = xstrdup(rc ? rc->name : "-");
	return 0;
}

/* lmtp_tls and lmtp_ca: nothing crosses a network to a UNIX socket, and it has no
 * name a certificate could carry, so never TLS there. */
static void router_lmtp_policy(const struct config *cfg, const struct route_conf *rc,
			       const struct route *r, struct relay_policy *p)
{
	int tls = rc && rc->lmtp_tls >= 0 ? rc->lmtp_tls : cfg->lmtp_tls;
	p->tls = strncmp(r->target, "unix:", 5) == 0 ? RELAY_TLS_NONE
		 : tls >= 0 ? tls : RELAY_TLS_MAY;
	p->ca = rc && rc->lmtp_ca ? rc->lmtp_ca : cfg->lmtp_ca;
	p->auth_unverified = 0;
}

static const struct route_conf *router_named(const struct config *cfg, const char *name)
{
	if (!name || strcmp(name, "-") == 0)
		return NULL;
	/* By name: the route was stored before a reload may have changed or removed it. */
	for (const struct route_conf *rc = cfg->routes; rc; rc = rc->next)
		if (strcmp(rc->name, name) == 0)
			return rc;
	return NULL;
}

void router_policy(const struct config *cfg, const struct route *r, struct relay_policy *p)
{
	const struct route_conf *rc = router_named(cfg, r->policy);
	if (r->kind == ROUTE_LMTP) {
		router_lmtp_policy(cfg, rc, r, p);
		return;
	}
	p->tls = (int)cfg->relay_tls;
	p->ca = cfg->relay_ca;
	p->auth_unverified = cfg->relay_auth_unverified;
	if (!rc)
		return;
	if (rc->relay_tls >= 0)
		p->tls = rc->relay_tls;
	if (rc->relay_ca)
		p->ca = rc->relay_ca;
	if (rc->relay_auth_unverified >= 0)
		p->auth_unverified = rc->relay_auth_unverified;
}
