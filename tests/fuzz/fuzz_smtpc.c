/* fuzz_smtpc: the SMTP client's pure reply helpers. Every line of the input (split
 * on LF, a CR before it dropped) goes through smtpc_parse_line; then the lines make
 * one reply, its code taken from the first line (250 when that does not parse), and
 * smtpc_caps_parse reads it twice (the second call must free what the first left).
 * Checks: a parsed code is a RFC 5321 4.2 reply code, the text offset lies in the
 * line, the capabilities keep every line after the greeting as sent, and each word of
 * the AUTH lists is found by smtpc_list_has. */
#include "fuzz.h"
#include "client/smtpc.h"

static void caps_check_list(const char *list)
{
	char *copy, *w, *save = NULL;

	if (list == NULL)
		return;
	FUZZ_CHECK(list[0] != ' ');
	copy = strdup(list);
	FUZZ_CHECK(copy != NULL);
	for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		FUZZ_CHECK(smtpc_list_has(list, w));
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpc_reply r = { 0 };
	struct smtpc_caps caps = { 0 };
	size_t start = 0;
	int first = 1;

	r.code = 250;
	r.lines = calloc(SMTPC_REPLY_LINES_MAX, sizeof(char *));
	FUZZ_CHECK(r.lines != NULL);
	while (start <= size && r.n_lines < SMTPC_REPLY_LINES_MAX) {
		const uint8_t *lf = memchr(data + start, '\n', size - start);
		size_t end = lf ? (size_t)(lf - data) : size, len = end - start, off = 9999;
		int more = 7, code;
		char *line;

		if (len > 0 && data[start + len - 1] == '\r')
			len--;
		line = fuzz_copy(data + start, len);
		code = smtpc_parse_line(line, len, &more, &off);
		if (code < 0) {
			FUZZ_CHECK(code == -1);
			off = 0;
		} else {
			FUZZ_CHECK(code >= 200 && code <= 559 && code % 100 <= 59);
			FUZZ_CHECK(off == len || off == 4);
			FUZZ_CHECK(more == (len > 3 && line[3] == '-'));
			if (first)
				r.code = code;
		}
		FUZZ_CHECK(off <= len);
		r.lines[r.n_lines++] = fuzz_strndup((const uint8_t *)line + off, len - off);
		free(line);
		first = 0;
		if (!lf)
			break;
		start = end + 1;
	}

	for (int pass = 0; pass < 2; pass++) {
		smtpc_caps_parse(&caps, &r);
		if (r.code != 250) {
			FUZZ_CHECK(!caps.valid && caps.n_lines == 0 && caps.auth == NULL);
			continue;
		}
		FUZZ_CHECK(caps.valid);
		FUZZ_CHECK(caps.n_lines + 1 == r.n_lines || (r.n_lines == 0 && caps.n_lines == 0));
		for (size_t i = 0; i < caps.n_lines; i++)
			FUZZ_CHECK(strcmp(caps.lines[i], r.lines[i + 1]) == 0);
		caps_check_list(caps.auth);
		caps_check_list(caps.auth_legacy);
	}
	smtpc_caps_clear(&caps);
	FUZZ_CHECK(caps.lines == NULL && caps.auth == NULL && caps.auth_legacy == NULL);
	for (size_t i = 0; i < r.n_lines; i++)
		free(r.lines[i]);
	free(r.lines);
	return 0;
}
