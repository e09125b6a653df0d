/* xmalloc: allocation helpers that never return NULL (they abort on exhaustion). */
#ifndef CURSUS_XMALLOC_H
#define CURSUS_XMALLOC_H
#include <stdarg.h>
#include <stddef.h>
#include "util/log.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
char *xvasprintf(const char *fmt, va_list ap) PRINTF_LIKE(1, 0);
/* Frees a buffer that held a secret after wiping it. */
void xfree_secret(void *p, size_t n);

#endif
