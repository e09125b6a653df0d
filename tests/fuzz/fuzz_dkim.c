/* fuzz_dkim: feeds a message to the DKIM signer whole and in chunks of sizes drawn from
 * the input, the way the queue's writer hands it over. The header parser, the From
 * parser and the relaxed canonicalisation meet any bytes; Ed25519 signatures are
 * deterministic, so both runs must give the very same fields: "works on any split".
 * Input: byte 0 seeds the chunk sizes, the rest is the message. */
#include "fuzz.h"
#include "dkim/dkim_keys.h"
#include "dkim/dkim_sign.h"
#include "queue/queue.h"

#include <openssl/evp.h>

static struct dkim_keys *fuzz_keys(void)
{
	static struct dkim_keys *ks;
	if (!ks) {
		ks = calloc(1, sizeof(*ks));
		FUZZ_CHECK(ks != NULL);
		atomic_init(&ks->refs, 1);
		ks->keys = calloc(1, sizeof(*ks->keys));
		FUZZ_CHECK(ks->keys != NULL);
		ks->keys[0] = (struct dkim_key){ strdup("example.org"), strdup("s"), strdup("-"),
						 EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), 1 };
		ks->n = 1;
	}
	return ks;
}

static char *fuzz_sign(const char *msg, size_t n, unsigned seed)
{
	struct queue_seal *seal = dkim_signer_create(fuzz_keys(), "0123456789abcdef");
	char *out;
	dkim_signer_set_time(seal, 1700000000);
	for (size_t i = 0; i < n;) {
		size_t k = seed ? 1 + (seed = seed * 1103515245u + 12345u) % 97 : n;
		if (k > n - i)
			k = n - i;
		seal->update(seal, msg + i, k);
		i += k;
	}
	out = seal->finish(seal);
	seal->destroy(seal);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg, *whole, *chunked;
	if (size < 1)
		return 0;
	msg = fuzz_copy(data + 1, size - 1);
	whole = fuzz_sign(msg, size - 1, 0);
	chunked = fuzz_sign(msg, size - 1, data[0] | 1u);
	FUZZ_CHECK((whole == NULL) == (chunked == NULL));
	FUZZ_CHECK(!whole || strcmp(whole, chunked) == 0);
	FUZZ_CHECK(!whole || strncmp(whole, "DKIM-Signature: v=1; a=ed25519-sha256;", 38) == 0);
	free(whole);
	free(chunked);
	free(msg);
	return 0;
}
