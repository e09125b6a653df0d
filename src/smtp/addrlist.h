/* addrlist: the addresses of an RFC 5322 address-list (3.4) as found in To:, Cc: and
 * Bcc: fields and in sendmail's recipient arguments: display names, comments, groups
 * and source routes are dropped, each mailbox's addr-spec kept as written (quoted
 * local parts stay quoted). Pure; the SMTP layer checks the syntax of what it gets. */
#ifndef CURSUS_ADDRLIST_H
#define CURSUS_ADDRLIST_H

#include <stddef.h>

/* Appends the addr-specs of s[0..len) to *list_r (malloc'd array of malloc'd strings,
 * *n_r entries; both may start empty). Line breaks count as white space (a folded
 * field may be passed as is). Empty entries ("a, , b", "<>", an empty group) give
 * nothing. Returns the number of addresses added. */
size_t addrlist_parse(const char *s, size_t len, char ***list_r, size_t *n_r);
/* Frees the list. */
void addrlist_free(char **list, size_t n);

#endif
