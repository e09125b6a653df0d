/* fuzz: what every libFuzzer target in tests/fuzz/ shares. An invariant that does not
 * hold aborts, so libFuzzer saves the input and prints the stack; the condition and
 * the line name which promise of the module was broken. */
#ifndef CURSUS_FUZZ_H
#define CURSUS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                         \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, \
				__LINE__, #cond);                                \
			abort();                                                 \
		}                                                                \
	} while (0)

/* A malloc'd copy of exactly n bytes (not NUL-terminated), so that AddressSanitizer
 * catches a parser reading even one byte past what it was given. */
static inline char *fuzz_copy(const uint8_t *p, size_t n)
{
	char *c = malloc(n ? n : 1);
	FUZZ_CHECK(c != NULL);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* The same with a terminating NUL, for APIs that take C strings. */
static inline char *fuzz_strndup(const uint8_t *p, size_t n)
{
	char *c = malloc(n + 1);
	FUZZ_CHECK(c != NULL);
	if (n)
		memcpy(c, p, n);
	c[n] = '\0';
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
