/* fuzz_command: the SMTP command line splitter. Checks its promises: an accepted line
 * holds no control byte (so no NUL, CR or LF reaches a log, reply or queue record
 * through an argument), the verb is the line's first word and case-insensitive,
 * and the arguments lie inside the line with trailing spaces removed.
 * Input: the command line, CRLF already removed. */
#include "fuzz.h"
#include "smtp/command.h"

#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = fuzz_copy(data, size);
	struct smtp_command cmd, again;
	size_t vlen, i;

	memset(&cmd, 0xa5, sizeof(cmd));
	if (command_parse(line, size, &cmd) < 0) {
		free(line);
		return 0;
	}
	FUZZ_CHECK(size > 0);
	for (i = 0; i < size; i++)
		FUZZ_CHECK((unsigned char)line[i] >= 0x20 && (unsigned char)line[i] != 0x7f);
	FUZZ_CHECK((unsigned)cmd.verb < CMD__COUNT);
	FUZZ_CHECK(command_verb_name(cmd.verb) != NULL);

	for (vlen = 0; vlen < size && line[vlen] != ' '; vlen++)
		FUZZ_CHECK((line[vlen] >= 'A' && line[vlen] <= 'Z') || (line[vlen] >= 'a' && line[vlen] <= 'z'));
	FUZZ_CHECK(vlen > 0);
	if (cmd.verb != CMD_UNKNOWN) {
		const char *name = command_verb_name(cmd.verb);
		FUZZ_CHECK(strlen(name) == vlen && strncasecmp(line, name, vlen) == 0);
	}

	FUZZ_CHECK(cmd.args != NULL);
	if (cmd.args_len == 0) {
		FUZZ_CHECK(cmd.args[0] == '\0' || (cmd.args >= line && cmd.args <= line + size));
	} else {
		FUZZ_CHECK(cmd.args == line + vlen + 1);
		FUZZ_CHECK(vlen + 1 + cmd.args_len <= size);
		FUZZ_CHECK(cmd.args[cmd.args_len - 1] != ' ');
		for (i = vlen + 1 + cmd.args_len; i < size; i++)
			FUZZ_CHECK(line[i] == ' ');
	}

	/* Case-insensitive: the upper-cased verb gives the same result. */
	char *upper = fuzz_copy(data, size);
	for (i = 0; i < vlen; i++)
		if (upper[i] >= 'a' && upper[i] <= 'z')
			upper[i] = (char)(upper[i] - 'a' + 'A');
	FUZZ_CHECK(command_parse(upper, size, &again) == 0);
	FUZZ_CHECK(again.verb == cmd.verb && again.args_len == cmd.args_len);
	free(upper);
	free(line);
	return 0;
}
