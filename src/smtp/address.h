/* address: RFC 5321 paths and mailboxes (4.1.2): dot-atom and quoted local parts,
 * domains and address literals, source routes (accepted and ignored, RFC 5321 C),
 * UTF-8 only when SMTPUTF8 was given (RFC 6531). Pure. */
#ifndef CURSUS_ADDRESS_H
#define CURSUS_ADDRESS_H

#include <stddef.h>

/* Parses a path "<...>" at the start of s. On success returns 0, sets *addr_r to a
 * malloc'd canonical "local@domain" (quoted local parts stay quoted unless quoting is
 * unneeded; the domain lower-cased), or "" for "<>" when allow_null; *end_r is the
 * offset just past '>'. On failure returns -1 and sets *why_r (a static string fit for
 * a reply). Local part at most 64 octets, domain 255, path 256 (RFC 5321 4.5.3.1). */
int address_parse_path(const char *s, size_t len, int allow_null, int utf8,
		       char **addr_r, size_t *end_r, const char **why_r);

/* Splits a canonical address at its last '@' into malloc'd parts. -1 if there is none. */
int address_split(const char *addr, char **local_r, char **domain_r);

/* True when the local part would route mail elsewhere if a naive relay trusted it:
 * contains '%', '!' or '@' (quoted), the classic relay tricks. */
int address_has_routing(const char *local);

#endif
