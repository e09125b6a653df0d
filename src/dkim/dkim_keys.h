/* dkim_keys: the signing keys of the dkim_key options, loaded once (at start as root,
 * before the privilege drop, and again at each reload) and then shared, read-only and
 * counted, by every message being signed on the queue's threads. Also what the admin
 * tool needs: reading a key file with the reason it is refused, the DNS record of a
 * key. No function here puts key material into a message. */
#ifndef CURSUS_DKIM_KEYS_H
#define CURSUS_DKIM_KEYS_H

#include <stdatomic.h>
#include <stddef.h>

struct config;
typedef struct evp_pkey_st EVP_PKEY;

/* RFC 8301 3.2: signers MUST use RSA keys of at least 1024 bits; we ask for 2048
 * (1024-bit RSA is within reach of a determined attacker). */
#define DKIM_RSA_MIN_BITS 2048
/* RFC 8301 3.2: verifiers must handle up to 4096; larger keys may not verify. */
#define DKIM_RSA_MAX_BITS 4096

struct dkim_key {
	char *domain;          /* lower case */
	char *selector;
	char *path;
	EVP_PKEY *pkey;
	int ed25519;           /* else RSA */
};

struct dkim_keys {
	atomic_uint refs;
	struct dkim_key *keys; /* in configuration order */
	size_t n;
};

/* Reads and checks every key of cfg. A key file that cannot be read for lack of
 * permission (EACCES: root's alone, read again after the privilege drop) keeps the
 * key of old with the same domain, selector and file, if there is one. NULL on
 * failure, with *err_r (malloc'd: the option's line, the file and why, never key
 * material). With no dkim_key, an empty set. */
struct dkim_keys *dkim_keys_load(const struct config *cfg, const struct dkim_keys *old,
				 char **err_r);
struct dkim_keys *dkim_keys_ref(struct dkim_keys *ks);
void dkim_keys_free(struct dkim_keys **ks);

/* Reads a PEM private key from path and checks it is usable for DKIM (Ed25519, or RSA
 * of DKIM_RSA_MIN_BITS to DKIM_RSA_MAX_BITS). Returns 0 with *pkey_r; else an errno
 * value (EACCES, ENOENT: the file; EINVAL: not a PEM private key; EKEYREJECTED: an RSA
 * key of a size refused; ENOTSUP: another type) with why[] saying it in words. */
int dkim_key_read(const char *path, EVP_PKEY **pkey_r, char *why, size_t whysz);
/* 0 when pkey is usable (as dkim_key_read checks), else its errno value, why[]
 * saying why not. */
int dkim_key_usable(EVP_PKEY *pkey, char *why, size_t whysz);

/* The TXT record's text for pkey, "v=DKIM1; k=ed25519; p=..." (RFC 6376 3.6.1, RFC
 * 8463 4: the raw 32-octet Ed25519 key; for RSA the DER SubjectPublicKeyInfo).
 * malloc'd. */
char *dkim_key_txt(EVP_PKEY *pkey);
/* Base64 of p[0..n) (RFC 4648, no line breaks), malloc'd. */
char *dkim_base64(const unsigned char *p, size_t n);

#endif
