/* dane: TLSA records (RFC 6698, RFC 7671) as an SMTP client uses them (RFC 7672), and
 * OpenSSL's DANE support around one TLS session: parse the rdata, say which records
 * are usable, arm an SSL before its handshake, read the verdict after it. No DNS and
 * no policy here: relay/relay_dane.c decides when DANE applies, `cursus probe` reports. */
#ifndef CURSUS_DANE_H
#define CURSUS_DANE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

enum { DANE_USAGE_PKIX_TA, DANE_USAGE_PKIX_EE, DANE_USAGE_DANE_TA, DANE_USAGE_DANE_EE };

struct dane_tlsa {
	uint8_t usage, selector, mtype;
	unsigned char *data;
	size_t len;
	int usable;            /* see dane_tlsa_usable */
};

struct dane_rrset {
	struct dane_tlsa *recs;
	size_t n, n_usable;
};

/* The records of a TLSA answer's rdata; malformed ones (under 4 octets) are left out. */
void dane_rrset_parse(struct dane_rrset *set, unsigned char *const *rdata, const size_t *len,
		      size_t n);
void dane_rrset_clear(struct dane_rrset *set);
/* RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP; DANE-TA(2) and
 * DANE-EE(3) with selector Cert(0)/SPKI(1) and matching Full(0), SHA2-256(1) or
 * SHA2-512(2) of the right length are usable; anything else is not (RFC 7671 4.1). */
int dane_tlsa_usable(const struct dane_tlsa *t);
/* "3 1 1 0a1b..." (the data cut to fit). */
void dane_tlsa_text(const struct dane_tlsa *t, char *out, size_t outsz);

/* Once per context that will carry DANE sessions. Returns 0 or -1. */
int dane_ctx_enable(SSL_CTX *ctx);
/* Before the handshake: the usable records of set, the TLSA base domain (the MX host:
 * the name checked for DANE-TA(2), and SNI when none is set) and another name a
 * DANE-TA certificate may carry (RFC 7672 3.2.3: the next-hop domain; NULL: none).
 * DANE-EE(3) names are not checked (RFC 7672 3.2.2). Returns 0, or -1 when OpenSSL
 * refused (the connection must not go on). */
int dane_ssl_enable(SSL *ssl, const char *base_domain, const char *other_name,
		    const struct dane_rrset *set);
/* After the handshake: 1 when the peer's chain matched a record (which one, as text,
 * in matched), 0 with the reason ("No matching DANE TLSA records", "hostname
 * mismatch") otherwise. */
int dane_ssl_verified(SSL *ssl, char *matched, size_t matchedsz, char *reason, size_t reasonsz);

#endif
