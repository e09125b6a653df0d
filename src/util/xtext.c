/* xtext: RFC 3461 4: xtext = *( xchar / hexchar ); xchar = any ASCII CHAR between "!"
 * (33) and "~" (126) inclusive, except for "+" and "="; hexchar = "+" 2HEXDIG. */
#include "util/xtext.h"

#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

static int xtext_plain(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

size_t xtext_len(const char *s)
{
	size_t n = 0;
	if (strcmp(s, "-") == 0)
		return 3;
	for (; *s; s++)
		n += xtext_plain((unsigned char)*s) ? 1 : 3;
	return n;
}

size_t xtext_encode(char *dst, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = dst;
	if (strcmp(s, "-") == 0) {
		memcpy(dst, "+2D", 4);
		return 3;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (xtext_plain(c)) {
			*o++ = (char)c;
		} else {
			*o++ = '+';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return (size_t)(o - dst);
}

static int xtext_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *xtext_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			int hi, lo;
			if (i + 2 >= n)
				goto bad;
			hi = xtext_hexval(s[i + 1]);
			lo = xtext_hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else if (c >= 33 && c <= 126 && c != '=') {
			*o++ = (char)c;
		} else {
			goto bad;
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}
