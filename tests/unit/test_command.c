/* Tests of the command line splitter: a table of lines, then every prefix of a few
 * lines copied into exact-size buffers so an over-read shows under a sanitizer. */
#include "unit.h"
#include "smtp/command.h"

#include <stdlib.h>

static const struct {
	const char *line;
	size_t len;             /* 0: strlen(line) */
	int rc;
	enum smtp_verb verb;
	const char *args;
} command_cases[] = {
	{ "MAIL FROM:<a@b>", 0, 0, CMD_MAIL, "FROM:<a@b>" },
	{ "mail FROM:<a@b> SIZE=10", 0, 0, CMD_MAIL, "FROM:<a@b> SIZE=10" },
	{ "MaIl FROM:<a@b>   ", 0, 0, CMD_MAIL, "FROM:<a@b>" },
	{ "RCPT TO:<x@y>", 0, 0, CMD_RCPT, "TO:<x@y>" },
	{ "EHLO client.example", 0, 0, CMD_EHLO, "client.example" },
	{ "helo x", 0, 0, CMD_HELO, "x" },
	{ "DATA", 0, 0, CMD_DATA, "" },
	{ "DATA ", 0, 0, CMD_DATA, "" },
	{ "DATA    ", 0, 0, CMD_DATA, "" },
	{ "BDAT 100 LAST", 0, 0, CMD_BDAT, "100 LAST" },
	{ "RSET", 0, 0, CMD_RSET, "" },
	{ "noop", 0, 0, CMD_NOOP, "" },
	{ "NOOP anything at all", 0, 0, CMD_NOOP, "anything at all" },
	{ "QUIT", 0, 0, CMD_QUIT, "" },
	{ "HELP MAIL", 0, 0, CMD_HELP, "MAIL" },
	{ "VRFY postmaster", 0, 0, CMD_VRFY, "postmaster" },
	{ "EXPN list", 0, 0, CMD_EXPN, "list" },
	{ "expn", 0, 0, CMD_EXPN, "" },
	{ "STARTTLS", 0, 0, CMD_STARTTLS, "" },
	{ "starttls", 0, 0, CMD_STARTTLS, "" },
	{ "AUTH PLAIN AGZvbwBiYXI=", 0, 0, CMD_AUTH, "PLAIN AGZvbwBiYXI=" },
	/* only one SP separates: a second belongs to the arguments */
	{ "MAIL  FROM:<a@b>", 0, 0, CMD_MAIL, " FROM:<a@b>" },
	/* well-formed but unknown verbs */
	{ "XYZZY", 0, 0, CMD_UNKNOWN, "" },
	{ "TURN", 0, 0, CMD_UNKNOWN, "" },
	{ "STARTTLSX", 0, 0, CMD_UNKNOWN, "" },
	{ "STARTTL", 0, 0, CMD_UNKNOWN, "" },
	{ "MAI FROM:<a@b>", 0, 0, CMD_UNKNOWN, "FROM:<a@b>" },
	{ "GET / HTTP/1.1", 0, 0, CMD_UNKNOWN, "/ HTTP/1.1" },
	/* 8-bit arguments (SMTPUTF8) are the caller's business */
	{ "RCPT TO:<j\xc3\xb6rg@x>", 0, 0, CMD_RCPT, "TO:<j\xc3\xb6rg@x>" },
	/* not commands */
	{ "", 0, -1, CMD_UNKNOWN, NULL },
	{ " ", 0, -1, CMD_UNKNOWN, NULL },
	{ " MAIL FROM:<a@b>", 0, -1, CMD_UNKNOWN, NULL },
	{ "MAIL:FROM", 0, -1, CMD_UNKNOWN, NULL },
	{ "MAIL\tFROM:<a@b>", 0, -1, CMD_UNKNOWN, NULL },
	{ "MAIL FROM:<a@b>\t", 0, -1, CMD_UNKNOWN, NULL },
	{ "MAIL FROM:<a@b>\r", 0, -1, CMD_UNKNOWN, NULL },
	{ "MAIL FROM:<a@b>\n", 0, -1, CMD_UNKNOWN, NULL },
	{ "DATA\r\nQUIT", 0, -1, CMD_UNKNOWN, NULL },
	{ "NOOP \x7f", 0, -1, CMD_UNKNOWN, NULL },
	{ "NOOP \x1b[31m", 0, -1, CMD_UNKNOWN, NULL },
	{ "QUIT\0", 5, -1, CMD_UNKNOWN, NULL },
	{ "MAIL FROM:<a\0@b>", 16, -1, CMD_UNKNOWN, NULL },
	{ "\0QUIT", 5, -1, CMD_UNKNOWN, NULL },
	{ "HELO1 x", 0, -1, CMD_UNKNOWN, NULL },
	{ "123", 0, -1, CMD_UNKNOWN, NULL },
	{ "\xc3\xa9HLO x", 0, -1, CMD_UNKNOWN, NULL },
	{ "EHLO\xa0x", 0, -1, CMD_UNKNOWN, NULL },
};

static void command_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(command_cases) / sizeof(command_cases[0]); i++) {
		size_t len = command_cases[i].len ? command_cases[i].len
						  : strlen(command_cases[i].line);
		char *buf = malloc(len ? len : 1);
		struct smtp_command cmd;
		int rc;

		memcpy(buf, command_cases[i].line, len);
		rc = command_parse(buf, len, &cmd);
		if (rc != command_cases[i].rc)
			fprintf(stderr, "case %zu: \"%s\"\n", i, command_cases[i].line);
		CHECK(rc == command_cases[i].rc);
		if (rc == 0 && command_cases[i].rc == 0) {
			char args[256];
			CHECK(cmd.verb == command_cases[i].verb);
			CHECK(cmd.args_len < sizeof(args));
			snprintf(args, sizeof(args), "%.*s", (int)cmd.args_len, cmd.args);
			CHECK_STR(args, command_cases[i].args);
		}
		free(buf);
	}
}

/* Every prefix parses or fails cleanly, never reads outside the line, and args
 * always lies within it (or is the empty literal). */
static void command_prefixes(void)
{
	static const char *const lines[] = {
		"MAIL FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME",
		"RCPT TO:<\"quoted local\"@[IPv6:2001:db8::1]> NOTIFY=NEVER  ",
		"AUTH PLAIN AGFsaWNlAHNlY3JldA==",
		"STARTTLS",
		"EHLO \x01 bad",
	};
	size_t i, n;
	int ok = 1;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		size_t full = strlen(lines[i]);
		for (n = 0; n <= full; n++) {
			char *buf = malloc(n ? n : 1);
			struct smtp_command cmd;
			int rc;

			memcpy(buf, lines[i], n);
			rc = command_parse(buf, n, &cmd);
			if (rc != 0 && rc != -1)
				ok = 0;
			if (rc == 0) {
				if (cmd.args_len > 0 &&
				    (cmd.args < buf || cmd.args + cmd.args_len > buf + n))
					ok = 0;
				if (cmd.args_len == 0 && cmd.args == NULL)
					ok = 0;
				if (cmd.args_len > 0 && cmd.args[cmd.args_len - 1] == ' ')
					ok = 0;
				if (cmd.verb >= CMD__COUNT)
					ok = 0;
			}
			/* the empty prefix and the control byte are refused */
			if (n == 0 && rc != -1)
				ok = 0;
			free(buf);
		}
	}
	CHECK(ok);

	/* prefixes of "STARTTLS": only the whole word is STARTTLS */
	for (n = 1; n <= 8; n++) {
		struct smtp_command cmd;
		CHECK(command_parse("STARTTLS", n, &cmd) == 0);
		CHECK(cmd.verb == (n == 8 ? CMD_STARTTLS : CMD_UNKNOWN));
	}
}

static void command_names(void)
{
	static const struct {
		enum smtp_verb verb;
		const char *name;
	} names[] = {
		{ CMD_EHLO, "EHLO" }, { CMD_HELO, "HELO" }, { CMD_MAIL, "MAIL" },
		{ CMD_RCPT, "RCPT" }, { CMD_DATA, "DATA" }, { CMD_BDAT, "BDAT" },
		{ CMD_RSET, "RSET" }, { CMD_NOOP, "NOOP" }, { CMD_QUIT, "QUIT" },
		{ CMD_HELP, "HELP" }, { CMD_VRFY, "VRFY" }, { CMD_EXPN, "EXPN" },
		{ CMD_STARTTLS, "STARTTLS" }, { CMD_AUTH, "AUTH" },
	};
	size_t i;
	int v;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct smtp_command cmd;
		char lower[16];
		size_t j, n = strlen(names[i].name);

		CHECK_STR(command_verb_name(names[i].verb), names[i].name);
		/* the name parses back to its verb, in either case */
		for (j = 0; j <= n; j++)
			lower[j] = (char)(names[i].name[j] | (j < n ? 0x20 : 0));
		CHECK(command_parse(names[i].name, n, &cmd) == 0 &&
		      cmd.verb == names[i].verb);
		CHECK(command_parse(lower, n, &cmd) == 0 && cmd.verb == names[i].verb);
	}
	/* every verb has a name, and out-of-range ones do not crash */
	for (v = 0; v < CMD__COUNT; v++)
		CHECK(command_verb_name((enum smtp_verb)v) != NULL);
	CHECK(command_verb_name(CMD__COUNT) != NULL);
	CHECK(command_verb_name((enum smtp_verb)999) != NULL);
}

void unit_main(void)
{
	command_table();
	command_prefixes();
	command_names();
}
