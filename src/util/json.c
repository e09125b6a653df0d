/* json: JSON string escaping. Promises a valid JSON string for any input bytes. */
#include "util/json.h"

#include <string.h>

/* The length of the valid UTF-8 sequence at s (n octets left), or 0. */
static size_t json_utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (s[0] >= 0xf5 || len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

void json_put_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, u;

	if (!s) {
		fputs("null", f);
		return;
	}
	n = strlen(s);
	putc('"', f);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(f, "\\u%04x", p[i]);
		else if (p[i] < 0x80)
			putc(p[i], f);
		else if ((u = json_utf8_len(p + i, n - i)) > 0) {
			fwrite(p + i, 1, u, f);
			i += u - 1;
		} else
			fputs("\\ufffd", f);
	}
	putc('"', f);
}
