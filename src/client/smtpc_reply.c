/* smtpc_reply: what the client reads of a server's replies: a reply line's code and
 * continuation (RFC 5321 4.2), a reply freed, and the capabilities of an EHLO reply. */
#include "client/smtpc_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xmalloc.h"

void smtpc_reply_clear(struct smtpc_reply *r)
{
	for (size_t i = 0; i < r->n_lines; i++)
		free(r->lines[i]);
	free(r->lines);
	memset(r, 0, sizeof(*r));
}

void smtpc_caps_clear(struct smtpc_caps *caps)
{
	for (size_t i = 0; i < caps->n_lines; i++)
		free(caps->lines[i]);
	free(caps->lines);
	free(caps->auth);
	free(caps->auth_legacy);
	memset(caps, 0, sizeof(*caps));
}

int smtpc_parse_line(const char *line, size_t len, int *more_r, size_t *text_off_r)
{
	int code;
	*more_r = 0;
	*text_off_r = len;
	/* RFC 5321 4.2: "Reply-code  = %x32-35 %x30-35 %x30-39". */
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3)
		return code;
	if (line[3] != ' ' && line[3] != '-')
		return -1;
	*more_r = line[3] == '-';
	*text_off_r = 4;
	return code;
}

int smtpc_list_has(const char *list, const char *mech)
{
	size_t n = strlen(mech);
	const char *p = list;
	if (!list)
		return 0;
	while (*p) {
		size_t w;
		while (*p == ' ')
			p++;
		w = strcspn(p, " ");
		if (w == n && strncasecmp(p, mech, n) == 0)
			return 1;
		p += w;
	}
	return 0;
}

/* "AUTH PLAIN LOGIN" -> "PLAIN LOGIN", single spaces, upper case. */
static char *smtpc_words(const char *text)
{
	char *out = xmalloc(strlen(text) + 1), *o = out;
	for (const char *p = text; *p; p++) {
		if (*p == ' ' || *p == '\t') {
			if (o > out && o[-1] != ' ')
				*o++ = ' ';
			continue;
		}
		*o++ = (char)toupper((unsigned char)*p);
	}
	if (o > out && o[-1] == ' ')
		o--;
	*o = '\0';
	return out;
}

static int smtpc_keyword(const char *line, const char *kw, const char **rest_r)
{
	size_t n = strlen(kw);
	if (strncasecmp(line, kw, n) != 0 || (line[n] != '\0' && line[n] != ' ' && line[n] != '='))
		return 0;
	*rest_r = line + n;
	return 1;
}

void smtpc_caps_parse(struct smtpc_caps *caps, const struct smtpc_reply *r)
{
	const char *rest;
	smtpc_caps_clear(caps);
	if (r->code != 250)
		return;
	caps->valid = 1;
	/* RFC 5321 4.1.1.1: the first line is the greeting; each later line is an
	 * "ehlo-keyword *( SP ehlo-param )". */
	for (size_t i = 1; i < r->n_lines; i++) {
		const char *l = r->lines[i];
		caps->lines = xrealloc(caps->lines, (caps->n_lines + 1) * sizeof(char *));
		caps->lines[caps->n_lines++] = xstrdup(l);
		if (smtpc_keyword(l, "STARTTLS", &rest))
			caps->starttls = 1;
		else if (smtpc_keyword(l, "PIPELINING", &rest))
			caps->pipelining = 1;
		else if (smtpc_keyword(l, "SIZE", &rest))
			caps->size = 1;
		else if (smtpc_keyword(l, "8BITMIME", &rest))
			caps->eightbitmime = 1;
		else if (smtpc_keyword(l, "CHUNKING", &rest))
			caps->chunking = 1;
		else if (smtpc_keyword(l, "SMTPUTF8", &rest))
			caps->smtputf8 = 1;
		else if (smtpc_keyword(l, "AUTH", &rest)) {
			/* "AUTH=PLAIN LOGIN" is the pre-RFC 2554 draft's form, still sent for
			 * old Outlook versions; "AUTH PLAIN LOGIN" is the standard one. */
			char **slot = *rest == '=' ? &caps->auth_legacy : &caps->auth;
			if (!*slot)
				*slot = smtpc_words(rest + (*rest == '=' ? 1 : 0));
		}
	}
}
