/* transport: what every transport shares. */
#include "deliver/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "util/xmalloc.h"

void transport_delivery_set(struct delivery_rcpt *r, enum delivery_result res, const char *status,
		  const char *diag)
{
	char *copy = diag ? xstrdup(diag) : NULL;
	r->result = res;
	snprintf(r->status, sizeof(r->status), "%s", status ? status : "");
	free(r->diag);
	r->diag = copy;
}

void transport_delivery_clear(struct delivery *d)
{
	for (size_t i = 0; i < d->n_rcpts; i++) {
		free(d->rcpts[i].diag);
		d->rcpts[i].diag = NULL;
		d->rcpts[i].result = DR_NONE;
		d->rcpts[i].status[0] = '\0';
	}
	free(d->remote_host);
	free(d->remote_addr);
	free(d->tls);
	d->remote_host = d->remote_addr = d->tls = NULL;
	d->tls_verified = d->dsn_passed = d->dest_ok = 0;
	d->tls_policy = NULL;
}

unsigned delivery_count_hops(const struct qbody *b)
{
	char buf[16 * 1024], start[9];
	size_t have = 0;       /* of the current line's first bytes, in start */
	int cr_only = 0;       /* the line so far is a lone CR */
	unsigned n = 0;
	for (uint64_t pos = 0; pos < b->len;) {
		size_t len = b->len - pos < sizeof(buf) ? (size_t)(b->len - pos) : sizeof(buf);
		if (qbody_read(b, pos, buf, len) != 0)
			return n;
		pos += len;
		for (size_t i = 0; i < len; i++) {
			char c = buf[i];
			if (c == '\n') {
				/* An empty line ends the header. */
				if (have == 0 || (have == 1 && cr_only))
					return n;
				have = 0;
				continue;
			}
			if (have < sizeof(start)) {
				start[have++] = c;
				cr_only = have == 1 && c == '\r';
				if (have == sizeof(start) && strncasecmp(start, "Received:", 9) == 0)
					n++;
			} else {
				cr_only = 0;
			}
		}
	}
	return n;
}
