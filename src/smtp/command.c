/* command: splits one SMTP command line into its verb and arguments. Pure and
 * allocation-free: the arguments point into the caller's line. It promises that a
 * line it accepts holds no control byte at all, so nothing downstream (logs, replies,
 * queue records) can be fed a NUL, CR or LF through a command argument. */
#include "smtp/command.h"

#include <string.h>
#include <strings.h>

static const char *const command_names[CMD__COUNT] = {
	[CMD_UNKNOWN] = "UNKNOWN", [CMD_EHLO] = "EHLO",         [CMD_HELO] = "HELO",
	[CMD_MAIL] = "MAIL",       [CMD_RCPT] = "RCPT",         [CMD_DATA] = "DATA",
	[CMD_BDAT] = "BDAT",       [CMD_RSET] = "RSET",         [CMD_NOOP] = "NOOP",
	[CMD_QUIT] = "QUIT",       [CMD_HELP] = "HELP",         [CMD_VRFY] = "VRFY",
	[CMD_EXPN] = "EXPN",       [CMD_STARTTLS] = "STARTTLS", [CMD_AUTH] = "AUTH",
};

static int command_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int command_parse(const char *line, size_t len, struct smtp_command *cmd_r)
{
	size_t i, vlen;

	if (len == 0)
		return -1;
	/* RFC 5321 2.3.8: commands are ASCII text; "CR and LF ... MUST NOT appear
	 * other than as the line terminator", and we refuse every other control too. */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			return -1;
	}
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		if (!command_is_alpha((unsigned char)line[vlen]))
			return -1;
	if (vlen == 0)
		return -1;

	/* RFC 5321 2.4: "Verbs and argument values ... are not case sensitive". */
	cmd_r->verb = CMD_UNKNOWN;
	for (i = 1; i < CMD__COUNT; i++) {
		if (strlen(command_names[i]) == vlen &&
		    strncasecmp(line, command_names[i], vlen) == 0) {
			cmd_r->verb = (enum smtp_verb)i;
			break;
		}
	}

	/* RFC 5321 4.1.1: the verb is followed by one SP; trailing SPs are tolerated
	 * because clients send them and they carry no meaning. */
	if (vlen < len) {
		size_t alen = len - vlen - 1;
		cmd_r->args = line + vlen + 1;
		while (alen > 0 && cmd_r->args[alen - 1] == ' ')
			alen--;
		cmd_r->args_len = alen;
		if (alen == 0)
			cmd_r->args = "";
	} else {
		cmd_r->args = "";
		cmd_r->args_len = 0;
	}
	return 0;
}

const char *command_verb_name(enum smtp_verb verb)
{
	if ((unsigned)verb >= CMD__COUNT)
		return "UNKNOWN";
	return command_names[verb];
}
