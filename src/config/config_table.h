/* config_table: the types of opt_table, whose rows are in config_table.c. Internal to
 * src/config (and tests/tools/config_options.c, which prints the table for the man
 * page test). */
#ifndef CURSUS_CONFIG_TABLE_H
#define CURSUS_CONFIG_TABLE_H

#include <stddef.h>

#include "config/config.h"

/* T_HOST and T_LIST hold domain names; T_ENUM stores an int, T_STRING with choices a name. */
enum opt_type { T_STRING, T_HOST, T_PATH, T_UINT, T_SIZE, T_BOOL, T_ENUM, T_LIST, T_ADDRESS,
		T_FLAGS /* a set of choices, OR'ed into an unsigned */,
		T_MECHS /* a set of SASL mechanisms (sasl/sasl.h's registry), as MECH_BITs */,
		T_WORDS /* a list like T_LIST, of any words (addresses, names) */,
		T_NEXTHOP /* struct nexthop_conf */, T_RESOLVER /* "ADDRESS[@PORT]" string */,
		T_LMTP /* an LMTP server (config_relay_lmtp) or "maildir", as a string */,
		T_SECONDS /* "30", "0.5": unsigned milliseconds; min, max and default in ms */,
		T_DKIM /* DOMAIN SELECTOR FILE, repeatable: struct dkim_key_conf */ };
/* Where an option may appear, and so which struct its offset is into. */
enum opt_scope {
	S_GLOBAL,   /* struct config */
	S_LISTENER, /* struct listener_conf */
	S_BOTH,     /* struct limits: global default, listener override */
	S_RELAY,    /* struct config: global default, route and sender_route override */
};

struct opt_choice {
	const char *name;
	int value;
};

struct opt {
	const char *name;
	enum opt_type type;
	enum opt_scope scope;
	const char *def_s;            /* string/path/enum default; NULL: computed or none */
	unsigned long long def_n;     /* number/bool default */
	unsigned long long min, max;
	size_t off;
	size_t off2;                  /* T_LIST: the count; T_ADDRESS: the port */
	const struct opt_choice *choices; /* T_ENUM; T_STRING restricted to these names */
	size_t roff;                  /* S_RELAY: the field in struct route_conf */
};

/* The number of rows of opt_table, checked there: a constant, so that the parser can
 * size its per-option arrays by it. */
#define N_OPTS 108

extern const struct opt opt_table[];
/* The roles a listener may be given (ROLE_LOCAL is none of them). */
extern const struct opt_choice role_choices[];

#endif
