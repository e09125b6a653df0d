/* Tests of DKIM signing's pure parts: relaxed canonicalisation (RFC 6376 3.4.5's
 * example, the body fed in every split, the edge cases of 3.4.4), the signed header
 * list with over-signing, and the signer itself: deterministic Ed25519 signatures that
 * are the same however the message is cut into chunks, and that verify. */
#include "unit.h"
#include "dkim/dkim_canon.h"
#include "dkim/dkim_keys.h"
#include "dkim/dkim_sign.h"
#include "queue/queue.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>

static void sha256(const char *p, size_t n, unsigned char out[32])
{
	unsigned len = 32;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static void body_hash(const char *p, size_t n, size_t cut1, size_t cut2, unsigned char out[32])
{
	struct dkim_body b;
	dkim_body_init(&b);
	dkim_body_update(&b, p, cut1);
	dkim_body_update(&b, p + cut1, cut2 - cut1);
	dkim_body_update(&b, p + cut2, n - cut2);
	dkim_body_final(&b, out);
}

/* The body's hash equals SHA-256(want) for every two cuts of the input. */
static void check_body(const char *in, const char *want)
{
	unsigned char h[32], w[32];
	size_t n = strlen(in);
	int bad = 0;
	sha256(want, strlen(want), w);
	for (size_t a = 0; a <= n; a++)
		for (size_t b = a; b <= n; b++) {
			body_hash(in, n, a, b, h);
			bad += memcmp(h, w, 32) != 0;
		}
	CHECK(bad == 0);
	if (bad)
		fprintf(stderr, "  body \"%s\"\n", in);
}

static void check_header(const char *in, const char *want)
{
	struct strbuf b = { 0 };
	dkim_canon_header(in, strlen(in), 1, &b);
	CHECK_STR(b.p, want);
	strbuf_free(&b);
}

static void test_rfc6376_example(void)
{
	/* RFC 6376 3.4.5: "A: <SP> X <CRLF>", "B <SP> : <SP> Y <HTAB><CRLF> <HTAB> Z
	 * <SP><SP><CRLF>"; body " C \r\nD \t E\r\n\r\n\r\n". */
	check_header("A: X\r\n", "a:X\r\n");
	check_header("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
	check_body(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

static void test_body_edges(void)
{
	check_body("", "");
	check_body("\r\n", "");
	check_body("\r\n\r\n \t\r\n", "");
	check_body("abc", "abc\r\n");
	check_body("a \t\r\n", "a\r\n");
	check_body("\r\n\r\na\r\n", "\r\n\r\na\r\n");
	check_body("a\r\n \r\nb\r\n\r\n", "a\r\n\r\nb\r\n");
	check_body("a\rb\r\n", "a\rb\r\n");
	check_body("\tlead  and   runs\t \r\n", " lead and runs\r\n");
	check_body("8bit \xc3\xa9t\xc3\xa9\r\n", "8bit \xc3\xa9t\xc3\xa9\r\n");
	check_header("SUBJECT:no space\r\n", "subject:no space\r\n");
	check_header("To:   a@b,\r\n  c@d   \r\n", "to:a@b, c@d\r\n");
	check_header("X-Empty:\r\n", "x-empty:\r\n");
}

static void test_header_list(void)
{
	char *names[] = { "received", "from", "subject", "received", "date", "to", "cc" };
	char *l = dkim_header_list(names, 7);
	CHECK_STR(l, "from:from:to:to:subject:subject:cc:date");
	free(l);
	l = dkim_header_list(NULL, 0);
	CHECK_STR(l, "from:to:subject");
	free(l);
}

static struct dkim_keys *test_keys(EVP_PKEY *pkey)
{
	struct dkim_keys *ks = calloc(1, sizeof(*ks));
	atomic_init(&ks->refs, 1);
	ks->keys = calloc(1, sizeof(*ks->keys));
	ks->keys[0] = (struct dkim_key){ strdup("example.org"), strdup("s1"), strdup("k.pem"), pkey, 1 };
	ks->n = 1;
	return ks;
}

static char *sign_chunks(struct dkim_keys *ks, const char *msg, size_t chunk)
{
	struct queue_seal *seal = dkim_signer_create(ks, "0123456789abcdef");
	size_t n = strlen(msg);
	char *out;
	dkim_signer_set_time(seal, 1700000000);
	for (size_t i = 0; i < n; i += chunk)
		seal->update(seal, msg + i, n - i < chunk ? n - i : chunk);
	out = seal->finish(seal);
	seal->destroy(seal);
	return out;
}

/* Verifies field (one DKIM-Signature with its CRLF) over the canonical selected
 * header fields, as a verifier does: b= emptied, the field canonicalised. */
static int verify(EVP_PKEY *pkey, const char *field, const char *selected)
{
	const char *b = strstr(field, " b=");
	struct strbuf data = { 0 }, sig64 = { 0 };
	unsigned char sig[128], hash[32];
	int siglen, ok;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	strbuf_puts(&data, selected);
	dkim_canon_header(field, (size_t)(b + 3 - field), 0, &data);
	for (const char *p = b + 3; *p; p++)
		if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
			strbuf_put(&sig64, p, 1);
	siglen = EVP_DecodeBlock(sig, (unsigned char *)sig64.p, (int)sig64.len);
	sha256(data.p, data.len, hash);
	ok = siglen >= 64 && EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, pkey, NULL) == 1 &&
	     EVP_DigestVerify(ctx, sig, 64, hash, 32) == 1;
	EVP_MD_CTX_free(ctx);
	strbuf_free(&data);
	strbuf_free(&sig64);
	return ok;
}

static void test_signer(void)
{
	static const char msg[] =
		"Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
		"From: Alice <alice@Example.ORG>\r\n"
		"To: bob@example.net,\r\n\tcarol@example.net\r\n"
		"Subject:  hello   there \r\n"
		"X-Not-Signed: yes\r\n"
		"\r\n"
		"body line  \r\n\r\nlast\r\n\r\n\r\n";
	static const char selected[] =
		"from:Alice <alice@Example.ORG>\r\n"
		"to:bob@example.net, carol@example.net\r\n"
		"subject:hello there\r\n";
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct dkim_keys *ks = test_keys(pkey);
	char *one = sign_chunks(ks, msg, strlen(msg)), *bh;
	unsigned char h[32];
	char b64[64];

	CHECK(one && strncmp(one, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; "
			     "d=example.org;", 58) == 0);
	CHECK(one && strstr(one, " s=s1; t=1700000000;"));
	CHECK(one && strstr(one, " h=from:from:to:to:subject:subject;"));
	sha256("body line\r\n\r\nlast\r\n", 19, h);
	EVP_EncodeBlock((unsigned char *)b64, h, 32);
	bh = malloc(strlen(b64) + 8);
	sprintf(bh, " bh=%s;", b64);
	CHECK(one && strstr(one, bh));
	CHECK(one && verify(pkey, one, selected));
	/* Ed25519 is deterministic: every chunking gives the same field. */
	for (size_t chunk = 1; chunk < 40 && one; chunk++) {
		char *other = sign_chunks(ks, msg, chunk);
		CHECK(other && strcmp(other, one) == 0);
		free(other);
	}
	/* A changed body no longer matches the signature made before. */
	{
		char *changed = strdup(msg), *field;
		changed[strlen(changed) - 9] = 'L';
		field = sign_chunks(ks, changed, 7);
		CHECK(field && strcmp(field, one) != 0);
		free(field);
		free(changed);
	}
	/* No key for the From domain, or no From at all: nothing. */
	CHECK(sign_chunks(ks, "From: a@example.net\r\n\r\nx\r\n", 5) == NULL);
	CHECK(sign_chunks(ks, "Subject: x\r\n\r\nx\r\n", 5) == NULL);
	CHECK(sign_chunks(ks, "From: a@example.org\r\nFrom: b@example.org\r\n\r\nx\r\n", 5) == NULL);
	free(bh);
	free(one);
	dkim_keys_free(&ks);
}

static void test_key_checks(void)
{
	char why[200];
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char *txt = dkim_key_txt(ed);
	CHECK(dkim_key_usable(weak, why, sizeof(why)) == EKEYREJECTED && strstr(why, "1024 bits"));
	CHECK(dkim_key_usable(ec, why, sizeof(why)) == ENOTSUP);
	CHECK(dkim_key_usable(ed, why, sizeof(why)) == 0);
	CHECK(txt && strncmp(txt, "v=DKIM1; k=ed25519; p=", 22) == 0 && strlen(txt) == 22 + 44);
	free(txt);
	EVP_PKEY_free(weak);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
}

void unit_main(void)
{
	test_rfc6376_example();
	test_body_edges();
	test_header_list();
	test_signer();
	test_key_checks();
}
