/* config_lex: tokens and value syntax of the configuration file; config_parse.c and
 * config_set.c give them meaning. Internal to src/config. */
#ifndef CURSUS_CONFIG_LEX_H
#define CURSUS_CONFIG_LEX_H

#include <stddef.h>

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

struct config_token {
	char *s;      /* points into the line, or at a literal "{" / "}" */
	int quoted;   /* written "..." : never a keyword or a brace */
};

/* Splits line (modified in place) into tokens; '#' at a token start begins a comment;
 * "..." quotes with \" and \\ escapes; '{' and '}' are tokens of their own. On success
 * *tok_r is malloc'ed (free it; may be NULL when *n_r is 0). On a bad quote returns -1
 * with *err_r set to a static message. */
int config_lex_tokenize(char *line, struct config_token **tok_r, size_t *n_r,
			const char **err_r);
/* Decimal, with an optional binary suffix K, M or G when suffixes is set. -1 on
 * syntax or overflow. */
int config_lex_number(const char *s, int suffixes, unsigned long long *out);
/* Seconds with up to three decimals ("30", "0.25") as milliseconds. -1 on syntax or
 * overflow. */
int config_lex_seconds(const char *s, unsigned long long *ms);
/* Edit distance of two short strings (SIZE_MAX past 63 characters). */
size_t config_lex_distance(const char *a, const char *b);
/* A plausible domain or host name: letters, digits, '-', '.', bytes >= 0x80. */
int config_lex_domain_ok(const char *d);
/* A listener name: letters, digits, '_' and '-'. */
int config_lex_name_ok(const char *s);

#endif
