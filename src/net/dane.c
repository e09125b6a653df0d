/* dane: TLSA records and OpenSSL's DANE verification (see dane.h). OpenSSL does the
 * matching (SSL_dane_enable, SSL_dane_tlsa_add): we only choose which records it may
 * use, and read its verdict. The handshake itself accepts any certificate (the relay's
 * contexts use SSL_VERIFY_NONE), so a mismatch is seen and named here, afterwards. */
#include "net/dane.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define DANE_SEL_CERT 0
#define DANE_SEL_SPKI 1

int dane_tlsa_usable(const struct dane_tlsa *t)
{
	/* RFC 7672 3.1.3: "SMTP client treats all TLSA RRs with certificate usage
	 * PKIX-TA(0) or PKIX-EE(1) as unusable." */
	if (t->usage != DANE_USAGE_DANE_TA && t->usage != DANE_USAGE_DANE_EE)
		return 0;
	if (t->selector != DANE_SEL_CERT && t->selector != DANE_SEL_SPKI)
		return 0;
	switch (t->mtype) {
	case 0: return t->len > 0;
	case 1: return t->len == 32;
	case 2: return t->len == 64;
	default: return 0; /* RFC 7671 4.1: unknown matching types are unusable */
	}
}

void dane_rrset_parse(struct dane_rrset *set, unsigned char *const *rdata, const size_t *len,
		      size_t n)
{
	memset(set, 0, sizeof(*set));
	set->recs = xcalloc(n + 1, sizeof(*set->recs));
	for (size_t i = 0; i < n; i++) {
		struct dane_tlsa *t = &set->recs[set->n];
		if (len[i] < 4) /* usage, selector, matching type and at least one octet */
			continue;
		t->usage = rdata[i][0];
		t->selector = rdata[i][1];
		t->mtype = rdata[i][2];
		t->len = len[i] - 3;
		t->data = xmalloc(t->len);
		memcpy(t->data, rdata[i] + 3, t->len);
		t->usable = dane_tlsa_usable(t);
		set->n_usable += t->usable != 0;
		set->n++;
	}
}

void dane_rrset_clear(struct dane_rrset *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->recs[i].data);
	free(set->recs);
	memset(set, 0, sizeof(*set));
}

void dane_tlsa_text(const struct dane_tlsa *t, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "%u %u %u ", t->usage, t->selector, t->mtype);
	for (size_t i = 0; i < t->len && n >= 0 && (size_t)n + 3 < outsz; i++)
		n += snprintf(out + n, outsz - (size_t)n, "%02x", t->data[i]);
}

int dane_ctx_enable(SSL_CTX *ctx)
{
	/* Idempotent: OpenSSL keeps the digests registered the first time. */
	return SSL_CTX_dane_enable(ctx) > 0 ? 0 : -1;
}

int dane_ssl_enable(SSL *ssl, const char *base_domain, const char *other_name,
		    const struct dane_rrset *set)
{
	size_t added = 0;
	if (SSL_dane_enable(ssl, base_domain) <= 0)
		return -1;
	/* RFC 7672 3.2.2: "the SMTP client MUST NOT perform certificate name checks"
	 * for DANE-EE(3); and no partial wildcards ("mx*.example.org") for DANE-TA. */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (other_name && *other_name && strcmp(other_name, base_domain) != 0 &&
	    SSL_add1_host(ssl, other_name) != 1)
		return -1;
	for (size_t i = 0; i < set->n; i++) {
		const struct dane_tlsa *t = &set->recs[i];
		if (!t->usable)
			continue;
		/* 0: OpenSSL finds it unusable too (a digest it lacks): left out. */
		if (SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len) > 0)
			added++;
	}
	return added ? 0 : -1;
}

int dane_ssl_verified(SSL *ssl, char *matched, size_t matchedsz, char *reason, size_t reasonsz)
{
	long res = SSL_get_verify_result(ssl);
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t dlen;
	X509 *peer = SSL_get0_peer_certificate(ssl);

	*matched = *reason = '\0';
	if (!peer) {
		snprintf(reason, reasonsz, "no certificate");
		return 0;
	}
	if (res != X509_V_OK || SSL_get0_dane_authority(ssl, NULL, NULL) < 0) {
		snprintf(reason, reasonsz, "%s", res != X509_V_OK ? X509_verify_cert_error_string(res)
								 : "no TLSA record matched");
		return 0;
	}
	if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen) >= 0) {
		struct dane_tlsa t = { usage, selector, mtype, (unsigned char *)data, dlen, 1 };
		dane_tlsa_text(&t, matched, matchedsz);
	}
	return 1;
}
