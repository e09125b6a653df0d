/* reload: applies a re-read configuration to the running daemon (see reload.h).
 * Everything new is built first (the configuration, the TLS context); only when all of
 * it loaded is anything swapped, so a failed reload leaves the daemon as it was. The
 * swap itself is pointer assignments on the loop thread: sessions, scheduler jobs,
 * bounces and relay connections hold their own reference to the configuration they
 * started with (config_ref) and to their TLS context (SSL_CTX_up_ref), so nothing they
 * read is freed under them. */
#include "daemon/reload.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "deliver/scheduler.h"
#include "dkim/dkim_keys.h"
#include "net/dns.h"
#include "net/tls.h"
#include "sasl/authlimit.h"
#include "sasl/sasl.h"
#include "smtp/session.h"
#include "smtp/trace.h"
#include "util/log.h"
#include "util/netlist.h"

/* Options read once at start: by the privilege drop, the queue, the thread pools, the
 * resolver, cursus-auth (which gets user_db and scram_iterations on its command line
 * and holds nothing else of the configuration, so it is never signalled). */
enum fixed_kind { FIXED_STR, FIXED_UINT };
static const struct fixed_opt {
	const char *name;
	enum fixed_kind kind;
	size_t off;
} reload_fixed[] = {
	{ "state_dir", FIXED_STR, offsetof(struct config, state_dir) },
	{ "queue_dir", FIXED_STR, offsetof(struct config, queue_dir) },
	{ "mail_dir", FIXED_STR, offsetof(struct config, mail_dir) },
	{ "user_db", FIXED_STR, offsetof(struct config, user_db) },
	{ "user_store", FIXED_STR, offsetof(struct config, user_store) },
	{ "store_timeout", FIXED_UINT, offsetof(struct config, store_timeout_ms) },
	{ "store_connections", FIXED_UINT, offsetof(struct config, store_connections) },
	{ "user", FIXED_STR, offsetof(struct config, user) },
	{ "group", FIXED_STR, offsetof(struct config, group) },
	{ "control_socket", FIXED_STR, offsetof(struct config, control_socket) },
	{ "pid_file", FIXED_STR, offsetof(struct config, pid_file) },
	{ "dns_resolver", FIXED_STR, offsetof(struct config, dns_resolver) },
	{ "dns_trust_anchor", FIXED_STR, offsetof(struct config, dns_trust_anchor) },
	{ "scram_iterations", FIXED_UINT, offsetof(struct config, scram_iterations) },
	{ "worker_threads", FIXED_UINT, offsetof(struct config, worker_threads) },
	{ "queue_threads", FIXED_UINT, offsetof(struct config, queue_threads) },
	{ "delivery_threads", FIXED_UINT, offsetof(struct config, delivery_threads) },
	{ "client_ipv6_prefix", FIXED_UINT, offsetof(struct config, client_ipv6_prefix) },
	{ "local_socket", FIXED_STR, offsetof(struct config, local_socket) },
	{ "metrics_listen", FIXED_STR, offsetof(struct config, metrics_host) },
	{ "metrics_listen", FIXED_STR, offsetof(struct config, metrics_port) },
	{ "metrics_timeout", FIXED_UINT, offsetof(struct config, metrics_timeout_ms) },
	{ "mta_sts_cache_dir", FIXED_STR, offsetof(struct config, mta_sts_cache_dir) },
	{ "mta_sts_fetch_threads", FIXED_UINT, offsetof(struct config, mta_sts_fetch_threads) },
	{ "tls_rpt", FIXED_UINT, offsetof(struct config, tls_rpt) },
	{ "tls_rpt_interval", FIXED_UINT, offsetof(struct config, tls_rpt_interval_ms) },
	{ "tls_rpt_dir", FIXED_STR, offsetof(struct config, tls_rpt_dir) },
	{ "tls_rpt_submitter", FIXED_STR, offsetof(struct config, tls_rpt_submitter) },
	{ "tls_rpt_from", FIXED_STR, offsetof(struct config, tls_rpt_from) },
	{ "tls_rpt_org", FIXED_STR, offsetof(struct config, tls_rpt_org) },
};

struct reload_names {
	char buf[1024];
	size_t len, n;
};

/* Appends "pre name post" to the list. */
static void reload_names_add(struct reload_names *nm, const char *pre, const char *name, const char *post)
{
	int w;
	if (nm->len >= sizeof(nm->buf) - 1)
		return;
	w = snprintf(nm->buf + nm->len, sizeof(nm->buf) - nm->len, "%s%s%s%s", nm->n++ ? ", " : "",
		     pre, name, post);
	if (w > 0)
		nm->len = nm->len + (size_t)w < sizeof(nm->buf) ? nm->len + (size_t)w : sizeof(nm->buf) - 1;
}

static int reload_str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static const struct listener_conf *reload_listener_find(const struct config *cfg, const char *name)
{
	for (const struct listener_conf *lc = cfg->listeners; lc; lc = lc->next)
		if (strcmp(lc->name, name) == 0)
			return lc;
	return NULL;
}

/* Names every option whose new value waits for a restart: compared with the running
 * values, which are the start's (they never change without one). */
static void reload_fixed_changes(const struct config *start, const struct config *cfg, struct reload_names *nm)
{
	for (size_t i = 0; i < sizeof(reload_fixed) / sizeof(reload_fixed[0]); i++) {
		const struct fixed_opt *f = &reload_fixed[i];
		const char *a = (const char *)start + f->off, *b = (const char *)cfg + f->off;
		int differs = f->kind == FIXED_STR ? reload_str_differs(*(char *const *)a, *(char *const *)b)
						   : *(const unsigned *)a != *(const unsigned *)b;
		if (differs)
			reload_names_add(nm, "", f->name, "");
	}
	/* Sockets are bound as root, before the privilege drop: a listener cannot move,
	 * appear or go away until a restart. */
	for (const struct listener_conf *lc = cfg->listeners; lc; lc = lc->next) {
		const struct listener_conf *old = reload_listener_find(start, lc->name);
		if (!old)
			reload_names_add(nm, "listener ", lc->name, " (new)");
		else if (strcmp(old->host, lc->host) != 0 || strcmp(old->port, lc->port) != 0)
			reload_names_add(nm, "listener ", lc->name, " address");
	}
	for (const struct listener_conf *lc = start->listeners; lc; lc = lc->next)
		if (!reload_listener_find(cfg, lc->name))
			reload_names_add(nm, "listener ", lc->name, " (removed)");
}

/* Errors of the configuration and the trace file ("file:line: message") go to the
 * log: after start-up stderr is nowhere. */
struct reload_errs {
	char *text;
	size_t len;
	FILE *f;
};

static FILE *reload_errs_open(struct reload_errs *e)
{
	e->text = NULL;
	e->len = 0;
	return e->f = open_memstream(&e->text, &e->len);
}

static void reload_errs_log(struct reload_errs *e)
{
	char *line, *save = NULL;
	if (e->f)
		fclose(e->f);
	for (line = e->text ? strtok_r(e->text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save))
		log_warnx("reload event=error %s", line);
	free(e->text);
}

void reload_cleartext_warn(const struct listener_conf *lc)
{
	char names[256];
	size_t n, used = 0;
	const struct sasl_mech *m = sasl_mechs(&n);
	unsigned in_clear = lc->limits.auth_mechanisms & lc->limits.auth_cleartext;

	if (lc->tls == TLS_IMPLICIT)
		return;
	/* Which mechanisms send the password is the registry's to say (SASLF_CLEARTEXT). */
	for (size_t i = 0; i < n && i < MECH__COUNT && used + 1 < sizeof(names); i++)
		if ((in_clear & MECH_BIT(i)) && (m[i].flags & SASLF_CLEARTEXT))
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", used ? " " : "",
						 m[i].name);
	if (used)
		log_warnx("listen name=%s event=cleartext-passwords mechanisms=\"%s\" (auth_cleartext_mechanisms: "
			  "passwords cross the wire in clear)", lc->name, names);
}

static void reload_listeners(struct smtp_server *srv, const struct config *cfg)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct smtp_listener *l = srv->listeners[i];
		const struct listener_conf *lc = l->lc->role == ROLE_LOCAL ? &cfg->local_listener
						 : reload_listener_find(cfg, l->lc->name);
		const struct config *old = l->cfg;
		if (!lc)
			continue; /* gone from the file: it serves on as it was until a restart */
		l->cfg = config_ref(cfg);
		l->lc = lc;
		config_release(&old);
		reload_cleartext_warn(lc);
	}
}

void reload_authlimit_conf(const struct auth_limits *a, struct authlimit_conf *ac_r)
{
	*ac_r = (struct authlimit_conf){
		.addr_budget = a->addr_budget, .account_budget = a->account_budget,
		.window = a->window, .cooldown = a->cooldown, .delay_after = a->delay_after,
		.delay_base_ms = a->delay_base_ms, .delay_max_ms = a->delay_max_ms,
		.max_entries = a->max_entries,
	};
}

static void reload_authlimit(struct authlimit *al, const struct auth_limits *a)
{
	struct authlimit_conf ac;
	reload_authlimit_conf(a, &ac);
	if (authlimit_configure(al, &ac))
		log_info("reload event=auth-limits-changed (failure counts start over)");
}

int reload_apply(struct reload_target *t)
{
	struct smtp_server *srv = t->srv;
	const char *path = srv->cfg->path;
	struct reload_errs e;
	struct config *cfg = config_load(path, reload_errs_open(&e));
	const struct config *old;
	SSL_CTX *tls = NULL;
	struct dkim_keys *dkim;
	struct reload_names fixed = {0};
	char *why = NULL;
	int need_tls = 0;

	reload_errs_log(&e);
	if (!cfg) {
		log_warnx("reload event=failed path=%s (keeping the running configuration)", path);
		return -1;
	}
	for (const struct listener_conf *lc = cfg->listeners; lc; lc = lc->next)
		need_tls |= lc->tls != TLS_NONE;
	for (size_t i = 0; i < srv->n_listeners; i++)
		need_tls |= srv->listeners[i]->lc->tls != TLS_NONE;
	/* Read as the mail user now: a key readable by root alone fails here, and the
	 * running certificate stays (docs/reload.md). */
	if (need_tls && !(tls = tls_server_ctx_create(cfg))) {
		log_warnx("reload event=failed path=%s reason=\"cannot load certificate %s and key %s\" "
			  "(keeping the running configuration)", path, cfg->tls_cert, cfg->tls_key);
		config_free(&cfg);
		return -1;
	}

	/* DKIM keys likewise; one the mail user may not read stays as loaded at start
	 * (dkim_keys.h), so a key readable by root alone survives reloads. */
	if (!(dkim = dkim_keys_load(cfg, srv->dkim, &why))) {
		log_warnx("reload event=failed path=%s reason=\"%s\" (keeping the running "
			  "configuration)", path, why);
		free(why);
		if (tls)
			SSL_CTX_free(tls);
		config_free(&cfg);
		return -1;
	}

	reload_fixed_changes(t->start, cfg, &fixed);
	if (fixed.n)
		log_warnx("reload event=restart-needed options=\"%s\" (these keep their running values "
			  "until cursusd restarts)", fixed.buf);

	old = srv->cfg;
	srv->cfg = cfg; /* the reference config_load gave us */
	if (srv->tls)
		SSL_CTX_free(srv->tls); /* sessions hold their own reference */
	srv->tls = tls;
	dkim_keys_free(&srv->dkim); /* messages being signed hold their own reference */
	srv->dkim = dkim;
	trace_rules_free(&srv->trace);
	srv->trace = trace_rules_load(cfg, reload_errs_open(&e));
	reload_errs_log(&e);
	netlist_clear(&srv->client_exempt);
	for (size_t i = 0; i < cfg->n_client_limit_exempt; i++)
		(void)netlist_add(&srv->client_exempt, cfg->client_limit_exempt[i]);
	reload_authlimit(srv->authlimit, &cfg->auth);
	reload_listeners(srv, cfg);
	sched_reconfigure(t->sched, cfg);
	dns_set_timeout(t->dns, cfg->dns_timeout * 1000u);
	log_set_debug(cfg->log_debug);
	config_release(&old); /* path pointed into it */
	log_info("reload event=done path=%s trace_rules=%zu tls=%s dkim_keys=%zu restart_needed=%zu",
		 cfg->path, trace_rules_count(srv->trace), tls ? "loaded" : "none", dkim->n, fixed.n);
	return 0;
}
