/* config: reads the configuration file. Every option is one row of opt_table (name,
 * type, default, bounds, where it lives, where it may appear) and one loop parses and
 * validates them all, so adding an option is adding a row. Promises: a returned config
 * is complete (every default applied, every path absolute, every listener with a role,
 * a numeric address and its limits, routes in file order with unset policy -1/NULL);
 * otherwise every error found has been printed as "file:line: message" and NULL is
 * returned. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/config_lex.h"
#include "config/config_relay.h"
#include "config/config_table.h"
#include "sasl/sasl.h"
#include "util/log.h"
#include "util/netlist.h"
#include "util/xmalloc.h"

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

static void cfg_error(struct parser *p, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void cfg_error(struct parser *p, int line, const char *fmt, ...)
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
static const char *esc(char *buf, size_t sz, const char *s)
{
	return log_escape(buf, sz, s, strlen(s));
}

static const struct opt *opt_find(const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opt_table[i].name, name) == 0)
			return &opt_table[i];
	return NULL;
}

static int is_set(const struct optset *s, size_t i)
{
	return s->set[i];
}

/* Where an option's value lives: in block b when given there, else in cfg. off is the
 * option's off or off2 (never used by S_RELAY options). */
static void *field(const struct opt *o, struct config *cfg, const struct block *b, size_t off)
{
	if (b && b->r)
		return (char *)b->r + o->roff;
	if (o->scope == S_GLOBAL || o->scope == S_RELAY)
		return (char *)cfg + off;
	if (o->scope == S_LISTENER)
		return (char *)b->l + off;
	return (char *)(b ? &b->l->limits : &cfg->limits) + off;
}

static const struct opt_choice *choice_find(const struct opt_choice *c, const char *s)
{
	for (; c->name; c++)
		if (strcasecmp(c->name, s) == 0)
			return c;
	return NULL;
}

static void choices_list(const struct opt_choice *c, char *buf, size_t sz)
{
	size_t o = 0;
	buf[0] = '\0';
	for (; c->name && o < sz; c++)
		o += (size_t)snprintf(buf + o, sz - o, "%s%s", o ? ", " : "", c->name);
}

/* "1.2.3.4:25" or "[::1]:587"; host must be numeric so binding never waits on DNS. */
static int parse_address(struct parser *p, const char *name, const char *s, char **host_r, char **port_r)
{
	char e[LOG_ESCAPE_BUFSZ], norm[INET6_ADDRSTRLEN], *h;
	unsigned char bin[16];
	const char *colon, *hs, *he;
	unsigned long long port;
	int af;
	if (s[0] == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		colon = he ? he + 1 : NULL;
		af = AF_INET6;
		if (!colon || *colon != ':')
			colon = NULL;
	} else {
		hs = s;
		colon = strrchr(s, ':');
		he = colon;
		af = AF_INET;
		if (colon && memchr(s, ':', (size_t)(colon - s))) {
			cfg_error(p, p->line, "%s: \"%s\": an IPv6 address needs brackets, "
				  "e.g. [::1]:587", name, esc(e, sizeof(e), s));
			return -1;
		}
	}
	if (!colon || he == hs) {
		cfg_error(p, p->line, "%s: \"%s\" is not host:port "
			  "(e.g. 127.0.0.1:25 or [::1]:587)", name, esc(e, sizeof(e), s));
		return -1;
	}
	h = xstrndup(hs, (size_t)(he - hs));
	if (inet_pton(af, h, bin) != 1) {
		cfg_error(p, p->line, "%s: host \"%s\" is not a numeric IP%s address",
			  name, esc(e, sizeof(e), h), af == AF_INET6 ? "v6" : "v4");
		free(h);
		return -1;
	}
	free(h);
	if (config_lex_number(colon + 1, 0, &port) < 0 || port < 1 || port > 65535) {
		cfg_error(p, p->line, "%s: bad port \"%s\" (1-65535)",
			  name, esc(e, sizeof(e), colon + 1));
		return -1;
	}
	inet_ntop(af, bin, norm, sizeof(norm));
	*host_r = xstrdup(norm);
	*port_r = xasprintf("%llu", port);
	return 0;
}

/* Milliseconds as the seconds they were written in: "0.1", "30". */
static const char *seconds_text(char *buf, size_t size, unsigned long long ms)
{
	int n = snprintf(buf, size, "%llu.%03llu", ms / 1000, ms % 1000);
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
	return buf;
}

/* A DKIM selector is a sub-domain (RFC 6376 3.1): one or more labels. */
static int dkim_selector_ok(const char *s)
{
	return strlen(s) < 64 && config_lex_domain_ok(s);
}

/* dkim_key DOMAIN SELECTOR FILE: one more key; the pair may be given once. */
static void dkim_key_set(struct parser *p, const struct opt *o, struct config_token *v, size_t nv)
{
	char e[LOG_ESCAPE_BUFSZ];
	struct config *cfg = p->cfg;
	struct dkim_key_conf *k;

	if (nv != 3) {
		cfg_error(p, p->line, "%s: expected DOMAIN SELECTOR FILE, got %zu value%s", o->name,
			  nv, nv == 1 ? "" : "s");
		return;
	}
	if (!config_lex_domain_ok(v[0].s)) {
		cfg_error(p, p->line, "%s: \"%s\" is not a domain", o->name, esc(e, sizeof(e), v[0].s));
		return;
	}
	if (!dkim_selector_ok(v[1].s)) {
		cfg_error(p, p->line, "%s: \"%s\" is not a selector (letters, digits, '-' and '.')",
			  o->name, esc(e, sizeof(e), v[1].s));
		return;
	}
	if (v[2].s[0] == '\0') {
		cfg_error(p, p->line, "%s: empty file name", o->name);
		return;
	}
	for (size_t i = 0; i < cfg->n_dkim_keys; i++)
		if (strcasecmp(cfg->dkim_keys[i].domain, v[0].s) == 0 &&
		    strcasecmp(cfg->dkim_keys[i].selector, v[1].s) == 0) {
			cfg_error(p, p->line, "%s: %s %s is already given on line %d", o->name,
				  esc(e, sizeof(e), v[0].s), v[1].s, cfg->dkim_keys[i].line);
			return;
		}
	cfg->dkim_keys = xrealloc(cfg->dkim_keys, (cfg->n_dkim_keys + 1) * sizeof(*cfg->dkim_keys));
	k = &cfg->dkim_keys[cfg->n_dkim_keys++];
	k->domain = xstrdup(v[0].s);
	for (char *q = k->domain; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	k->selector = xstrdup(v[1].s);
	k->path = xstrdup(v[2].s);
	k->line = p->line;
}

/* Sets one option from its values; the caller has checked scope and duplicates. */
static void opt_set(struct parser *p, const struct opt *o, const struct block *b,
		    struct config_token *v, size_t nv)
{
	char e[LOG_ESCAPE_BUFSZ], list[256];
	void *f = field(o, p->cfg, b, o->off);
	unsigned long long n;
	const struct opt_choice *c;
	const char *why;

	if (nv == 0) {
		cfg_error(p, p->line, "%s: missing value", o->name);
		return;
	}
	if (o->type == T_DKIM) {
		dkim_key_set(p, o, v, nv);
		return;
	}
	if (nv > 1 && o->type != T_LIST && o->type != T_FLAGS && o->type != T_MECHS &&
	    o->type != T_WORDS) {
		cfg_error(p, p->line, "%s: expected one value, got %zu (quote a value "
			  "that contains spaces)", o->name, nv);
		return;
	}
	switch (o->type) {
	case T_STRING:
	case T_HOST:
	case T_PATH:
		if (v[0].s[0] == '\0') {
			cfg_error(p, p->line, "%s: empty value", o->name);
			return;
		}
		if (o->choices) {
			if (!(c = choice_find(o->choices, v[0].s))) {
				choices_list(o->choices, list, sizeof(list));
				cfg_error(p, p->line, "%s: unknown value \"%s\" (expected %s)",
					  o->name, esc(e, sizeof(e), v[0].s), list);
				return;
			}
			free(*(char **)f);
			*(char **)f = xstrdup(c->name);
			return;
		}
		if (o->type == T_HOST && !config_lex_domain_ok(v[0].s)) {
			cfg_error(p, p->line, "%s: \"%s\" is not a host name", o->name,
				  esc(e, sizeof(e), v[0].s));
			return;
		}
		free(*(char **)f);
		*(char **)f = xstrdup(v[0].s);
		return;
	case T_UINT:
	case T_SIZE:
		if (config_lex_number(v[0].s, o->type == T_SIZE, &n) < 0) {
			cfg_error(p, p->line, "%s: \"%s\" is not a number%s", o->name,
				  esc(e, sizeof(e), v[0].s),
				  o->type == T_SIZE ? " (suffixes: K, M, G)" : "");
			return;
		}
		if (n < o->min) {
			cfg_error(p, p->line, "%s: %s is below the minimum %llu", o->name,
				  v[0].s, o->min);
			return;
		}
		if (n > o->max) {
			cfg_error(p, p->line, "%s: %s is above the maximum %llu", o->name,
				  v[0].s, o->max);
			return;
		}
		if (o->type == T_SIZE)
			*(size_t *)f = (size_t)n;
		else
			*(unsigned *)f = (unsigned)n;
		return;
	case T_SECONDS:
		if (config_lex_seconds(v[0].s, &n) < 0) {
			cfg_error(p, p->line, "%s: \"%s\" is not a number of seconds (e.g. 30 or "
				  "0.5)", o->name, esc(e, sizeof(e), v[0].s));
			return;
		}
		if (n < o->min || n > o->max) {
			char bound[32];
			cfg_error(p, p->line, "%s: %s is %s the %s %s", o->name, v[0].s,
				  n < o->min ? "below" : "above", n < o->min ? "minimum" : "maximum",
				  seconds_text(bound, sizeof(bound), n < o->min ? o->min : o->max));
			return;
		}
		*(unsigned *)f = (unsigned)n;
		return;
	case T_BOOL:
		if (strcasecmp(v[0].s, "yes") == 0)
			*(int *)f = 1;
		else if (strcasecmp(v[0].s, "no") == 0)
			*(int *)f = 0;
		else
			cfg_error(p, p->line, "%s: \"%s\" is not yes or no", o->name,
				  esc(e, sizeof(e), v[0].s));
		return;
	case T_ENUM:
		if (!(c = choice_find(o->choices, v[0].s))) {
			choices_list(o->choices, list, sizeof(list));
			cfg_error(p, p->line, "%s: unknown %s \"%s\" (expected %s)", o->name,
				  o->name, esc(e, sizeof(e), v[0].s), list);
			return;
		}
		*(int *)f = c->value;
		return;
	case T_LIST:
	case T_WORDS: {
		char ***arr = f;
		size_t *cnt = field(o, p->cfg, b, o->off2);
		for (size_t i = 0; i < nv; i++) {
			if (o->type == T_LIST && !config_lex_domain_ok(v[i].s)) {
				cfg_error(p, p->line, "%s: \"%s\" is not a domain", o->name,
					  esc(e, sizeof(e), v[i].s));
				continue;
			}
			*arr = xrealloc(*arr, (*cnt + 1) * sizeof(**arr));
			(*arr)[*cnt] = xstrdup(v[i].s);
			/* Domains and user names are case-insensitive (RFC 5321 2.4); lower
			 * once here. */
			for (char *q = (*arr)[*cnt]; *q; q++)
				if (*q >= 'A' && *q <= 'Z')
					*q = (char)(*q - 'A' + 'a');
			(*cnt)++;
		}
		return;
	}
	case T_FLAGS: {
		unsigned bits = 0;
		for (size_t i = 0; i < nv; i++) {
			if (!(c = choice_find(o->choices, v[i].s))) {
				choices_list(o->choices, list, sizeof(list));
				cfg_error(p, p->line, "%s: unknown value \"%s\" (expected %s)",
					  o->name, esc(e, sizeof(e), v[i].s), list);
				return;
			}
			bits |= (unsigned)c->value;
		}
		*(unsigned *)f = bits;
		return;
	}
	case T_MECHS: {
		/* Names from the one mechanism registry; "none" is the empty set. */
		unsigned bits = 0;
		size_t n_all;
		const struct sasl_mech *all = sasl_mechs(&n_all);
		for (size_t i = 0; i < nv; i++) {
			const struct sasl_mech *m = sasl_mech_find(v[i].s, strlen(v[i].s));
			if (strcasecmp(v[i].s, "none") == 0)
				continue;
			if (!m) {
				size_t used = 0;
				for (size_t k = 0; k < n_all && used + 2 < sizeof(list); k++)
					used += (size_t)snprintf(list + used, sizeof(list) - used,
								 "%s, ", all[k].name);
				cfg_error(p, p->line, "%s: unknown value \"%s\" (expected %snone)",
					  o->name, esc(e, sizeof(e), v[i].s), list);
				return;
			}
			bits |= MECH_BIT((unsigned)(m - all));
		}
		*(unsigned *)f = bits;
		return;
	}
	case T_ADDRESS: {
		char **host = f, **port = field(o, p->cfg, b, o->off2), *h, *pt;
		if (parse_address(p, o->name, v[0].s, &h, &pt) == 0) {
			free(*host);
			free(*port);
			*host = h;
			*port = pt;
		}
		return;
	}
	case T_NEXTHOP: {
		struct nexthop_conf nh;
		if ((why = config_relay_nexthop(v[0].s, &nh))) {
			cfg_error(p, p->line, "%s: \"%s\": %s", o->name, esc(e, sizeof(e), v[0].s),
				  why);
			return;
		}
		config_relay_nexthop_clear(f);
		*(struct nexthop_conf *)f = nh;
		return;
	}
	case T_RESOLVER:
		if ((why = config_relay_resolver(v[0].s))) {
			cfg_error(p, p->line, "%s: \"%s\": %s", o->name, esc(e, sizeof(e), v[0].s),
				  why);
			return;
		}
		free(*(char **)f);
		*(char **)f = xstrdup(v[0].s);
		return;
	case T_DKIM:
		return; /* dkim_key_set, above */
	case T_LMTP: {
		char *norm;
		if ((why = config_relay_lmtp(v[0].s, &norm))) {
			cfg_error(p, p->line, "%s: \"%s\": %s", o->name, esc(e, sizeof(e), v[0].s),
				  why);
			return;
		}
		free(*(char **)f);
		*(char **)f = norm;
		return;
	}
	}
}

static void opt_defaults(struct config *cfg)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opt_table[i];
		if (o->scope == S_LISTENER)
			continue;
		void *f = field(o, cfg, NULL, o->off);
		switch (o->type) {
		case T_STRING:
		case T_HOST:
		case T_PATH:
		case T_RESOLVER:
		case T_LMTP:
			*(char **)f = o->def_s ? xstrdup(o->def_s) : NULL;
			break;
		case T_SIZE: *(size_t *)f = (size_t)o->def_n; break;
		case T_UINT:
		case T_SECONDS:
		case T_FLAGS:
		case T_MECHS: *(unsigned *)f = (unsigned)o->def_n; break;
		case T_BOOL:
		case T_ENUM: *(int *)f = (int)o->def_n; break;
		default: break;
		}
	}
}

static int is_bare(const struct config_token *t, const char *s)
{
	return !t->quoted && strcmp(t->s, s) == 0;
}

/* How a block is named in messages: listener "smtp", route example.org. */
static const char *block_name(const struct block *b, char *buf, size_t sz)
{
	char e[LOG_ESCAPE_BUFSZ];
	if (b->l)
		snprintf(buf, sz, "listener \"%s\"", esc(e, sizeof(e), b->l->name));
	else
		snprintf(buf, sz, "%s", esc(e, sizeof(e), b->r->name));
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
			  listener ? "\"" : "", esc(e, sizeof(e), arg), listener ? "\"" : "",
			  block_name(p->cur, e2, sizeof(e2)));
	if (listener) {
		int ok = config_lex_name_ok(arg);
		if (!ok)
			cfg_error(p, p->line, "listener: missing or bad name \"%s\" "
				  "(letters, digits, '_' and '-')", esc(e, sizeof(e), arg));
		else if (n != 3 || !is_bare(&t[2], "{"))
			cfg_error(p, p->line, "listener \"%s\": expected '{' after the name "
				  "(listener NAME {)", arg);
		listener_open(p, ok ? arg : "?");
		p->cur->bad_name = !ok;
		return;
	}
	if ((why = config_relay_match(arg, by_sender, &match)))
		cfg_error(p, p->line, "%s: \"%s\": %s", kw, esc(e, sizeof(e), arg), why);
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
		/* The sender does not choose where a local mailbox is. */
		if (o->scope == S_RELAY && (o->type != T_LMTP || !p->cur->r->by_sender))
			return 1;
		cfg_error(p, p->line, "\"%s\" is not allowed inside %s (only relay_host, relay_tls, "
			  "relay_ca, relay_auth_unverified%s)", o->name, block_name(p->cur, b, sizeof(b)),
			  p->cur->r->by_sender ? "" : ", lmtp");
	} else {
		if (o->scope == S_LISTENER || o->scope == S_BOTH)
			return 1;
		cfg_error(p, p->line, "\"%s\" is a global option, not allowed inside %s%s", o->name,
			  block_name(p->cur, b, sizeof(b)),
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
			  esc(e, sizeof(e), name), best);
	else
		cfg_error(p, p->line, "unknown option \"%s\"", esc(e, sizeof(e), name));
}

static void option_line(struct parser *p, struct config_token *t, size_t n)
{
	const struct opt *o = opt_find(t[0].s);
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
	opt_set(p, o, p->cur, t + 1, n - 1);
	if (p->errors == before && !is_set(set, i)) {
		set->line[i] = p->line;
		set->set[i] = 1;
	}
}

static void parse_line(struct parser *p, char *text)
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
			  esc(e, sizeof(e), t[0].s));
	} else {
		option_line(p, t, n);
	}
	free(t);
}

static char *resolve_path(const char *cwd, const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	while (path[0] == '.' && path[1] == '/')
		for (path += 2; *path == '/'; path++)
			;
	if (strcmp(path, ".") == 0 || *path == '\0')
		return xstrdup(cwd);
	return xasprintf("%s%s%s", cwd, cwd[strlen(cwd) - 1] == '/' ? "" : "/", path);
}

static size_t opt_index(const char *name)
{
	return (size_t)(opt_find(name) - opt_table);
}

static int addr_overlap(const struct listener_conf *a, const struct listener_conf *b)
{
	if (strcmp(a->port, b->port) != 0)
		return 0;
	if (strcmp(a->host, b->host) == 0)
		return 1;
	/* A wildcard bind takes the port on every address of its family. */
	int a6 = strchr(a->host, ':') != NULL, b6 = strchr(b->host, ':') != NULL;
	return a6 == b6 && (strcmp(a->host, a6 ? "::" : "0.0.0.0") == 0 ||
			    strcmp(b->host, b6 ? "::" : "0.0.0.0") == 0);
}

static void check_listener(struct parser *p, struct block *s)
{
	struct listener_conf *l = s->l;
	const struct opt_choice *c;
	size_t i_role = opt_index("role"), i_tls = opt_index("tls");
	if (s->bad_name)
		return;
	if (!is_set(&s->opts, i_role)) {
		if ((c = choice_find(role_choices, l->name)) && strcmp(c->name, l->name) == 0)
			l->role = (enum listener_role)c->value;
		else
			cfg_error(p, l->line, "listener \"%s\": missing role (the name is not "
				  "smtp, submission or submissions)", l->name);
	}
	if (!is_set(&s->opts, i_tls))
		l->tls = l->role == ROLE_SUBMISSIONS ? TLS_IMPLICIT : TLS_STARTTLS;
	/* RFC 8314 3.3: "When a TCP connection is established for the "submissions"
	 * service (default port 465), a TLS handshake begins immediately." */
	else if (l->role == ROLE_SUBMISSIONS && l->tls != TLS_IMPLICIT)
		cfg_error(p, s->opts.line[i_tls], "listener \"%s\": role submissions requires "
			  "tls implicit (RFC 8314), not tls %s", l->name,
			  l->tls == TLS_NONE ? "none" : "starttls");
	if (!l->host)
		cfg_error(p, l->line, "listener \"%s\": missing address", l->name);
	/* A limit not set in the block is the global value, wherever in the file it is. */
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opt_table[i];
		if (o->scope != S_BOTH || is_set(&s->opts, i))
			continue;
		memcpy((char *)&l->limits + o->off, (char *)&p->cfg->limits + o->off,
		       o->type == T_SIZE ? sizeof(size_t) : sizeof(unsigned));
	}
}

/* Local programs (loopback) are not capped by default; "none" caps everyone. */
static void check_exempt(struct parser *p)
{
	struct config *cfg = p->cfg;
	size_t i_ex = opt_index("client_limit_exempt");
	char e[LOG_ESCAPE_BUFSZ];

	if (!is_set(&p->opts, i_ex)) {
		cfg->client_limit_exempt = xcalloc(2, sizeof(char *));
		cfg->client_limit_exempt[0] = xstrdup("127.0.0.0/8");
		cfg->client_limit_exempt[1] = xstrdup("::1");
		cfg->n_client_limit_exempt = 2;
		return;
	}
	for (size_t i = 0; i < cfg->n_client_limit_exempt; i++) {
		struct netlist l = {0};
		const char *w = cfg->client_limit_exempt[i];
		if (strcmp(w, "none") != 0 && netlist_add(&l, w) < 0)
			cfg_error(p, p->opts.line[i_ex], "client_limit_exempt: \"%s\" is not an "
				  "address or CIDR prefix", esc(e, sizeof(e), w));
		netlist_clear(&l);
	}
}

/* The names are looked up by the daemon at start (as root): the file may be checked,
 * and the example loaded, on a machine without the account. */
static void check_identity(struct parser *p)
{
	if (p->cfg->group && !p->cfg->user)
		cfg_error(p, p->opts.line[opt_index("group")], "group: set user too");
}

static void check_all(struct parser *p)
{
	struct config *cfg = p->cfg;
	int eof = p->line > 0 ? p->line : 1;
	size_t i_rmin = opt_index("retry_min"), i_rmax = opt_index("retry_max");
	size_t i_cinit = opt_index("relay_concurrency_init");
	size_t i_cmax = opt_index("relay_concurrency_max");
	char b[LOG_ESCAPE_BUFSZ + 16];

	if (p->cur)
		cfg_error(p, p->cur_line, "%s: unterminated block (missing '}')",
			  block_name(p->cur, b, sizeof(b)));
	if (cfg->n_local_domains == 0)
		cfg_error(p, eof, "missing local_domains (at least one domain this server "
			  "receives mail for)");
	if (cfg->retry_min > cfg->retry_max)
		cfg_error(p, is_set(&p->opts, i_rmax) ? p->opts.line[i_rmax]
			  : p->opts.line[i_rmin], "retry_max %u is below retry_min %u",
			  cfg->retry_max, cfg->retry_min);
	if (cfg->relay_concurrency_init > cfg->relay_concurrency_max)
		cfg_error(p, is_set(&p->opts, i_cmax) ? p->opts.line[i_cmax]
			  : p->opts.line[i_cinit], "relay_concurrency_max %u is below "
			  "relay_concurrency_init %u", cfg->relay_concurrency_max,
			  cfg->relay_concurrency_init);
	if (!cfg->hostname) {
		char h[256] = "";
		if (gethostname(h, sizeof(h) - 1) < 0 || !config_lex_domain_ok(h))
			cfg_error(p, eof, "missing hostname (gethostname() gave none usable)");
		else
			cfg->hostname = xstrdup(h);
	}
	check_exempt(p);
	check_identity(p);
	p->cfg->local_listener = (struct listener_conf){ .name = "local", .role = ROLE_LOCAL,
		.host = "", .port = "", .tls = TLS_NONE, .limits = p->cfg->limits };
	if (p->n_ls == 0)
		cfg_error(p, eof, "no listener defined (e.g. listener smtp { address "
			  "127.0.0.1:25 })");
	for (size_t i = 0; i < p->n_ls; i++) {
		struct listener_conf *l = p->ls[i].l;
		check_listener(p, &p->ls[i]);
		for (size_t j = 0; j < i; j++) {
			const struct listener_conf *m = p->ls[j].l;
			if (p->ls[i].bad_name || p->ls[j].bad_name)
				continue;
			if (strcmp(m->name, l->name) == 0)
				cfg_error(p, l->line, "duplicate listener \"%s\" (first on line %d)",
					  l->name, m->line);
			else if (l->host && m->host && addr_overlap(l, m))
				cfg_error(p, p->ls[i].opts.line[opt_index("address")],
					  "listener \"%s\": address %s%s%s:%s is already used by "
					  "listener \"%s\" (line %d)", l->name,
					  strchr(l->host, ':') ? "[" : "", l->host,
					  strchr(l->host, ':') ? "]" : "", l->port, m->name, m->line);
		}
	}
}

/* user_store and user_db name one thing: after this both are set, user_db to the
 * SQLite file (relative to state_dir) when the store is SQLite. */
static void check_store(struct parser *p, const char *state)
{
	struct config *cfg = p->cfg;
	char *s = cfg->user_store;

	if (!s) {
		cfg->user_store = xasprintf("sqlite:%s", cfg->user_db);
	} else if (strncmp(s, "sqlite:", 7) == 0 && s[7]) {
		free(cfg->user_db);
		cfg->user_db = resolve_path(state, s + 7);
		cfg->user_store = xasprintf("sqlite:%s", cfg->user_db);
		free(s);
	} else if (strncmp(s, "postgresql:", 11) != 0) {
		/* Not quoted: it may be a connection string with a password. */
		cfg_error(p, p->opts.line[opt_index("user_store")],
			  "user_store: expected sqlite:PATH or postgresql:CONNINFO");
	}
}

/* Kept after parsing so that a message can name the line of a setting. */
static int *lines_copy(const struct optset *s)
{
	int *lines = xcalloc(N_OPTS, sizeof(*lines));
	for (size_t i = 0; i < N_OPTS; i++)
		lines[i] = s->set[i] ? s->line[i] : 0;
	return lines;
}

static int lines_find(const int *lines, const char *option)
{
	const struct opt *o = opt_find(option);
	return lines && o ? lines[o - opt_table] : 0;
}

int config_option_line(const struct config *cfg, const char *option)
{
	return lines_find(cfg->opt_lines, option);
}

int config_listener_line(const struct listener_conf *l, const char *option)
{
	return lines_find(l->opt_lines, option);
}

int config_route_line(const struct route_conf *r, const char *option)
{
	return lines_find(r->opt_lines, option);
}

struct config *config_load(const char *path, FILE *errs)
{
	struct parser p = { .file = path, .errs = errs };
	char *cwd = NULL, *buf = NULL;
	size_t cap = 0;
	FILE *f;

	if (!(f = fopen(path, "r"))) {
		if (errs)
			fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	p.cfg = xcalloc(1, sizeof(*p.cfg));
	atomic_init(&p.cfg->refs, 1);
	opt_defaults(p.cfg);
	while (getline(&buf, &cap, f) != -1) {
		p.line++;
		parse_line(&p, buf);
	}
	if (ferror(f))
		cfg_error(&p, p.line, "read error: %s", strerror(errno));
	free(buf);
	fclose(f);

	check_all(&p);
	p.cfg->opt_lines = lines_copy(&p.opts);
	for (size_t i = 0; i < p.n_ls; i++)
		p.ls[i].l->opt_lines = lines_copy(&p.ls[i].opts);
	for (size_t i = 0; i < p.n_rs; i++)
		p.rs[i].r->opt_lines = lines_copy(&p.rs[i].opts);
	/* Linked in file order, so the daemon binds and logs them as written. */
	for (size_t i = p.n_ls; i-- > 0;) {
		p.ls[i].l->next = p.cfg->listeners;
		p.cfg->listeners = p.ls[i].l;
	}
	free(p.ls);
	/* The router takes the first sender_route that matches: file order matters. */
	for (size_t i = p.n_rs; i-- > 0;) {
		p.rs[i].r->next = p.cfg->routes;
		p.cfg->routes = p.rs[i].r;
	}
	free(p.rs);

	/* Fixed now and independent of the working directory: the admin tool and the
	 * daemon must find the same queue wherever they are started. */
	if (!(cwd = getcwd(NULL, 0))) {
		cfg_error(&p, 1, "cannot resolve relative paths: getcwd: %s", strerror(errno));
	} else {
		size_t i_state = opt_index("state_dir");
		char *confdir, *slash, *state = NULL;
		p.cfg->path = resolve_path(cwd, path);
		confdir = xstrdup(p.cfg->path);
		slash = strrchr(confdir, '/');
		slash[slash == confdir ? 1 : 0] = '\0';
		state = resolve_path(confdir, p.cfg->state_dir);
		free(p.cfg->state_dir);
		p.cfg->state_dir = state;
		for (size_t i = 0; i < N_OPTS; i++) {
			if (opt_table[i].type != T_PATH || i == i_state)
				continue;
			char **fp = field(&opt_table[i], p.cfg, NULL, opt_table[i].off);
			if (!*fp)
				continue;
			char *abs = resolve_path(state, *fp);
			free(*fp);
			*fp = abs;
		}
		for (size_t i = 0; i < p.cfg->n_dkim_keys; i++) {
			char *abs = resolve_path(state, p.cfg->dkim_keys[i].path);
			free(p.cfg->dkim_keys[i].path);
			p.cfg->dkim_keys[i].path = abs;
		}
		for (struct route_conf *r = p.cfg->routes; r; r = r->next) {
			if (!r->relay_ca)
				continue;
			char *abs = resolve_path(state, r->relay_ca);
			free(r->relay_ca);
			r->relay_ca = abs;
		}
		free(confdir);
		free(cwd);
		check_store(&p, state);
	}
	if (p.errors) {
		config_free(&p.cfg);
		return NULL;
	}
	return p.cfg;
}

struct config *config_ref(const struct config *cfg)
{
	struct config *c = (struct config *)cfg; /* the count is not the configuration */
	if (atomic_load(&c->refs) != 0) /* 0: not config_load's, never freed (tests) */
		atomic_fetch_add(&c->refs, 1);
	return c;
}

void config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;
	if (!cfg)
		return;
	*cfgp = NULL;
	if (atomic_load(&cfg->refs) == 0 || atomic_fetch_sub(&cfg->refs, 1) != 1)
		return;
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opt_table[i];
		if (o->scope != S_GLOBAL && o->scope != S_RELAY)
			continue;
		if (o->type == T_NEXTHOP) {
			config_relay_nexthop_clear(field(o, cfg, NULL, o->off));
		} else if (o->type == T_STRING || o->type == T_HOST || o->type == T_PATH ||
			   o->type == T_RESOLVER || o->type == T_LMTP) {
			free(*(char **)field(o, cfg, NULL, o->off));
		} else if (o->type == T_ADDRESS) {
			free(*(char **)field(o, cfg, NULL, o->off));
			free(*(char **)field(o, cfg, NULL, o->off2));
		} else if (o->type == T_LIST || o->type == T_WORDS) {
			char **arr = *(char ***)field(o, cfg, NULL, o->off);
			size_t n = *(size_t *)field(o, cfg, NULL, o->off2);
			for (size_t j = 0; j < n; j++)
				free(arr[j]);
			free(arr);
		}
	}
	for (size_t i = 0; i < cfg->n_dkim_keys; i++) {
		free(cfg->dkim_keys[i].domain);
		free(cfg->dkim_keys[i].selector);
		free(cfg->dkim_keys[i].path);
	}
	free(cfg->dkim_keys);
	while (cfg->listeners) {
		struct listener_conf *l = cfg->listeners;
		cfg->listeners = l->next;
		free(l->name);
		free(l->host);
		free(l->port);
		free(l->opt_lines);
		free(l);
	}
	while (cfg->routes) {
		struct route_conf *r = cfg->routes;
		cfg->routes = r->next;
		free(r->match);
		free(r->name);
		config_relay_nexthop_clear(&r->relay_host);
		free(r->relay_ca);
		free(r->lmtp);
		free(r->opt_lines);
		free(r);
	}
	free(cfg->path);
	free(cfg->opt_lines);
	free(cfg);
	*cfgp = NULL;
}

void config_release(const struct config **cfgp)
{
	struct config *cfg = (struct config *)*cfgp;
	*cfgp = NULL;
	config_free(&cfg);
}

int config_is_local_domain(const struct config *cfg, const char *domain)
{
	size_t n = strlen(domain);
	/* An absolute name "example.test." is the same domain. */
	if (n > 0 && domain[n - 1] == '.')
		n--;
	for (size_t i = 0; i < cfg->n_local_domains; i++)
		if (strlen(cfg->local_domains[i]) == n &&
		    strncasecmp(cfg->local_domains[i], domain, n) == 0)
			return 1;
	return 0;
}

const char *config_role_name(enum listener_role role)
{
	if (role == ROLE_LOCAL)
		return "local";
	for (const struct opt_choice *c = role_choices; c->name; c++)
		if (c->value == (int)role)
			return c->name;
	return "?";
}
