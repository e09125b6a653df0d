/* xtext: RFC 3461 section 4, shared by every text format that must carry any byte in
 * a space-separated field. Promises: encode's output always decodes to its input. */
#include "util/xtext.h"

#include <stdlib.h>

#include "util/xmalloc.h"

static int xtext_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3461 4: xtext = *( xchar / hexchar ); xchar = any ASCII CHAR between "!"
 * (33) and "~" (126) inclusive, except for "+" and "="; hexchar = ASCII "+"
 * immediately followed by two upper case hexadecimal digits. */
char *xtext_decode(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			int hi, lo;
			if (len - i < 3 || (hi = xtext_hexval(s[i + 1])) < 0 ||
			    (lo = xtext_hexval(s[i + 2])) < 0 || (hi | lo) == 0)
				goto bad;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c >= 33 && c <= 126 && c != '=') {
			out[o++] = (char)c;
		} else {
			goto bad;
		}
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

char *xtext_encode(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(len * 3 + 1);
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 33 && c <= 126 && c != '+' && c != '=') {
			out[o++] = (char)c;
		} else {
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
	return out;
}
