/* config-options: prints every option of src/config/config_table.c, one per line:
 * "NAME SCOPE DEFAULT" (DEFAULT "-" when the table holds none: computed, required or
 * empty), in the forms the man page cursus.conf(5) writes them, so that a test can hold
 * the page to the table (tests/integration/test_manpages.py). */
#include <stdio.h>
#include <string.h>

#include "config/config_lex.h"
#include "config/config_table.h"
#include "sasl/sasl.h"

static const char *scope_name(enum opt_scope s)
{
	switch (s) {
	case S_GLOBAL: return "global";
	case S_LISTENER: return "listener";
	case S_BOTH: return "both";
	case S_RELAY: return "relay";
	}
	return "?";
}

static void print_size(unsigned long long n)
{
	static const struct { unsigned long long unit; char suffix; } units[] = {
		{ GIB, 'G' }, { MIB, 'M' }, { KIB, 'K' },
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (n >= units[i].unit && n % units[i].unit == 0) {
			printf("%llu%c", n / units[i].unit, units[i].suffix);
			return;
		}
	}
	printf("%llu", n);
}

static void print_default(const struct opt *o)
{
	size_t n;
	const struct sasl_mech *m;
	int first = 1;

	if (o->scope == S_LISTENER) {
		fputs("-", stdout);
		return;
	}
	switch (o->type) {
	case T_UINT: printf("%llu", o->def_n); return;
	case T_SIZE: print_size(o->def_n); return;
	case T_BOOL: fputs(o->def_n ? "yes" : "no", stdout); return;
	case T_SECONDS:
		if (o->def_n % 1000)
			printf("%llu.%03llu", o->def_n / 1000, o->def_n % 1000);
		else
			printf("%llu", o->def_n / 1000);
		return;
	case T_ENUM:
		for (const struct opt_choice *c = o->choices; c && c->name; c++)
			if ((unsigned long long)c->value == o->def_n) {
				fputs(c->name, stdout);
				return;
			}
		fputs("-", stdout);
		return;
	case T_MECHS:
		m = sasl_mechs(&n);
		for (size_t i = 0; i < n; i++)
			if (o->def_n & MECH_BIT(i)) {
				printf("%s%s", first ? "" : " ", m[i].name);
				first = 0;
			}
		if (first)
			fputs("none", stdout);
		return;
	default:
		fputs(o->def_s ? o->def_s : "-", stdout);
		return;
	}
}

int main(void)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		printf("%s %s ", opt_table[i].name, scope_name(opt_table[i].scope));
		print_default(&opt_table[i]);
		putchar('\n');
	}
	return 0;
}
