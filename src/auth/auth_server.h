/* auth_server: cursus-auth, the credential process. It alone opens the user database
 * and runs the SASL mechanisms (GNU SASL), answering the network process over the
 * connections auth_spawn gave it, one thread per connection. Hashes, SCRAM keys,
 * legacy secrets and the database's HMAC secret never leave it; what goes back is a
 * verdict, a SASL challenge, a user name, a mailbox list, and, for a delivery through
 * a smart host, that host's credentials. */
#ifndef CURSUS_AUTH_SERVER_H
#define CURSUS_AUTH_SERVER_H

/* cursusd's main() with argv[1] == AUTH_SPAWN_ARG. Does not return. */
int auth_server_main(int argc, char **argv) __attribute__((noreturn));

#endif
