/* username: the rules for the names the credential store keeps, shared by every
 * userdb backend and the cursus tool. A user name becomes a directory name
 * ("<domain>/<local-part>"), so these rules are what keeps '/', "." and ".." out of
 * mail_dir. */
#ifndef CURSUS_USERNAME_H
#define CURSUS_USERNAME_H

/* Lower-cases and validates "local@domain": the local part 1-64 characters from
 * [a-z0-9._+-] with no leading, trailing or doubled dot, the domain a host name.
 * Returns a malloc'd normalised copy, or NULL with *err set to a malloc'd message
 * naming `what` ("user name", "alias target", ...). */
char *username_normalize(const char *addr, const char *what, char **err);

/* The same for an alias's address, which may also be "@domain" (the catch-all). */
char *username_normalize_alias(const char *addr, char **err);

/* Lower-cases s in place (ASCII only: names are ASCII). */
void username_lower(char *s);

#endif
