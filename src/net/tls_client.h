/* tls_client: the client side of TLS for the relay and `cursus probe`: the context, and
 * the verification of an established session's certificate (chain, name, validity
 * dates). Handshakes accept any certificate (SSL_VERIFY_NONE); the caller asks
 * tls_client_check afterwards and decides: opportunistic TLS goes on with an
 * unverified peer, "verify" policy and credentials do not. */
#ifndef CURSUS_TLS_CLIENT_H
#define CURSUS_TLS_CLIENT_H

#include <stddef.h>
#include <openssl/ssl.h>

/* A client context trusting ca_file (PEM), or the system's default paths when NULL.
 * TLS 1.2 or newer; with lenient (the probe, which must see old servers to report
 * them) every version and security level. Returns NULL with *err_r (malloc'd). */
SSL_CTX *tls_client_ctx_create(const char *ca_file, int lenient, char **err_r);

struct tls_check {
	int proto;                    /* TLS1_2_VERSION, ... */
	char version[32], cipher[80];
	char subject[512], issuer[512], not_before[64], not_after[64];
	int have_cert, name_match, chain_ok;
	int expired, not_yet_valid, self_signed, untrusted;
	char verify_error[160];       /* the first chain error OpenSSL names, or "" */
	/* The verdict: chain and name both good. reason says why not, in plain words:
	 * "certificate has expired", "hostname mismatch", "unable to get local issuer
	 * certificate", "no certificate". */
	int verified;
	char reason[160];
};

/* Checks the session's peer certificate against the context's trust store and host
 * (a DNS name, or an address literal checked against the IP SANs). Every fault is
 * recorded, not only the first one OpenSSL meets. */
void tls_client_check(SSL *ssl, const char *host, struct tls_check *t);

#endif
