/* dns_targets: from DNS answers to the ordered list of addresses to try. MX rdata
 * parsing, null MX (RFC 7505), the RFC 5321 5.1 ordering and self pruning, the
 * family policy, and the final status when no address is left. No I/O here. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns_impl.h"
#include "util/ascii.h"
#include "util/xmalloc.h"

char *dns_name_normal(const char *name)
{
	char *n = ascii_lower_str(xstrdup(name));
	size_t len = strlen(n);

	if (len > 1 && n[len - 1] == '.')
		n[len - 1] = '\0';
	return n;
}

void dns_hosts_add(struct dns_query *q, const char *name, unsigned pref)
{
	/* The same host twice: it keeps its best preference. */
	for (size_t i = 0; i < q->n_hosts; i++) {
		if (strcmp(q->hosts[i].name, name) == 0) {
			if (pref < q->hosts[i].pref)
				q->hosts[i].pref = pref;
			return;
		}
	}
	q->hosts = xrealloc(q->hosts, (q->n_hosts + 1) * sizeof(*q->hosts));
	q->hosts[q->n_hosts++] = (struct dns_host){ .name = xstrdup(name), .pref = pref };
}

static void dns_host_free(struct dns_host *h)
{
	free(h->name);
	free(h->lk[0].addrs);
	free(h->lk[1].addrs);
}

void dns_hosts_free(struct dns_query *q)
{
	for (size_t i = 0; i < q->n_hosts; i++)
		dns_host_free(&q->hosts[i]);
	free(q->hosts);
	q->hosts = NULL;
	q->n_hosts = 0;
}

/* An uncompressed wire-format name (libunbound expands the MX target) as lower-case
 * text without the final dot; the root is "". Labels with bytes a host name cannot
 * hold are refused: the name would reach logs, SMTP and DSNs. */
static int dns_wire_name(const unsigned char *p, size_t len, char *out, size_t outsz)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t l = p[i++];
		if (l == 0) {
			out[o] = '\0';
			return 0;
		}
		if (l > 63 || i + l > len || o + l + 2 > outsz)
			return -1;
		if (o)
			out[o++] = '.';
		for (size_t k = 0; k < l; k++, i++) {
			int c = p[i];
			if (!isalnum(c) && c != '-' && c != '_')
				return -1;
			out[o++] = ascii_lower((char)c);
		}
	}
	return -1;
}

void dns_mx_parse(struct dns_query *q, const unsigned char *const *data, const int *len)
{
	char name[256];

	for (size_t i = 0; data[i]; i++) {
		q->n_mx_records++;
		if (len[i] < 3 || dns_wire_name(data[i] + 2, (size_t)len[i] - 2, name, sizeof(name)) < 0)
			continue;
		if (!*name) {
			q->null_mx = 1;
			continue;
		}
		dns_hosts_add(q, name, (unsigned)data[i][0] << 8 | data[i][1]);
	}
}

void dns_addrs_parse(struct dns_query *q, struct dns_lookup *lk,
		     const unsigned char *const *data, const int *len)
{
	size_t want = lk->rrtype == DNS_RR_A ? 4 : 16;

	for (size_t i = 0; data[i] && lk->n_addrs < DNS_ADDRS_MAX; i++) {
		struct sockaddr_storage ss = { 0 };
		if ((size_t)len[i] != want)
			continue;
		if (want == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)q->port);
			memcpy(&sin->sin_addr, data[i], 4);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)q->port);
			memcpy(&sin6->sin6_addr, data[i], 16);
		}
		lk->addrs = xrealloc(lk->addrs, (lk->n_addrs + 1) * sizeof(*lk->addrs));
		lk->addrs[lk->n_addrs++] = ss;
	}
}

static int dns_host_cmp(const void *a, const void *b)
{
	const struct dns_host *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->shuffle < y->shuffle ? -1 : x->shuffle > y->shuffle;
}

static void dns_hosts_truncate(struct dns_query *q, size_t n)
{
	while (q->n_hosts > n)
		dns_host_free(&q->hosts[--q->n_hosts]);
}

int dns_mx_select(struct dns_query *q)
{
	/* RFC 7505 3: a null MX is "a single MX RR with an RDATA section consisting of
	 * preference number 0 and a zero-length label". */
	if (q->null_mx && q->n_mx_records == 1) {
		dns_query_finish(q, DNS_NULLMX, "%s accepts no mail (null MX)", q->domain);
		return -1;
	}
	if (q->n_hosts == 0) {
		dns_query_finish(q, DNS_NODATA, "%s has no usable MX host", q->domain);
		return -1;
	}
	/* RFC 5321 5.1: "If there are multiple destinations with the same preference
	 * and there is no clear reason to favor one (e.g., by recognition of an easily
	 * reached address), then the sender-SMTP MUST randomize them to spread the load
	 * across multiple mail exchangers". */
	for (size_t i = 0; i < q->n_hosts; i++)
		q->hosts[i].shuffle = arc4random();
	qsort(q->hosts, q->n_hosts, sizeof(*q->hosts), dns_host_cmp);
	/* RFC 5321 5.1: "if the domain name is found in the list of MX records as the
	 * local host, the SMTP client MUST discard all records with preference equal to
	 * or greater than that of the local host". Sorted: the first match is the best. */
	for (size_t i = 0; q->self && i < q->n_hosts; i++) {
		if (strcmp(q->hosts[i].name, q->self) != 0)
			continue;
		size_t keep = 0;
		while (keep < q->n_hosts && q->hosts[keep].pref < q->hosts[i].pref)
			keep++;
		dns_hosts_truncate(q, keep);
		break;
	}
	if (q->n_hosts == 0) {
		if (q->res->implicit_mx)
			dns_query_finish(q, DNS_LOOP, "%s has no MX and is this host", q->domain);
		else
			dns_query_finish(q, DNS_LOOP, "the best MX of %s is this host (%s)", q->domain,
					 q->self);
		return -1;
	}
	dns_hosts_truncate(q, DNS_MX_HOSTS_MAX);
	return 0;
}

static void dns_target_add(struct dns_query *q, const struct dns_host *h,
			   const struct sockaddr_storage *ss, int secure)
{
	struct dns_result *res = q->res;

	if (q->max_targets && res->n_targets >= q->max_targets)
		return;
	res->targets = xrealloc(res->targets, (res->n_targets + 1) * sizeof(*res->targets));
	res->targets[res->n_targets++] = (struct dns_target){
		.host = xstrdup(h->name),
		.pref = h->pref,
		.addr_secure = secure,
		.addr = *ss,
		.addrlen = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
						    : sizeof(struct sockaddr_in6),
	};
}

/* One host's addresses in the order of the family policy: "any" interleaves, IPv6
 * first (RFC 8305 4); "prefer" puts that family first. */
static void dns_host_targets(struct dns_query *q, const struct dns_host *h)
{
	const struct dns_lookup *v6 = &h->lk[DNS_LK_AAAA], *v4 = &h->lk[DNS_LK_A];
	const struct dns_lookup *first = q->fam == IPF_PREFER_V4 ? v4 : v6;
	const struct dns_lookup *second = first == v4 ? v6 : v4;

	if (q->fam == IPF_ANY) {
		for (size_t i = 0; i < v6->n_addrs || i < v4->n_addrs; i++) {
			if (i < v6->n_addrs)
				dns_target_add(q, h, &v6->addrs[i], v6->sec == DNS_SEC_SECURE);
			if (i < v4->n_addrs)
				dns_target_add(q, h, &v4->addrs[i], v4->sec == DNS_SEC_SECURE);
		}
		return;
	}
	for (size_t i = 0; i < first->n_addrs; i++)
		dns_target_add(q, h, &first->addrs[i], first->sec == DNS_SEC_SECURE);
	for (size_t i = 0; i < second->n_addrs; i++)
		dns_target_add(q, h, &second->addrs[i], second->sec == DNS_SEC_SECURE);
}

static const char *dns_family_word(enum ip_family fam)
{
	return fam == IPF_V4_ONLY ? "IPv4 " : fam == IPF_V6_ONLY ? "IPv6 " : "";
}

/* The first temporary failure among the hosts, preferring one that left its host
 * without any address (that one may hide the best target). */
static void dns_first_tempfail(const struct dns_query *q, const struct dns_host **host_r,
			       const char **why_r, const char **fam_r)
{
	*host_r = NULL;
	for (int pass = 0; pass < 2 && !*host_r; pass++) {
		for (size_t i = 0; i < q->n_hosts && !*host_r; i++) {
			const struct dns_lookup *lk = q->hosts[i].lk;
			if (pass == 0 && lk[0].n_addrs + lk[1].n_addrs)
				continue;
			for (int f = 0; f < 2 && !*host_r; f++) {
				if (lk[f].outcome != LK_TEMPFAIL)
					continue;
				*host_r = &q->hosts[i];
				*why_r = lk[f].why;
				/* Only when the other family answered is the family worth saying. */
				*fam_r = pass == 0 ? "" : f == DNS_LK_A ? "IPv4 " : "IPv6 ";
			}
		}
	}
}

void dns_targets_build(struct dns_query *q)
{
	struct dns_result *res = q->res;
	const struct dns_host *tf_host;
	const char *tf_why = NULL, *tf_fam = NULL;
	size_t n_nx = 0;

	for (size_t i = 0; i < q->n_hosts; i++) {
		const struct dns_host *h = &q->hosts[i];
		const struct dns_lookup *lk = h->lk;
		if (lk[0].n_addrs + lk[1].n_addrs) {
			dns_host_targets(q, h);
			continue;
		}
		/* No address: skipped, but a temporary failure may hide one. */
		if (lk[0].outcome == LK_TEMPFAIL || lk[1].outcome == LK_TEMPFAIL)
			res->n_host_tempfail++;
		else if ((lk[0].outcome == LK_NXDOMAIN || lk[0].outcome == LK_NONE) &&
			 (lk[1].outcome == LK_NXDOMAIN || lk[1].outcome == LK_NONE))
			n_nx++;
	}
	dns_first_tempfail(q, &tf_host, &tf_why, &tf_fam);
	if (res->n_targets) {
		if (tf_host)
			dns_query_finish(q, DNS_OK, "%s looking up the %saddress of %s", tf_why,
					 tf_fam, tf_host->name);
		else
			dns_query_finish(q, DNS_OK, NULL);
	} else if (res->n_host_tempfail) {
		dns_query_finish(q, DNS_TEMPFAIL, "%s looking up the address of %s", tf_why,
				 tf_host->name);
	} else if (!q->want_mx && n_nx == q->n_hosts) {
		dns_query_finish(q, DNS_NXDOMAIN, "%s does not exist (NXDOMAIN)", q->domain);
	} else if (!q->want_mx) {
		dns_query_finish(q, DNS_NODATA, "%s has no %saddress", q->domain,
				 dns_family_word(q->fam));
	} else if (res->implicit_mx) {
		dns_query_finish(q, DNS_NODATA, "%s has no MX and no %saddress", q->domain,
				 dns_family_word(q->fam));
	} else {
		dns_query_finish(q, DNS_NODATA, "no MX host of %s has an %saddress", q->domain,
				 dns_family_word(q->fam));
	}
}

int dns_literal_target(struct dns_query *q)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct dns_host h = { .name = q->domain };

	if (inet_pton(AF_INET, q->domain, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)q->port);
	} else if (inet_pton(AF_INET6, q->domain, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)q->port);
	} else {
		return -1;
	}
	if ((ss.ss_family == AF_INET && q->fam == IPF_V6_ONLY) ||
	    (ss.ss_family == AF_INET6 && q->fam == IPF_V4_ONLY)) {
		dns_query_finish(q, DNS_NODATA, "%s is an %s address and only %s is allowed",
				 q->domain, ss.ss_family == AF_INET ? "IPv4" : "IPv6",
				 ss.ss_family == AF_INET ? "IPv6" : "IPv4");
		return 0;
	}
	/* An address literal names no host: there is nothing to secure (no DANE). */
	dns_target_add(q, &h, &ss, 0);
	dns_query_finish(q, DNS_OK, NULL);
	return 0;
}
