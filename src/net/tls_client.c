/* tls_client: client contexts and certificate checks (see tls_client.h). The chain is
 * verified here, apart from the handshake, so that each fault is seen and named. */
#include "net/tls_client.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "util/xmalloc.h"

SSL_CTX *tls_client_ctx_create(const char *ca_file, int lenient, char **err_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	*err_r = NULL;
	if (!ctx) {
		*err_r = xstrdup("cannot create a TLS context");
		return NULL;
	}
	if (lenient) {
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	} else {
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
		    : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		*err_r = xasprintf("cannot load the trust store%s%s", ca_file ? " " : "",
				   ca_file ? ca_file : "");
		return NULL;
	}
	return ctx;
}

static void tls_bio_string(BIO *b, char *out, size_t outsz)
{
	int n = BIO_read(b, out, (int)outsz - 1);
	out[n > 0 ? n : 0] = '\0';
}

static void tls_name(X509_NAME *name, char *out, size_t outsz)
{
	BIO *b = BIO_new(BIO_s_mem());
	X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	tls_bio_string(b, out, outsz);
	BIO_free(b);
}

static void tls_time(const ASN1_TIME *t, char *out, size_t outsz)
{
	BIO *b = BIO_new(BIO_s_mem());
	ASN1_TIME_print(b, t);
	tls_bio_string(b, out, outsz);
	BIO_free(b);
}

static int tls_verify_cb(int ok, X509_STORE_CTX *sctx)
{
	struct tls_check *t = X509_STORE_CTX_get_app_data(sctx);
	int err = X509_STORE_CTX_get_error(sctx);
	if (ok)
		return 1;
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		t->expired = 1;
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		t->not_yet_valid = 1;
		break;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		t->self_signed = 1;
		break;
	default:
		t->untrusted = 1;
		break;
	}
	if (!t->verify_error[0])
		snprintf(t->verify_error, sizeof(t->verify_error), "%s",
			 X509_verify_cert_error_string(err));
	/* Go on: we want every fault, not the first. */
	return 1;
}

void tls_client_check(SSL *ssl, const char *host, struct tls_check *t)
{
	X509 *peer = SSL_get1_peer_certificate(ssl);
	unsigned char addr[16];
	X509_STORE_CTX *sctx;
	int ok;

	memset(t, 0, sizeof(*t));
	t->proto = SSL_version(ssl);
	snprintf(t->version, sizeof(t->version), "%s", SSL_get_version(ssl));
	snprintf(t->cipher, sizeof(t->cipher), "%s", SSL_get_cipher_name(ssl));
	if (!peer) {
		t->untrusted = 1;
		snprintf(t->verify_error, sizeof(t->verify_error), "no certificate");
		snprintf(t->reason, sizeof(t->reason), "no certificate");
		return;
	}
	t->have_cert = 1;
	tls_name(X509_get_subject_name(peer), t->subject, sizeof(t->subject));
	tls_name(X509_get_issuer_name(peer), t->issuer, sizeof(t->issuer));
	tls_time(X509_get0_notBefore(peer), t->not_before, sizeof(t->not_before));
	tls_time(X509_get0_notAfter(peer), t->not_after, sizeof(t->not_after));
	/* RFC 6125 6.4: the DNS names of subjectAltName (the CN only without any); an
	 * address literal is matched against the IP addresses. */
	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
		t->name_match = X509_check_ip_asc(peer, host, 0) == 1;
	else
		t->name_match = *host && X509_check_host(peer, host, 0, 0, NULL) == 1;
	sctx = X509_STORE_CTX_new();
	if (sctx && X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), peer,
					SSL_get_peer_cert_chain(ssl)) == 1) {
		X509_STORE_CTX_set_default(sctx, "ssl_server");
		X509_STORE_CTX_set_app_data(sctx, t);
		X509_STORE_CTX_set_verify_cb(sctx, tls_verify_cb);
		ok = X509_verify_cert(sctx);
		t->chain_ok = ok == 1 && !t->expired && !t->not_yet_valid && !t->self_signed &&
			      !t->untrusted;
	} else {
		t->untrusted = 1;
	}
	X509_STORE_CTX_free(sctx);
	X509_free(peer);
	ERR_clear_error();
	t->verified = t->chain_ok && t->name_match;
	/* The chain's fault first: a name on an untrusted certificate means nothing. */
	if (!t->chain_ok)
		snprintf(t->reason, sizeof(t->reason), "%s",
			 t->verify_error[0] ? t->verify_error : "certificate not trusted");
	else if (!t->name_match)
		snprintf(t->reason, sizeof(t->reason), "hostname mismatch");
}
