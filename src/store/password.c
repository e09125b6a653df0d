/* password: yescrypt hashing and SCRAM key derivation for the credential store.
 * Promises: every copy of a password or an intermediate secret (SaltedPassword,
 * ClientKey, crypt's scratch area) is wiped with explicit_bzero before it is freed;
 * verification ends in a constant-time comparison; nothing here logs a secret. */
#include "store/password.h"

#include <crypt.h>
#include <gsasl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/xmalloc.h"

char *password_hash(const char *password)
{
	char *setting, *out, *hash = NULL;
	void *data = NULL;
	int size = 0;

	/* count 0 asks libxcrypt for yescrypt's default cost; NULL rbytes for its own
	 * random salt from the kernel. */
	setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (!setting)
		return NULL;
	out = crypt_ra(password, setting, &data, &size);
	/* Failure is NULL or a "*"-prefixed token, depending on the build. */
	if (out && out[0] == '$')
		hash = xstrdup(out);
	if (data) {
		explicit_bzero(data, (size_t)size);
		free(data);
	}
	free(setting);
	return hash;
}

int password_verify(const char *hash, const char *password)
{
	void *data = NULL;
	int size = 0, ok = 0;
	char *out;

	if (!hash || !password || hash[0] != '$')
		return 0;
	out = crypt_ra(password, hash, &data, &size);
	if (out && out[0] == '$') {
		size_t hl = strlen(hash), ol = strlen(out);
		ok = hl == ol && CRYPTO_memcmp(out, hash, hl) == 0;
	}
	if (data) {
		explicit_bzero(data, (size_t)size);
		free(data);
	}
	return ok;
}

static pthread_once_t password_dummy_once = PTHREAD_ONCE_INIT;
static char *password_dummy;

static void password_dummy_make(void)
{
	unsigned char rnd[24];
	char pw[sizeof(rnd) * 2 + 1];
	static const char hex[] = "0123456789abcdef";

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatalx("RAND_bytes failed");
	for (size_t i = 0; i < sizeof(rnd); i++) {
		pw[2 * i] = hex[rnd[i] >> 4];
		pw[2 * i + 1] = hex[rnd[i] & 15];
	}
	pw[sizeof(pw) - 1] = '\0';
	password_dummy = password_hash(pw);
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(rnd, sizeof(rnd));
	if (!password_dummy)
		fatalx("cannot make a yescrypt hash: libxcrypt lacks yescrypt?");
}

const char *password_dummy_hash(void)
{
	pthread_once(&password_dummy_once, password_dummy_make);
	return password_dummy;
}

static char *password_b64(const unsigned char *in, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

int password_scram_derive(enum password_scram_hash hash, const char *password,
			  const unsigned char *salt, size_t saltlen, unsigned iterations,
			  struct scram_keys *keys_r)
{
	Gsasl_hash h = hash == PASSWORD_SCRAM_SHA1 ? GSASL_HASH_SHA1 : GSASL_HASH_SHA256;
	size_t hlen = gsasl_hash_length(h);
	char salted[GSASL_HASH_MAX_SIZE], client_key[GSASL_HASH_MAX_SIZE];
	char server_key[GSASL_HASH_MAX_SIZE], stored_key[GSASL_HASH_MAX_SIZE];
	char *prepped = NULL;
	int rc;

	memset(keys_r, 0, sizeof(*keys_r));
	/* RFC 5802 section 3: "SaltedPassword := Hi(Normalize(password), salt, i)",
	 * where Normalize is SASLprep with unassigned code points allowed (as the
	 * stored-strings rule does not apply to queries). gsasl's own SCRAM client
	 * prepares the password the same way, so the keys agree. */
	if (gsasl_saslprep(password, GSASL_ALLOW_UNASSIGNED, &prepped, NULL) != GSASL_OK)
		return -1;
	rc = gsasl_scram_secrets_from_password(h, prepped, iterations, (const char *)salt,
					       saltlen, salted, client_key, server_key,
					       stored_key);
	explicit_bzero(prepped, strlen(prepped));
	gsasl_free(prepped);
	if (rc == GSASL_OK) {
		keys_r->salt = password_b64(salt, saltlen);
		keys_r->iterations = iterations;
		keys_r->stored_key = password_b64((unsigned char *)stored_key, hlen);
		keys_r->server_key = password_b64((unsigned char *)server_key, hlen);
	}
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(server_key, sizeof(server_key));
	explicit_bzero(stored_key, sizeof(stored_key));
	return rc == GSASL_OK ? 0 : -1;
}

int password_scram_make(enum password_scram_hash hash, const char *password,
			unsigned iterations, struct scram_keys *keys_r)
{
	unsigned char salt[PASSWORD_SCRAM_SALT_LEN];

	memset(keys_r, 0, sizeof(*keys_r));
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	return password_scram_derive(hash, password, salt, sizeof(salt), iterations, keys_r);
}

void password_scram_keys_clear(struct scram_keys *keys)
{
	/* StoredKey and ServerKey are not the password but still let one pose as the
	 * server to a client; they do not linger in freed memory either. */
	if (keys->stored_key)
		xfree_secret(keys->stored_key, strlen(keys->stored_key));
	if (keys->server_key)
		xfree_secret(keys->server_key, strlen(keys->server_key));
	free(keys->salt);
	memset(keys, 0, sizeof(*keys));
}
