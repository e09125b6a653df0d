/* config_lex: the lexical layer of the configuration file (tokens, numbers with
 * size suffixes, names and domains), kept apart from what the options mean. */
#include "config/config_lex.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

/* Edit distance, for "did you mean": a misspelt limit otherwise costs a search. */
size_t config_lex_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64], i, j;
	if (lb >= sizeof(row) / sizeof(row[0]) || la >= 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* Decimal with an optional binary suffix K, M or G (sizes only). */
int config_lex_number(const char *s, int suffixes, unsigned long long *out)
{
	unsigned long long v = 0, mult = 1;
	const char *q = s;
	if (*q < '0' || *q > '9')
		return -1;
	for (; *q >= '0' && *q <= '9'; q++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned long long)(*q - '0');
	}
	if (*q && suffixes && q[1] == '\0') {
		switch (*q) {
		case 'k': case 'K': mult = KIB; break;
		case 'm': case 'M': mult = MIB; break;
		case 'g': case 'G': mult = GIB; break;
		default: return -1;
		}
		q++;
	}
	if (*q || (v && mult > ULLONG_MAX / v))
		return -1;
	*out = v * mult;
	return 0;
}

int config_lex_seconds(const char *s, unsigned long long *ms)
{
	unsigned long long whole, frac = 0;
	const char *dot = strchr(s, '.');
	char intpart[32];
	size_t n = dot ? (size_t)(dot - s) : strlen(s);
	if (n == 0 || n >= sizeof(intpart))
		return -1;
	memcpy(intpart, s, n);
	intpart[n] = '\0';
	if (config_lex_number(intpart, 0, &whole) < 0 || whole > ULLONG_MAX / 1000 - 1000)
		return -1;
	if (dot) {
		/* Milliseconds are the finest grain the event loop is asked for. */
		const char *q = dot + 1;
		unsigned scale = 100;
		if (*q == '\0' || strlen(q) > 3)
			return -1;
		for (; *q; q++, scale /= 10) {
			if (*q < '0' || *q > '9')
				return -1;
			frac += (unsigned long long)(*q - '0') * scale;
		}
	}
	*ms = whole * 1000 + frac;
	return 0;
}

/* Loose on purpose: U-labels (SMTPUTF8) are bytes >= 0x80; what must not pass is
 * what cannot be a domain at all (an address, a space, an empty label). */
int config_lex_domain_ok(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.' || strstr(d, ".."))
		return 0;
	for (const unsigned char *c = (const unsigned char *)d; *c; c++)
		if (!(*c >= 0x80 || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return 0;
	return 1;
}

/* Splits a line into tokens; '#' at a token start begins a comment; "..." quotes with
 * \" and \\ escapes; '{' and '}' are tokens of their own. Returns -1 on a bad quote. */
int config_lex_tokenize(char *s, struct config_token **tok_r, size_t *n_r,
			const char **err_r)
{
	struct config_token *tok = NULL;
	size_t n = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (*s == '\0' || *s == '#')
			break;
		tok = xrealloc(tok, (n + 1) * sizeof(*tok));
		if (*s == '"') {
			char *out = ++s;
			tok[n].s = out;
			tok[n].quoted = 1;
			while (*s && *s != '"') {
				if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
					s++;
				*out++ = *s++;
			}
			if (*s != '"') {
				*err_r = "unterminated quoted string";
				free(tok);
				return -1;
			}
			s++;
			*out = '\0';
			if (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '#') {
				*err_r = "unexpected text after a closing quote";
				free(tok);
				return -1;
			}
			if (*s)
				*s++ = '\0';
			n++;
			continue;
		}
		tok[n].s = s;
		tok[n].quoted = 0;
		if (*s == '{' || *s == '}') {
			/* A literal, not a NUL in the line: s[1] may start the next token. */
			tok[n].s = *s == '{' ? (char *)"{" : (char *)"}";
			s++;
		} else {
			while (*s && !strchr(" \t\r\n{}", *s))
				s++;
			if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
				*s++ = '\0';
			} else if (*s) {
				/* A brace right after a word: keep it for the next round. */
				char brace = *s;
				*s = '\0';
				n++;
				tok = xrealloc(tok, (n + 1) * sizeof(*tok));
				tok[n].s = brace == '{' ? (char *)"{" : (char *)"}";
				tok[n].quoted = 0;
				s++;
			}
		}
		n++;
	}
	*tok_r = tok;
	*n_r = n;
	return 0;
}

int config_lex_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return 0;
	return 1;
}
