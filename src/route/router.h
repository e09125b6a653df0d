/* router: maps each recipient to a route (route/route.h), from the configuration alone
 * (no DNS: that is the transport's). Pure functions; safe on any thread. */
#ifndef CURSUS_ROUTER_H
#define CURSUS_ROUTER_H

#include <stddef.h>

#include "config/config.h"
#include "route/route.h"

struct envelope;

/* Chooses the route of env->rcpts[i]: when it has a mailbox, LMTP if its domain's
 * route block (or, without one there, the global option) names an lmtp server, else
 * local (Maildir); otherwise the first
 * sender_route matching env->mail_from (exact address, then "@domain"), else the route
 * block of the recipient's domain (exact, then the nearest ".parent" block), else the
 * global relay_host, else MX delivery to the recipient's domain on relay_port.
 * Returns 0 (r filled, owned strings), or -1 when the address has no domain. */
int router_route(const struct config *cfg, const struct envelope *env, size_t i,
		 struct route *r);

/* What applies to a route at delivery time (struct relay_policy, route.h): its
 * block's settings where that block still exists and sets them, else the global ones.
 * Strings point into cfg. */
void router_policy(const struct config *cfg, const struct route *r, struct relay_policy *p);

#endif
