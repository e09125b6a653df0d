/* dkim_sign: the signer of one message (see dkim_sign.h). */
#include "dkim/dkim_sign.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim/dkim_canon.h"
#include "dkim/dkim_keys.h"
#include "queue/queue.h"
#include "smtp/addrlist.h"
#include "util/ascii.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* RFC 6376 5.4.1's list, the MIME fields (whose change alters what is shown) and the
 * mailing-list fields; in this order in h=. Received is left out, as OpenDKIM and rspamd
 * do: a smart host that strips or rewrites trace fields to hide the submitting client
 * would break the signature, and trace fields say nothing a receiver's DMARC check
 * needs. The Message-ID and Date cursus adds to local mail are covered. */
static const struct {
	const char *name;
	int over;              /* named once more than present: none may be added */
} dkim_signed[] = {
	{ "from", 1 }, { "to", 1 }, { "subject", 1 }, { "cc", 0 }, { "reply-to", 0 },
	{ "date", 0 }, { "message-id", 0 }, { "in-reply-to", 0 }, { "references", 0 },
	{ "sender", 0 }, { "mime-version", 0 }, { "content-type", 0 },
	{ "content-transfer-encoding", 0 }, { "content-disposition", 0 },
	{ "content-id", 0 }, { "content-description", 0 }, { "resent-date", 0 },
	{ "resent-from", 0 }, { "resent-sender", 0 }, { "resent-to", 0 }, { "resent-cc", 0 },
	{ "resent-message-id", 0 }, { "list-id", 0 }, { "list-help", 0 },
	{ "list-unsubscribe", 0 }, { "list-unsubscribe-post", 0 }, { "list-subscribe", 0 },
	{ "list-post", 0 }, { "list-owner", 0 }, { "list-archive", 0 },
};
#define DKIM_N_SIGNED (sizeof(dkim_signed) / sizeof(dkim_signed[0]))
/* Lines of the field are folded before this column where they can be. */
#define DKIM_FOLD 76

struct dkim_field {
	size_t which;          /* index into dkim_signed */
	char *raw;             /* the field as in the message, with its CRLF(s) */
	size_t len;
};

struct dkim_signer {
	struct queue_seal seal;
	struct dkim_keys *keys;
	char id[24];
	time_t now;
	int in_body, bol;
	struct strbuf cur;   /* the field being read */
	struct dkim_field *fields;
	size_t n;
	struct dkim_body body;
};

static int dkim_signed_index(const char *f, size_t len, size_t *which_r)
{
	const char *colon = memchr(f, ':', len);
	size_t n;
	if (!colon)
		return 0;
	n = (size_t)(colon - f);
	while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < DKIM_N_SIGNED; i++)
		if (strlen(dkim_signed[i].name) == n && strncasecmp(f, dkim_signed[i].name, n) == 0) {
			*which_r = i;
			return 1;
		}
	return 0;
}

/* The field just read ends: kept when signed. */
static void dkim_field_end(struct dkim_signer *d)
{
	size_t which;
	if (d->cur.len && dkim_signed_index(d->cur.p, d->cur.len, &which)) {
		d->fields = xrealloc(d->fields, (d->n + 1) * sizeof(*d->fields));
		d->fields[d->n++] = (struct dkim_field){ which, d->cur.p, d->cur.len };
		memset(&d->cur, 0, sizeof(d->cur));
	}
	d->cur.len = 0;
}

/* The header section, a field at a time: a line starting with white space continues
 * the field before it, an empty line ends the section and the body begins. */
static void dkim_update(struct queue_seal *seal, const char *p, size_t n)
{
	struct dkim_signer *d = (struct dkim_signer *)seal;
	size_t i = 0;
	while (i < n && !d->in_body) {
		char c = p[i];
		if (d->bol) {
			if (c == '\r' || c == '\n') {
				/* The empty line: its CR and LF belong to no field. */
				if (c == '\n') {
					dkim_field_end(d);
					d->in_body = 1;
				}
				i++;
				continue;
			}
			if (c != ' ' && c != '\t')
				dkim_field_end(d);
			d->bol = 0;
		}
		strbuf_put(&d->cur, &c, 1);
		if (c == '\n')
			d->bol = 1;
		i++;
	}
	if (i < n)
		dkim_body_update(&d->body, p + i, n - i);
}

char *dkim_header_list(char *const *names, size_t n)
{
	struct strbuf b = { 0 };
	strbuf_put(&b, "", 0);
	for (size_t k = 0; k < DKIM_N_SIGNED; k++) {
		size_t count = 0;
		for (size_t i = 0; i < n; i++)
			count += strcmp(names[i], dkim_signed[k].name) == 0;
		count += (size_t)dkim_signed[k].over;
		for (size_t i = 0; i < count; i++) {
			if (b.len)
				strbuf_put(&b, ":", 1);
			strbuf_puts(&b, dkim_signed[k].name);
		}
	}
	return b.p;
}

/* The h= names and, in the same order, the canonical fields they select: for a name
 * given k times, its last k instances from the bottom up (RFC 6376 5.4.2); a name
 * given once more than present selects nothing the last time. */
static void dkim_select(const struct dkim_signer *d, struct strbuf *names, struct strbuf *data)
{
	for (size_t k = 0; k < DKIM_N_SIGNED; k++) {
		size_t count = 0, times;
		for (size_t i = 0; i < d->n; i++)
			count += d->fields[i].which == k;
		times = count + (size_t)dkim_signed[k].over;
		for (size_t t = 0, i = d->n; t < times; t++) {
			if (names->len)
				strbuf_put(names, ":", 1);
			strbuf_puts(names, dkim_signed[k].name);
			while (i > 0 && d->fields[i - 1].which != k)
				i--;
			if (i == 0)
				continue;
			i--;
			dkim_canon_header(d->fields[i].raw, d->fields[i].len, 1, data);
		}
	}
}

/* The From: domain (lower case, malloc'd), or NULL with why[] saying why not. */
static char *dkim_from_domain(const struct dkim_signer *d, char *why, size_t whysz)
{
	const struct dkim_field *from = NULL;
	char **addrs = NULL, *domain = NULL, *at;
	size_t n = 0, count = 0;

	for (size_t i = 0; i < d->n; i++)
		if (d->fields[i].which == 0) {
			from = &d->fields[i];
			count++;
		}
	if (count != 1) {
		snprintf(why, whysz, count ? "several From fields" : "no From field");
		return NULL;
	}
	const char *colon = memchr(from->raw, ':', from->len);
	addrlist_parse(colon + 1, from->len - (size_t)(colon + 1 - from->raw), &addrs, &n);
	if (n != 1 || !(at = strrchr(addrs[0], '@')) || !at[1]) {
		snprintf(why, whysz, n > 1 ? "several From addresses" : "no address in From");
	} else {
		domain = ascii_lower_str(xstrdup(at + 1));
		if (*domain && domain[strlen(domain) - 1] == '.')
			domain[strlen(domain) - 1] = '\0';
	}
	addrlist_free(addrs, n);
	return domain;
}

/* Appends s, first breaking the line (CRLF TAB) when s would pass DKIM_FOLD. */
static void dkim_fold_put(struct strbuf *b, size_t *col, const char *s, size_t n)
{
	if (*col + n > DKIM_FOLD && *col > 1) {
		strbuf_put(b, "\r\n\t", 3);
		*col = 1;
	}
	strbuf_put(b, s, n);
	*col += n;
}

/* Signs data (the selected fields, then this signature's own field without its b=
 * value, both canonical) with key; the base64 signature, or NULL. Ed25519 signs the
 * SHA-256 of the data (RFC 8463 3), RSA the data with SHA-256 (PKCS #1 v1.5). */
static char *dkim_sign_data(const struct dkim_key *key, const char *data, size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char hash[32], *sig = NULL;
	size_t siglen = 0;
	char *b64 = NULL;
	const unsigned char *in = (const unsigned char *)data;
	size_t inlen = len;

	if (!ctx)
		return NULL;
	if (key->ed25519) {
		unsigned hl = sizeof(hash);
		if (!EVP_Digest(data, len, hash, &hl, EVP_sha256(), NULL))
			goto out;
		in = hash;
		inlen = hl;
	}
	if (EVP_DigestSignInit_ex(ctx, NULL, key->ed25519 ? NULL : "SHA256", NULL, NULL, key->pkey,
				  NULL) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, in, inlen) != 1)
		goto out;
	sig = xmalloc(siglen);
	if (EVP_DigestSign(ctx, sig, &siglen, in, inlen) == 1)
		b64 = dkim_base64(sig, siglen);
out:
	free(sig);
	EVP_MD_CTX_free(ctx);
	return b64;
}

/* One DKIM-Signature field for key, appended to out; -1 when the key failed. */
static int dkim_sign_one(const struct dkim_signer *d, const struct dkim_key *key, const char *hlist,
			 const char *bh, const struct strbuf *selected, struct strbuf *out)
{
	struct strbuf f = { 0 }, data = { 0 };
	char tag[600], *b;
	size_t col = 0;
	int n;

	n = snprintf(tag, sizeof(tag), "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;",
		     key->ed25519 ? "ed25519-sha256" : "rsa-sha256");
	dkim_fold_put(&f, &col, tag, (size_t)n);
	n = snprintf(tag, sizeof(tag), " d=%s;", key->domain);
	dkim_fold_put(&f, &col, tag, (size_t)n);
	n = snprintf(tag, sizeof(tag), " s=%s;", key->selector);
	dkim_fold_put(&f, &col, tag, (size_t)n);
	n = snprintf(tag, sizeof(tag), " t=%lld;", (long long)d->now);
	dkim_fold_put(&f, &col, tag, (size_t)n);
	/* h= folds after a colon: FWS is allowed there (RFC 6376 3.5). */
	dkim_fold_put(&f, &col, " h=", 3);
	for (const char *p = hlist; *p;) {
		size_t k = strcspn(p, ":");
		dkim_fold_put(&f, &col, p, k + (p[k] == ':'));
		p += k + (p[k] == ':');
	}
	dkim_fold_put(&f, &col, ";", 1);
	n = snprintf(tag, sizeof(tag), " bh=%s;", bh);
	dkim_fold_put(&f, &col, tag, (size_t)n);
	dkim_fold_put(&f, &col, " b=", 3);

	/* What is signed: the selected fields, then this field with b= empty and no
	 * final CRLF (RFC 6376 3.7). */
	strbuf_put(&data, selected->p ? selected->p : "", selected->len);
	dkim_canon_header(f.p, f.len, 0, &data);
	b = dkim_sign_data(key, data.p, data.len);
	strbuf_free(&data);
	if (!b) {
		strbuf_free(&f);
		return -1;
	}
	/* The value may be broken anywhere: white space in b= is ignored (3.5). */
	for (size_t i = 0, bl = strlen(b); i < bl;) {
		size_t room = col < DKIM_FOLD ? DKIM_FOLD - col : 0, k;
		if (room < 8) {
			strbuf_put(&f, "\r\n\t", 3);
			col = 1;
			continue;
		}
		k = bl - i < room ? bl - i : room;
		strbuf_put(&f, b + i, k);
		col += k;
		i += k;
	}
	strbuf_put(&f, "\r\n", 2);
	strbuf_put(out, f.p, f.len);
	strbuf_free(&f);
	free(b);
	return 0;
}

static char *dkim_finish(struct queue_seal *seal)
{
	struct dkim_signer *d = (struct dkim_signer *)seal;
	struct strbuf out = { 0 }, names = { 0 }, selected = { 0 }, sels = { 0 };
	char why[120], *domain, *bh, esc[LOG_ESCAPE_BUFSZ];
	unsigned char hash[32];
	size_t found = 0, failed = 0;

	if (!d->in_body)
		dkim_field_end(d);
	dkim_body_final(&d->body, hash);
	if (!(domain = dkim_from_domain(d, why, sizeof(why)))) {
		log_info("dkim id=%s result=unsigned reason=\"%s\"", d->id, why);
		return NULL;
	}
	if (!d->now)
		d->now = time(NULL);
	bh = dkim_base64(hash, sizeof(hash));
	dkim_select(d, &names, &selected);
	for (size_t i = 0; i < d->keys->n; i++) {
		const struct dkim_key *k = &d->keys->keys[i];
		if (strcmp(k->domain, domain) != 0)
			continue;
		found++;
		if (dkim_sign_one(d, k, names.p, bh, &selected, &out) < 0) {
			failed++;
			log_warnx("dkim id=%s result=error domain=%s selector=%s reason=\"the key "
				  "did not sign\"", d->id, k->domain, k->selector);
			continue;
		}
		if (sels.len)
			strbuf_put(&sels, ",", 1);
		strbuf_puts(&sels, k->selector);
	}
	if (!found)
		log_info("dkim id=%s result=unsigned reason=\"no key for the From domain\" domain=%s",
			 d->id, log_escape(esc, sizeof(esc), domain, strlen(domain)));
	else if (found > failed)
		log_info("dkim id=%s result=signed domain=%s selectors=%s", d->id, domain, sels.p);
	free(domain);
	free(bh);
	strbuf_free(&names);
	strbuf_free(&selected);
	strbuf_free(&sels);
	return out.p;
}

static void dkim_destroy(struct queue_seal *seal)
{
	struct dkim_signer *d = (struct dkim_signer *)seal;
	for (size_t i = 0; i < d->n; i++)
		free(d->fields[i].raw);
	free(d->fields);
	strbuf_free(&d->cur);
	if (d->body.md)
		dkim_body_discard(&d->body);
	dkim_keys_free(&d->keys);
	free(d);
}

struct queue_seal *dkim_signer_create(struct dkim_keys *keys, const char *id)
{
	struct dkim_signer *d;
	if (!keys || keys->n == 0)
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->seal = (struct queue_seal){ dkim_update, dkim_finish, dkim_destroy };
	d->keys = dkim_keys_ref(keys);
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->bol = 1;
	dkim_body_init(&d->body);
	return &d->seal;
}

void dkim_signer_set_time(struct queue_seal *seal, time_t t)
{
	((struct dkim_signer *)seal)->now = t;
}
