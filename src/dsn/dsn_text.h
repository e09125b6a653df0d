/* dsn_text: the text-shaping helpers of dsn.c, kept apart so the builder reads as the
 * structure of the report: a growable buffer, RFC 5322 dates, untrusted text made
 * printable ASCII, header-style fields folded under the line limit, and addresses in
 * the forms RFC 3464 and RFC 6533 allow. Internal to src/dsn/. */
#ifndef CURSUS_DSN_TEXT_H
#define CURSUS_DSN_TEXT_H

#include <stddef.h>
#include <time.h>

#include "util/log.h"
#include "util/strbuf.h"

/* Folding aims at this width; nothing we write passes RFC 5322's 998 octets. */
#define DSN_FOLD_WIDTH 78
#define DSN_LINE_MAX   998


/* "Tue, 14 Nov 2023 22:15:23 +0100" in local time, English names whatever the locale. */
void dsn_date(char out[40], time_t t);

/* A malloc'd copy of untrusted text that is printable ASCII: each run of CR and LF
 * (a multi-line reply) becomes one space, TAB a space, any other control or 8-bit
 * byte '?'. NULL gives "". */
char *dsn_printable(const char *s);

/* Writes "Name: value" CRLF, folding value at its spaces so lines stay near
 * DSN_FOLD_WIDTH; a word too long for any line is broken by a fold that adds a
 * space, the only way to keep it under DSN_LINE_MAX. value must be printable ASCII. */
void dsn_field(struct strbuf *b, const char *name, const char *value);

/* Writes value as plain text wrapped at DSN_FOLD_WIDTH, each line after indent.
 * value must be printable ASCII (or UTF-8 that the caller labels). */
void dsn_wrap(struct strbuf *b, const char *indent, const char *value);

/* "rfc822; addr" for a printable ASCII address, else RFC 6533's
 * "utf-8; " utf-8-addr-xtext, which keeps message/delivery-status 7-bit. */
char *dsn_address_field(const char *addr);

#endif
