/* received: the Received: trace header (RFC 5321 4.4) with the protocol keyword of
 * RFC 3848 and, under TLS, the TLS version and cipher. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtp/session.h"
#include "util/xmalloc.h"

/* The EHLO name is the client's word: keep it to characters that cannot end the
 * comment or the clause it stands in. */
static void received_clean(char *dst, size_t dstsz, const char *src)
{
	size_t o = 0;
	for (; *src && o + 1 < dstsz; src++) {
		unsigned char c = (unsigned char)*src;
		dst[o++] = (c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\' && c != ';') ? (char)c : '?';
	}
	dst[o] = '\0';
}

char *received_header(const struct session *s)
{
	/* RFC 3848: ESMTP, plus S under TLS, plus A once authenticated. */
	const char *proto = !s->esmtp ? "SMTP"
			    : s->user ? (s->tls ? "ESMTPSA" : "ESMTPA")
				      : (s->tls ? "ESMTPS" : "ESMTP");
	char helo[256], date[64], tls[200] = "", rcpt[600] = "", from[400], user[300] = "";
	time_t now = time(NULL);
	struct tm tm;

	received_clean(helo, sizeof(helo), s->helo ? s->helo : "unknown");
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (s->tls)
		snprintf(tls, sizeof(tls), "\r\n\t(%s)", s->tls_info);
	/* RFC 5321 4.4: the "for" clause names the recipient when there is only one. */
	if (s->nrcpts == 1 && s->env.n_rcpts >= 1)
		snprintf(rcpt, sizeof(rcpt), "\r\n\tfor <%s>", s->env.rcpts[0].address);
	/* Per listener, an authenticated client's address may stay private: its
	 * users' home addresses are nobody's business downstream. */
	if (s->user && s->limits->received_hide_client)
		from[0] = '\0';
	else
		snprintf(from, sizeof(from), "from %s ([%s%s])\r\n\t", helo,
			 strchr(s->addr, ':') ? "IPv6:" : "", s->addr);
	if (s->user && s->limits->received_show_user)
		snprintf(user, sizeof(user), "\r\n\t(authenticated as %s)", s->user);
	if (SESSION_LOCAL(s))
		/* As Postfix's pickup: the uid is the kernel's word on who submitted, so a
		 * local user may choose any sender but never hide that it was this uid. */
		return xasprintf("Received: by %s (cursus, from userid %ld)\r\n\tid %s%s;\r\n\t%s\r\n",
				 s->cfg->hostname, s->peer_uid, s->env.id, rcpt, date);
	return xasprintf("Received: %sby %s (cursus) with %s id %s%s%s%s;\r\n\t%s\r\n", from,
			 s->cfg->hostname, proto, s->env.id, user, tls, rcpt, date);
}
