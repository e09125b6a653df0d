/* mtasts_policy: see mtasts_policy.h. The grammar is RFC 8461's ABNF, applied as
 * written: a record or a policy that does not follow it is refused as a whole, never
 * half-read; unknown extension fields are ignored, as 3.1 and 3.2 require. */
#include "relay/mtasts_policy.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/ascii.h"
#include "util/xmalloc.h"

const char *mtasts_mode_name(enum mtasts_mode m)
{
	return m == MTASTS_ENFORCE ? "enforce" : m == MTASTS_TESTING ? "testing" : "none";
}

static int is_wsp(char c) { return c == ' ' || c == '\t'; }
static int is_alnum(char c) { return isascii((unsigned char)c) && isalnum((unsigned char)c); }

/* sts-ext-name / sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int ext_name_ok(const char *s, size_t n)
{
	if (n < 1 || n > 32 || !is_alnum(s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* One TXT record: sts-version 1*(*WSP ";" *WSP sts-field) [";"], where sts-field is
 * "id=" 1*32(ALPHA / DIGIT) or name=value. Returns 1 with the id, else 0. */
static int txt_parse(const char *s, char *id, const char **why)
{
	const char *p = s + strlen("v=STSv1");
	int have_id = 0, fields = 0;

	for (;;) {
		while (is_wsp(*p))
			p++;
		if (!*p)
			break;
		if (*p != ';') {
			*why = "TXT record: \";\" expected between fields";
			return 0;
		}
		p++;
		while (is_wsp(*p))
			p++;
		if (!*p)
			break; /* the optional trailing ";" */
		const char *name = p, *eq = p;
		while (*eq && *eq != '=' && *eq != ';' && !is_wsp(*eq))
			eq++;
		if (*eq != '=' || !ext_name_ok(name, (size_t)(eq - name))) {
			*why = "TXT record: a field is not NAME=VALUE";
			return 0;
		}
		const char *v = eq + 1, *ve = v;
		/* sts-ext-value: %x21-3A / %x3C / %x3E-7E (no ";", "=", space or control) */
		while (*ve > 0x20 && *ve < 0x7f && *ve != ';' && *ve != '=')
			ve++;
		if (ve == v) {
			*why = "TXT record: a field has no value";
			return 0;
		}
		if ((size_t)(eq - name) == 2 && strncmp(name, "id", 2) == 0) {
			size_t n = (size_t)(ve - v);
			if (have_id) {
				*why = "TXT record: id given twice";
				return 0;
			}
			if (n > MTASTS_ID_MAX) {
				*why = "TXT record: id longer than 32 characters";
				return 0;
			}
			for (size_t i = 0; i < n; i++)
				if (!is_alnum(v[i])) {
					*why = "TXT record: id is not letters and digits";
					return 0;
				}
			memcpy(id, v, n);
			id[n] = '\0';
			have_id = 1;
		}
		fields++;
		p = ve;
	}
	if (!have_id) {
		*why = fields ? "TXT record: no id field" : "TXT record: no id";
		return 0;
	}
	return 1;
}

int mtasts_txt_select(char *const *txt, size_t n, char *id, const char **why)
{
	const char *rec = NULL;
	size_t found = 0;
	/* RFC 8461 3.1: "Records that do not begin with "v=STSv1;" are discarded"; the
	 * version may be the whole record's last field only if it is all there is, which
	 * fails for want of an id below. */
	for (size_t i = 0; i < n; i++) {
		const char *t = txt[i];
		if (strncmp(t, "v=STSv1", 7) == 0 && (t[7] == ';' || t[7] == '\0' || is_wsp(t[7]))) {
			rec = t;
			found++;
		}
	}
	if (found == 0) {
		*why = "no TXT record beginning with v=STSv1";
		return 0;
	}
	if (found > 1) {
		*why = "more than one v=STSv1 TXT record";
		return 0;
	}
	return txt_parse(rec, id, why);
}

/* sts-policy-mx-value: an optional leading "*." then a domain name (letters, digits,
 * hyphens, dots); lower-cased, a trailing dot dropped. NULL when not a pattern. */
static char *mx_pattern(const char *v, size_t n)
{
	size_t start = 0, label = 0;
	if (n >= 1 && v[n - 1] == '.')
		n--;
	if (n >= 2 && v[0] == '*' && v[1] == '.')
		start = 2;
	if (n <= start || n > 253)
		return NULL;
	for (size_t i = start; i < n; i++) {
		char c = v[i];
		if (c == '.') {
			if (label == 0 || v[i - 1] == '-')
				return NULL;
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-' && c != '_')
			return NULL;
		if ((c == '-' && label == 0) || ++label > 63)
			return NULL;
	}
	if (label == 0 || v[n - 1] == '-')
		return NULL;
	return ascii_lower_str(xstrndup(v, n));
}

void mtasts_policy_clear(struct mtasts_policy *p)
{
	for (size_t i = 0; i < p->n_mx; i++)
		free(p->mx[i]);
	free(p->mx);
	memset(p, 0, sizeof(*p));
}

void mtasts_policy_copy(struct mtasts_policy *dst, const struct mtasts_policy *src)
{
	*dst = *src;
	dst->mx = src->n_mx ? xcalloc(src->n_mx, sizeof(*dst->mx)) : NULL;
	for (size_t i = 0; i < src->n_mx; i++)
		dst->mx[i] = xstrdup(src->mx[i]);
}

static int field_is(const char *k, size_t kn, const char *name)
{
	return kn == strlen(name) && memcmp(k, name, kn) == 0;
}

/* One "key:" *WSP value line (without its line end). */
static int policy_field(const char *k, size_t kn, const char *v, size_t vn,
			struct mtasts_policy *p, unsigned *seen, const char **why)
{
	enum { SEEN_VERSION = 1, SEEN_MODE = 2, SEEN_MAX_AGE = 4 };
	if (field_is(k, kn, "version")) {
		if (*seen & SEEN_VERSION) {
			*why = "policy: version given twice";
			return -1;
		}
		*seen |= SEEN_VERSION;
		if (vn != 5 || memcmp(v, "STSv1", 5) != 0) {
			*why = "policy: version is not STSv1";
			return -1;
		}
	} else if (field_is(k, kn, "mode")) {
		if (*seen & SEEN_MODE) {
			*why = "policy: mode given twice";
			return -1;
		}
		*seen |= SEEN_MODE;
		if (vn == 7 && memcmp(v, "enforce", 7) == 0)
			p->mode = MTASTS_ENFORCE;
		else if (vn == 7 && memcmp(v, "testing", 7) == 0)
			p->mode = MTASTS_TESTING;
		else if (vn == 4 && memcmp(v, "none", 4) == 0)
			p->mode = MTASTS_NONE;
		else {
			*why = "policy: mode is not enforce, testing or none";
			return -1;
		}
	} else if (field_is(k, kn, "max_age")) {
		unsigned long long n = 0;
		if (*seen & SEEN_MAX_AGE) {
			*why = "policy: max_age given twice";
			return -1;
		}
		*seen |= SEEN_MAX_AGE;
		/* sts-policy-max-age-value = 1*10(DIGIT) */
		if (vn < 1 || vn > 10) {
			*why = "policy: max_age is not 1 to 10 digits";
			return -1;
		}
		for (size_t i = 0; i < vn; i++) {
			if (v[i] < '0' || v[i] > '9') {
				*why = "policy: max_age is not a number";
				return -1;
			}
			n = n * 10 + (unsigned long long)(v[i] - '0');
		}
		p->max_age = n > MTASTS_MAX_AGE_MAX ? MTASTS_MAX_AGE_MAX : (unsigned long)n;
	} else if (field_is(k, kn, "mx")) {
		char *pat = mx_pattern(v, vn);
		if (!pat) {
			*why = "policy: an mx value is not a host name or *.domain pattern";
			return -1;
		}
		if (p->n_mx >= MTASTS_MX_MAX) {
			free(pat);
			*why = "policy: too many mx patterns";
			return -1;
		}
		p->mx = xrealloc(p->mx, (p->n_mx + 1) * sizeof(*p->mx));
		p->mx[p->n_mx++] = pat;
	} else if (!ext_name_ok(k, kn)) {
		*why = "policy: a line is not KEY: VALUE";
		return -1;
	}
	/* else an extension: "unknown fields ... MUST be ignored" (3.2) */
	return 0;
}

int mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *p, const char **why)
{
	const char *s = text, *end = text + len;
	unsigned seen = 0;

	memset(p, 0, sizeof(*p));
	while (s < end) {
		const char *eol = memchr(s, '\n', (size_t)(end - s));
		const char *le = eol ? eol : end, *colon, *v, *ve;
		if (le > s && le[-1] == '\r')
			le--;
		if (le == s) {
			/* An empty line only as the last line end's partner: "...\n" then EOF. */
			if (!eol || eol + 1 != end) {
				*why = "policy: empty line";
				goto bad;
			}
			break;
		}
		for (const char *c = s; c < le; c++)
			if ((unsigned char)*c < 0x20 && *c != '\t') {
				*why = "policy: control character";
				goto bad;
			}
		if (!(colon = memchr(s, ':', (size_t)(le - s)))) {
			*why = "policy: a line is not KEY: VALUE";
			goto bad;
		}
		v = colon + 1;
		while (v < le && is_wsp(*v))
			v++;
		ve = le;
		while (ve > v && is_wsp(ve[-1]))
			ve--;
		if (ve == v) {
			*why = "policy: a field has no value";
			goto bad;
		}
		if (policy_field(s, (size_t)(colon - s), v, (size_t)(ve - v), p, &seen, why) < 0)
			goto bad;
		s = eol ? eol + 1 : end;
	}
	if (!(seen & 1)) {
		*why = "policy: no version";
		goto bad;
	}
	if (!(seen & 2)) {
		*why = "policy: no mode";
		goto bad;
	}
	if (!(seen & 4)) {
		*why = "policy: no max_age";
		goto bad;
	}
	if (p->mode != MTASTS_NONE && p->n_mx == 0) {
		*why = "policy: no mx pattern";
		goto bad;
	}
	return 0;
bad:
	mtasts_policy_clear(p);
	return -1;
}

const char *mtasts_http_check(int status, const char *content_type)
{
	size_t n = strcspn(content_type, "; \t");
	if (status / 100 == 3)
		return "a redirect (RFC 8461 3.3: not followed)";
	if (status != 200)
		return "HTTP status not 200";
	if (n != 10 || strncasecmp(content_type, "text/plain", 10) != 0)
		return "Content-Type is not text/plain";
	return NULL;
}

int mtasts_mx_match(const struct mtasts_policy *p, const char *host)
{
	size_t hn = strlen(host);
	if (hn && host[hn - 1] == '.')
		hn--;
	for (size_t i = 0; i < p->n_mx; i++) {
		const char *pat = p->mx[i];
		if (pat[0] == '*') {
			/* One label, whole, in place of the "*". */
			const char *dot = memchr(host, '.', hn);
			size_t rest = strlen(pat + 1); /* ".example.org" */
			if (dot && dot != host && (size_t)(host + hn - dot) == rest &&
			    strncasecmp(dot, pat + 1, rest) == 0)
				return 1;
		} else if (strlen(pat) == hn && strncasecmp(host, pat, hn) == 0) {
			return 1;
		}
	}
	return 0;
}
