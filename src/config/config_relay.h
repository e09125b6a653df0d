/* config_relay: the syntax of the outbound delivery values (next hops, the resolver's
 * address, what a route block matches). Each returns NULL when the value is good, else
 * a static reason that config_set.c prefixes with the option and the value. Internal to
 * src/config. */
#ifndef CURSUS_CONFIG_RELAY_H
#define CURSUS_CONFIG_RELAY_H

#include "config/config.h"

/* "host", "host:port", "[host]" or "[host]:port" into *nh (owned strings, lower case,
 * port 0 when absent). An IP address is literal even without brackets: an MX lookup of
 * an address can only fail. */
const char *config_relay_nexthop(const char *s, struct nexthop_conf *nh);
void config_relay_nexthop_clear(struct nexthop_conf *nh);
/* "ADDRESS[@PORT]": a numeric IPv4 or IPv6 address and an optional port 1..65535. */
const char *config_relay_resolver(const char *s);
/* An LMTP server: "unix:/absolute/path", "[address]:port", "ipv4:port", "host:port"
 * (the name looked up at delivery), or "maildir". *norm_r (malloc'd): "unix:/path",
 * "[address]:port", "host:port" (lower case) or "maildir". */
const char *config_relay_lmtp(const char *s, char **norm_r);
/* A route's match into *match_r (malloc'd, lower case): "domain" or ".domain" for a
 * route block, "local@domain" or "@domain" for a sender_route block. */
const char *config_relay_match(const char *s, int by_sender, char **match_r);

#endif
