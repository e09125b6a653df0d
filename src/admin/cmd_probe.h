/* cmd_probe: `cursus probe`, split in two files. cmd_probe.c holds the options and
 * the event loop that drives the SMTP client (one discovery connection, then one
 * connection per mechanism tried); cmd_probe_report.c inspects the TLS session,
 * turns what was seen into findings and prints the report (text or JSON). */
#ifndef CURSUS_CMD_PROBE_H
#define CURSUS_CMD_PROBE_H

#include <stddef.h>
#include <openssl/ssl.h>

enum probe_mode { PROBE_STARTTLS, PROBE_TLS, PROBE_PLAIN };

struct probe_tls {
	int done;
	int proto;                    /* TLS1_2_VERSION, ... */
	char version[32], cipher[80];
	char subject[512], issuer[512], not_before[64], not_after[64];
	int have_cert, name_match, chain_ok;
	int expired, not_yet_valid, self_signed, untrusted;
	char verify_error[160];       /* the first verification error, or "" */
};

enum probe_auth_result { AUTH_WORKS, AUTH_FAILS, AUTH_SKIPPED, AUTH_ERROR };

struct probe_auth {
	char mech[48];
	enum probe_auth_result result;
	char reply[512];              /* the server's final reply, or why it was skipped */
	int saw_330;
};

struct probe_line {
	int conn;
	char dir;                     /* 'C', 'S' or '*' */
	char *text;
};

struct probe_caps {
	int valid, starttls;
	char **lines;
	size_t n_lines;
	char *auth, *auth_legacy;     /* mechanisms, space-separated, or NULL */
};

struct probe_finding {
	const char *id;
	int problem;                  /* 1: counts for exit status 1; 0: information */
	char *text;
};

/* Everything the probe learned; filled by cmd_probe.c, read by the report. */
struct probe_result {
	const char *host;
	unsigned port;
	enum probe_mode mode;
	int json, insecure, allow_cleartext, tried_auth;
	const char *user;
	int connect_failed;
	char connect_error[256];
	int banner_code;
	char *banner;
	struct probe_caps before, after; /* before: plain EHLO; after: EHLO over TLS */
	int starttls_failed;
	char starttls_error[512];
	int tls_failed;               /* implicit TLS handshake failed */
	char tls_error[256];
	struct probe_tls tls;
	int mail_tested, mail_accepted;
	char mail_reply[512];
	char lost[512];               /* the discovery connection ended early: why */
	struct probe_auth *auth;
	size_t n_auth;
	struct probe_line *lines;
	size_t n_lines;
	struct probe_finding *findings;
	size_t n_findings;
};

/* Fills t from an established session: version, cipher, certificate, name match
 * against host, and chain verification against the context's trust store. */
void probe_tls_inspect(SSL *ssl, const char *host, struct probe_tls *t);
/* Derives the findings from what was seen. */
void probe_findings(struct probe_result *pr);
/* Prints the report (text or JSON, per pr->json) to stdout. */
void probe_print(const struct probe_result *pr);
/* Returns 0, 1 (a problem found) or 2 (could not connect). */
int probe_exit_status(const struct probe_result *pr);
void probe_result_clear(struct probe_result *pr);
/* `cursus probe --mta-sts DOMAIN ...` (cmd_probe_mtasts.c): the whole command. */
int cmd_probe_mtasts(int argc, char **argv);

/* `cursus probe --dane DOMAIN[:PORT] ...` (cmd_probe_dane.c). */
int cmd_probe_dane(int argc, char **argv);

#endif
