/* tls: server context set-up. Certificates are PEM files named in the
 * configuration; the self-signed fallback exists for development only and is made
 * only when tls_self_signed is set explicitly. */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "sasl/sasl.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

static void tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_warnx("tls: %s: %s", what, buf);
	}
}

int tls_make_self_signed(const char *cert_path, const char *key_path, const char *hostname)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	/* The loopback addresses too: development clients connect to 127.0.0.1. */
	char *san = xasprintf("DNS:%s,IP:127.0.0.1,IP:::1", hostname);
	FILE *f = NULL;
	int fd, ok = -1;

	if (!key || !x)
		goto out;
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 24 * 3600);
	X509_set_version(x, 2);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (!ext)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, key, EVP_sha256()))
		goto out;
	if (fs_mkparent(key_path, 0700) != 0 || fs_mkparent(cert_path, 0755) != 0)
		goto out;
	fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (!PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL))
		goto out;
	fclose(f);
	f = fopen(cert_path, "w");
	if (!f || !PEM_write_X509(f, x))
		goto out;
	ok = 0;
out:
	if (f)
		fclose(f);
	if (ok < 0)
		tls_log_errors("self-signed certificate");
	free(san);
	X509_free(x);
	EVP_PKEY_free(key);
	return ok;
}

static int tls_verify_any(int ok, X509_STORE_CTX *store)
{
	return 1;
}

SSL_CTX *tls_server_ctx_create(const struct config *cfg)
{
	/* Any constant: it only tells OpenSSL that sessions of this context may be
	 * resumed here. Without one, a context that asks for client certificates
	 * refuses every resumption (SSL_R_SESSION_ID_CONTEXT_UNINITIALIZED). */
	static const unsigned char sid_ctx[] = "cursus smtpd";
	SSL_CTX *ctx;
	int have_cert = access(cfg->tls_cert, R_OK) == 0, cert_errno = errno;
	int have_key = access(cfg->tls_key, R_OK) == 0, key_errno = errno;

	if (cfg->tls_self_signed) {
		/* Said at every start, not only when the pair is made: a development
		 * setting left in production must stay visible. */
		log_warnx("tls: tls_self_signed is set: a missing certificate is replaced by a "
			  "self-signed one that clients will not trust; do not use it in production");
		if (!have_cert && !have_key) {
			if (tls_make_self_signed(cfg->tls_cert, cfg->tls_key, cfg->hostname) < 0) {
				log_warnx("tls: cannot make a self-signed certificate in %s", cfg->tls_cert);
				return NULL;
			}
			log_warnx("tls: made a self-signed certificate cert=%s", cfg->tls_cert);
			have_cert = have_key = 1;
		}
	}
	if (!have_cert || !have_key) {
		/* Refuse to start rather than serve something else than what was meant. */
		log_warnx("tls: cannot read the %s %s: %s; point tls_cert and tls_key at the "
			  "server's certificate and key (tls_self_signed yes makes a self-signed "
			  "pair, for development only)", !have_cert ? "certificate" : "private key",
			  !have_cert ? cfg->tls_cert : cfg->tls_key,
			  strerror(!have_cert ? cert_errno : key_errno));
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, strcmp(cfg->tls_min_version, "TLSv1.3") == 0
						   ? TLS1_3_VERSION : TLS1_2_VERSION);
	/* No renegotiation: a client could otherwise make us do handshakes at will. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
		tls_log_errors("session id context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (cfg->auth_client_ca) {
		/* Ask for a certificate, but let clients without one in: only EXTERNAL
		 * needs it, and tls_channel() checks the verification result. */
		if (SSL_CTX_load_verify_locations(ctx, cfg->auth_client_ca, NULL) != 1) {
			tls_log_errors(cfg->auth_client_ca);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(cfg->auth_client_ca));
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_any);
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_log_errors(cfg->tls_cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void tls_describe(SSL *ssl, char *buf, size_t bufsz)
{
	int bits = 0;
	SSL_get_cipher_bits(ssl, &bits);
	snprintf(buf, bufsz, "version=%s cipher=%s bits=%d", SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits);
}

void tls_channel(SSL *ssl, struct sasl_channel *chan)
{
	X509 *peer;
	memset(chan, 0, sizeof(*chan));
	if (SSL_version(ssl) >= TLS1_3_VERSION) {
		/* RFC 9266 2: label "EXPORTER-Channel-Binding", empty context, 32 octets. */
		static const char label[] = "EXPORTER-Channel-Binding";
		if (SSL_export_keying_material(ssl, chan->tls_exporter, 32, label, sizeof(label) - 1,
					       NULL, 0, 0) == 1)
			chan->tls_exporter_len = 32;
	} else {
		/* RFC 5929 3.1: the first Finished message of the latest handshake: the
		 * client's in a full handshake, the server's in a resumed one. */
		chan->tls_unique_len = SSL_session_reused(ssl)
			? SSL_get_finished(ssl, chan->tls_unique, sizeof(chan->tls_unique))
			: SSL_get_peer_finished(ssl, chan->tls_unique, sizeof(chan->tls_unique));
	}
	peer = SSL_get1_peer_certificate(ssl);
	if (peer && SSL_get_verify_result(ssl) == X509_V_OK) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		if (X509_digest(peer, EVP_sha256(), md, &mdlen) == 1)
			for (unsigned i = 0; i < mdlen && i < 32; i++)
				snprintf(chan->cert_fingerprint + 2 * i, 3, "%02x", md[i]);
		/* RFC 2253 ("CN=alice,O=Example"), escaped, so that no crafted value can
		 * read as another subject; one that does not fit is not used at all. */
		BIO *b = BIO_new(BIO_s_mem());
		if (b && X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
			char *data;
			long n = BIO_get_mem_data(b, &data);
			if (n > 0 && (size_t)n < sizeof(chan->cert_subject)) {
				memcpy(chan->cert_subject, data, (size_t)n);
				chan->cert_subject[n] = '\0';
			}
		}
		BIO_free(b);
	}
	X509_free(peer);
}
