/* check_dkim: each dkim_key as cursusd will load it: the file there and readable, a
 * PEM private key without a passphrase, Ed25519 or RSA of 2048 bits or more, and not
 * readable by others. cursusd refuses to start with a key that fails to load, so those
 * are errors; a file this user may not read is only noted (cursusd reads it as root). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/check.h"
#include "dkim/dkim_keys.h"

static void check_dkim_key(struct check_report *r, const struct dkim_key_conf *k)
{
	EVP_PKEY *pkey = NULL;
	struct stat st;
	char why[200];
	int err = dkim_key_read(k->path, &pkey, why, sizeof(why));

	switch (err) {
	case 0:
		break;
	case EACCES:
		check_add(r, CHECK_INFO, "dkim-key-not-checked", k->line,
			  "run cursus check as the user that starts cursusd (root)",
			  "the DKIM key %s for %s could not be read here: %s", k->path, k->domain,
			  strerror(err));
		return;
	case ENOENT:
		check_add(r, CHECK_ERROR, "dkim-key-missing", k->line,
			  "make it with cursus dkim keygen DOMAIN SELECTOR --out FILE and publish "
			  "the record it prints",
			  "the DKIM key %s for %s does not exist: cursusd cannot start", k->path,
			  k->domain);
		return;
	case EKEYREJECTED:
		check_add(r, CHECK_ERROR, "dkim-key-weak", k->line,
			  "make a new key with cursus dkim keygen (Ed25519, or --rsa 2048), publish "
			  "it under a new selector and replace this one",
			  "the DKIM key %s for %s is %s", k->path, k->domain, why);
		return;
	case ENOTSUP:
		check_add(r, CHECK_ERROR, "dkim-key-unusable", k->line,
			  "make a new key with cursus dkim keygen and publish it under a new selector",
			  "the DKIM key %s for %s is %s", k->path, k->domain, why);
		return;
	default:
		check_add(r, CHECK_ERROR, "dkim-key-unreadable", k->line,
			  "install the private key in PEM form, without a passphrase",
			  "the DKIM key %s for %s: %s", k->path, k->domain, why);
		return;
	}
	if (stat(k->path, &st) == 0 && (st.st_mode & 007))
		check_add(r, CHECK_WARNING, "dkim-key-permissions", k->line,
			  "chmod o-rwx the key file (0600, or 0640 with the mail user's group)",
			  "the DKIM key %s can be read by any local user (mode %03o): anyone could "
			  "sign as %s", k->path, (unsigned)(st.st_mode & 0777), k->domain);
	EVP_PKEY_free(pkey);
}

void check_dkim(struct check_report *r)
{
	for (size_t i = 0; i < r->cfg->n_dkim_keys; i++)
		check_dkim_key(r, &r->cfg->dkim_keys[i]);
}
