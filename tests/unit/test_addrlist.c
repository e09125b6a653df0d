/* addrlist: the recipients `cursus sendmail -t` takes from To:, Cc: and Bcc:. */
#include <stdlib.h>

#include "smtp/addrlist.h"
#include "unit.h"

struct addrlist_case {
	const char *in;
	const char *out;   /* the addresses joined by " " */
};

static const struct addrlist_case cases[] = {
	{ "alice@example.test", "alice@example.test" },
	{ "Alice <alice@example.test>", "alice@example.test" },
	{ "\"Doe, John\" <john@example.test>, bob@example.test", "john@example.test bob@example.test" },
	{ "alice@example.test (Alice, the boss), <bob@example.test>", "alice@example.test bob@example.test" },
	{ "team: a@example.test, b@example.test;, c@example.test", "a@example.test b@example.test c@example.test" },
	{ "undisclosed-recipients:;", "" },
	{ "\"a b\"@example.test", "\"a b\"@example.test" },
	{ "<@relay.test,@other.test:user@example.test>", "user@example.test" },
	{ "alice@example.test,\r\n\tbob@example.test", "alice@example.test bob@example.test" },
	{ "a@x.test, , <>, (only a comment)", "a@x.test" },
	{ "Name (with (nested) comment) <n@x.test>", "n@x.test" },
	{ "alice", "alice" },
	{ "\"quoted \\\" name\" <q@x.test>", "q@x.test" },
	{ "", "" },
};

static void check_case(const struct addrlist_case *c)
{
	char **list = NULL, joined[512] = "";
	size_t n = 0, added;

	added = addrlist_parse(c->in, strlen(c->in), &list, &n);
	CHECK(added == n);
	for (size_t i = 0; i < n; i++) {
		strcat(joined, i ? " " : "");
		strcat(joined, list[i]);
	}
	CHECK_STR(joined, c->out);
	addrlist_free(list, n);
}

void unit_main(void)
{
	char **list = NULL;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
	/* Appends to what the list holds. */
	addrlist_parse("a@x.test", 8, &list, &n);
	addrlist_parse("b@x.test, c@x.test", 18, &list, &n);
	CHECK(n == 3);
	CHECK_STR(list[2], "c@x.test");
	addrlist_free(list, n);
	/* Unterminated constructs end with the input, never past it. */
	list = NULL, n = 0;
	addrlist_parse("<a@x.test", 9, &list, &n);
	CHECK(n == 1 && strcmp(list[0], "a@x.test") == 0);
	addrlist_free(list, n);
	list = NULL, n = 0;
	addrlist_parse("\"abc", 4, &list, &n);
	addrlist_parse("(abc", 4, &list, &n);
	addrlist_parse("a\\", 2, &list, &n);
	CHECK(n == 2);
	addrlist_free(list, n);
}
