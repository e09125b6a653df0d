/* config_parse: the lines of the file, and the listener, route and sender_route blocks
 * they open and close; each option line is checked for where it may appear and handed
 * to config_set.c. */
#include "config/config_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_relay.h"
#include "util/xmalloc.h"

void cfg_error(struct parser *p, int line, const char *fmt, ...)
{
	va_list ap;
	p->errors++;
	if (!p->errs)
		return;
	fprintf(p->errs, "%s:%d: ", p->file, line);
	va_start(ap, fmt);
	vfprintf(p->errs, fmt, ap);
	va_end(ap);
	fputc('\n', p->errs);
}

/* The file is the administrator's, but a stray control byte must not reach a terminal. */
const char *cfg_esc(char *buf, size_t sz, const char *s)
{
	return log_escape(buf, sz, s, strlen(s));
}

const struct opt *cfg_opt_find(const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opt_table[i].name, name) == 0)
			return &opt_table[i];
	return NULL;
}

size_t cfg_opt_index(const char *name)
{
	return (size_t)(cfg_opt_find(name) - opt_table);
}

static int is_bare(const struct config_token *t, const char *s)
{
	return !t->quoted && strcmp(t->s, s) == 0;
}

const char *cfg_block_name(const struct block *b, char *buf, size_t sz)
{
	char e[LOG_ESCAPE_BUFSZ];
	if (b->l)
		snprintf(buf, sz, "listener \"%s\"", cfg_esc(e, sizeof(e), b->l->name));
	else
		snprintf(buf, sz, "%s", cfg_esc(e, sizeof(e), b->r->name));
	return buf;
}

static struct block *block_push(struct parser *p, struct block **arr, size_t *n)
{
	*arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
	p->cur = &(*arr)[(*n)++];
	memset(p->cur, 0, sizeof(*p->cur));
	p->cur_line = p->line;
	return p->cur;
}

static void listener_open(struct parser *p, const char *name)
{
	struct listener_conf *l = xcalloc(1, sizeof(*l));
	l->name = xstrdup(name);
	l->line = p->line;
	l->role = (enum listener_role)-1;
	l->tls = (enum tls_mode)-1;
	block_push(p, &p->ls, &p->n_ls)->l = l;
}

/* match is the route's (lower case), or NULL after an error already reported. */
static void route_open(struct parser *p, const char *kw, int by_sender, char *match)
{
	struct route_conf *r = xcalloc(1, sizeof(*r));
	r->match = match ? match : xstrdup("?");
	r->by_sender = by_sender;
	r->name = xasprintf("%s %s", kw, r->match);
	r->relay_tls = -1;
	r->relay_auth_unverified = -1;
	r->lmtp_tls = -1;
	r->line = p->line;
	for (size_t i = 0; match && i < p->n_rs; i++) {
		const struct route_conf *o = p->rs[i].r;
		if (!p->rs[i].bad_name && o->by_sender == by_sender && strcmp(o->match, match) == 0)
			cfg_error(p, p->line, "duplicate %s (first on line %d)", r->name, o->line);
	}
	block_push(p, &p->rs, &p->n_rs)->r = r;
	p->cur->bad_name = !match;
}

/* "listener NAME {", "route DOMAIN {" or "sender_route ADDRESS {". The block is opened
 * even after an error so that its lines are checked as what they are and its '}' is not
 * reported a second time. */
static void block_header(struct parser *p, struct config_token *t, size_t n)
{
	char e[LOG_ESCAPE_BUFSZ], e2[LOG_ESCAPE_BUFSZ];
	const char *kw = t[0].s, *arg = n >= 2 && !is_bare(&t[1], "{") ? t[1].s : "", *why;
	int by_sender = strcmp(kw, "sender_route") == 0, listener = strcmp(kw, "listener") == 0;
	char *match = NULL;

	if (p->cur)
		cfg_error(p, p->line, "%s %s%s%s inside %s (missing '}' on an earlier line?)", kw,
			  listener ? "\"" : "", cfg_esc(e, sizeof(e), arg), listener ? "\"" : "",
			  cfg_block_name(p->cur, e2, sizeof(e2)));
	if (listener) {
		int ok = config_lex_name_ok(arg);
		if (!ok)
			cfg_error(p, p->line, "listener: missing or bad name \"%s\" "
				  "(letters, digits, '_' and '-')", cfg_esc(e, sizeof(e), arg));
		else if (n != 3 || !is_bare(&t[2], "{"))
			cfg_error(p, p->line, "listener \"%s\": expected '{' after the name "
				  "(listener NAME {)", arg);
		listener_open(p, ok ? arg : "?");
		p->cur->bad_name = !ok;
		return;
	}
	if ((why = config_relay_match(arg, by_sender, &match)))
		cfg_error(p, p->line, "%s: \"%s\": %s", kw, cfg_esc(e, sizeof(e), arg), why);
	else if (n != 3 || !is_bare(&t[2], "{"))
		cfg_error(p, p->line, "%s %s: expected '{' after the %s (%s)", kw, match,
			  by_sender ? "address" : "domain",
			  by_sender ? "sender_route ADDRESS {" : "route DOMAIN {");
	route_open(p, kw, by_sender, match);
}

/* Whether o may be set where the parser is; if not, says why. */
static int scope_ok(struct parser *p, const struct opt *o)
{
	char b[LOG_ESCAPE_BUFSZ + 16];
	if (!p->cur) {
		if (o->scope != S_LISTENER)
			return 1;
		cfg_error(p, p->line, "\"%s\" is only allowed inside a listener block", o->name);
	} else if (p->cur->r) {
		/* The sender does not choose where a local mailbox is, nor how it gets there. */
		if (o->scope == S_RELAY && (strncmp(o->name, "lmtp", 4) != 0 || !p->cur->r->by_sender))
			return 1;
		cfg_error(p, p->line, "\"%s\" is not allowed inside %s (only relay_host, relay_tls, "
			  "relay_ca, relay_auth_unverified%s)", o->name,
			  cfg_block_name(p->cur, b, sizeof(b)),
			  p->cur->r->by_sender ? "" : ", lmtp, lmtp_tls, lmtp_ca");
	} else {
		if (o->scope == S_LISTENER || o->scope == S_BOTH)
			return 1;
		cfg_error(p, p->line, "\"%s\" is a global option, not allowed inside %s%s", o->name,
			  cfg_block_name(p->cur, b, sizeof(b)),
			  o->scope == S_RELAY ? " (set it per destination in a route block)" : "");
	}
	return 0;
}

static void unknown_option(struct parser *p, const char *name)
{
	char e[LOG_ESCAPE_BUFSZ];
	const char *best = NULL;
	size_t bestd = 3;
	for (size_t i = 0; i < N_OPTS; i++) {
		size_t d = config_lex_distance(name, opt_table[i].name);
		/* Close relative to the length: "nope" is not a typo of "role". */
		if (d < bestd && d * 3 < strlen(name)) {
			bestd = d;
			best = opt_table[i].name;
		}
	}
	if (best)
		cfg_error(p, p->line, "unknown option \"%s\" (did you mean \"%s\"?)",
			  cfg_esc(e, sizeof(e), name), best);
	else
		cfg_error(p, p->line, "unknown option \"%s\"", cfg_esc(e, sizeof(e), name));
}

static void option_line(struct parser *p, struct config_token *t, size_t n)
{
	const struct opt *o = cfg_opt_find(t[0].s);
	struct optset *set = p->cur ? &p->cur->opts : &p->opts;
	size_t i;
	int before = p->errors;

	if (!o) {
		unknown_option(p, t[0].s);
		return;
	}
	if (!scope_ok(p, o))
		return;
	i = (size_t)(o - opt_table);
	/* A list may be spread over several lines; anything else said twice is a mistake:
	 * which one did the administrator mean? */
	if (is_set(set, i) && o->type != T_LIST && o->type != T_WORDS && o->type != T_DKIM) {
		cfg_error(p, p->line, "duplicate option \"%s\" (first set on line %d)", o->name,
			  set->line[i]);
		return;
	}
	cfg_opt_set(p, o, p->cur, t + 1, n - 1);
	if (p->errors == before && !is_set(set, i)) {
		set->line[i] = p->line;
		set->set[i] = 1;
	}
}

void cfg_parse_line(struct parser *p, char *text)
{
	char e[LOG_ESCAPE_BUFSZ];
	struct config_token *t;
	size_t n;
	const char *lexerr;
	if (config_lex_tokenize(text, &t, &n, &lexerr) < 0) {
		cfg_error(p, p->line, "%s", lexerr);
		return;
	}
	if (n == 0) {
		free(t);
		return;
	}
	if (is_bare(&t[0], "}")) {
		if (!p->cur)
			cfg_error(p, p->line, "unexpected '}' outside a block");
		else if (n > 1)
			cfg_error(p, p->line, "unexpected text after '}'");
		p->cur = NULL;
	} else if (is_bare(&t[0], "listener") || is_bare(&t[0], "route") ||
		   is_bare(&t[0], "sender_route")) {
		block_header(p, t, n);
	} else if (t[0].quoted || is_bare(&t[0], "{")) {
		cfg_error(p, p->line, "expected an option name, not \"%s\"",
			  cfg_esc(e, sizeof(e), t[0].s));
	} else {
		option_line(p, t, n);
	}
	free(t);
}
