/* transport: what every transport shares. */
#include "deliver/transport.h"

#include <stdio.h>
#include <stdlib.h>

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
}
