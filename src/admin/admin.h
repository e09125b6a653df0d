/* admin: the pieces shared by the cursus tool's command groups. Each group is one
 * file (cmd_user.c, cmd_alias.c, cmd_check.c); main.c parses the global options
 * and dispatches. Messages go to stderr as "cursus: ..."; no secret is ever printed
 * or taken from argv. */
#ifndef CURSUS_ADMIN_H
#define CURSUS_ADMIN_H

#include <stddef.h>

#include "store/userdb.h"
#include "util/log.h"

/* Exit codes. */
#define ADMIN_EXIT_OK 0
#define ADMIN_EXIT_FAIL 1
#define ADMIN_EXIT_USAGE 2
#define ADMIN_EXIT_TEMPFAIL 75   /* sysexits EX_TEMPFAIL: the daemon is unreachable */

/* Longest password accepted, in octets. */
#define ADMIN_PASSWORD_MAX 1024

/* Prints "cursus: message" to stderr. */
void admin_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prints the usage text to stderr and returns ADMIN_EXIT_USAGE. */
int admin_usage_error(void);

/* Loads the configuration, creates the user database's directory if missing and
 * opens it (creating the schema). Prints the reason and returns NULL on failure. */
struct userdb *admin_userdb_open(const char *config_path);

/* Reads a password: from the terminal without echo (twice when confirm is set) when
 * stdin is a terminal, else one line of stdin. Returns a malloc'd string to be freed
 * with xfree_secret(p, strlen(p)), or NULL after printing why (empty, mismatch, too
 * long, no input). */
char *admin_password_read(int confirm);
/* A longer secret (an OAuth client secret or refresh token): one line, from the
 * terminal without echo after prompt, else of stdin; never asked twice. "" when
 * optional and the line is empty. As admin_password_read otherwise (what names it
 * in the errors). */
#define ADMIN_SECRET_MAX 8192
char *admin_secret_read(const char *prompt, const char *what, int optional);

/* Sends one request line (LF-terminated) to the control socket at path and reads the
 * one-line reply (*reply_r malloc'd, without the LF). Returns 0, or an errno value:
 * ENOENT/ECONNREFUSED when nobody listens, ETIMEDOUT, EPROTO for a broken reply. */
int admin_control_request(const char *path, const char *request, char **reply_r);

struct qstore;
/* `cursus queue list [--json]` and `cursus queue show ID` (queue_show.c). */
int admin_queue_list(struct qstore *qs, int json);
int admin_queue_show(struct qstore *qs, const char *id);

/* The command groups: argv[0] is the group name. Each returns an exit code. */
int cmd_user(const char *config_path, int argc, char **argv);
int cmd_alias(const char *config_path, int argc, char **argv);
int cmd_check(const char *config_path, int argc, char **argv);
/* `cursus probe`: a client-side check of an SMTP submission server; it ignores
 * config_path (it needs no configuration). */
int cmd_probe(const char *config_path, int argc, char **argv);
int cmd_trace(const char *config_path, int argc, char **argv);
/* `cursus mx DOMAIN`: the MX targets outbound delivery would try (DNS only, no
 * configuration). Exit 75 for a temporary DNS failure. */
int cmd_mx(const char *config_path, int argc, char **argv);
int cmd_relay_auth(const char *config_path, int argc, char **argv);
/* `cursus dkim keygen`: a DKIM key and its DNS record (no configuration needed). */
int cmd_dkim(const char *config_path, int argc, char **argv);
/* `cursus store init|migrate|copy FROM TO` (cmd_store.c). */
int cmd_store(const char *config_path, int argc, char **argv);
int cmd_queue(const char *config_path, int argc, char **argv);
/* `cursus sendmail` (also run as sendmail), the sendmail(8) command line; mailq (queue
 * list) and newaliases (nothing to do) for the other names programs call. Exit codes
 * from sysexits.h (cmd_sendmail.c). */
int cmd_sendmail(const char *config_path, int argc, char **argv);
int cmd_mailq(const char *config_path);
int cmd_newaliases(void);
/* `cursus checkpassword REPLY-PROGRAM`: the checkpassword interface (Dovecot's passdb
 * driver), user and password on fd 3; exit codes are that protocol's, not ADMIN_EXIT_*. */
int cmd_checkpassword(const char *config_path, int argc, char **argv);
/* The rest of `cursus user` (grant, revoke, app-password, cert, show): called by
 * cmd_user for a subcommand it does not know; prints the usage when none fits. */
int cmd_user_auth(const char *config_path, int argc, char **argv);

#endif
