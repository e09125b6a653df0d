/* addrcount: how many sessions, and how many octets of message data, each client holds,
 * to cap one client's share of the server. A client is an IPv4 address or an IPv6
 * prefix (one subscriber usually holds a whole /64). Loop thread only. Memory is one
 * small node per connected client. */
#ifndef CURSUS_ADDRCOUNT_H
#define CURSUS_ADDRCOUNT_H

#include <stddef.h>
#include <sys/socket.h>

/* A tag byte (4, 6, or 0 for no IP address), then the bytes that identify the
 * client: 4 for IPv4 (also when mapped in IPv6), the first prefix6 bits of IPv6
 * (the last byte masked). Returns the key's length. Shared with the AUTH limiter. */
#define ADDR_CLIENT_KEY_MAX 17
size_t addrcount_client_key(const struct sockaddr *sa, unsigned prefix6,
		       unsigned char key[ADDR_CLIENT_KEY_MAX]);

/* The same client as text, for a store that counts across nodes (a PostgreSQL
 * user store's shared AUTH budgets): "192.0.2.1", "2001:db8:1:2::/64", or "" for no
 * IP address. */
#define ADDR_CLIENT_TEXT_MAX 56
void addrcount_client_text(const struct sockaddr *sa, unsigned prefix6,
			   char out[ADDR_CLIENT_TEXT_MAX]);

struct addrcount;

/* prefix6: IPv6 clients are counted per this prefix length (1..128). */
struct addrcount *addrcount_create(unsigned prefix6);
void addrcount_destroy(struct addrcount **ac);
/* Counts one more session from sa and returns how many it has now. */
unsigned addrcount_inc(struct addrcount *ac, const struct sockaddr *sa);
void addrcount_dec(struct addrcount *ac, const struct sockaddr *sa);
/* The octets charged to sa's client; valid while it holds a session (counted by
 * addrcount_inc), NULL otherwise. */
size_t *addrcount_bytes(struct addrcount *ac, const struct sockaddr *sa);

#endif
