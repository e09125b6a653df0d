/* tls_required: RFC 8689 where mail comes in. Which sessions offer the REQUIRETLS
 * extension and take its MAIL FROM parameter (one predicate for EHLO and MAIL, so
 * nothing is offered that would be refused), and the tag a message gets: REQUIRETLS,
 * "TLS-Required: No" from its header section, or neither. */
#ifndef CURSUS_TLS_REQUIRED_H
#define CURSUS_TLS_REQUIRED_H

#include <stddef.h>

#include "queue/envelope.h"

struct session;

/* RFC 8689 2: REQUIRETLS is advertised, and taken, only in a session under TLS. */
int tlsreq_offered(const struct session *s);

/* The message's tag (RFC 8689 4.1): mail as MAIL FROM set it (TLSREQ_REQUIRETLS or
 * TLSREQ_DEFAULT); without REQUIRETLS, TLSREQ_NO when the header section (within the
 * first len octets of msg) has a field "TLS-Required: No". Pure. */
enum env_tlsreq tlsreq_tag(enum env_tlsreq mail, const char *msg, size_t len);

#endif
