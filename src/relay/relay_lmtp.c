/* relay_lmtp: where the transport connects, from the text of a route: an address
 * literal (a smart host's, an LMTP server's), a UNIX socket, or an LMTP server's host
 * name, which the job then looks up through its asynchronous resolver like any next
 * hop (never getaddrinfo: the transport runs on the event loop). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "net/dns.h"
#include "relay/relay_int.h"
#include "util/xmalloc.h"

int relay_literal_target(const char *host, unsigned port, struct dns_target *tg)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t n = strlen(host);
	const char *h = host;
	if (h[0] == '[' && n > 2 && h[n - 1] == ']') {
		snprintf(buf, sizeof(buf), "%.*s", (int)(n - 2), h + 1);
		h = buf;
	}
	if (strncasecmp(h, "IPv6:", 5) == 0)
		h += 5;
	memset(tg, 0, sizeof(*tg));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&tg->addr;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&tg->addr;
	if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		tg->addrlen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		tg->addrlen = sizeof(*s6);
	} else {
		return -1;
	}
	tg->host = (char *)host;
	return 0;
}

static int lmtp_unix_target(const char *server, struct dns_target *tg)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&tg->addr;
	size_t n = strlen(server + 5);
	if (n == 0 || n >= sizeof(sun->sun_path))
		return -1;
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, server + 5, n + 1);
	tg->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	tg->host = (char *)server;
	return 0;
}

int relay_lmtp_target(const char *server, struct dns_target *tg, char **host_r,
		      unsigned *port_r)
{
	const char *colon, *hs = server, *he;
	unsigned long port;
	char *end;
	memset(tg, 0, sizeof(*tg));
	*host_r = NULL;
	if (strncmp(server, "unix:", 5) == 0)
		return lmtp_unix_target(server, tg);
	if (!(colon = strrchr(server, ':')) || colon == server)
		return -1;
	port = strtoul(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -1;
	he = colon;
	if (*hs == '[' && he[-1] == ']') {
		hs++;
		he--;
	}
	if (he <= hs)
		return -1;
	*port_r = (unsigned)port;
	/* Bare, as a certificate names it and as the log shows it. */
	*host_r = xstrndup(hs, (size_t)(he - hs));
	if (relay_literal_target(*host_r, (unsigned)port, tg) == 0)
		return 0;
	/* A bracketed name is no address. */
	if (hs != server) {
		free(*host_r);
		*host_r = NULL;
		return -1;
	}
	return 1;
}
