/* strbuf: a growable byte string, always NUL-terminated after its len octets (so p
 * may be used as a C string when the bytes hold no NUL). A zeroed struct is empty. */
#ifndef CURSUS_STRBUF_H
#define CURSUS_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *p;               /* NULL until the first put */
	size_t len, cap;
};

void strbuf_put(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the bytes and empties b. */
void strbuf_free(struct strbuf *b);

#endif
