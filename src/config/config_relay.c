/* config_relay: value syntax of the outbound options. Pure: no I/O, no messages of its
 * own, so every rule here is tested by feeding strings. Promises: a next hop or a match
 * it accepts is lower case and holds no byte that could split a queue or log field. */
#include "config/config_relay.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_lex.h"
#include "util/ascii.h"
#include "util/xmalloc.h"

static int is_ip(const char *s, int *v6_r)
{
	unsigned char bin[16];
	if (inet_pton(AF_INET, s, bin) == 1) {
		*v6_r = 0;
		return 1;
	}
	if (inet_pton(AF_INET6, s, bin) == 1) {
		*v6_r = 1;
		return 1;
	}
	return 0;
}

static int port_ok(const char *s, unsigned *port_r)
{
	unsigned long long n;
	if (config_lex_number(s, 0, &n) < 0 || n < 1 || n > 65535)
		return 0;
	*port_r = (unsigned)n;
	return 1;
}

const char *config_relay_nexthop(const char *s, struct nexthop_conf *nh)
{
	const char *hs = s, *he, *rest;
	int literal = 0, v6;
	unsigned port = 0;
	char *host;

	memset(nh, 0, sizeof(*nh));
	if (*s == '[') {
		hs = s + 1;
		if (!(he = strchr(hs, ']')))
			return "missing ']' (e.g. [192.0.2.1]:587)";
		rest = he + 1;
		literal = 1;
	} else {
		he = strchr(s, ':');
		if (he && strchr(he + 1, ':'))
			return "an IPv6 address needs brackets, e.g. [2001:db8::1]:25";
		if (!he)
			he = s + strlen(s);
		rest = he;
	}
	if (he == hs)
		return "empty host";
	if (*rest == ':') {
		if (!port_ok(rest + 1, &port))
			return "bad port (1-65535)";
	} else if (*rest) {
		return "unexpected text after ']' (expected [HOST] or [HOST]:PORT)";
	}
	host = xstrndup(hs, (size_t)(he - hs));
	if (is_ip(host, &v6)) {
		if (v6 && !literal) {
			free(host);
			return "an IPv6 address needs brackets, e.g. [2001:db8::1]:25";
		}
		literal = 1;
	} else if (!config_lex_domain_ok(host)) {
		free(host);
		return "not a host name or IP address";
	}
	ascii_lower_str(host);
	nh->host = host;
	nh->port = port;
	nh->literal = literal;
	nh->text = xstrdup(s);
	ascii_lower_str(nh->text);
	return NULL;
}

void config_relay_nexthop_clear(struct nexthop_conf *nh)
{
	free(nh->host);
	free(nh->text);
	memset(nh, 0, sizeof(*nh));
}

const char *config_relay_resolver(const char *s)
{
	const char *at = strchr(s, '@');
	char *addr = xstrndup(s, at ? (size_t)(at - s) : strlen(s));
	unsigned port;
	int v6, ok = is_ip(addr, &v6);
	free(addr);
	if (!ok)
		return "not a numeric IPv4 or IPv6 address (ADDRESS or ADDRESS@PORT)";
	if (at && !port_ok(at + 1, &port))
		return "bad port (1-65535)";
	return NULL;
}

const char *config_relay_lmtp(const char *s, char **norm_r)
{
	const char *colon, *hs, *he, *why = NULL;
	char *host;
	unsigned port;
	int v6;
	*norm_r = NULL;
	if (strcmp(s, "maildir") == 0) {
		*norm_r = xstrdup(s);
		return NULL;
	}
	if (strncmp(s, "unix:", 5) == 0) {
		/* sockaddr_un's sun_path holds 108 bytes with the NUL. */
		if (s[5] != '/')
			return "the socket's path must be absolute (unix:/run/dovecot/lmtp)";
		if (strlen(s + 5) >= 108)
			return "the socket's path is too long (107 bytes at most)";
		for (const char *q = s; *q; q++)
			if ((unsigned char)*q < ' ' || *q == 0x7f)
				return "control character in the socket's path";
		*norm_r = xstrdup(s);
		return NULL;
	}
	if (*s == '[') {
		hs = s + 1;
		if (!(he = strchr(hs, ']')) || he[1] != ':')
			return "expected unix:/PATH, [ADDRESS]:PORT or ADDRESS:PORT";
		colon = he + 1;
	} else {
		hs = s;
		if (!(colon = strrchr(s, ':')) || memchr(s, ':', (size_t)(colon - s)))
			return "expected unix:/PATH, [ADDRESS]:PORT or ADDRESS:PORT "
			       "(an IPv6 address needs brackets)";
		he = colon;
	}
	if (!port_ok(colon + 1, &port))
		return "bad port (1-65535)";
	host = xstrndup(hs, (size_t)(he - hs));
	if (is_ip(host, &v6))
		*norm_r = xasprintf("[%s]:%u", host, port);
	/* Brackets hold an address (RFC 5321 4.1.3); a name is looked up at delivery. */
	else if (*s == '[')
		why = "not a numeric IP address (write a host name without brackets)";
	else if (!config_lex_domain_ok(host))
		why = "not a host name or IP address";
	else
		*norm_r = xasprintf("%s:%u", host, port);
	free(host);
	if (*norm_r)
		ascii_lower_str(*norm_r);
	return why;
}

/* A local part as it can be written unquoted in the file: printable, no space. */
static int local_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f)
			return 0;
	}
	return 1;
}

const char *config_relay_match(const char *s, int by_sender, char **match_r)
{
	const char *d = s, *at;
	*match_r = NULL;
	if (!by_sender) {
		if (*d == '.')
			d++;
		if (!config_lex_domain_ok(d))
			return "not a domain (example.org, or .example.org for its subdomains too)";
	} else {
		if (!(at = strrchr(s, '@')))
			return "not an address (user@example.org or @example.org)";
		if (at != s && !local_ok(s, (size_t)(at - s)))
			return "bad local part (user@example.org or @example.org)";
		if (!config_lex_domain_ok(at + 1))
			return "bad domain (user@example.org or @example.org)";
	}
	*match_r = xstrdup(s);
	ascii_lower_str(*match_r);
	return NULL;
}
