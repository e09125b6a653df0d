/* qctl: parsing and formatting the control protocol's request lines (qctl.h).
 * Promises: a request is accepted only in its exact form (a known verb, the arguments
 * it takes, a valid id or domain), anything else is refused with a reason, and no
 * input, however long or strange, is read past len. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "queue/qctl.h"
#include "util/ascii.h"

static const char *const qctl_verbs[] = {
	[QCTL_FLUSH] = "flush", [QCTL_HOLD] = "hold", [QCTL_RELEASE] = "release",
	[QCTL_DELETE] = "delete", [QCTL_BOUNCE] = "bounce",
};
#define QCTL_N_VERBS (sizeof(qctl_verbs) / sizeof(qctl_verbs[0]))
#define QCTL_MAX_WORDS 4

const char *qctl_verb_name(enum qctl_verb v)
{
	return (size_t)v < QCTL_N_VERBS ? qctl_verbs[v] : "?";
}

int qctl_valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > QCTL_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return 0;
	return 1;
}

int qctl_valid_domain(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > QCTL_DOMAIN_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* Splits line into at most QCTL_MAX_WORDS space-separated words of buf; returns their
 * count, or -1 when there are more. */
static int qctl_split(char *buf, char **words)
{
	char *save = NULL;
	int n = 0;
	for (char *p = strtok_r(buf, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
		if (n == QCTL_MAX_WORDS)
			return -1;
		words[n++] = p;
	}
	return n;
}

int qctl_parse(const char *line, size_t len, struct qctl_req *r, const char **why_r)
{
	char buf[QCTL_LINE_MAX + 1], *w[QCTL_MAX_WORDS];
	size_t v;
	int n;

	memset(r, 0, sizeof(*r));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > QCTL_LINE_MAX || memchr(line, '\0', len)) {
		*why_r = len > QCTL_LINE_MAX ? "request too long" : "NUL in request";
		return -1;
	}
	memcpy(buf, line, len);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (iscntrl((unsigned char)buf[i])) {
			*why_r = "control character in request";
			return -1;
		}
	}
	if ((n = qctl_split(buf, w)) <= 0) {
		*why_r = n < 0 ? "too many arguments" : "empty request";
		return -1;
	}
	for (v = 0; v < QCTL_N_VERBS && strcmp(w[0], qctl_verbs[v]) != 0; v++)
		;
	if (v == QCTL_N_VERBS) {
		*why_r = "unknown request (flush, hold, release, delete, bounce)";
		return -1;
	}
	r->verb = (enum qctl_verb)v;
	if (r->verb == QCTL_FLUSH && n == 1)
		return 0;
	if (r->verb == QCTL_FLUSH && n == 3 && strcmp(w[1], "--domain") == 0) {
		ascii_lower_str(w[2]);
		if (!qctl_valid_domain(w[2])) {
			*why_r = "not a domain name";
			return -1;
		}
		strcpy(r->domain, w[2]);
		return 0;
	}
	if (n != 2) {
		*why_r = r->verb == QCTL_FLUSH ? "usage: flush [ID | --domain DOMAIN]"
					       : "usage: VERB ID";
		return -1;
	}
	if (!qctl_valid_id(w[1])) {
		*why_r = "not a queue id";
		return -1;
	}
	strcpy(r->id, w[1]);
	return 0;
}

int qctl_format(const struct qctl_req *r, char *buf, size_t size)
{
	int n;
	if (r->domain[0])
		n = snprintf(buf, size, "%s --domain %s\n", qctl_verb_name(r->verb), r->domain);
	else if (r->id[0])
		n = snprintf(buf, size, "%s %s\n", qctl_verb_name(r->verb), r->id);
	else
		n = snprintf(buf, size, "%s\n", qctl_verb_name(r->verb));
	return n < 0 || (size_t)n >= size ? -1 : n;
}

void qctl_clean(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < size; i++)
		dst[i] = iscntrl((unsigned char)src[i]) ? '?' : src[i];
	dst[i] = '\0';
}
