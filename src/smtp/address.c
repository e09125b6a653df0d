/* address: parses the Path of MAIL FROM and RCPT TO by the RFC 5321 4.1.2 grammar,
 * with the RFC 6531 UTF-8 extensions only when SMTPUTF8 was given. It promises that
 * every address it returns is syntactically valid, within the RFC 5321 4.5.3.1 size
 * limits, free of control bytes, and in one canonical spelling (domain lower-cased,
 * needless quotes removed), so the rest of the server can compare addresses as strings.
 * Pure: no I/O; the only allocation is the returned address. */
#include "smtp/address.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "util/ascii.h"
#include "util/xmalloc.h"

/* RFC 5321 4.5.3.1.1-3: "The maximum total length of a user name or other local-part
 * is 64 octets." "The maximum total length of a domain name or number is 255 octets."
 * "The maximum total length of a reverse-path or forward-path is 256 octets (including
 * the punctuation and element separators)." */
#define ADDRESS_LOCAL_MAX  64
#define ADDRESS_DOMAIN_MAX 255
#define ADDRESS_PATH_MAX   256

static const char address_why_domain[] = "syntax error in domain";

struct address_parser {
	const char *s;
	size_t len;
	size_t p;
	int utf8;
	const char *why;
};

static int address_peek(const struct address_parser *ap)
{
	return ap->p < ap->len ? (unsigned char)ap->s[ap->p] : -1;
}

static int address_is_alnum(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 5322 3.2.3 atext, which RFC 5321 4.1.2 uses for Atom. */
static int address_is_atext(int c)
{
	return c >= 0 && (address_is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c)));
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 4: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t address_utf8_len(const unsigned char *s, size_t avail)
{
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;              /* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f;              /* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90;              /* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f;              /* above U+10FFFF */
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* At a byte >= 0x80: the length of its UTF-8 character, or 0 with ap->why set.
 * RFC 6531 3.3: UTF8-non-ascii is only added to the grammar when SMTPUTF8 is used. */
static size_t address_nonascii(struct address_parser *ap)
{
	size_t n;

	if (!ap->utf8) {
		ap->why = "non-ASCII address without SMTPUTF8";
		return 0;
	}
	n = address_utf8_len((const unsigned char *)ap->s + ap->p, ap->len - ap->p);
	if (n == 0)
		ap->why = "invalid UTF-8 in address";
	return n;
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str];
 * Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig. RFC 6531 3.3: sub-domain =/ U-label,
 * whose non-ASCII characters we treat as letters. */
static int address_parse_domain(struct address_parser *ap)
{
	for (;;) {
		size_t start = ap->p;
		int c, last_letdig = 0;

		while ((c = address_peek(ap)) >= 0) {
			if (address_is_alnum(c)) {
				ap->p++;
				last_letdig = 1;
			} else if (c == '-' && ap->p > start) {
				ap->p++;
				last_letdig = 0;
			} else if (c >= 0x80) {
				size_t n = address_nonascii(ap);
				if (n == 0)
					return -1;
				ap->p += n;
				last_letdig = 1;
			} else {
				break;
			}
		}
		if (ap->p == start || !last_letdig) {
			ap->why = address_why_domain;
			return -1;
		}
		/* RFC 1035 2.3.4: "labels 63 octets or less". */
		if (ap->p - start > 63) {
			ap->why = "domain label longer than 63 octets";
			return -1;
		}
		if (address_peek(ap) != '.')
			return 0;
		ap->p++;
	}
}

/* address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]"; dcontent = %d33-90 / %d94-126. No
 * General-address-literal tag is registered, so only IPv4 and IPv6 are accepted. */
static int address_parse_literal(struct address_parser *ap)
{
	char buf[ADDRESS_DOMAIN_MAX + 1];
	size_t start = ++ap->p, n;
	int c;
	unsigned char bin[16];

	while ((c = address_peek(ap)) >= 33 && c <= 126 && c != '[' && c != '\\' && c != ']')
		ap->p++;
	n = ap->p - start;
	if (c != ']' || n == 0 || n >= sizeof(buf)) {
		ap->why = "invalid address literal";
		return -1;
	}
	ap->p++;
	memcpy(buf, ap->s + start, n);
	buf[n] = '\0';
	if (n > 5 && strncasecmp(buf, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, buf + 5, bin) == 1)
			return 0;
	} else if (strchr(buf, ':') == NULL) {
		if (inet_pton(AF_INET, buf, bin) == 1)
			return 0;
	}
	ap->why = "invalid address literal";
	return -1;
}

/* Dot-string = Atom *("." Atom); RFC 6531 3.3: atext =/ UTF8-non-ascii. */
static int address_parse_dot_string(struct address_parser *ap)
{
	for (;;) {
		size_t start = ap->p;
		int c;

		while ((c = address_peek(ap)) >= 0) {
			if (address_is_atext(c)) {
				ap->p++;
			} else if (c >= 0x80) {
				size_t n = address_nonascii(ap);
				if (n == 0)
					return -1;
				ap->p += n;
			} else {
				break;
			}
		}
		if (ap->p == start) {
			ap->why = "syntax error in local part";
			return -1;
		}
		if (address_peek(ap) != '.')
			return 0;
		ap->p++;
	}
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE; qtextSMTP = %d32-33 / %d35-91 /
 * %d93-126 (RFC 6531: =/ UTF8-non-ascii); quoted-pairSMTP = %d92 %d32-126. */
static int address_parse_quoted(struct address_parser *ap)
{
	int c;

	ap->p++;
	while ((c = address_peek(ap)) >= 0 && c != '"') {
		if (c == '\\') {
			ap->p++;
			c = address_peek(ap);
			if (c < 32 || c > 126)
				break;
			ap->p++;
		} else if (c >= 32 && c <= 126) {
			ap->p++;
		} else if (c >= 0x80) {
			size_t n = address_nonascii(ap);
			if (n == 0)
				return -1;
			ap->p += n;
		} else {
			break;
		}
	}
	if (c != '"') {
		ap->why = "syntax error in local part";
		return -1;
	}
	ap->p++;
	return 0;
}

/* True when b[0..n) is a Dot-string; its UTF-8 was validated while parsing. */
static int address_is_dot_string(const char *b, size_t n, int utf8)
{
	size_t i;
	int prev_dot = 1;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		int c = (unsigned char)b[i];
		if (c == '.') {
			if (prev_dot)
				return 0;
			prev_dot = 1;
		} else if (address_is_atext(c) || (utf8 && c >= 0x80)) {
			prev_dot = 0;
		} else {
			return 0;
		}
	}
	return !prev_dot;
}

/* Appends the canonical local part: the quoted form's content unquoted when it is
 * a Dot-string anyway, else re-quoted escaping only '"' and '\'. */
static size_t address_canon_local(const char *raw, size_t n, int utf8, char *out)
{
	char content[ADDRESS_LOCAL_MAX];
	size_t i, c = 0, o = 0;

	if (n == 0 || raw[0] != '"') {
		memcpy(out, raw, n);
		return n;
	}
	for (i = 1; i + 1 < n; i++) {
		if (raw[i] == '\\')
			i++;
		content[c++] = raw[i];
	}
	if (address_is_dot_string(content, c, utf8)) {
		memcpy(out, content, c);
		return c;
	}
	out[o++] = '"';
	for (i = 0; i < c; i++) {
		if (content[i] == '"' || content[i] == '\\')
			out[o++] = '\\';
		out[o++] = content[i];
	}
	out[o++] = '"';
	return o;
}

int address_parse_path(const char *s, size_t len, int allow_null, int utf8,
		       char **addr_r, size_t *end_r, const char **why_r)
{
	struct address_parser ap = { s, len, 0, utf8, NULL };
	size_t lstart, llen, dstart, dlen, o, i;
	char *out;

	/* RFC 5321 4.1.2: Path = "<" [ A-d-l ":" ] Mailbox ">" */
	if (len == 0 || s[0] != '<')
		goto enclose;
	ap.p = 1;
	if (address_peek(&ap) == '>') {
		/* Reverse-path = Path / "<>": only MAIL FROM may be null. */
		if (!allow_null) {
			*why_r = "null address not allowed";
			return -1;
		}
		*addr_r = xstrdup("");
		*end_r = 2;
		return 0;
	}

	/* A-d-l = At-domain *( "," At-domain ); RFC 5321 C: servers "SHOULD accept
	 * source route syntax ... and SHOULD ignore the routes". */
	if (address_peek(&ap) == '@') {
		for (;;) {
			ap.p++;
			if (address_parse_domain(&ap) < 0)
				goto route;
			if (address_peek(&ap) == ':')
				break;
			if (address_peek(&ap) != ',')
				goto route;
			ap.p++;
			if (address_peek(&ap) != '@')
				goto route;
		}
		ap.p++;
	}

	/* Mailbox = Local-part "@" ( Domain / address-literal ) */
	lstart = ap.p;
	if (address_peek(&ap) == '"') {
		if (address_parse_quoted(&ap) < 0)
			goto fail;
	} else if (address_parse_dot_string(&ap) < 0) {
		goto fail;
	}
	llen = ap.p - lstart;
	if (llen > ADDRESS_LOCAL_MAX) {
		*why_r = "local part too long";
		return -1;
	}
	if (address_peek(&ap) != '@')
		goto mailbox;
	dstart = ++ap.p;
	if (address_peek(&ap) == '[') {
		if (address_parse_literal(&ap) < 0)
			goto fail;
	} else if (address_parse_domain(&ap) < 0) {
		goto fail;
	}
	dlen = ap.p - dstart;
	if (dlen > ADDRESS_DOMAIN_MAX) {
		*why_r = "domain too long";
		return -1;
	}
	if (address_peek(&ap) != '>') {
		if (ap.p >= len)
			goto enclose;
		goto mailbox;
	}
	ap.p++;
	if (ap.p > ADDRESS_PATH_MAX) {
		*why_r = "path too long";
		return -1;
	}

	/* The canonical form is never longer than the text it came from. */
	out = xmalloc(llen + 1 + dlen + 1);
	o = address_canon_local(s + lstart, llen, utf8, out);
	out[o++] = '@';
	/* RFC 5321 2.4: domain names are case-insensitive; the local part is not. */
	for (i = 0; i < dlen; i++)
		out[o++] = ascii_lower(s[dstart + i]);
	out[o] = '\0';
	if (s[dstart] == '[' && dlen > 6 && strncmp(out + o - dlen + 1, "ipv6:", 5) == 0)
		memcpy(out + o - dlen + 1, "IPv6:", 5);
	*addr_r = out;
	*end_r = ap.p;
	return 0;

enclose:
	*why_r = "path must be enclosed in <>";
	return -1;
route:
	/* Keep a UTF-8 complaint; any other error in a route is the route's. */
	*why_r = ap.why && ap.why != address_why_domain ? ap.why : "syntax error in source route";
	return -1;
mailbox:
	*why_r = "syntax error in mailbox";
	return -1;
fail:
	*why_r = ap.why ? ap.why : "syntax error in mailbox";
	return -1;
}

int address_split(const char *addr, char **local_r, char **domain_r)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL)
		return -1;
	*local_r = xstrndup(addr, (size_t)(at - addr));
	*domain_r = xstrdup(at + 1);
	return 0;
}

int address_has_routing(const char *local)
{
	/* Quotes and backslashes never hide these characters: "a\@b" still holds '@'. */
	return strpbrk(local, "%!@") != NULL;
}
