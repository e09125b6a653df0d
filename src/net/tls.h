/* tls: the server's OpenSSL context (TLS 1.2 or newer) and, for development, a
 * self-signed certificate made on first start. */
#ifndef CURSUS_TLS_H
#define CURSUS_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

struct config;

/* Loads cfg->tls_cert/tls_key, first making a self-signed pair when they are missing
 * and cfg->tls_self_signed is set (with a warning at every start); a missing pair
 * without it is an error. Returns NULL after logging why. */
SSL_CTX *tls_server_ctx_create(const struct config *cfg);
/* Writes a new EC P-256 key (0600) and a self-signed certificate for hostname. */
int tls_make_self_signed(const char *cert_path, const char *key_path, const char *hostname);
struct sasl_channel;
/* Fills what SASL needs from an established TLS session: tls-exporter (RFC 9266) on
 * TLS 1.3, tls-unique (RFC 5929) on TLS 1.2, and the client certificate's SHA-256
 * fingerprint and subject when one was presented and verified. */
void tls_channel(SSL *ssl, struct sasl_channel *chan);
/* "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256" for logs and Received. */
void tls_describe(SSL *ssl, char *buf, size_t bufsz);

#endif
