/* qctl: the control protocol between `cursus queue` and the running daemon, shared by
 * both ends so they cannot disagree. Over a UNIX stream socket, one request line per
 * connection and one reply line:
 *
 *   flush | flush ID | flush --domain DOMAIN | hold ID | release ID | delete ID | bounce ID
 *   -> "ok <text>" or "error <text>"
 *
 * Lines end in LF (a CR before it is ignored) and are at most QCTL_LINE_MAX octets. */
#ifndef CURSUS_QCTL_H
#define CURSUS_QCTL_H

#include <stddef.h>

#define QCTL_LINE_MAX 512
#define QCTL_ID_MAX 23        /* struct envelope's id[24] */
#define QCTL_DOMAIN_MAX 253

enum qctl_verb { QCTL_FLUSH, QCTL_HOLD, QCTL_RELEASE, QCTL_DELETE, QCTL_BOUNCE };

struct qctl_req {
	enum qctl_verb verb;
	char id[QCTL_ID_MAX + 1];          /* "" when none (flush only) */
	char domain[QCTL_DOMAIN_MAX + 1];  /* flush --domain, lower case; else "" */
};

/* Parses one request line (without its LF; len octets, NULs refused). Returns 0, or
 * -1 with *why_r a static reason for the "error" reply. */
int qctl_parse(const char *line, size_t len, struct qctl_req *r, const char **why_r);
/* The request line, LF-terminated, into buf. Returns its length, or -1 if it does not
 * fit. */
int qctl_format(const struct qctl_req *r, char *buf, size_t size);
const char *qctl_verb_name(enum qctl_verb v);
/* Queue ids as the queue makes them: 1 to QCTL_ID_MAX lower-case hex digits. */
int qctl_valid_id(const char *s);
/* 1 when s is a domain name: letters, digits, '-', '.', at most QCTL_DOMAIN_MAX. */
int qctl_valid_domain(const char *s);
/* Copies src into dst (size > 0) as one printable line: control characters become
 * '?', the rest is cut at size - 1 octets. Reply texts go through it. */
void qctl_clean(char *dst, size_t size, const char *src);

#endif
