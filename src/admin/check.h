/* check: `cursus check`, the policy lint of a configuration that loads (SPEC
 * "Diagnostics"). Each concern is one module (check_auth.c, check_tls.c,
 * check_relay.c, check_lmtp.c, check_store.c) that adds findings to a report;
 * check_report.c prints them, as text or JSON, and says the exit status.
 *
 * A finding is stable data for scripts: an id that never changes meaning, a severity,
 * the line of the configuration the setting comes from (0: a default nowhere in the
 * file), a message and the fix in one sentence. Errors and warnings are problems
 * (exit 1); notes (info) are not. */
#ifndef CURSUS_CHECK_H
#define CURSUS_CHECK_H

#include <stddef.h>

#include "config/config.h"
#include "util/log.h"

struct userdb;

enum check_severity { CHECK_ERROR, CHECK_WARNING, CHECK_INFO };

struct check_finding {
	enum check_severity severity;
	const char *id;        /* static: "auth-cleartext" */
	int line;              /* 0: "(default)" */
	char *message;         /* one sentence, no final period */
	const char *fix;       /* static, one sentence, no final period */
	size_t seq;            /* the order found in, for a stable sort */
};

struct check_report {
	const char *file;      /* the configuration as given on the command line */
	const struct config *cfg;
	int cert_days;         /* a certificate expiring sooner is reported */
	struct check_finding *findings;
	size_t n;
};

/* Adds a finding; a second one with the same id, line and message is dropped (a
 * global setting inherited by several listeners is reported once). */
void check_add(struct check_report *r, enum check_severity sev, const char *id, int line,
	       const char *fix, const char *fmt, ...) PRINTF_LIKE(6, 7);
/* The line of an option a listener inherits: its block's, else the global one, else
 * the listener's own line (the default applies there). */
int check_listener_line(const struct check_report *r, const struct listener_conf *l,
			const char *option);

/* The lints. The store may be NULL (none yet, or unreadable: store_error says why). */
void check_auth(struct check_report *r);
void check_tls(struct check_report *r);
void check_dkim(struct check_report *r);
void check_relay(struct check_report *r, struct userdb *db);
/* LMTP servers reached over a network without lmtp_tls verify. */
void check_lmtp(struct check_report *r);
void check_store(struct check_report *r, struct userdb *db, const char *store_error);
/* A PostgreSQL store answers (store-unreachable) and has this program's schema
 * (store-schema); SQLite: nothing to say. 1 when it can be used for the rest. */
int check_store_reachable(struct check_report *r, struct userdb *db);

/* Prints the findings sorted by line (defaults last), as text lines
 * "file:line: severity: id: message. Fix: ..." or as one JSON document; returns the
 * exit status (0 or 1). */
int check_report_print(struct check_report *r, int json);
void check_report_clear(struct check_report *r);

#endif
