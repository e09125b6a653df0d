/* config_check: what no single line can tell, checked once the file is read: options
 * that depend on each other, what is missing, listeners against each other, and the
 * defaults that depend on other settings. */
#include "config/config_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/netlist.h"
#include "util/xmalloc.h"

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
	size_t i_role = cfg_opt_index("role"), i_tls = cfg_opt_index("tls");
	if (s->bad_name)
		return;
	if (!is_set(&s->opts, i_role)) {
		if ((c = cfg_choice_find(role_choices, l->name)) && strcmp(c->name, l->name) == 0)
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
	size_t i_ex = cfg_opt_index("client_limit_exempt");
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
				  "address or CIDR prefix", cfg_esc(e, sizeof(e), w));
		netlist_clear(&l);
	}
}

/* The names are looked up by the daemon at start (as root): the file may be checked,
 * and the example loaded, on a machine without the account. */
static void check_identity(struct parser *p)
{
	if (p->cfg->group && !p->cfg->user)
		cfg_error(p, p->opts.line[cfg_opt_index("group")], "group: set user too");
}

void cfg_check_all(struct parser *p)
{
	struct config *cfg = p->cfg;
	int eof = p->line > 0 ? p->line : 1;
	size_t i_rmin = cfg_opt_index("retry_min"), i_rmax = cfg_opt_index("retry_max");
	size_t i_cinit = cfg_opt_index("relay_concurrency_init");
	size_t i_cmax = cfg_opt_index("relay_concurrency_max");
	char b[LOG_ESCAPE_BUFSZ + 16];

	if (p->cur)
		cfg_error(p, p->cur_line, "%s: unterminated block (missing '}')",
			  cfg_block_name(p->cur, b, sizeof(b)));
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
				cfg_error(p, p->ls[i].opts.line[cfg_opt_index("address")],
					  "listener \"%s\": address %s%s%s:%s is already used by "
					  "listener \"%s\" (line %d)", l->name,
					  strchr(l->host, ':') ? "[" : "", l->host,
					  strchr(l->host, ':') ? "]" : "", l->port, m->name, m->line);
		}
	}
}

/* user_store and user_db name one thing: after this both are set, user_db to the
 * SQLite file (relative to state_dir) when the store is SQLite. */
void cfg_check_store(struct parser *p, const char *state)
{
	struct config *cfg = p->cfg;
	char *s = cfg->user_store;

	if (!s) {
		cfg->user_store = xasprintf("sqlite:%s", cfg->user_db);
	} else if (strncmp(s, "sqlite:", 7) == 0 && s[7]) {
		free(cfg->user_db);
		cfg->user_db = cfg_resolve_path(state, s + 7);
		cfg->user_store = xasprintf("sqlite:%s", cfg->user_db);
		free(s);
	} else if (strncmp(s, "postgresql:", 11) != 0) {
		/* Not quoted: it may be a connection string with a password. */
		cfg_error(p, p->opts.line[cfg_opt_index("user_store")],
			  "user_store: expected sqlite:PATH or postgresql:CONNINFO");
	}
}
