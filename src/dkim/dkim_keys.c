/* dkim_keys: loading and checking DKIM signing keys (see dkim_keys.h). */
#include "dkim/dkim_keys.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

int dkim_key_usable(EVP_PKEY *pkey, char *why, size_t whysz)
{
	int bits;
	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return 0;
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		snprintf(why, whysz, "a %s key: DKIM signs with Ed25519 or RSA",
			 EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "unknown");
		return ENOTSUP;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < DKIM_RSA_MIN_BITS) {
		snprintf(why, whysz, "an RSA key of %d bits, weaker than the %d required", bits,
			 DKIM_RSA_MIN_BITS);
		return EKEYREJECTED;
	}
	if (bits > DKIM_RSA_MAX_BITS) {
		snprintf(why, whysz, "an RSA key of %d bits: verifiers need not handle more than %d",
			 bits, DKIM_RSA_MAX_BITS);
		return EKEYREJECTED;
	}
	return 0;
}

int dkim_key_read(const char *path, EVP_PKEY **pkey_r, char *why, size_t whysz)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *pkey;
	int err, bad;

	*pkey_r = NULL;
	if (!f) {
		err = errno;
		snprintf(why, whysz, "cannot read: %s", strerror(err));
		return err;
	}
	/* No passphrase callback: a key that asks for one is refused, not prompted for. */
	pkey = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
	fclose(f);
	if (!pkey) {
		snprintf(why, whysz, "not a PEM private key (or one with a passphrase)");
		return EINVAL;
	}
	if ((bad = dkim_key_usable(pkey, why, whysz)) != 0) {
		EVP_PKEY_free(pkey);
		return bad;
	}
	*pkey_r = pkey;
	return 0;
}

char *dkim_base64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

char *dkim_key_txt(EVP_PKEY *pkey)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	char *b64, *txt;
	int len;

	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1)
			return NULL;
		b64 = dkim_base64(raw, rawlen);
		txt = xasprintf("v=DKIM1; k=ed25519; p=%s", b64);
	} else {
		if ((len = i2d_PUBKEY(pkey, &der)) <= 0)
			return NULL;
		b64 = dkim_base64(der, (size_t)len);
		OPENSSL_free(der);
		txt = xasprintf("v=DKIM1; k=rsa; p=%s", b64);
	}
	free(b64);
	return txt;
}

static const struct dkim_key *dkim_keys_find(const struct dkim_keys *ks, const struct dkim_key_conf *c)
{
	for (size_t i = 0; ks && i < ks->n; i++)
		if (strcmp(ks->keys[i].domain, c->domain) == 0 &&
		    strcmp(ks->keys[i].selector, c->selector) == 0 &&
		    strcmp(ks->keys[i].path, c->path) == 0)
			return &ks->keys[i];
	return NULL;
}

struct dkim_keys *dkim_keys_load(const struct config *cfg, const struct dkim_keys *old,
				 char **err_r)
{
	struct dkim_keys *ks = xcalloc(1, sizeof(*ks));
	char why[200];

	atomic_init(&ks->refs, 1);
	*err_r = NULL;
	ks->keys = xcalloc(cfg->n_dkim_keys ? cfg->n_dkim_keys : 1, sizeof(*ks->keys));
	for (size_t i = 0; i < cfg->n_dkim_keys; i++) {
		const struct dkim_key_conf *c = &cfg->dkim_keys[i];
		const struct dkim_key *prev;
		struct dkim_key *k = &ks->keys[ks->n];
		EVP_PKEY *pkey;
		int err = dkim_key_read(c->path, &pkey, why, sizeof(why));
		if (err == EACCES && (prev = dkim_keys_find(old, c))) {
			/* Read as root at start; the mail user cannot read it again. The same
			 * file is taken to hold the same key: a new key needs a restart (or a
			 * file the mail group may read). */
			log_info("dkim event=key-kept domain=%s selector=%s file=%s reason=\"%s "
				 "(the key loaded before stays)\"", c->domain, c->selector, c->path, why);
			EVP_PKEY_up_ref(prev->pkey);
			pkey = prev->pkey;
		} else if (err) {
			*err_r = xasprintf("%s:%d: dkim_key %s %s: %s: %s", cfg->path ? cfg->path : "-",
					   c->line, c->domain, c->selector, c->path, why);
			dkim_keys_free(&ks);
			return NULL;
		}
		k->domain = xstrdup(c->domain);
		k->selector = xstrdup(c->selector);
		k->path = xstrdup(c->path);
		k->pkey = pkey;
		k->ed25519 = EVP_PKEY_is_a(pkey, "ED25519");
		ks->n++;
	}
	return ks;
}

struct dkim_keys *dkim_keys_ref(struct dkim_keys *ks)
{
	if (ks)
		atomic_fetch_add(&ks->refs, 1);
	return ks;
}

void dkim_keys_free(struct dkim_keys **ksp)
{
	struct dkim_keys *ks = *ksp;
	*ksp = NULL;
	if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->keys[i].domain);
		free(ks->keys[i].selector);
		free(ks->keys[i].path);
		EVP_PKEY_free(ks->keys[i].pkey);
	}
	free(ks->keys);
	free(ks);
}
