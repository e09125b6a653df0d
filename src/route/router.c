/* router: the configuration's routing rules as one function of (configuration,
 * envelope, recipient). Pure and lock-free: it reads cfg and env only, so delivery
 * threads may call it at will. Promises: every non-local route names its port (never
 * 0) and its policy ("-" or a block's name, which router_policy looks up again). */
#include "route/router.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/envelope.h"
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
 * the global lmtp; NULL for a Maildir. */
static const char *router_lmtp(const struct config *cfg, const char *mailbox)
{
	const char *slash = strchr(mailbox, '/');
	const struct route_conf *rc = NULL;
	const char *lmtp;
	if (slash) {
		char *domain = xstrndup(mailbox, (size_t)(slash - mailbox));
		for (char *q = domain; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		rc = router_by_domain(cfg, domain);
		free(domain);
	}
	lmtp = rc && rc->lmtp ? rc->lmtp : cfg->lmtp;
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
		const char *lmtp = router_lmtp(cfg, rcpt->mailbox);
		r->kind = lmtp ? ROUTE_LMTP : ROUTE_LOCAL;
		r->target = xstrdup(lmtp ? lmtp : rcpt->mailbox);
		return 0;
	}
	if (!(at = strrchr(rcpt->address, '@')) || !at[1])
		return -1;
	domain = xstrdup(at + 1);
	for (char *q = domain; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
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

void router_policy(const struct config *cfg, const struct route *r, struct relay_policy *p)
{
	const struct route_conf *rc = NULL;
	p->tls = (int)cfg->relay_tls;
	p->ca = cfg->relay_ca;
	p->auth_unverified = cfg->relay_auth_unverified;
	if (!r->policy || strcmp(r->policy, "-") == 0)
		return;
	/* By name: the route was stored before a reload may have changed or removed it. */
	for (rc = cfg->routes; rc; rc = rc->next)
		if (strcmp(rc->name, r->policy) == 0)
			break;
	if (!rc)
		return;
	if (rc->relay_tls >= 0)
		p->tls = rc->relay_tls;
	if (rc->relay_ca)
		p->ca = rc->relay_ca;
	if (rc->relay_auth_unverified >= 0)
		p->auth_unverified = rc->relay_auth_unverified;
}
