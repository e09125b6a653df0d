/* reload: SIGHUP. The configuration file is read again and everything that can change
 * while cursusd runs takes effect for what starts from now on (sessions, routing
 * decisions, deliveries); what is under way keeps the configuration it started with,
 * held by reference. What only a restart can change (addresses bound, directories,
 * identity, thread counts, cursus-auth's settings) keeps its running value and is
 * named in one warning. A file that does not load, or a certificate that does not,
 * changes nothing. docs/reload.md says which option is which. */
#ifndef CURSUS_RELOAD_H
#define CURSUS_RELOAD_H

struct config;
struct smtp_server;
struct sched;
struct dns;
struct listener_conf;
struct auth_limits;
struct authlimit_conf;

/* What a reload updates; all of it used on the loop thread only. */
struct reload_target {
	struct smtp_server *srv;
	struct sched *sched;
	struct dns *dns;
	const struct config *start; /* as started: the reference for restart-only options */
};

/* Reads srv->cfg->path and applies it. Logs "reload event=done ..." and returns 0, or
 * logs why and returns -1 with the running configuration untouched. Loop thread. */
int reload_apply(struct reload_target *t);

/* Warns that a listener lets passwords cross the wire in clear (at start and at every
 * reload: the product promises the opposite unless told so). */
void reload_cleartext_warn(const struct listener_conf *lc);
/* The brute-force limiter's settings from the configuration's, at start and reload. */
void reload_authlimit_conf(const struct auth_limits *a, struct authlimit_conf *ac_r);

#endif
