/* config_table: every option of the configuration file as one row of data (name, type,
 * default, bounds, where it lives, where it may appear); adding an option is adding a
 * row here, one to N_OPTS, and its documentation (etc/cursus.conf.example,
 * man/cursus.conf.5). */
#include "config/config_table.h"

#include <stddef.h>

#include "config/config_lex.h"
#include "sasl/sasl.h"

const struct opt_choice role_choices[] = {
	{ "smtp", ROLE_SMTP }, { "submission", ROLE_SUBMISSION },
	{ "submissions", ROLE_SUBMISSIONS }, { NULL, 0 },
};
static const struct opt_choice tls_choices[] = {
	{ "none", TLS_NONE }, { "starttls", TLS_STARTTLS }, { "implicit", TLS_IMPLICIT },
	{ NULL, 0 },
};
static const struct opt_choice relay_tls_choices[] = {
	{ "none", RELAY_TLS_NONE }, { "may", RELAY_TLS_MAY }, { "encrypt", RELAY_TLS_ENCRYPT },
	{ "verify", RELAY_TLS_VERIFY }, { "dane", RELAY_TLS_DANE },
	{ "dane-only", RELAY_TLS_DANE_ONLY }, { "mta-sts", RELAY_TLS_MTA_STS },
	{ "auto", RELAY_TLS_AUTO }, { NULL, 0 },
};
/* -1, the default, is may for a TCP server (route/router.c). */
static const struct opt_choice lmtp_tls_choices[] = {
	{ "none", RELAY_TLS_NONE }, { "may", RELAY_TLS_MAY }, { "encrypt", RELAY_TLS_ENCRYPT },
	{ "verify", RELAY_TLS_VERIFY }, { NULL, 0 },
};
static const struct opt_choice ipf_choices[] = {
	{ "any", IPF_ANY }, { "ipv4", IPF_V4_ONLY }, { "ipv6", IPF_V6_ONLY },
	{ "prefer-ipv4", IPF_PREFER_V4 }, { "prefer-ipv6", IPF_PREFER_V6 }, { NULL, 0 },
};
static const struct opt_choice tlsver_choices[] = {
	{ "TLSv1.2", 0 }, { "TLSv1.3", 1 }, { NULL, 0 },
};

/* Without a password-equivalent secret on disk: CRAM-MD5 and DIGEST-MD5 are opt-in. */
#define MECHS_DEFAULT (MECH_BIT(MECH_SCRAM_SHA_256_PLUS) | MECH_BIT(MECH_SCRAM_SHA_256) | \
		       MECH_BIT(MECH_SCRAM_SHA_1_PLUS) | MECH_BIT(MECH_SCRAM_SHA_1) | \
		       MECH_BIT(MECH_PLAIN) | MECH_BIT(MECH_LOGIN))

#define DAY 86400ULL
#define MS 1000ULL    /* T_SECONDS are stored in milliseconds */

#define G_STR(n, t, d, f) { n, t, S_GLOBAL, d, 0, 0, 0, offsetof(struct config, f), 0, NULL, 0 }
#define G_NUM(n, t, d, lo, hi, f) \
	{ n, t, S_GLOBAL, NULL, d, lo, hi, offsetof(struct config, f), 0, NULL, 0 }
#define L_NUM(n, t, d, lo, hi, f) \
	{ n, t, S_BOTH, NULL, d, lo, hi, offsetof(struct limits, f), 0, NULL, 0 }
#define A_NUM(n, d, lo, hi, f) \
	{ n, T_UINT, S_GLOBAL, NULL, d, lo, hi, offsetof(struct config, auth.f), 0, NULL, 0 }
#define R_OPT(n, t, d, f, ch) { n, t, S_RELAY, NULL, d, 0, 1, offsetof(struct config, f), 0, \
				ch, offsetof(struct route_conf, f) }

const struct opt opt_table[] = {
	/* Global. */
	G_STR("hostname", T_HOST, NULL, hostname),
	{ "local_domains", T_LIST, S_GLOBAL, NULL, 0, 0, 0, offsetof(struct config, local_domains),
	  offsetof(struct config, n_local_domains), NULL , 0 },
	/* Every other relative path is relative to state_dir (docs/privileges.md). */
	G_STR("state_dir", T_PATH, "/var/lib/cursus", state_dir),
	G_STR("queue_dir", T_PATH, "queue", queue_dir),
	G_STR("mail_dir", T_PATH, "mail", mail_dir),
	/* In a directory of its own: the mail user must create SQLite's -wal and -shm
	 * beside it, and state_dir stays root's (it holds tls/). */
	G_STR("user_db", T_PATH, "db/users.db", user_db),
	/* sqlite:PATH (user_db's synonym) or postgresql:CONNINFO (docs/cluster.md). */
	G_STR("user_store", T_STRING, NULL, user_store),
	G_NUM("store_timeout", T_SECONDS, 5 * MS, MS / 10, 600 * MS, store_timeout_ms),
	G_NUM("store_connections", T_UINT, 4, 1, 64, store_connections),
	G_STR("tls_cert", T_PATH, "tls/cert.pem", tls_cert),
	G_STR("tls_key", T_PATH, "tls/key.pem", tls_key),
	/* Unset: cursusd keeps the identity it was started with. */
	G_STR("user", T_STRING, NULL, user),
	G_STR("group", T_STRING, NULL, group),
	/* Off by default: a self-signed certificate is for development, set explicitly. */
	G_NUM("tls_self_signed", T_BOOL, 0, 0, 1, tls_self_signed),
	/* SCRAM keys made by `cursus user add|passwd`; RFC 7677 4's floor is 4096. */
	G_NUM("scram_iterations", T_UINT, 10000, 4096, 10000000, scram_iterations),
	{ "tls_min_version", T_STRING, S_GLOBAL, "TLSv1.2", 0, 0, 0,
	  offsetof(struct config, tls_min_version), 0, tlsver_choices , 0 },
	G_NUM("max_inflight_bytes", T_SIZE, GIB, MIB, 64 * GIB, max_inflight_bytes),
	G_NUM("max_client_inflight_bytes", T_SIZE, 128 * MIB, MIB, 64 * GIB, max_client_inflight_bytes),
	/* IPv6 clients are counted per prefix for max_client_sessions and
	 * max_client_inflight_bytes: one subscriber usually holds a whole /64. */
	G_NUM("client_ipv6_prefix", T_UINT, 64, 16, 128, client_ipv6_prefix),
	G_NUM("worker_threads", T_UINT, 4, 1, 256, worker_threads),
	G_NUM("queue_threads", T_UINT, 16, 1, 1024, queue_threads),
	G_NUM("delivery_threads", T_UINT, 4, 1, 1024, delivery_threads),
	G_NUM("retry_min", T_UINT, 300, 1, DAY, retry_min),
	G_NUM("retry_max", T_UINT, 3600, 1, 7 * DAY, retry_max),
	/* The minimum of 1 is for tests that expire mail; in production, days. */
	G_NUM("queue_lifetime", T_UINT, 5 * DAY, 1, 30 * DAY, queue_lifetime),
	G_NUM("delay_warning_time", T_UINT, 4 * 3600, 0, 30 * DAY, delay_warning_time),
	G_NUM("max_received_headers", T_UINT, 100, 1, 1000, max_received_headers),
	/* Postfix's default: a returned message is read into memory to be built. */
	G_NUM("bounce_size_limit", T_SIZE, 50000, 1, 64 * MIB, bounce_size_limit),
	G_STR("control_socket", T_PATH, "run/cursusd.sock", control_socket),
	/* Local submission (`cursus sendmail`): mode 0666, any local user may submit. */
	G_STR("local_socket", T_PATH, "run/local.sock", local_socket),
	/* Outbound delivery. The relay_* policy is global, overridable per route block. */
	R_OPT("relay_host", T_NEXTHOP, 0, relay_host, NULL),
	/* auto: DANE where the MX host's TLSA records are secure, else the domain's MTA-STS
	 * policy, else may (docs/tls-policy.md). Without dns_trust_anchor nothing is secure
	 * and it is mta-sts; without either it is may. */
	R_OPT("relay_tls", T_ENUM, RELAY_TLS_AUTO, relay_tls, relay_tls_choices),
	R_OPT("relay_ca", T_PATH, 0, relay_ca, NULL),
	R_OPT("relay_auth_unverified", T_BOOL, 0, relay_auth_unverified, NULL),
	/* Local mailboxes by LMTP (global default; per domain in a route block). */
	R_OPT("lmtp", T_LMTP, 0, lmtp, NULL),
	/* No default in the table: it depends on the server (may for TCP, none for a
	 * socket), decided by router_policy. */
	R_OPT("lmtp_tls", T_ENUM, (unsigned long long)-1, lmtp_tls, lmtp_tls_choices),
	R_OPT("lmtp_ca", T_PATH, 0, lmtp_ca, NULL),
	G_STR("dns_resolver", T_RESOLVER, NULL, dns_resolver),
	/* DNSSEC trust anchor (DS or DNSKEY records, ub_ctx_add_ta_file): unset, no answer
	 * is secure and DANE never applies. */
	G_STR("dns_trust_anchor", T_PATH, NULL, dns_trust_anchor),
	G_NUM("dns_timeout", T_UINT, 10, 1, 300, dns_timeout),
	G_NUM("relay_port", T_UINT, 25, 1, 65535, relay_port),
	{ "relay_ip_family", T_ENUM, S_GLOBAL, NULL, IPF_ANY, 0, 0,
	  offsetof(struct config, relay_ip_family), 0, ipf_choices, 0 },
	G_NUM("relay_max_addresses", T_UINT, 10, 1, 100, relay_max_addresses),
	G_NUM("relay_concurrency_init", T_UINT, 5, 1, 1000, relay_concurrency_init),
	G_NUM("relay_concurrency_max", T_UINT, 20, 1, 1000, relay_concurrency_max),
	G_NUM("relay_rcpts_per_transaction", T_UINT, 50, 1, 100000, relay_rcpts_per_transaction),
	G_NUM("relay_connect_timeout", T_UINT, 30, 1, 3600, relay_connect_timeout),
	G_NUM("relay_greeting_timeout", T_UINT, 300, 1, DAY, relay_greeting_timeout),
	G_NUM("relay_command_timeout", T_UINT, 300, 1, DAY, relay_command_timeout),
	G_NUM("relay_data_timeout", T_UINT, 180, 1, DAY, relay_data_timeout),
	G_NUM("relay_dot_timeout", T_UINT, 600, 1, DAY, relay_dot_timeout),
	/* 0: a connection is closed as soon as its deliveries are done. */
	G_NUM("relay_idle_time", T_UINT, 2, 0, 3600, relay_idle_time),
	G_NUM("relay_reuse_limit", T_UINT, 100, 1, 100000, relay_reuse_limit),
	/* OAuth 2 relay credentials: a token request to the endpoint (at most 45 s: the
	 * network process waits 60 s for cursus-auth's answer), and the refresh ahead of
	 * a token's expiry. */
	G_NUM("relay_oauth_timeout", T_SECONDS, 30 * MS, MS / 100, 45 * MS, relay_oauth_timeout_ms),
	G_NUM("relay_oauth_refresh_margin", T_SECONDS, 60 * MS, 0, 3600 * MS,
	      relay_oauth_refresh_margin_ms),
	/* MTA-STS (RFC 8461): policies kept across restarts under state_dir; a fetch
	 * within the time and size RFC 8461 3.3 suggests at most (a minute, 64 KiB). */
	G_STR("mta_sts_cache_dir", T_PATH, "mta-sts", mta_sts_cache_dir),
	G_NUM("mta_sts_fetch_timeout", T_SECONDS, 10 * MS, MS / 100, 60 * MS, mta_sts_fetch_timeout_ms),
	G_NUM("mta_sts_max_size", T_SIZE, 64 * KIB, 1 * KIB, 64 * KIB, mta_sts_max_size),
	G_NUM("mta_sts_fetch_threads", T_UINT, 2, 1, 64, mta_sts_fetch_threads),
	G_NUM("mta_sts_refresh_interval", T_SECONDS, DAY * MS, MS / 10, 30 * DAY * MS,
	      mta_sts_refresh_interval_ms),
	G_NUM("mta_sts_fetch_retry", T_SECONDS, 300 * MS, MS / 100, DAY * MS, mta_sts_fetch_retry_ms),
	/* SMTP TLS reporting (RFC 8460): counts per UTC day (tls_rpt_interval, shorter in
	 * tests), kept under state_dir, reports mailed through the queue. */
	G_NUM("tls_rpt", T_BOOL, 0, 0, 1, tls_rpt),
	G_NUM("tls_rpt_interval", T_SECONDS, DAY * MS, MS / 100, 7 * DAY * MS, tls_rpt_interval_ms),
	G_STR("tls_rpt_dir", T_PATH, "tls-rpt", tls_rpt_dir),
	G_STR("tls_rpt_submitter", T_HOST, NULL, tls_rpt_submitter),
	G_STR("tls_rpt_from", T_STRING, NULL, tls_rpt_from),
	G_STR("tls_rpt_org", T_STRING, NULL, tls_rpt_org),
	G_NUM("log_debug", T_BOOL, 0, 0, 1, log_debug),
	G_STR("auth_client_ca", T_PATH, NULL, auth_client_ca),
	G_STR("pid_file", T_PATH, "run/cursusd.pid", pid_file),
	/* Protocol trace: sessions of these clients (addresses or CIDR prefixes) or users
	 * are logged command by command; more come from trace_file (`cursus trace`). */
	{ "trace_clients", T_WORDS, S_GLOBAL, NULL, 0, 0, 0, offsetof(struct config, trace_clients),
	  offsetof(struct config, n_trace_clients), NULL , 0 },
	{ "trace_users", T_WORDS, S_GLOBAL, NULL, 0, 0, 0, offsetof(struct config, trace_users),
	  offsetof(struct config, n_trace_users), NULL , 0 },
	G_STR("trace_file", T_PATH, "trace", trace_file),
	/* DKIM signing of authenticated and local mail (docs/dkim.md); none: off. */
	{ "dkim_key", T_DKIM, S_GLOBAL, NULL, 0, 0, 0, offsetof(struct config, dkim_keys),
	  offsetof(struct config, n_dkim_keys), NULL, 0 },
	{ "client_limit_exempt", T_WORDS, S_GLOBAL, NULL, 0, 0, 0,
	  offsetof(struct config, client_limit_exempt),
	  offsetof(struct config, n_client_limit_exempt), NULL , 0 },
	/* Prometheus metrics over HTTP (docs/metrics.md); unset: off. */
	{ "metrics_listen", T_ADDRESS, S_GLOBAL, NULL, 0, 0, 0, offsetof(struct config, metrics_host),
	  offsetof(struct config, metrics_port), NULL, 0 },
	G_NUM("metrics_timeout", T_SECONDS, 10 * MS, MS / 10, 3600 * MS, metrics_timeout_ms),
	/* Brute force (SPEC "SMTP AUTH"): failures per address and per account. */
	A_NUM("auth_fail_addr_budget", 10, 1, 1024, addr_budget),
	A_NUM("auth_fail_account_budget", 30, 1, 1024, account_budget),
	A_NUM("auth_fail_window", 900, 1, DAY, window),
	A_NUM("auth_fail_cooldown", 900, 1, DAY, cooldown),
	A_NUM("auth_fail_delay_after", 3, 0, 1000, delay_after),
	A_NUM("auth_fail_delay_base", 500, 0, 60000, delay_base_ms),
	A_NUM("auth_fail_delay_max", 8000, 0, 600000, delay_max_ms),
	A_NUM("auth_fail_max_entries", 65536, 16, 16777216, max_entries),
	/* Limits: global defaults, overridable per listener. */
	L_NUM("max_command_line", T_SIZE, 512, 512, 64 * KIB, max_command_line),
	L_NUM("max_auth_line", T_SIZE, 12288, 512, 64 * KIB, max_auth_line),
	/* Below the connection's 256 KiB input watermark, so a line always fits. */
	L_NUM("max_text_line", T_SIZE, 1000, 1000, 128 * KIB, max_text_line),
	L_NUM("max_message_size", T_SIZE, 35 * MIB, 1024, 2 * GIB, max_message_size),
	L_NUM("max_recipients", T_UINT, 100, 1, 100000, max_recipients),
	L_NUM("max_errors", T_UINT, 10, 1, 1000, max_errors),
	/* Timeouts in seconds with a fraction (sub-second values keep tests fast). */
	L_NUM("command_timeout", T_SECONDS, 300 * MS, MS / 10, DAY * MS, command_timeout_ms),
	L_NUM("data_timeout", T_SECONDS, 300 * MS, MS / 10, DAY * MS, data_timeout_ms),
	L_NUM("data_phase_timeout", T_SECONDS, 600 * MS, MS / 10, DAY * MS, data_phase_timeout_ms),
	L_NUM("tls_handshake_timeout", T_SECONDS, 30 * MS, MS / 10, 3600 * MS, tls_handshake_timeout_ms),
	L_NUM("session_timeout", T_SECONDS, 3600 * MS, MS / 10, 7 * DAY * MS, session_timeout_ms),
	/* Stress mode: at this percentage of max_sessions (0: never) the timeouts above,
	 * but for data_phase_timeout, shrink to stress_timeout. */
	L_NUM("stress_threshold", T_UINT, 80, 0, 100, stress_threshold),
	L_NUM("stress_timeout", T_SECONDS, 10 * MS, MS / 10, 3600 * MS, stress_timeout_ms),
	L_NUM("max_sessions", T_UINT, 1000, 1, 1000000, max_sessions),
	L_NUM("max_client_sessions", T_UINT, 50, 1, 1000000, max_client_sessions),
	{ "auth_mechanisms", T_MECHS, S_BOTH, NULL, MECHS_DEFAULT, 0, 0,
	  offsetof(struct limits, auth_mechanisms), 0, NULL , 0 },
	{ "auth_cleartext_mechanisms", T_MECHS, S_BOTH, NULL, 0, 0, 0,
	  offsetof(struct limits, auth_cleartext), 0, NULL , 0 },
	L_NUM("auth_legacy_line", T_BOOL, 0, 0, 1, auth_legacy_line),
	L_NUM("received_hide_client", T_BOOL, 0, 0, 1, received_hide_client),
	L_NUM("received_show_user", T_BOOL, 0, 0, 1, received_show_user),
	/* Listener only; their defaults depend on the listener, see check_listener()
	 * (config_check.c). */
	{ "role", T_ENUM, S_LISTENER, NULL, 0, 0, 0, offsetof(struct listener_conf, role), 0,
	  role_choices , 0 },
	{ "address", T_ADDRESS, S_LISTENER, NULL, 0, 0, 0, offsetof(struct listener_conf, host),
	  offsetof(struct listener_conf, port), NULL , 0 },
	{ "tls", T_ENUM, S_LISTENER, NULL, 0, 0, 0, offsetof(struct listener_conf, tls), 0,
	  tls_choices , 0 },
};
/* A row added or removed without N_OPTS must not build. */
_Static_assert(sizeof(opt_table) / sizeof(opt_table[0]) == N_OPTS,
	       "N_OPTS (config_table.h) is not the number of rows of opt_table");
_Static_assert(sizeof(enum listener_role) == sizeof(int) && sizeof(enum tls_mode) == sizeof(int)
	       && sizeof(enum relay_tls) == sizeof(int) && sizeof(enum ip_family) == sizeof(int),
	       "T_ENUM stores an int");

