/* netlist: a list of IP addresses and CIDR prefixes, and the test of an address
 * against it. IPv4-mapped IPv6 addresses match IPv4 entries. */
#ifndef CURSUS_NETLIST_H
#define CURSUS_NETLIST_H

#include <stddef.h>
#include <sys/socket.h>

struct netlist_entry {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

struct netlist {
	struct netlist_entry *v;
	size_t n;
};

/* Adds "ADDR" or "ADDR/PREFIX"; -1 (nothing added) when it is neither. */
int netlist_add(struct netlist *l, const char *s);
int netlist_match(const struct netlist *l, const struct sockaddr *sa);
void netlist_clear(struct netlist *l);

#endif
