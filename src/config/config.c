/* config: reads the configuration file. Every option is one row of opt_table (name,
 * type, default, bounds, where it lives, where it may appear) and one loop parses and
 * validates them all, so adding an option is adding a row. Promises: a returned config
 * is complete (every default applied, every path absolute, every listener with a role,
 * a numeric address and its limits, routes in file order with unset policy -1/NULL);
 * otherwise every error found has been printed as "file:line: message" and NULL is
 * returned. config_load reads the lines (config_parse.c, values by config_set.c),
 * checks the whole (config_check.c) and makes the paths absolute; the rest of this file
 * is the config's lifetime and the questions asked of it. */
#include "config/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/config_int.h"
#include "config/config_relay.h"
#include "util/xmalloc.h"

char *cfg_resolve_path(const char *cwd, const char *path)
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
	const struct opt *o = cfg_opt_find(option);
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
	cfg_opt_defaults(p.cfg);
	while (getline(&buf, &cap, f) != -1) {
		p.line++;
		cfg_parse_line(&p, buf);
	}
	if (ferror(f))
		cfg_error(&p, p.line, "read error: %s", strerror(errno));
	free(buf);
	fclose(f);

	cfg_check_all(&p);
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
		size_t i_state = cfg_opt_index("state_dir");
		char *confdir, *slash, *state = NULL;
		p.cfg->path = cfg_resolve_path(cwd, path);
		confdir = xstrdup(p.cfg->path);
		slash = strrchr(confdir, '/');
		slash[slash == confdir ? 1 : 0] = '\0';
		state = cfg_resolve_path(confdir, p.cfg->state_dir);
		free(p.cfg->state_dir);
		p.cfg->state_dir = state;
		for (size_t i = 0; i < N_OPTS; i++) {
			if (opt_table[i].type != T_PATH || i == i_state)
				continue;
			char **fp = cfg_field(&opt_table[i], p.cfg, NULL, opt_table[i].off);
			if (!*fp)
				continue;
			char *abs = cfg_resolve_path(state, *fp);
			free(*fp);
			*fp = abs;
		}
		for (size_t i = 0; i < p.cfg->n_dkim_keys; i++) {
			char *abs = cfg_resolve_path(state, p.cfg->dkim_keys[i].path);
			free(p.cfg->dkim_keys[i].path);
			p.cfg->dkim_keys[i].path = abs;
		}
		for (struct route_conf *r = p.cfg->routes; r; r = r->next)
			for (size_t i = 0; i < N_OPTS; i++) {
				char **fp = (char **)((char *)r + opt_table[i].roff);
				if (opt_table[i].scope != S_RELAY || opt_table[i].type != T_PATH || !*fp)
					continue;
				char *abs = cfg_resolve_path(state, *fp);
				free(*fp);
				*fp = abs;
			}
		free(confdir);
		free(cwd);
		cfg_check_store(&p, state);
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
			config_relay_nexthop_clear(cfg_field(o, cfg, NULL, o->off));
		} else if (o->type == T_STRING || o->type == T_HOST || o->type == T_PATH ||
			   o->type == T_RESOLVER || o->type == T_LMTP) {
			free(*(char **)cfg_field(o, cfg, NULL, o->off));
		} else if (o->type == T_ADDRESS) {
			free(*(char **)cfg_field(o, cfg, NULL, o->off));
			free(*(char **)cfg_field(o, cfg, NULL, o->off2));
		} else if (o->type == T_LIST || o->type == T_WORDS) {
			char **arr = *(char ***)cfg_field(o, cfg, NULL, o->off);
			size_t n = *(size_t *)cfg_field(o, cfg, NULL, o->off2);
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
		free(r->lmtp_ca);
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
