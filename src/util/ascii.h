/* ASCII case folding for protocol text (domain names, keywords, keys): it must not
 * depend on the locale, and bytes above 0x7f (UTF-8) are left as they are. */
#ifndef CURSUS_ASCII_H
#define CURSUS_ASCII_H

static inline char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Folds s in place; returns it, so that a fresh string can be folded as it is made. */
static inline char *ascii_lower_str(char *s)
{
	for (char *p = s; *p; p++)
		*p = ascii_lower(*p);
	return s;
}

#endif
