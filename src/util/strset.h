/* strset: a set of strings with expected constant-time insertion, for de-duplicating
 * lists that grow with input (alias expansion): a linear scan per item would be
 * quadratic. The set owns copies of its strings. Not thread-safe. */
#ifndef CURSUS_STRSET_H
#define CURSUS_STRSET_H

#include <stddef.h>

struct strset {
	char **slots;     /* open addressing, linear probing; NULL is empty */
	size_t cap;       /* a power of two, or 0 */
	size_t n;
};

/* Adds a copy of s: 1 when it was new, 0 when already present. */
int strset_add(struct strset *set, const char *s);
int strset_has(const struct strset *set, const char *s);
/* Frees every string and the table; the set is empty and reusable after. */
void strset_clear(struct strset *set);

#endif
