/* dkim_canon: relaxed canonicalisation (RFC 6376 3.4.2 and 3.4.4), see dkim_canon.h. */
#include "dkim/dkim_canon.h"

#include <openssl/evp.h>
#include <string.h>

#include "util/ascii.h"
#include "util/log.h"
#include "util/xmalloc.h"

static int dkim_wsp(char c)
{
	return c == ' ' || c == '\t';
}

void dkim_canon_header(const char *f, size_t n, int crlf, struct strbuf *out)
{
	const char *colon = memchr(f, ':', n);
	size_t name_end = colon ? (size_t)(colon - f) : n, i;
	int wsp = 0, started = 0;

	/* "WSP before the colon" is part of no name: dropped with the name's trailing
	 * white space. */
	while (name_end > 0 && dkim_wsp(f[name_end - 1]))
		name_end--;
	for (i = 0; i < name_end; i++) {
		char c = ascii_lower(f[i]);
		strbuf_put(out, &c, 1);
	}
	strbuf_put(out, ":", 1);
	/* The value: CR and LF go (unfolding), white space runs become one SP, none
	 * before the first or after the last other octet. */
	for (i = colon ? (size_t)(colon - f) + 1 : n; i < n; i++) {
		char c = f[i];
		if (c == '\r' || c == '\n')
			continue;
		if (dkim_wsp(c)) {
			wsp = 1;
			continue;
		}
		if (wsp && started)
			strbuf_put(out, " ", 1);
		wsp = 0;
		started = 1;
		strbuf_put(out, &c, 1);
	}
	if (crlf)
		strbuf_put(out, "\r\n", 2);
}

void dkim_body_init(struct dkim_body *b)
{
	memset(b, 0, sizeof(*b));
	if (!(b->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(b->md, EVP_sha256(), NULL))
		fatalx("dkim: cannot start SHA-256");
}

static void dkim_body_flush(struct dkim_body *b)
{
	if (b->fill)
		EVP_DigestUpdate(b->md, b->out, b->fill);
	b->fill = 0;
}

static void dkim_body_put(struct dkim_body *b, const char *s, size_t n)
{
	if (b->fill + n > sizeof(b->out))
		dkim_body_flush(b);
	memcpy(b->out + b->fill, s, n);
	b->fill += n;
}

/* An octet that is neither white space nor a line end: the line ends and white space
 * held back until now are real, since something follows them. */
static void dkim_body_octet(struct dkim_body *b, char c)
{
	for (; b->crlfs; b->crlfs--)
		dkim_body_put(b, "\r\n", 2);
	if (b->wsp)
		dkim_body_put(b, " ", 1);
	b->wsp = 0;
	b->any = 1;
	dkim_body_put(b, &c, 1);
}

void dkim_body_update(struct dkim_body *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (b->cr) {
			b->cr = 0;
			if (c == '\n') {
				/* White space at the end of a line is ignored. */
				b->wsp = 0;
				b->crlfs++;
				continue;
			}
			dkim_body_octet(b, '\r'); /* a CR alone is no line end */
		}
		if (c == '\r')
			b->cr = 1;
		else if (dkim_wsp(c))
			b->wsp = 1;
		else
			dkim_body_octet(b, c);
	}
}

void dkim_body_final(struct dkim_body *b, unsigned char hash[32])
{
	unsigned len = 32;
	if (b->cr)
		dkim_body_octet(b, '\r');
	/* Empty lines at the end are ignored; a non-empty body ends in one CRLF. */
	if (b->any)
		dkim_body_put(b, "\r\n", 2);
	dkim_body_flush(b);
	EVP_DigestFinal_ex(b->md, hash, &len);
	dkim_body_discard(b);
}

void dkim_body_discard(struct dkim_body *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}
