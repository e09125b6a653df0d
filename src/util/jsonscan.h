/* jsonscan: reads members of a small JSON object from the network (an OAuth token
 * endpoint's answer, an OAUTHBEARER error challenge). The whole document is checked
 * against RFC 8259's grammar, bounded in depth, before any member is believed; only
 * the top level's members are looked up, by name. No allocation but the answer. */
#ifndef CURSUS_JSONSCAN_H
#define CURSUS_JSONSCAN_H

#include <stddef.h>

/* Nesting deeper than this is refused (the documents we read are flat). */
#define JSONSCAN_DEPTH_MAX 16

/* Whether doc[0..len) is one JSON object (whitespace around allowed). */
int jsonscan_valid(const char *doc, size_t len);
/* The top-level member key as a string, unescaped, malloc'd into *out_r (a \u0000 or
 * an invalid escape makes it absent). 1 found, 0 absent or not a string, -1 the
 * document is not a JSON object. */
int jsonscan_string(const char *doc, size_t len, const char *key, char **out_r);
/* The member as a non-negative integer: a number (its integer part) or a string of
 * digits (as some token endpoints send expires_in). 1, 0 absent or not one, -1 bad
 * document. Values past max are max. */
int jsonscan_uint(const char *doc, size_t len, const char *key, unsigned long long max,
		  unsigned long long *out_r);

#endif
