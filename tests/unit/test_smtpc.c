/* Tests of the SMTP client's pure parts: reply lines, EHLO capabilities, lists. */
#include "unit.h"
#include "client/smtpc.h"
#include <string.h>

#include <stdlib.h>

struct line_case {
	const char *line;
	int code, more;
	size_t off;
};

static const struct line_case lines[] = {
	{"250 OK", 250, 0, 4},
	{"250-PIPELINING", 250, 1, 4},
	{"250", 250, 0, 3},
	{"334 ", 334, 0, 4},
	{"220 mx ESMTP", 220, 0, 4},
	{"554 x", 554, 0, 4},
	{"599 x", -1, 0, 0},      /* RFC 5321 4.2: the second digit is 0..5 */
	{"199 x", -1, 0, 0},      /* not a reply code */
	{"600 x", -1, 0, 0},
	{"25 x", -1, 0, 0},
	{"2500 x", -1, 0, 0},
	{"250x", -1, 0, 0},
	{"abc", -1, 0, 0},
	{"", -1, 0, 0},
};

static void ehlo(const char *const *text, size_t n, struct smtpc_caps *caps)
{
	struct smtpc_reply r = {.code = 250, .n_lines = n, .lines = (char **)text};
	smtpc_caps_parse(caps, &r);
}

void unit_main(void)
{
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int more = -1;
		size_t off = 0;
		int code = smtpc_parse_line(lines[i].line, strlen(lines[i].line), &more, &off);
		CHECK(code == lines[i].code);
		if (code > 0) {
			CHECK(more == lines[i].more);
			CHECK(off == lines[i].off);
		}
		/* every prefix parses or fails cleanly */
		for (size_t k = 0; k < strlen(lines[i].line); k++)
			(void)smtpc_parse_line(lines[i].line, k, &more, &off);
	}

	static const char *const caps1[] = {
		"mx.example Hello", "PIPELINING", "SIZE 1000", "8BITMIME", "STARTTLS", "CHUNKING",
		"SMTPUTF8", "AUTH SCRAM-SHA-256 PLAIN LOGIN", "AUTH=LOGIN PLAIN", "HELP",
	};
	struct smtpc_caps caps = {0};
	ehlo(caps1, sizeof(caps1) / sizeof(caps1[0]), &caps);
	CHECK(caps.valid && caps.starttls && caps.pipelining && caps.size && caps.eightbitmime);
	CHECK(caps.chunking && caps.smtputf8);
	CHECK_STR(caps.auth, "SCRAM-SHA-256 PLAIN LOGIN");
	CHECK_STR(caps.auth_legacy, "LOGIN PLAIN");
	CHECK(smtpc_list_has(caps.auth, "plain") && smtpc_list_has(caps.auth, "SCRAM-SHA-256"));
	CHECK(!smtpc_list_has(caps.auth, "SCRAM-SHA-1") && !smtpc_list_has(caps.auth, "PLAI"));
	CHECK(!smtpc_list_has(NULL, "PLAIN"));

	static const char *const caps2[] = {"mx.example"};
	ehlo(caps2, 1, &caps); /* refills: frees what caps held */
	CHECK(caps.valid && !caps.starttls && caps.auth == NULL && caps.auth_legacy == NULL);
	smtpc_caps_clear(&caps);
	CHECK(caps.auth == NULL);

	/* Dot-stuffing, also across block boundaries (at_bol carries over). */
	char out[64];
	int bol = 1;
	size_t n = smtpc_dot_stuff(".a\r\nb.\r\n..c\r\n", 13, out, &bol);
	CHECK(n == 15 && memcmp(out, "..a\r\nb.\r\n...c\r\n", 15) == 0 && bol);
	bol = 1;
	n = smtpc_dot_stuff("x\r\n", 3, out, &bol);
	CHECK(n == 3 && bol);
	n = smtpc_dot_stuff(".y", 2, out, &bol);
	CHECK(n == 3 && memcmp(out, "..y", 3) == 0 && !bol);
	n = smtpc_dot_stuff(".", 1, out, &bol);
	CHECK(n == 1 && out[0] == '.');
}
