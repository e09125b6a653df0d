/* dsn_text: buffer, dates, printable text, folding and address forms for DSNs.
 * Promises: everything it writes ends lines in CRLF, and no line it writes is longer
 * than DSN_LINE_MAX octets, whatever the input. */
#include "dsn/dsn_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

void dsn_date(char out[40], time_t t)
{
	/* RFC 5322 3.3 names, not the locale's: strftime's %a and %b would follow LC_TIME. */
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	int off, aoff;

	if (!localtime_r(&t, &tm))
		gmtime_r(&t, &tm);
	off = (int)(tm.tm_gmtoff / 60);
	aoff = (off < 0 ? -off : off) % (100 * 60); /* real zones are within a day */
	snprintf(out, 40, "%s, %d %s %04d %02d:%02d:%02d %c%02d%02d", days[tm.tm_wday % 7],
		 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, off < 0 ? '-' : '+', aoff / 60, aoff % 60);
}

char *dsn_printable(const char *s)
{
	size_t o = 0;
	char *out;

	if (s == NULL)
		return xstrdup("");
	out = xmalloc(strlen(s) + 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\r' || c == '\n') {
			if (o == 0 || out[o - 1] != ' ')
				out[o++] = ' ';
			while (s[1] == '\r' || s[1] == '\n')
				s++;
		} else if (c == '\t') {
			out[o++] = ' ';
		} else {
			out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		}
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return out;
}

/* A word longer than this is cut: with the fold's space and a little margin it
 * still fits DSN_LINE_MAX. */
#define DSN_WORD_MAX 900

/* The engine of dsn_field and dsn_wrap: words of value (split at spaces) laid out
 * after a first line of first_len octets; when a word does not fit, sep starts the
 * next line. Folding (fold != 0) keeps the original spaces after the CRLF so that
 * unfolding gives the value back; wrapping drops them. */
static void dsn_layout(struct strbuf *b, size_t first_len, const char *sep, int fold,
		       const char *value)
{
	size_t col = first_len, seplen = strlen(sep);
	const char *p = value;
	int empty = 1; /* no word on this line yet */

	while (*p == ' ')
		p++;
	while (*p) {
		const char *sp = p, *w;
		size_t nsp, wlen;
		while (*p == ' ')
			p++;
		nsp = (size_t)(p - sp);
		if (nsp > 64)
			nsp = 1; /* a wall of spaces would carry the fold past the line limit */
		w = p;
		while (*p && *p != ' ')
			p++;
		wlen = (size_t)(p - w);
		if (wlen == 0)
			break; /* trailing spaces: a line of only spaces is no use to anyone */
		if (!empty && col + nsp + (wlen < DSN_WORD_MAX ? wlen : DSN_WORD_MAX) > DSN_FOLD_WIDTH) {
			strbuf_put(b, "\r\n", 2);
			strbuf_put(b, sep, seplen);
			col = seplen;
			if (fold) {
				strbuf_put(b, sp, nsp);
				col += nsp;
			}
		} else {
			strbuf_put(b, sp, nsp);
			col += nsp;
		}
		while (wlen > DSN_WORD_MAX) {
			strbuf_put(b, w, DSN_WORD_MAX);
			strbuf_put(b, "\r\n", 2);
			strbuf_put(b, sep, seplen);
			if (fold)
				strbuf_put(b, " ", 1);
			col = seplen + (fold ? 1 : 0);
			w += DSN_WORD_MAX;
			wlen -= DSN_WORD_MAX;
		}
		strbuf_put(b, w, wlen);
		col += wlen;
		empty = 0;
	}
	strbuf_put(b, "\r\n", 2);
}

void dsn_field(struct strbuf *b, const char *name, const char *value)
{
	strbuf_printf(b, "%s: ", name);
	/* RFC 3464 2.1.1: DSN fields follow RFC 822 header rules, folding included. */
	dsn_layout(b, strlen(name) + 2, "", 1, value);
}

void dsn_wrap(struct strbuf *b, const char *indent, const char *value)
{
	strbuf_puts(b, indent);
	dsn_layout(b, strlen(indent), indent, 0, value);
}

/* Decodes one UTF-8 sequence at s; *cp_r is U+FFFD for anything malformed (overlong,
 * surrogate, out of range, cut short), which then consumes one byte. */
static size_t dsn_utf8(const unsigned char *s, unsigned long *cp_r)
{
	unsigned long cp, min;
	size_t n;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		goto bad;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		goto bad;
	*cp_r = cp;
	return n;
bad:
	*cp_r = 0xfffd;
	return 1;
}

char *dsn_address_field(const char *addr)
{
	struct strbuf b = { 0 };
	const unsigned char *s = (const unsigned char *)addr;
	int ascii = 1;

	for (const unsigned char *q = s; *q; q++)
		if (*q >= 0x80)
			ascii = 0;
	if (ascii) {
		char *clean = dsn_printable(addr);
		strbuf_printf(&b, "rfc822; %s", clean);
		free(clean);
		return b.p;
	}
	/* RFC 6533 3: utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar), QCHAR being
	 * printable ASCII but "+", "=" and "\", the rest as \x{HEXPOINT}: upper-case hex
	 * without leading zeros. This is the form for a 7-bit message/delivery-status. */
	strbuf_puts(&b, "utf-8; ");
	while (*s) {
		unsigned long cp;
		s += dsn_utf8(s, &cp);
		if (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' && cp != '\\') {
			char c = (char)cp;
			strbuf_put(&b, &c, 1);
		} else {
			strbuf_printf(&b, "\\x{%lX}", cp);
		}
	}
	return b.p;
}
