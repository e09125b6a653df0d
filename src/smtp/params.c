/* params: parses the ESMTP parameters after the path of MAIL FROM and RCPT TO and
 * decodes xtext. It promises that each parameter is given at most once, that only the
 * parameters this server implements for that command are accepted (555 otherwise,
 * 501 for bad syntax), and that every decoded string it returns holds no control
 * byte, so a value can go into a queue record or a DSN header as it is. Pure. */
#include "smtp/params.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xmalloc.h"

/* RFC 3461 4.4: an ENVID of at most 100 characters; RFC 3461 4.2: "The entire ORCPT
 * parameter MAY be up to 500 characters in length." Both counted as sent (xtext). */
#define PARAMS_ENVID_MAX 100
#define PARAMS_ORCPT_MAX 500

enum params_key {
	PARAMS_SIZE, PARAMS_BODY, PARAMS_SMTPUTF8, PARAMS_RET, PARAMS_ENVID, PARAMS_AUTH,
	PARAMS_REQUIRETLS, PARAMS_NOTIFY, PARAMS_ORCPT, PARAMS__COUNT
};

static const struct {
	const char *name;
	int for_mail;           /* 1: MAIL only, 0: RCPT only */
	int has_value;          /* every one but SMTPUTF8 and REQUIRETLS takes "=value" */
} params_table[PARAMS__COUNT] = {
	[PARAMS_SIZE] = { "SIZE", 1, 1 },       [PARAMS_BODY] = { "BODY", 1, 1 },
	[PARAMS_SMTPUTF8] = { "SMTPUTF8", 1, 0 }, [PARAMS_RET] = { "RET", 1, 1 },
	[PARAMS_ENVID] = { "ENVID", 1, 1 },     [PARAMS_AUTH] = { "AUTH", 1, 1 },
	/* RFC 8689 2: "One optional parameter ("REQUIRETLS") is added to the MAIL FROM
	 * command ... No value is associated with this parameter." */
	[PARAMS_REQUIRETLS] = { "REQUIRETLS", 1, 0 },
	[PARAMS_NOTIFY] = { "NOTIFY", 0, 1 },   [PARAMS_ORCPT] = { "ORCPT", 0, 1 },
};

/* One parameter as found on the line. */
struct params_item {
	enum params_key key;
	const char *val;
	size_t vlen;
};

static int params_fail(struct param_error *err, int code, const char *text)
{
	/* RFC 3463: 5.5.4 "Invalid command arguments". */
	err->code = code;
	err->enhanced = "5.5.4";
	err->text = text;
	return -1;
}

static int params_is_alnum(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int params_word_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* Decoded values must be printable: ASCII only when `ascii`, and never a control. */
static int params_printable(const char *s, int ascii)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f || (ascii && c > 0x7f))
			return 0;
	}
	return 1;
}

/* Reads the parameter starting at s[*pos] (after any SPs). Returns 1 with *item set,
 * 0 at the end, -1 with *err set. */
static int params_next(const char *s, size_t len, size_t *pos, int for_mail, unsigned *seen,
		       struct params_item *item, struct param_error *err)
{
	size_t p = *pos, start, klen, i;
	const char *eq;
	int k;

	/* RFC 5321 4.1.2: Mail-parameters = esmtp-param *(SP esmtp-param). We also
	 * take several SPs, as clients do after the path, but not none:
	 * "MAIL FROM:<a@b>SIZE=1" is a malformed path, not a parameter. */
	if (p == 0 && len > 0 && s[0] != ' ')
		return params_fail(err, 501, "syntax error in parameters");
	while (p < len && s[p] == ' ')
		p++;
	if (p == len)
		return 0;
	start = p;
	while (p < len && s[p] != ' ')
		p++;
	*pos = p;

	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	eq = memchr(s + start, '=', p - start);
	klen = eq ? (size_t)(eq - (s + start)) : p - start;
	if (klen == 0 || !params_is_alnum((unsigned char)s[start]))
		return params_fail(err, 501, "syntax error in parameters");
	for (i = 1; i < klen; i++)
		if (!params_is_alnum((unsigned char)s[start + i]) && s[start + i] != '-')
			return params_fail(err, 501, "syntax error in parameters");
	item->val = eq ? eq + 1 : NULL;
	item->vlen = eq ? p - start - klen - 1 : 0;
	/* esmtp-value = 1*(%d33-60 / %d62-126) */
	if (eq && item->vlen == 0)
		return params_fail(err, 501, "syntax error in parameters");
	for (i = 0; i < item->vlen; i++) {
		unsigned char c = (unsigned char)item->val[i];
		if (c < 33 || c > 126 || c == '=')
			return params_fail(err, 501, "syntax error in parameters");
	}

	for (k = 0; k < PARAMS__COUNT; k++)
		if (params_word_is(s + start, klen, params_table[k].name))
			break;
	/* RFC 5321 4.1.1.11: "If the server SMTP does not recognize or cannot implement
	 * one or more of the parameters ... it will return code 555." */
	if (k == PARAMS__COUNT || params_table[k].for_mail != for_mail)
		return params_fail(err, 555, "unsupported parameter");
	if (*seen & (1u << k))
		return params_fail(err, 501, "duplicate parameter");
	*seen |= 1u << k;
	if (params_table[k].has_value && !eq)
		return params_fail(err, 501, "missing parameter value");
	if (!params_table[k].has_value && eq)
		return params_fail(err, 501, "parameter takes no value");
	item->key = (enum params_key)k;
	return 1;
}

/* RFC 1870: size-value = 1*20DIGIT. A value beyond size_t is still a well-formed
 * request for a message too big, so it saturates and the size policy refuses it. */
static int params_size(const char *v, size_t n, size_t *size_r)
{
	size_t i, size = 0;

	for (i = 0; i < n; i++) {
		unsigned d;
		if (v[i] < '0' || v[i] > '9')
			return -1;
		d = (unsigned)(v[i] - '0');
		size = size > (SIZE_MAX - d) / 10 ? SIZE_MAX : size * 10 + d;
	}
	*size_r = size;
	return 0;
}

/* RFC 3461 4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element;
 * notify-list-element = "SUCCESS" / "FAILURE" / "DELAY". */
static int params_notify(const char *v, size_t n, unsigned *notify_r)
{
	unsigned bits = 0;
	size_t p = 0;

	while (p <= n) {
		const char *comma = memchr(v + p, ',', n - p);
		size_t e = comma ? (size_t)(comma - v) : n;
		if (params_word_is(v + p, e - p, "NEVER"))
			bits |= DSN_NOTIFY_NEVER;
		else if (params_word_is(v + p, e - p, "SUCCESS"))
			bits |= DSN_NOTIFY_SUCCESS;
		else if (params_word_is(v + p, e - p, "FAILURE"))
			bits |= DSN_NOTIFY_FAILURE;
		else if (params_word_is(v + p, e - p, "DELAY"))
			bits |= DSN_NOTIFY_DELAY;
		else
			return -1;
		p = e + 1;
	}
	/* "NEVER" stands alone: it is not a notify-list-element. */
	if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
		return -1;
	*notify_r = bits;
	return 0;
}

/* RFC 3461 4.2: orcpt-parameter = "ORCPT=" original-recipient-address;
 * original-recipient-address = addr-type ";" xtext; addr-type = atom. */
static char *params_orcpt(const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n);
	size_t tlen, i;
	char *addr, *out;

	if (semi == NULL || n > PARAMS_ORCPT_MAX)
		return NULL;
	tlen = (size_t)(semi - v);
	if (tlen == 0 || tlen + 1 == n)
		return NULL;
	for (i = 0; i < tlen; i++)
		if (!params_is_alnum((unsigned char)v[i]) &&
		    !strchr("!#$%&'*+-/=?^_`{|}~", v[i]))
			return NULL;
	addr = xtext_decode(semi + 1, n - tlen - 1);
	/* "the value of the original recipient address prior to encoding as "xtext"
	 * MUST consist entirely of printable (graphic and white space) characters
	 * from the US-ASCII repertoire." */
	if (addr == NULL || !params_printable(addr, 1)) {
		free(addr);
		return NULL;
	}
	out = xasprintf("%.*s;%s", (int)tlen, v, addr);
	free(addr);
	return out;
}

int params_parse_mail(const char *s, size_t len, struct mail_params *p, struct param_error *err)
{
	struct params_item it;
	size_t pos = 0;
	unsigned seen = 0;
	int r;

	memset(p, 0, sizeof(*p));
	while ((r = params_next(s, len, &pos, 1, &seen, &it, err)) == 1) {
		const char *why = NULL;

		switch (it.key) {
		case PARAMS_SIZE:
			if (params_size(it.val, it.vlen, &p->size) < 0)
				why = "invalid SIZE value";
			break;
		case PARAMS_BODY:
			/* RFC 6152 2 and RFC 3030 3: body-value = "7BIT" / "8BITMIME" /
			 * "BINARYMIME". */
			if (params_word_is(it.val, it.vlen, "7BIT"))
				p->body = BODY_7BIT;
			else if (params_word_is(it.val, it.vlen, "8BITMIME"))
				p->body = BODY_8BITMIME;
			else if (params_word_is(it.val, it.vlen, "BINARYMIME"))
				p->body = BODY_BINARYMIME;
			else
				why = "invalid BODY value";
			break;
		case PARAMS_SMTPUTF8:
			p->smtputf8 = 1;
			break;
		case PARAMS_REQUIRETLS:
			/* Whether the session may take it (TLS) is cmd_mail's to say. */
			p->requiretls = 1;
			break;
		case PARAMS_RET:
			/* RFC 3461 4.3: ret-value = "FULL" / "HDRS" */
			if (params_word_is(it.val, it.vlen, "FULL"))
				p->ret = DSN_RET_FULL;
			else if (params_word_is(it.val, it.vlen, "HDRS"))
				p->ret = DSN_RET_HDRS;
			else
				why = "invalid RET value";
			break;
		case PARAMS_ENVID:
			if (it.vlen > PARAMS_ENVID_MAX) {
				why = "ENVID too long";
				break;
			}
			p->envid = xtext_decode(it.val, it.vlen);
			/* RFC 3461 4.4: the ENVID "MUST consist entirely of printable
			 * (graphic) characters from the US-ASCII repertoire". */
			if (p->envid == NULL || !params_printable(p->envid, 1))
				why = "invalid ENVID value";
			break;
		case PARAMS_AUTH:
			/* RFC 4954 5: auth-param = "AUTH=" ( xtext / "<>" ) */
			if (params_word_is(it.val, it.vlen, "<>"))
				p->auth = xstrdup("<>");
			else
				p->auth = xtext_decode(it.val, it.vlen);
			if (p->auth == NULL || !params_printable(p->auth, 0))
				why = "invalid AUTH value";
			break;
		default:
			/* params_next() only returns this command's keys. */
			params_fail(err, 555, "unsupported parameter");
			goto fail;
		}
		if (why) {
			params_fail(err, 501, why);
			goto fail;
		}
	}
	if (r == 0)
		return 0;
fail:
	params_mail_clear(p);
	return -1;
}

int params_parse_rcpt(const char *s, size_t len, struct rcpt_params *p, struct param_error *err)
{
	struct params_item it;
	size_t pos = 0;
	unsigned seen = 0;
	int r;

	memset(p, 0, sizeof(*p));
	while ((r = params_next(s, len, &pos, 0, &seen, &it, err)) == 1) {
		const char *why = NULL;

		switch (it.key) {
		case PARAMS_NOTIFY:
			if (params_notify(it.val, it.vlen, &p->notify) < 0)
				why = "invalid NOTIFY value";
			break;
		case PARAMS_ORCPT:
			p->orcpt = params_orcpt(it.val, it.vlen);
			if (p->orcpt == NULL)
				why = "invalid ORCPT value";
			break;
		default:
			/* params_next() only returns this command's keys. */
			params_fail(err, 555, "unsupported parameter");
			goto fail;
		}
		if (why) {
			params_fail(err, 501, why);
			goto fail;
		}
	}
	if (r == 0)
		return 0;
fail:
	params_rcpt_clear(p);
	return -1;
}

void params_mail_clear(struct mail_params *p)
{
	free(p->envid);
	free(p->auth);
	memset(p, 0, sizeof(*p));
}

void params_rcpt_clear(struct rcpt_params *p)
{
	free(p->orcpt);
	memset(p, 0, sizeof(*p));
}
