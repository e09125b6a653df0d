/* xtext (RFC 3461 4): the one encoder and decoder of the SMTP parameters (ENVID, ORCPT,
 * AUTH), the queue files and the route text form, so that a byte written by one is
 * always read back by the others. */
#ifndef CURSUS_XTEXT_H
#define CURSUS_XTEXT_H

#include <stddef.h>

/* Decodes s[0..len): a malloc'd string, or NULL when malformed (bad "+XX", a decoded
 * NUL, or a char outside "!".."~" other than as "+XX"). */
char *xtext_decode(const char *s, size_t len);
/* Encodes s[0..len): a malloc'd string of "!".."~" only (never a space). */
char *xtext_encode(const char *s, size_t len);

#endif
