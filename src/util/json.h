/* json: the one JSON string writer of the admin tool's --json outputs (queue list,
 * probe, check), so that every document a script reads escapes alike. */
#ifndef CURSUS_JSON_H
#define CURSUS_JSON_H

#include <stdio.h>

/* Writes s to f as a JSON string: '"' and '\' escaped, control characters as \u00XX,
 * valid UTF-8 kept, any other byte as \ufffd, so that the document always parses
 * whatever s holds (text from the network included). NULL is written as null. */
void json_put_str(FILE *f, const char *s);

#endif
