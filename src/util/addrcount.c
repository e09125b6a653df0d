/* addrcount: a chained hash table keyed by the client's bytes (IPv4-mapped IPv6 counts
 * as IPv4, IPv6 by its prefix). Nodes are freed when their count drops to zero, so the table holds only
 * addresses with a live session. */
#include <arpa/inet.h>
#include <stdio.h>
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
	size_t bytes;           /* message data in flight */
	struct addrcount_node *next;
};

void addrcount_client_text(const struct sockaddr *sa, unsigned prefix6,
			   char out[ADDR_CLIENT_TEXT_MAX])
{
	unsigned char key[ADDR_CLIENT_KEY_MAX], a[16] = { 0 };
	size_t n = addrcount_client_key(sa, prefix6, key);
	char buf[INET6_ADDRSTRLEN];

	out[0] = '\0';
	if (key[0] == 4 && inet_ntop(AF_INET, key + 1, buf, sizeof(buf))) {
		snprintf(out, ADDR_CLIENT_TEXT_MAX, "%s", buf);
	} else if (key[0] == 6) {
		memcpy(a, key + 1, n - 1);
		if (inet_ntop(AF_INET6, a, buf, sizeof(buf)))
			snprintf(out, ADDR_CLIENT_TEXT_MAX, "%s/%u", buf,
				 prefix6 >= 1 && prefix6 <= 128 ? prefix6 : 128);
	}
}

struct addrcount {
	struct addrcount_node *b[ADDRCOUNT_BUCKETS];
	uint32_t seed;
	unsigned prefix6;
};

size_t addrcount_client_key(const struct sockaddr *sa, unsigned prefix6,
		       unsigned char key[ADDR_CLIENT_KEY_MAX])
{
	if (sa && sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return 5;
	}
	if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		size_t n;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			key[0] = 4;
			memcpy(key + 1, in6->s6_addr + 12, 4);
			return 5;
		}
		if (prefix6 < 1 || prefix6 > 128)
			prefix6 = 128;
		n = (prefix6 + 7) / 8;
		key[0] = 6;
		memcpy(key + 1, in6->s6_addr, n);
		if (prefix6 % 8)
			key[n] &= (unsigned char)(0xff << (8 - prefix6 % 8));
		return 1 + n;
	}
	key[0] = 0;
	return 1;
}

static void addrcount_key(const struct addrcount *ac, const struct sockaddr *sa, unsigned char key[17])
{
	memset(key, 0, 17);
	(void)addrcount_client_key(sa, ac->prefix6, key);
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

struct addrcount *addrcount_create(unsigned prefix6)
{
	struct addrcount *ac = xcalloc(1, sizeof(*ac));
	ac->prefix6 = prefix6;
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
	addrcount_key(ac, sa, key);
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
	addrcount_key(ac, sa, key);
	pp = addrcount_slot(ac, key);
	if (!(n = *pp))
		return;
	if (--n->count == 0) {
		*pp = n->next;
		free(n);
	}
}

size_t *addrcount_bytes(struct addrcount *ac, const struct sockaddr *sa)
{
	unsigned char key[17];
	struct addrcount_node **pp;
	addrcount_key(ac, sa, key);
	pp = addrcount_slot(ac, key);
	return *pp ? &(*pp)->bytes : NULL;
}
