/* netlist: see netlist.h. Prefixes are compared as bytes. */
#include "util/netlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

static int netlist_parse(const char *s, struct netlist_entry *e)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long prefix;
	size_t len = strlen(s);

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len + 1);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(e, 0, sizeof(*e));
	if (inet_pton(AF_INET, buf, e->addr) == 1)
		e->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, e->addr) == 1)
		e->family = AF_INET6;
	else
		return -1;
	e->prefix = e->family == AF_INET ? 32 : 128;
	if (slash) {
		prefix = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end || prefix > e->prefix)
			return -1;
		e->prefix = (unsigned)prefix;
	}
	return 0;
}

int netlist_add(struct netlist *l, const char *s)
{
	struct netlist_entry e;
	if (netlist_parse(s, &e) < 0)
		return -1;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = e;
	return 0;
}

static int netlist_prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int netlist_match(const struct netlist *l, const struct sockaddr *sa)
{
	const unsigned char *a;
	int family = sa->sa_family;
	if (!l || l->n == 0)
		return 0;
	if (family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		a = in6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			family = AF_INET;
			a += 12;
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].family == family && netlist_prefix_eq(a, l->v[i].addr, l->v[i].prefix))
			return 1;
	return 0;
}

void netlist_clear(struct netlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
