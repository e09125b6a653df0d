/* xtext (RFC 3461 section 4): ESMTP parameters (ENVID, ORCPT, AUTH) and the queue's
 * files and journals carry any string as one space-free printable word with it. */
#ifndef CURSUS_XTEXT_H
#define CURSUS_XTEXT_H

#include <stddef.h>

/* A malloc'd xtext of s[0..len). */
char *xtext_encode(const char *s, size_t len);
/* A malloc'd decoding of s[0..len), or NULL when malformed (hexchar is "+" and two
 * upper-case hex digits) or when it would hold a NUL byte, which a C string cannot
 * carry: never truncate silently. */
char *xtext_decode(const char *s, size_t len);

#endif
