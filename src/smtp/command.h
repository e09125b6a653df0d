/* command: splits one SMTP command line (CRLF already removed) into verb and
 * arguments. Pure: no I/O, no state. */
#ifndef CURSUS_COMMAND_H
#define CURSUS_COMMAND_H

#include <stddef.h>

enum smtp_verb {
	CMD_UNKNOWN, CMD_EHLO, CMD_HELO, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_BDAT,
	CMD_RSET, CMD_NOOP, CMD_QUIT, CMD_HELP, CMD_VRFY, CMD_EXPN, CMD_STARTTLS,
	CMD_AUTH, CMD__COUNT
};

struct smtp_command {
	enum smtp_verb verb;
	const char *args;   /* points into the line, after the verb and one SP; "" if none */
	size_t args_len;    /* trailing spaces removed */
};

/* Returns 0 on success (CMD_UNKNOWN for an unrecognised but well-formed verb), -1 when
 * the line is not a command at all (empty, NUL or control bytes, verb not alphabetic).
 * Verbs are case-insensitive (RFC 5321 2.4). */
int command_parse(const char *line, size_t len, struct smtp_command *cmd_r);
const char *command_verb_name(enum smtp_verb verb);

#endif
