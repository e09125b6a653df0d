/* config_set: an option's values, checked against its row of opt_table and stored
 * where it lives (struct config, a listener, a route); and the defaults. */
#include "config/config_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_relay.h"
#include "sasl/sasl.h"
#include "util/ascii.h"
#include "util/xmalloc.h"

void *cfg_field(const struct opt *o, struct config *cfg, const struct block *b, size_t off)
{
	if (b && b->r)
		return (char *)b->r + o->roff;
	if (o->scope == S_GLOBAL || o->scope == S_RELAY)
		return (char *)cfg + off;
	if (o->scope == S_LISTENER)
		return (char *)b->l + off;
	return (char *)(b ? &b->l->limits : &cfg->limits) + off;
}

const struct opt_choice *cfg_choice_find(const struct opt_choice *c, const char *s)
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
				  "e.g. [::1]:587", name, cfg_esc(e, sizeof(e), s));
			return -1;
		}
	}
	if (!colon || he == hs) {
		cfg_error(p, p->line, "%s: \"%s\" is not host:port "
			  "(e.g. 127.0.0.1:25 or [::1]:587)", name, cfg_esc(e, sizeof(e), s));
		return -1;
	}
	h = xstrndup(hs, (size_t)(he - hs));
	if (inet_pton(af, h, bin) != 1) {
		cfg_error(p, p->line, "%s: host \"%s\" is not a numeric IP%s address",
			  name, cfg_esc(e, sizeof(e), h), af == AF_INET6 ? "v6" : "v4");
		free(h);
		return -1;
	}
	free(h);
	if (config_lex_number(colon + 1, 0, &port) < 0 || port < 1 || port > 65535) {
		cfg_error(p, p->line, "%s: bad port \"%s\" (1-65535)",
			  name, cfg_esc(e, sizeof(e), colon + 1));
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
		cfg_error(p, p->line, "%s: \"%s\" is not a domain", o->name,
			  cfg_esc(e, sizeof(e), v[0].s));
		return;
	}
	if (!dkim_selector_ok(v[1].s)) {
		cfg_error(p, p->line, "%s: \"%s\" is not a selector (letters, digits, '-' and '.')",
			  o->name, cfg_esc(e, sizeof(e), v[1].s));
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
				  cfg_esc(e, sizeof(e), v[0].s), v[1].s, cfg->dkim_keys[i].line);
			return;
		}
	cfg->dkim_keys = xrealloc(cfg->dkim_keys, (cfg->n_dkim_keys + 1) * sizeof(*cfg->dkim_keys));
	k = &cfg->dkim_keys[cfg->n_dkim_keys++];
	k->domain = ascii_lower_str(xstrdup(v[0].s));
	k->selector = xstrdup(v[1].s);
	k->path = xstrdup(v[2].s);
	k->line = p->line;
}

void cfg_opt_set(struct parser *p, const struct opt *o, const struct block *b,
		 struct config_token *v, size_t nv)
{
	char e[LOG_ESCAPE_BUFSZ], list[256];
	void *f = cfg_field(o, p->cfg, b, o->off);
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
			if (!(c = cfg_choice_find(o->choices, v[0].s))) {
				choices_list(o->choices, list, sizeof(list));
				cfg_error(p, p->line, "%s: unknown value \"%s\" (expected %s)",
					  o->name, cfg_esc(e, sizeof(e), v[0].s), list);
				return;
			}
			free(*(char **)f);
			*(char **)f = xstrdup(c->name);
			return;
		}
		if (o->type == T_HOST && !config_lex_domain_ok(v[0].s)) {
			cfg_error(p, p->line, "%s: \"%s\" is not a host name", o->name,
				  cfg_esc(e, sizeof(e), v[0].s));
			return;
		}
		free(*(char **)f);
		*(char **)f = xstrdup(v[0].s);
		return;
	case T_UINT:
	case T_SIZE:
		if (config_lex_number(v[0].s, o->type == T_SIZE, &n) < 0) {
			cfg_error(p, p->line, "%s: \"%s\" is not a number%s", o->name,
				  cfg_esc(e, sizeof(e), v[0].s),
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
				  "0.5)", o->name, cfg_esc(e, sizeof(e), v[0].s));
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
				  cfg_esc(e, sizeof(e), v[0].s));
		return;
	case T_ENUM:
		if (!(c = cfg_choice_find(o->choices, v[0].s))) {
			choices_list(o->choices, list, sizeof(list));
			cfg_error(p, p->line, "%s: unknown %s \"%s\" (expected %s)", o->name,
				  o->name, cfg_esc(e, sizeof(e), v[0].s), list);
			return;
		}
		*(int *)f = c->value;
		return;
	case T_LIST:
	case T_WORDS: {
		char ***arr = f;
		size_t *cnt = cfg_field(o, p->cfg, b, o->off2);
		for (size_t i = 0; i < nv; i++) {
			if (o->type == T_LIST && !config_lex_domain_ok(v[i].s)) {
				cfg_error(p, p->line, "%s: \"%s\" is not a domain", o->name,
					  cfg_esc(e, sizeof(e), v[i].s));
				continue;
			}
			*arr = xrealloc(*arr, (*cnt + 1) * sizeof(**arr));
			/* Domains and user names are case-insensitive (RFC 5321 2.4); lower
			 * once here. */
			(*arr)[*cnt] = ascii_lower_str(xstrdup(v[i].s));
			(*cnt)++;
		}
		return;
	}
	case T_FLAGS: {
		unsigned bits = 0;
		for (size_t i = 0; i < nv; i++) {
			if (!(c = cfg_choice_find(o->choices, v[i].s))) {
				choices_list(o->choices, list, sizeof(list));
				cfg_error(p, p->line, "%s: unknown value \"%s\" (expected %s)",
					  o->name, cfg_esc(e, sizeof(e), v[i].s), list);
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
					  o->name, cfg_esc(e, sizeof(e), v[i].s), list);
				return;
			}
			bits |= MECH_BIT((unsigned)(m - all));
		}
		*(unsigned *)f = bits;
		return;
	}
	case T_ADDRESS: {
		char **host = f, **port = cfg_field(o, p->cfg, b, o->off2), *h, *pt;
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
			cfg_error(p, p->line, "%s: \"%s\": %s", o->name,
				  cfg_esc(e, sizeof(e), v[0].s), why);
			return;
		}
		config_relay_nexthop_clear(f);
		*(struct nexthop_conf *)f = nh;
		return;
	}
	case T_RESOLVER:
		if ((why = config_relay_resolver(v[0].s))) {
			cfg_error(p, p->line, "%s: \"%s\": %s", o->name,
				  cfg_esc(e, sizeof(e), v[0].s), why);
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
			cfg_error(p, p->line, "%s: \"%s\": %s", o->name,
				  cfg_esc(e, sizeof(e), v[0].s), why);
			return;
		}
		free(*(char **)f);
		*(char **)f = norm;
		return;
	}
	}
}

void cfg_opt_defaults(struct config *cfg)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opt_table[i];
		if (o->scope == S_LISTENER)
			continue;
		void *f = cfg_field(o, cfg, NULL, o->off);
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
