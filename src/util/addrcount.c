/* addrcount: a chained hash table keyed by the address bytes (IPv4-mapped IPv6 counts
 * as IPv4). Nodes are freed when their count drops to zero, so the table holds only
 * addresses with a live session. */
#include "util/addrcount.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define ADDRCOUNT_BUCKETS 4096

struct addrcount_node {
	unsigned char key[17];  /* family byte, then 4 or 16 address bytes */
	unsigned count;
	struct addrcount_node *next;
};

struct addrcount {
	struct addrcount_node *b[ADDRCOUNT_BUCKETS];
	uint32_t seed;
};

static void addrcount_key(const struct sockaddr *sa, unsigned char key[17])
{
	memset(key, 0, 17);
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			key[0] = 4;
			memcpy(key + 1, in6->s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, in6->s6_addr, 16);
		}
	} else if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

static struct addrcount_node **addrcount_slot(struct addrcount *ac, const unsigned char key[17])
{
	/* FNV-1a with a per-process seed: clients choose their addresses. */
	uint32_t h = 2166136261u ^ ac->seed;
	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	struct addrcount_node **pp = &ac->b[h % ADDRCOUNT_BUCKETS];
	while (*pp && memcmp((*pp)->key, key, 17) != 0)
		pp = &(*pp)->next;
	return pp;
}

struct addrcount *addrcount_create(void)
{
	struct addrcount *ac = xcalloc(1, sizeof(*ac));
	ac->seed = (uint32_t)random() ^ (uint32_t)(uintptr_t)ac;
	return ac;
}

void addrcount_destroy(struct addrcount **acp)
{
	struct addrcount *ac = *acp;
	if (!ac)
		return;
	for (size_t i = 0; i < ADDRCOUNT_BUCKETS; i++)
		while (ac->b[i]) {
			struct addrcount_node *n = ac->b[i];
			ac->b[i] = n->next;
			free(n);
		}
	free(ac);
	*acp = NULL;
}

unsigned addrcount_inc(struct addrcount *ac, const struct sockaddr *sa)
{
	unsigned char key[17];
	struct addrcount_node **pp;
	addrcount_key(sa, key);
	pp = addrcount_slot(ac, key);
	if (!*pp) {
		*pp = xcalloc(1, sizeof(**pp));
		memcpy((*pp)->key, key, 17);
	}
	return ++(*pp)->count;
}

void addrcount_dec(struct addrcount *ac, const struct sockaddr *sa)
{
	unsigned char key[17];
	struct addrcount_node **pp, *n;
	addrcount_key(sa, key);
	pp = addrcount_slot(ac, key);
	if (!(n = *pp))
		return;
	if (--n->count == 0) {
		*pp = n->next;
		free(n);
	}
}
