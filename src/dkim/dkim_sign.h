/* dkim_sign: DKIM signing (RFC 6376; Ed25519-SHA256 by RFC 8463, RSA-SHA256) of one
 * message as the queue writes it: a queue_seal (queue/queue.h) that reads the header
 * section as it streams past, keeping the fields it signs, hashes the body as it
 * arrives (relaxed, dkim_canon.h), and when the message is complete signs it with
 * every key of the From: domain, returning the DKIM-Signature fields the queue file
 * keeps to send first. Everything here runs on a queue writer thread.
 *
 * Choices (docs/dkim.md): relaxed/relaxed; the domain is the From: field's (so the
 * signature is aligned for DMARC), and only when a key exists for it; From, To and
 * Subject are over-signed (named once more than present, so none can be added
 * without breaking the signature); t= is the signing time. Each outcome is logged as
 * one line "dkim id=... result=signed|unsigned|error ...". */
#ifndef CURSUS_DKIM_SIGN_H
#define CURSUS_DKIM_SIGN_H

#include <stddef.h>
#include <time.h>

struct dkim_keys;
struct queue_seal;

/* A signer for the message id (for the log) with keys (a reference is taken); NULL
 * when keys holds none. */
struct queue_seal *dkim_signer_create(struct dkim_keys *keys, const char *id);

/* For tests: the signing time (0: now). */
void dkim_signer_set_time(struct queue_seal *seal, time_t t);

/* The h= list for the fields of a header (names lower case, n of them, in order): the
 * names signed, each once per field present, From/To/Subject once more. Written to
 * out as "name:name:..." (malloc'd). Exposed for the unit tests. */
char *dkim_header_list(char *const *names, size_t n);

#endif
