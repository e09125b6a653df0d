/* route: a route's text form, as the queue's journal keeps it, and the names derived
 * from it (the scheduler's destination, the credentials' next hop). Pure. Promises:
 * route_parse(route_format(r)) gives r back for any bytes in the strings, and
 * route_parse accepts nothing route_format could not have written. */
#include "route/route.h"

#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/xmalloc.h"
#include "util/xtext.h"

#define ROUTE_MAX_FIELDS 5

static char *route_x(const char *s)
{
	return xtext_encode(s, strlen(s));
}

char *route_format(const struct route *r)
{
	char *t, *pol, *out;
	/* An empty field would not survive the split on spaces. */
	if (!r->target || !r->target[0] || (r->policy && !r->policy[0]))
		return NULL;
	t = route_x(r->target);
	switch (r->kind) {
	case ROUTE_LOCAL:
		out = xasprintf("local %s", t);
		break;
	case ROUTE_LMTP:
		/* Without a block's policy as it always was: older queues read the same. */
		pol = r->policy ? route_x(r->policy) : NULL;
		out = pol ? xasprintf("lmtp %s %s", t, pol) : xasprintf("lmtp %s", t);
		free(pol);
		break;
	case ROUTE_MX:
	case ROUTE_RELAY:
		pol = route_x(r->policy ? r->policy : "-");
		if (r->kind == ROUTE_MX)
			out = xasprintf("mx %s %u %s", t, r->port, pol);
		else
			out = xasprintf("relay %s %u %d %s", t, r->port, r->literal ? 1 : 0, pol);
		free(pol);
		break;
	default:
		out = NULL;
	}
	free(t);
	return out;
}

/* Splits s on single spaces into at most ROUTE_MAX_FIELDS non-empty fields. */
static int route_split(const char *s, const char **f, size_t *len, size_t *n_r)
{
	size_t n = 0;
	for (;;) {
		const char *e = strchr(s, ' ');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 0 || n == ROUTE_MAX_FIELDS)
			return -1;
		f[n] = s;
		len[n++] = l;
		if (!e)
			break;
		s = e + 1;
	}
	*n_r = n;
	return 0;
}

/* The port as route_format writes it: decimal 1..65535, no sign, no leading zero. */
static int route_port(const char *s, size_t n, unsigned *port_r)
{
	unsigned v = 0;
	if (n == 0 || n > 5 || s[0] == '0')
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port_r = v;
	return 0;
}

static int route_is(const char *s, size_t n, const char *kw)
{
	return strlen(kw) == n && memcmp(s, kw, n) == 0;
}

int route_parse(const char *text, struct route *r)
{
	const char *f[ROUTE_MAX_FIELDS];
	size_t len[ROUTE_MAX_FIELDS], n, pol = 0;

	memset(r, 0, sizeof(*r));
	if (route_split(text, f, len, &n) < 0)
		goto bad;
	if (route_is(f[0], len[0], "local") && n == 2) {
		r->kind = ROUTE_LOCAL;
	} else if (route_is(f[0], len[0], "lmtp") && (n == 2 || n == 3)) {
		r->kind = ROUTE_LMTP;
		pol = n == 3 ? 2 : 0;
	} else if (route_is(f[0], len[0], "mx") && n == 4) {
		r->kind = ROUTE_MX;
		pol = 3;
	} else if (route_is(f[0], len[0], "relay") && n == 5) {
		r->kind = ROUTE_RELAY;
		if (!route_is(f[3], len[3], "0") && !route_is(f[3], len[3], "1"))
			goto bad;
		r->literal = f[3][0] == '1';
		pol = 4;
	} else {
		goto bad;
	}
	if (!(r->target = xtext_decode(f[1], len[1])) || !r->target[0])
		goto bad;
	if ((r->kind == ROUTE_MX || r->kind == ROUTE_RELAY) &&
	    route_port(f[2], len[2], &r->port) < 0)
		goto bad;
	if (pol && (!(r->policy = xtext_decode(f[pol], len[pol])) || !r->policy[0]))
		goto bad;
	return 0;
bad:
	route_clear(r);
	return -1;
}

void route_clear(struct route *r)
{
	free(r->target);
	free(r->policy);
	memset(r, 0, sizeof(*r));
}

/* The next hop alone, without the route block. */
static char *route_hop(const struct route *r)
{
	switch (r->kind) {
	case ROUTE_LOCAL:
		return xstrdup("local");
	case ROUTE_LMTP:
		return xasprintf("lmtp:%s", r->target);
	case ROUTE_MX:
		return ascii_lower_str(xasprintf("mx:%s:%u", r->target, r->port));
	case ROUTE_RELAY:
		return ascii_lower_str(xasprintf("relay:%s%s%s:%u", r->literal ? "[" : "", r->target,
					     r->literal ? "]" : "", r->port));
	}
	return NULL;
}

char *route_dest(const struct route *r)
{
	char *hop = route_hop(r), *d;
	if (!hop || !r->policy || strcmp(r->policy, "-") == 0)
		return hop;
	d = xasprintf("%s (%s)", hop, r->policy);
	free(hop);
	return d;
}

char *route_nexthop(const struct route *r)
{
	if (r->kind != ROUTE_RELAY)
		return NULL;
	return ascii_lower_str(xasprintf("%s%s%s:%u", r->literal ? "[" : "", r->target,
				     r->literal ? "]" : "", r->port));
}
