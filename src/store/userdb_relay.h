/* userdb_relay (private to src/store): the relay_auth table's definition where other
 * parts of the store need it, kept with its statements in userdb_relay.c. */
#ifndef CURSUS_USERDB_RELAY_H
#define CURSUS_USERDB_RELAY_H

/* The PostgreSQL table (a step of userdb_pg_schema.c's version 1). */
extern const char userdb_relay_pg_schema[];
/* Every column, for `cursus store copy` (userdb_copy.c). */
extern const char userdb_relay_copy_columns[];

#endif
