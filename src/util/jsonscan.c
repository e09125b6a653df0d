/* jsonscan: see jsonscan.h. One recursive-descent pass over the document, which both
 * validates it and notes where the wanted top-level member's value lies. */
#include "util/jsonscan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct js {
	const char *p, *end;
	const char *key;            /* the member looked for (NULL: validate only) */
	const char *val, *val_end;  /* its value's span, when found at the top level */
};

static void js_ws(struct js *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int js_hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/* A string at s->p (the opening quote): skipped. */
static int js_string(struct js *s)
{
	unsigned v;
	if (s->p >= s->end || *s->p != '"')
		return -1;
	for (s->p++; s->p < s->end; s->p++) {
		unsigned char c = (unsigned char)*s->p;
		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c != '\\')
			continue;
		if (++s->p >= s->end)
			return -1;
		if (*s->p == 'u') {
			if (s->end - s->p < 5 || js_hex4(s->p + 1, &v) < 0)
				return -1;
			s->p += 4;
		} else if (!strchr("\"\\/bfnrt", *s->p)) {
			return -1;
		}
	}
	return -1;
}

static int js_number(struct js *s)
{
	const char *start = s->p;
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p >= s->end || *s->p < '0' || *s->p > '9')
		return -1;
	if (*s->p == '0')
		s->p++;
	else
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	if (s->p < s->end && *s->p == '.') {
		if (++s->p >= s->end || *s->p < '0' || *s->p > '9')
			return -1;
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return -1;
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	return s->p > start ? 0 : -1;
}

static int js_value(struct js *s, int depth);

static int js_word(struct js *s, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

/* An object or array at s->p; members of the top-level object are compared with key. */
static int js_container(struct js *s, int depth)
{
	char close = *s->p == '{' ? '}' : ']';
	int object = close == '}';
	if (depth >= JSONSCAN_DEPTH_MAX)
		return -1;
	s->p++;
	js_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return 0;
	}
	for (;;) {
		const char *name = NULL, *name_end = NULL, *v;
		js_ws(s);
		if (object) {
			name = s->p + 1;
			if (js_string(s) < 0)
				return -1;
			name_end = s->p - 1;
			js_ws(s);
			if (s->p >= s->end || *s->p++ != ':')
				return -1;
			js_ws(s);
		}
		v = s->p;
		if (js_value(s, depth + 1) < 0)
			return -1;
		/* The name compared raw: the keys we look for need no escapes. The first
		 * occurrence wins. */
		if (object && depth == 0 && s->key && !s->val &&
		    (size_t)(name_end - name) == strlen(s->key) &&
		    memcmp(name, s->key, (size_t)(name_end - name)) == 0) {
			s->val = v;
			s->val_end = s->p;
		}
		js_ws(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == close) {
			s->p++;
			return 0;
		}
		if (*s->p++ != ',')
			return -1;
	}
}

static int js_value(struct js *s, int depth)
{
	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '{':
	case '[':
		return js_container(s, depth);
	case '"':
		return js_string(s);
	case 't':
		return js_word(s, "true");
	case 'f':
		return js_word(s, "false");
	case 'n':
		return js_word(s, "null");
	default:
		return js_number(s);
	}
}

static int js_scan(struct js *s, const char *doc, size_t len, const char *key)
{
	memset(s, 0, sizeof(*s));
	s->p = doc;
	s->end = doc + len;
	s->key = key;
	js_ws(s);
	if (s->p >= s->end || *s->p != '{' || js_container(s, 0) < 0)
		return -1;
	js_ws(s);
	return s->p == s->end ? 0 : -1;
}

int jsonscan_valid(const char *doc, size_t len)
{
	struct js s;
	return js_scan(&s, doc, len, NULL) == 0;
}

/* UTF-8 of code point v into o; the bytes written. */
static size_t js_utf8(unsigned v, char *o)
{
	if (v < 0x80) {
		o[0] = (char)v;
		return 1;
	}
	if (v < 0x800) {
		o[0] = (char)(0xc0 | (v >> 6));
		o[1] = (char)(0x80 | (v & 0x3f));
		return 2;
	}
	if (v < 0x10000) {
		o[0] = (char)(0xe0 | (v >> 12));
		o[1] = (char)(0x80 | ((v >> 6) & 0x3f));
		o[2] = (char)(0x80 | (v & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (v >> 18));
	o[1] = (char)(0x80 | ((v >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((v >> 6) & 0x3f));
	o[3] = (char)(0x80 | (v & 0x3f));
	return 4;
}

/* The validated string between p (after the quote) and end (the closing quote). */
static char *js_unescape(const char *p, const char *end)
{
	char *out = xmalloc((size_t)(end - p) + 1), *o = out;
	unsigned v, lo;
	while (p < end) {
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'b': *o++ = '\b'; p++; break;
		case 'f': *o++ = '\f'; p++; break;
		case 'n': *o++ = '\n'; p++; break;
		case 'r': *o++ = '\r'; p++; break;
		case 't': *o++ = '\t'; p++; break;
		case 'u':
			js_hex4(p + 1, &v);
			p += 5;
			if (v >= 0xd800 && v < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
			    js_hex4(p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			} else if (v >= 0xd800 && v < 0xe000) {
				v = 0xfffd; /* a lone surrogate */
			}
			if (v == 0) {
				free(out);
				return NULL;
			}
			/* Six escaped octets never give more than four. */
			o += js_utf8(v, o);
			break;
		default: *o++ = *p++; break;
		}
	}
	*o = '\0';
	return out;
}

int jsonscan_string(const char *doc, size_t len, const char *key, char **out_r)
{
	struct js s;
	*out_r = NULL;
	if (js_scan(&s, doc, len, key) < 0)
		return -1;
	if (!s.val || *s.val != '"')
		return 0;
	*out_r = js_unescape(s.val + 1, s.val_end - 1);
	return *out_r ? 1 : 0;
}

int jsonscan_uint(const char *doc, size_t len, const char *key, unsigned long long max,
		  unsigned long long *out_r)
{
	struct js s;
	const char *p, *end;
	unsigned long long v = 0;
	if (js_scan(&s, doc, len, key) < 0)
		return -1;
	if (!s.val)
		return 0;
	p = s.val;
	end = s.val_end;
	if (*p == '"') {
		p++;
		end--;
	}
	if (p >= end || *p < '0' || *p > '9')
		return 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++)
		v = v > max / 10 ? max : v * 10 + (unsigned long long)(*p - '0');
	/* A string must be digits only; a number may go on with a fraction. */
	if (*s.val == '"' && p != end)
		return 0;
	*out_r = v > max ? max : v;
	return 1;
}
