/* dkim_canon: the "relaxed" canonicalisations of RFC 6376 3.4.2 (a header field) and
 * 3.4.4 (the body), the only ones cursus signs with. The body is canonicalised as it
 * streams: any split of the message into chunks (a CR in one, its LF in the next; a
 * run of white space or of empty lines across a boundary) gives the same hash. Pure
 * apart from OpenSSL's SHA-256. */
#ifndef CURSUS_DKIM_CANON_H
#define CURSUS_DKIM_CANON_H

#include <stddef.h>

#include "util/strbuf.h"

/* Appends the relaxed form of one header field f[0..n) ("Name: value", folded or not,
 * with or without its final CRLF) to out: the name in lower case, unfolded, runs of
 * white space as one SP, none around the colon or at the end, then CRLF unless
 * crlf is 0 (the DKIM-Signature field being signed, RFC 6376 3.7). */
void dkim_canon_header(const char *f, size_t n, int crlf, struct strbuf *out);

/* The body's relaxed form, hashed with SHA-256 as it is fed. */
struct dkim_body {
	void *md;                /* EVP_MD_CTX */
	unsigned long crlfs;     /* line ends not hashed yet: trailing empty lines go */
	int wsp;                 /* white space since the line's last other octet */
	int cr;                  /* a CR whose LF may be in the next chunk */
	int any;                 /* something hashed: a non-empty body gets a final CRLF */
	size_t fill;
	char out[4096];
};

void dkim_body_init(struct dkim_body *b);
void dkim_body_update(struct dkim_body *b, const char *p, size_t n);
/* The SHA-256 of the canonical body (of nothing at all for an empty one); b is
 * released. */
void dkim_body_final(struct dkim_body *b, unsigned char hash[32]);
/* Releases b without a result (a message given up). */
void dkim_body_discard(struct dkim_body *b);

#endif
