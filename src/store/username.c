/* username: validation and normalisation of the names in the credential store.
 * Promises: a name it accepts is lower case ASCII, "local@domain" with a dot-atom
 * local part from [a-z0-9._+-] and a host-name domain, so "<domain>/<local-part>" is
 * always a safe two-level path under mail_dir; every message escapes the input. */
#include "store/username.h"

#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* RFC 5321 4.5.3.1.1: "The maximum total length of a user name or other local-part
 * is 64 octets." */
#define USERNAME_LOCAL_MAX 64
/* RFC 1035 2.3.4: "labels 63 octets or less", "names 255 octets or less" (253 in
 * text form without the trailing dot). */
#define USERNAME_LABEL_MAX 63
#define USERNAME_DOMAIN_MAX 253

void username_lower(char *s)
{
	ascii_lower_str(s);
}

static int username_domain_valid(const char *d)
{
	size_t len = strlen(d), label = 0;
	if (len == 0 || len > USERNAME_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = d[i];
		if (c == '.' || c == '\0') {
			/* RFC 952/1123: a label is letters, digits and inner hyphens. */
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		if (++label > USERNAME_LABEL_MAX)
			return 0;
	}
	return 1;
}

static int username_local_valid(const char *l, size_t len)
{
	if (len == 0 || len > USERNAME_LOCAL_MAX)
		return 0;
	/* A dot-atom (RFC 5322 3.2.3) neither starts nor ends with a dot nor has two
	 * in a row; that also keeps "." and ".." out of the mailbox path. */
	if (l[0] == '.' || l[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = l[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '+' || c == '-'))
			return 0;
		if (c == '.' && l[i + 1] == '.')
			return 0;
	}
	return 1;
}

/* Returns the lower-cased, validated copy of an address "local@domain", or NULL
 * with *err set. `what` names the argument in the message. */
char *username_normalize(const char *addr, const char *what, char **err)
{
	char esc[LOG_ESCAPE_BUFSZ];
	char *s = xstrdup(addr), *at;
	username_lower(s);
	at = strrchr(s, '@');
	if (!at) {
		*err = xasprintf("invalid %s \"%s\": expected local-part@domain", what,
				 log_escape(esc, sizeof(esc), addr, strlen(addr)));
	} else if (!username_local_valid(s, (size_t)(at - s))) {
		*err = xasprintf("invalid %s \"%s\": the local part must be 1-%d characters "
				 "from a-z 0-9 . _ + -, with no leading, trailing or double dot",
				 what, log_escape(esc, sizeof(esc), addr, strlen(addr)),
				 USERNAME_LOCAL_MAX);
	} else if (!username_domain_valid(at + 1)) {
		*err = xasprintf("invalid %s \"%s\": the domain must be a host name "
				 "(labels of a-z 0-9 -, separated by dots)",
				 what, log_escape(esc, sizeof(esc), addr, strlen(addr)));
	} else {
		return s;
	}
	free(s);
	return NULL;
}

/* An alias's address: a full address, or "@domain" for the domain's catch-all. */
char *username_normalize_alias(const char *addr, char **err)
{
	char esc[LOG_ESCAPE_BUFSZ];
	if (addr[0] == '@') {
		char *s = xstrdup(addr);
		username_lower(s);
		if (username_domain_valid(s + 1))
			return s;
		free(s);
		*err = xasprintf("invalid catch-all \"%s\": expected @domain with a host name",
				 log_escape(esc, sizeof(esc), addr, strlen(addr)));
		return NULL;
	}
	return username_normalize(addr, "alias address", err);
}
