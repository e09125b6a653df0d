/* xtext (RFC 3461 section 4): how the queue's files and journals carry any string as
 * one space-free printable word. A lone "-" is always written "+2D", so that "-" can
 * stand for "none" in the files that use it. */
#ifndef CURSUS_XTEXT_H
#define CURSUS_XTEXT_H

#include <stddef.h>

/* Writes the xtext of s to dst (room for xtext_len(s) + 1 bytes) and returns its length. */
size_t xtext_encode(char *dst, const char *s);
size_t xtext_len(const char *s);
/* Decodes s[0..n) into a new string; NULL when malformed or when it would hold a NUL
 * byte (which a C string cannot carry: never truncate silently). */
char *xtext_decode(const char *s, size_t n);

#endif
