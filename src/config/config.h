/* config: the configuration, declared as data (name, type, default, bounds) and
 * validated in one place. Errors are reported as "file:line: message".
 *
 * Grammar (one statement per line, '#' starts a comment, values may be quoted "..."):
 *
 *   hostname mail.example.test
 *   local_domains example.test localhost
 *   queue_dir var/queue
 *   max_message_size 36700160          # global limits are defaults for listeners
 *   listener submission {
 *       address 127.0.0.1:2587         # host:port, [v6]:port
 *       tls starttls                   # none | starttls | implicit
 *       max_recipients 100             # any limit may be overridden per listener
 *   }
 *
 * A listener's name is its role: smtp, submission or submissions (several listeners
 * of one role are allowed when given "role" explicitly: `listener smtp2 { role smtp }`).
 * Relative paths are resolved against state_dir, and a relative state_dir against the
 * directory of the configuration file, so that they never depend on the directory the
 * daemon or the admin tool is started in. */
#ifndef CURSUS_CONFIG_H
#define CURSUS_CONFIG_H

#include <stdatomic.h>
/* The file cursusd and cursus read without -c or $CURSUS_CONFIG: the development
 * configuration of the checkout, or, in the programs `make install` and the Debian
 * package build, $(SYSCONFDIR)/cursus/cursus.conf (the Makefile's DEFAULT_CONFIG). */
#ifndef CURSUS_DEFAULT_CONFIG
#define CURSUS_DEFAULT_CONFIG "etc/cursus-dev.conf"
#endif

#include <stddef.h>
#include <stdio.h>

/* ROLE_LOCAL is the daemon's local submission socket (local_socket), never a
 * configured listener: `role local` is not accepted in a listener block. */
enum listener_role { ROLE_SMTP, ROLE_SUBMISSION, ROLE_SUBMISSIONS, ROLE_LOCAL };
enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_IMPLICIT };
/* Outbound TLS policy (relay_tls): none: never STARTTLS; may: whenever offered, going on
 * in clear if it is not; encrypt: TLS required, any certificate; verify: TLS required
 * with a certificate that verifies (chain, name, expiry); dane: RFC 7672 where the
 * next hop's TLSA records are DNSSEC-secure, else may; dane-only: as dane, but no
 * secure TLSA is a deferral; mta-sts: the MX delivery of a domain with an MTA-STS
 * policy (RFC 8461) follows it, else may; auto: dane where it applies, else mta-sts
 * (RFC 8461 section 2: DANE wins). The last four are resolved per delivery and next
 * hop (relay/relay_dane.c, relay/mtasts.h) into one of the first four before a
 * connection is made: code that compares with RELAY_TLS_ENCRYPT never sees them. */
enum relay_tls { RELAY_TLS_NONE, RELAY_TLS_MAY, RELAY_TLS_ENCRYPT, RELAY_TLS_VERIFY,
		 RELAY_TLS_DANE, RELAY_TLS_DANE_ONLY, RELAY_TLS_MTA_STS, RELAY_TLS_AUTO };
/* relay_ip_family: any | ipv4 | ipv6 | prefer-ipv4 | prefer-ipv6 */
enum ip_family { IPF_ANY, IPF_V4_ONLY, IPF_V6_ONLY, IPF_PREFER_V4, IPF_PREFER_V6 };

/* Every limit and policy of a session; global values are the defaults for each
 * listener, and a listener block may override any of them. */
struct limits {
	size_t max_command_line;   /* octets incl. CRLF, RFC 5321 4.5.3.1.4: 512 */
	size_t max_auth_line;      /* AUTH command and SASL responses: 12288 */
	size_t max_text_line;      /* DATA line incl. CRLF, RFC 5321 4.5.3.1.6: 1000 */
	size_t max_message_size;   /* SIZE, 552 5.3.4 */
	unsigned max_recipients;   /* 452 4.5.3 beyond */
	unsigned max_errors;       /* then 421 4.7.0 and close */
	/* Timeouts in milliseconds (written in seconds, fractions allowed). Trickled bytes
	 * extend none of the deadlines: they run from a start, not from the last byte. */
	unsigned command_timeout_ms;  /* idle before a command, and from its first byte to its end: 300 s */
	unsigned data_timeout_ms;     /* idle waiting for the next DATA/BDAT bytes: 300 s */
	unsigned data_phase_timeout_ms; /* from 354 to the final dot, or one BDAT chunk: 600 s */
	unsigned tls_handshake_timeout_ms; /* implicit TLS or STARTTLS handshake: 30 s */
	unsigned session_timeout_ms;  /* a whole session, however busy: 3600 s */
	unsigned stress_threshold;    /* % of max_sessions where stress mode starts; 0: never */
	unsigned stress_timeout_ms;   /* what the timeouts above shrink to under stress: 10 s */
	unsigned max_sessions;     /* concurrent sessions on this listener; 421 4.3.2 beyond */
	unsigned max_client_sessions; /* concurrent sessions of one client address; 421 4.7.0 */
	/* SMTP AUTH policy: sets of MECH_BIT(enum sasl_mech_id). */
	unsigned auth_mechanisms;  /* enabled (offered under TLS) */
	unsigned auth_cleartext;   /* also offered and accepted without TLS: default none */
	int auth_legacy_line;      /* also send "250-AUTH=LOGIN PLAIN" for old Outlook */
	int received_hide_client;  /* Received: omit the address of authenticated clients */
	int received_show_user;    /* Received: name the authenticated user */
};

/* Brute-force budgets for SMTP AUTH (see sasl/authlimit.h). */
struct auth_limits {
	unsigned addr_budget, account_budget, window, cooldown;
	unsigned delay_after, delay_base_ms, delay_max_ms;
	unsigned max_entries;
};

struct listener_conf {
	char *name;
	enum listener_role role;
	char *host;                /* numeric address, e.g. "127.0.0.1" or "::1" */
	char *port;
	enum tls_mode tls;
	struct limits limits;
	int line;                  /* where it was declared, for messages */
	int *opt_lines;            /* see config_listener_line() */
	struct listener_conf *next;
};

/* A next hop as written in relay_host: "host", "host:port", "[host]" or "[host]:port". */
struct nexthop_conf {
	char *host;                /* without brackets, lower case; NULL: not set */
	unsigned port;             /* 0: relay_port */
	int literal;               /* bracketed: no MX lookup of host */
	char *text;                /* as written, lower case (credentials are stored under it) */
};

/* route DOMAIN { ... } (recipient domain; ".example.org" also matches subdomains) and
 * sender_route ADDRESS|@DOMAIN { ... }. Unset fields take the global value. */
struct route_conf {
	char *match;               /* lower case */
	int by_sender;
	char *name;                /* "route example.org" / "sender_route @example.test" */
	struct nexthop_conf relay_host; /* host NULL: MX delivery of the recipient's domain */
	int relay_tls;             /* enum relay_tls, or -1: global */
	char *relay_ca;            /* NULL: global */
	int relay_auth_unverified; /* -1: global */
	char *lmtp;                /* NULL: global; route blocks only (not sender_route) */
	int lmtp_tls;              /* enum relay_tls up to verify, or -1: global */
	char *lmtp_ca;             /* NULL: global */
	int line;
	int *opt_lines;            /* see config_route_line() */
	struct route_conf *next;
};

/* dkim_key DOMAIN SELECTOR FILE (repeatable; docs/dkim.md). */
struct dkim_key_conf {
	char *domain;              /* lower case */
	char *selector;
	char *path;                /* the private key, PEM; resolved against state_dir */
	int line;
};

struct config {
	/* Holders (config_ref); the last config_free frees. A reload builds a new
	 * config, and what runs keeps the one it started with (docs/reload.md). 0: a
	 * config not made by config_load (a test's, on the stack), never freed. */
	atomic_uint refs;
	char *path;
	char *hostname;
	char **local_domains;      /* lower case */
	size_t n_local_domains;
	char *state_dir;           /* the base of relative paths: /var/lib/cursus */
	char *queue_dir;
	char *mail_dir;            /* Maildirs in mail_dir/<domain>/<local-part>/ */
	char *user_db;
	char *user_store;          /* "sqlite:PATH" or "postgresql:CONNINFO"; after loading
				    * always set (from user_db when not given) */
	unsigned store_timeout_ms; /* connecting to the store, and each statement: 5 s */
	unsigned store_connections; /* the PostgreSQL pool of cursus-auth: 4 */
	unsigned scram_iterations; /* SCRAM keys of new and changed passwords: 10000 */
	char *tls_cert;            /* PEM; made self-signed if missing and tls_self_signed */
	char *tls_key;
	char *user;                /* run as this user after start-up (NULL: as started) */
	char *group;               /* and group (NULL: the user's primary group) */
	int tls_self_signed;       /* make cert/key when missing (development; default no) */
	char *tls_min_version;     /* "TLSv1.2" or "TLSv1.3" */
	size_t max_inflight_bytes; /* message data held by all sessions at once; 452 4.3.1 beyond */
	size_t max_client_inflight_bytes; /* the same, of one client address (prefix) */
	unsigned client_ipv6_prefix; /* IPv6 clients counted per this prefix length: 64 */
	unsigned worker_threads;   /* SQLite, hashing */
	unsigned queue_threads;    /* parallel queue writes+fsyncs (group commit) */
	unsigned delivery_threads;
	unsigned retry_min;        /* seconds, first retry after a temporary failure */
	unsigned retry_max;        /* backoff cap */
	unsigned queue_lifetime;   /* seconds before a message is given up (and bounced) */
	unsigned delay_warning_time; /* seconds before a delay DSN (once); 0: never */
	/* Outbound delivery (SPEC "Queue and delivery"). */
	struct nexthop_conf relay_host;  /* global smart host; host NULL: MX delivery */
	enum relay_tls relay_tls;        /* default dane (may without dns_trust_anchor) */
	char *relay_ca;                  /* NULL: the system's default CA store */
	int relay_auth_unverified;       /* send credentials over unverified TLS (never in clear) */
	/* Local mailboxes go to this LMTP server: "unix:/path", "[address]:port" or
	 * "host:port" (looked up at delivery); NULL or "maildir": Maildirs under mail_dir. */
	char *lmtp;
	/* STARTTLS to a TCP LMTP server: none, may, encrypt or verify (enum relay_tls);
	 * -1: may (a UNIX socket never has TLS). lmtp_ca: NULL, the system's store. */
	int lmtp_tls;
	char *lmtp_ca;
	char *dns_resolver;              /* "ADDRESS[@PORT]": forward every lookup there; NULL: resolv.conf */
	char *dns_trust_anchor;          /* DS/DNSKEY file for DNSSEC validation; NULL: nothing is secure */
	unsigned dns_timeout;            /* seconds a lookup may take before it is a temporary failure: 10 */
	unsigned relay_port;             /* TCP port of MX delivery and of relay_host without one: 25 */
	enum ip_family relay_ip_family;
	unsigned relay_max_addresses;    /* addresses tried per delivery before deferring: 10 */
	unsigned relay_concurrency_init; /* connections per destination at first: 5 */
	unsigned relay_concurrency_max;  /* grows by one per success up to this: 20 */
	unsigned relay_rcpts_per_transaction; /* RCPTs in one transaction: 50 */
	unsigned relay_connect_timeout;  /* seconds: 30 */
	unsigned relay_greeting_timeout; /* 220 greeting, RFC 5321 4.5.3.2.1: 300 */
	unsigned relay_command_timeout;  /* EHLO, MAIL, RCPT, ...: 300 */
	unsigned relay_data_timeout;     /* each block of the message written: 180 */
	unsigned relay_dot_timeout;      /* the reply to the final dot, 4.5.3.2.6: 600 */
	unsigned relay_idle_time;        /* seconds an unused connection is kept for reuse: 2 */
	unsigned relay_reuse_limit;      /* messages sent over one connection at most: 100 */
	/* OAuth 2 relay credentials (docs/relay-oauth.md): the whole HTTPS exchange with a
	 * token endpoint (30 s), and how long before it expires a token is refreshed (60 s). */
	unsigned relay_oauth_timeout_ms;
	unsigned relay_oauth_refresh_margin_ms;
	/* MTA-STS (docs/mta-sts.md): the policy cache's directory, one policy fetch (the
	 * whole HTTPS exchange, 10 s) and its size (64 KiB), the threads that fetch (2),
	 * how often cached policies are checked for a new id (a day), and how long after a
	 * failed fetch a domain's policy is not asked for again (300 s). */
	char *mta_sts_cache_dir;
	unsigned mta_sts_fetch_timeout_ms;
	size_t mta_sts_max_size;
	unsigned mta_sts_fetch_threads;
	unsigned mta_sts_refresh_interval_ms;
	unsigned mta_sts_fetch_retry_ms;
	/* SMTP TLS reporting (RFC 8460, docs/tls-rpt.md) */
	int tls_rpt;
	unsigned tls_rpt_interval_ms;
	char *tls_rpt_dir;
	char *tls_rpt_submitter;         /* NULL: hostname */
	char *tls_rpt_from;              /* NULL: noreply-tls-rpt@hostname */
	char *tls_rpt_org;               /* NULL: the submitter */
	unsigned max_received_headers;   /* more Received: fields than this: a loop, bounced 5.4.6 */
	size_t bounce_size_limit;        /* a DSN returns a bigger message's header only: 50000 */
	char *control_socket;            /* UNIX socket of `cursus queue`: run/cursusd.sock */
	char *local_socket;              /* UNIX socket of `cursus sendmail`: run/local.sock */
	/* The local socket's listener: name "local", no TLS, the global limits. In the
	 * configuration (not the daemon) so that sessions hold it with the snapshot they
	 * were accepted under, and a reload replaces it like the others. */
	struct listener_conf local_listener;
	struct route_conf *routes;       /* route and sender_route blocks, in file order */
	int log_debug;
	char *auth_client_ca;      /* CA file for TLS client certificates (EXTERNAL); NULL: none */
	char *pid_file;            /* written at start, for `cursus trace` and scripts */
	char **trace_clients;      /* addresses or CIDR prefixes whose sessions are traced */
	size_t n_trace_clients;
	char **trace_users;        /* users whose sessions are traced from AUTH on */
	size_t n_trace_users;
	char *trace_file;          /* more of both, one "client X" / "user Y" a line */
	char **client_limit_exempt; /* addresses/CIDR free of max_client_sessions */
	size_t n_client_limit_exempt;
	char *metrics_host;        /* metrics_listen: numeric address; NULL: no metrics */
	char *metrics_port;
	unsigned metrics_timeout_ms; /* an HTTP request to read and answer: 10 s */
	struct dkim_key_conf *dkim_keys; /* in file order; none: nothing is signed */
	size_t n_dkim_keys;
	struct auth_limits auth;
	struct limits limits;      /* global defaults */
	struct listener_conf *listeners;
	int *opt_lines;            /* see config_option_line() */
};

/* Parses path; on error prints every error as "file:line: message" to errs and
 * returns NULL. */
struct config *config_load(const char *path, FILE *errs);
/* One more holder of cfg (any thread); returns cfg. */
struct config *config_ref(const struct config *cfg);
/* Drops the caller's hold and sets *cfg to NULL; the last holder frees. */
void config_free(struct config **cfg);
/* config_free for a holder that reads through a const pointer. */
void config_release(const struct config **cfg);
/* domain compared case-insensitively. */
int config_is_local_domain(const struct config *cfg, const char *domain);
const char *config_role_name(enum listener_role role);
/* The line of cfg->path where an option was set: globally, in a listener block or in
 * a route / sender_route block (the first line of a list spread over several); 0 when
 * it was not set there (the default, or for a block the global value). For messages
 * that point the administrator at a setting, such as `cursus check`'s. */
int config_option_line(const struct config *cfg, const char *option);
int config_listener_line(const struct listener_conf *l, const char *option);
int config_route_line(const struct route_conf *r, const char *option);

#endif
