/* route: where one recipient's mail goes. A route is data: chosen once by the router
 * (route/router.h), stored in the queue's journal in text form, and read back by the
 * scheduler, which queues deliveries per destination (the next hop). Policy (TLS,
 * certificates, credentials) is not part of it: that is looked up at delivery time,
 * so fixing the configuration helps mail already queued. */
#ifndef CURSUS_ROUTE_H
#define CURSUS_ROUTE_H

enum route_kind {
	ROUTE_LOCAL,    /* a local Maildir: target is the mailbox "domain/local-part" */
	ROUTE_MX,       /* MX delivery: target is the recipient's domain */
	ROUTE_RELAY,    /* a smart host: target is its name or address */
	ROUTE_LMTP,     /* a local mailbox delivered by LMTP (RFC 2033): target is the
			 * server, "unix:/path", "[address]:port" or "host:port"; the
			 * mailbox is the recipient's, from the envelope */
};

struct route {
	enum route_kind kind;
	char *target;
	unsigned port;     /* MX, RELAY */
	int literal;       /* RELAY: written "[host]": no MX lookup of the host */
	char *policy;      /* MX, RELAY: the route block that chose it ("route example.org",
			    * "sender_route @example.test"), or "-" for the global options;
			    * LMTP: the domain's block when it sets lmtp options, else NULL */
};

/* The TLS policy of a route, decided at delivery time (router_policy()). */
struct relay_policy {
	int tls;                   /* enum relay_tls (config/config.h) */
	const char *ca;            /* CA file; NULL: the system's default store */
	int auth_unverified;       /* credentials may go over TLS without a verified certificate */
};

/* Text form, one line without spaces in fields: "local <mailbox>", "lmtp <server>"
 * or "lmtp <server> <policy>",
 * "mx <domain> <port> <policy>", "relay <host> <port> <literal 0|1> <policy>", fields
 * xtext-encoded (RFC 3461). Returns a malloc'd string. */
char *route_format(const struct route *r);
/* Parses route_format's output into r (owned strings). Returns 0, or -1 (r zeroed). */
int route_parse(const char *text, struct route *r);
void route_clear(struct route *r);
/* The destination a scheduler queue stands for: "local", "mx:<domain>:<port>",
 * "relay:[host]:<port>" or "relay:host:<port>" (malloc'd; lower case), or
 * "lmtp:<server>" (as written: a socket's path keeps its case); followed by
 * " (<policy>)" when a route block chose it. Recipients of one message with the same
 * destination go in one transaction. A route block is a destination of its own, for
 * the scheduler (concurrency, dead-host backoff) and for reused connections alike: a
 * block whose TLS policy fails must neither suspend another block's mail to the same
 * next hop nor share a connection with it. */
char *route_dest(const struct route *r);
/* The name credentials are stored under for a relay route (`cursus relay-auth add
 * NEXTHOP`): "[host]:port" when literal, else "host:port"; lower case, malloc'd. */
char *route_nexthop(const struct route *r);

#endif
