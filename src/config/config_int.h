/* config_int: the parser's state and the helpers that config.c, config_parse.c,
 * config_set.c and config_check.c share. Internal to src/config. */
#ifndef CURSUS_CONFIG_INT_H
#define CURSUS_CONFIG_INT_H

#include <stddef.h>
#include <stdio.h>

#include "config/config.h"
#include "config/config_lex.h"
#include "config/config_table.h"
#include "util/log.h"

/* Which options a scope set, and where: one entry per row of opt_table. */
struct optset {
	unsigned char set[N_OPTS];
	int line[N_OPTS];
};

/* A block while parsing: a listener, or a route / sender_route. */
struct block {
	struct listener_conf *l;   /* exactly one of l and r */
	struct route_conf *r;
	int bad_name;              /* already reported; its other checks would be noise */
	struct optset opts;
};

struct parser {
	const char *file;       /* as given, for messages */
	FILE *errs;
	int errors;
	int line;
	struct config *cfg;
	struct optset opts;     /* global options seen */
	struct block *ls;       /* listeners in file order */
	size_t n_ls;
	struct block *rs;       /* route and sender_route blocks in file order */
	size_t n_rs;
	struct block *cur;      /* open block (in ls or rs), or NULL */
	int cur_line;
};

static inline int is_set(const struct optset *s, size_t i)
{
	return s->set[i];
}

/* config_parse.c */
/* Any error makes config_load fail; it is printed when p->errs is set. */
void cfg_error(struct parser *p, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
const char *cfg_esc(char *buf, size_t sz, const char *s);
const struct opt *cfg_opt_find(const char *name);
/* name must be a row of opt_table (the callers' are literals). */
size_t cfg_opt_index(const char *name);
/* How a block is named in messages: listener "smtp", route example.org. */
const char *cfg_block_name(const struct block *b, char *buf, size_t sz);
void cfg_parse_line(struct parser *p, char *text);

/* config_set.c */
/* Where an option's value lives: in block b when given there, else in cfg. off is the
 * option's off or off2 (never used by S_RELAY options). */
void *cfg_field(const struct opt *o, struct config *cfg, const struct block *b, size_t off);
const struct opt_choice *cfg_choice_find(const struct opt_choice *c, const char *s);
/* Sets one option from its values; the caller has checked scope and duplicates. */
void cfg_opt_set(struct parser *p, const struct opt *o, const struct block *b,
		 struct config_token *v, size_t nv);
void cfg_opt_defaults(struct config *cfg);

/* config_check.c */
void cfg_check_all(struct parser *p);
/* After the paths are absolute: a sqlite: store is resolved against state. */
void cfg_check_store(struct parser *p, const char *state);

/* config.c */
char *cfg_resolve_path(const char *cwd, const char *path);

#endif
