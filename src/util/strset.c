/* strset: see strset.h. FNV-1a hash, table kept at most half full. */
#include "util/strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

static uint64_t strset_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The slot holding s, or the empty slot where it would go. */
static size_t strset_find(char *const *slots, size_t cap, const char *s)
{
	size_t i = (size_t)strset_hash(s) & (cap - 1);
	while (slots[i] && strcmp(slots[i], s) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

static void strset_grow(struct strset *set)
{
	size_t cap = set->cap ? 2 * set->cap : 16;
	char **slots = xcalloc(cap, sizeof(*slots));
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i])
			slots[strset_find(slots, cap, set->slots[i])] = set->slots[i];
	free(set->slots);
	set->slots = slots;
	set->cap = cap;
}

int strset_has(const struct strset *set, const char *s)
{
	return set->cap && set->slots[strset_find(set->slots, set->cap, s)] != NULL;
}

int strset_add(struct strset *set, const char *s)
{
	size_t i;
	if (2 * (set->n + 1) > set->cap)
		strset_grow(set);
	i = strset_find(set->slots, set->cap, s);
	if (set->slots[i])
		return 0;
	set->slots[i] = xstrdup(s);
	set->n++;
	return 1;
}

void strset_clear(struct strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}
