/* sendmail: `cursus sendmail`, the sendmail(8) command line (cmd_sendmail.c: options,
 * sender, exit codes), the reading of the message (sendmail_spool.c) and its handing
 * to cursusd over the local socket (sendmail_submit.c). Exit codes are sysexits.h's,
 * which programs that call sendmail test. Shared by those three files only. */
#ifndef CURSUS_SENDMAIL_H
#define CURSUS_SENDMAIL_H

#include <stddef.h>
#include <stdio.h>

/* How the message is read (sendmail_spool_read). */
struct sendmail_read_opts {
	int extract;              /* -t: recipients from To:, Cc:, Bcc: */
	int dot_ends;             /* without -i/-oi: a line of one "." ends the input */
	const char *from_field;   /* "From: ..." (no CRLF) added when the header has none, or NULL */
	size_t max_line;          /* octets of a line with CRLF and dot-stuffing (max_text_line) */
	size_t max_size;          /* octets of the whole message (max_message_size) */
};

/* The message as it will be sent: CRLF lines, not dot-stuffed (smtpc does that). */
struct sendmail_msg {
	FILE *file;               /* header (Bcc: removed, From: added) and body, rewound */
	size_t size;
	int eightbit;             /* an octet above 127: BODY=8BITMIME */
	char **rcpts;             /* found by -t, as written (no domain added yet) */
	size_t n_rcpts;
};

/* Reads the message from in into an unlinked temporary file. Returns 0, or a
 * sysexits code after printing why (EX_DATAERR: a line or the message too long;
 * EX_IOERR, EX_CANTCREAT). Bare LF, bare CR and CRLF all end a line. */
int sendmail_spool_read(FILE *in, const struct sendmail_read_opts *o, struct sendmail_msg *m);
void sendmail_msg_clear(struct sendmail_msg *m);

/* The envelope and its DSN parameters (sendmail_submit). */
struct sendmail_env {
	const char *sender;       /* "" for the null sender */
	char **rcpts;
	size_t n_rcpts;
	const char *notify;       /* -N: "NEVER" or "SUCCESS,DELAY,FAILURE" forms, or NULL */
	const char *ret;          /* -R: "FULL" or "HDRS", or NULL */
	const char *envid;        /* -V, or NULL */
	int verbose;              /* -v: say the queue id */
};

/* Submits m to the daemon at socket_path. Returns a sysexits code; every failure is
 * said on stderr (EX_TEMPFAIL when the daemon cannot be reached: nothing was sent). */
int sendmail_submit(const char *socket_path, const struct sendmail_env *env, struct sendmail_msg *m);
/* -bs: SMTP between stdin/stdout and the daemon, as is. */
int sendmail_smtp_proxy(const char *socket_path);

#endif
