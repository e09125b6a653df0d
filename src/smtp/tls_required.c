/* tls_required: the receiving side of RFC 8689 (tls_required.h). It promises that
 * REQUIRETLS is offered exactly where MAIL takes it, and that a message is tagged
 * "TLS-Required: No" only by a well-formed field of its own header section, never by
 * text in its body nor when MAIL FROM asked for REQUIRETLS. */
#include "smtp/tls_required.h"

#include <string.h>
#include <strings.h>

#include "smtp/session.h"

#define TLSREQ_FIELD "TLS-Required:"

int tlsreq_offered(const struct session *s)
{
	/* "The REQUIRETLS option MUST only be specified in the context of an SMTP
	 * session meeting the security requirements of REQUIRETLS ... The session
	 * itself MUST employ TLS transmission." The local socket has no TLS. */
	return s->tls;
}

static int tlsreq_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The field's value, its folded lines joined: whether it is "No" and nothing else
 * (RFC 8689 3: tls-required = "TLS-Required:" [FWS] "No" CRLF; ABNF strings compare
 * without case). Leading and trailing white space is FWS. */
static int tlsreq_value_no(const char *v, size_t n)
{
	while (n > 0 && tlsreq_wsp(*v))
		v++, n--;
	while (n > 0 && tlsreq_wsp(v[n - 1]))
		n--;
	return n == 2 && strncasecmp(v, "No", 2) == 0;
}

enum env_tlsreq tlsreq_tag(enum env_tlsreq mail, const char *msg, size_t len)
{
	size_t i = 0, fl = strlen(TLSREQ_FIELD);

	/* "If the REQUIRETLS MAIL FROM parameter is specified, the TLS-Required header
	 * field MUST be ignored" (RFC 8689 4.1). */
	if (mail == TLSREQ_REQUIRETLS)
		return TLSREQ_REQUIRETLS;
	while (i < len) {
		const char *line = msg + i, *eol = memchr(line, '\n', len - i);
		size_t ll = eol ? (size_t)(eol - line) + 1 : len - i, end;
		/* The empty line ends the header section (RFC 5322 2.1). */
		if (line[0] == '\n' || (line[0] == '\r' && ll >= 2 && line[1] == '\n'))
			break;
		i += ll;
		if (ll <= fl || strncasecmp(line, TLSREQ_FIELD, fl) != 0)
			continue;
		/* Continuation lines (starting with white space) belong to this field. */
		end = i;
		while (end < len && (msg[end] == ' ' || msg[end] == '\t')) {
			const char *nl = memchr(msg + end, '\n', len - end);
			end = nl ? (size_t)(nl - msg) + 1 : len;
		}
		if (tlsreq_value_no(line + fl, (size_t)(msg + end - (line + fl))))
			return TLSREQ_NO;
		i = end;
	}
	return TLSREQ_DEFAULT;
}
