/* dns: asynchronous lookups through libunbound, on the event loop (ub_fd watched by
 * libevent; nothing blocks). Used by the SMTP transport to find where a domain's mail
 * goes: MX records (RFC 5321 5.1), the implicit MX, null MX (RFC 7505), and the
 * addresses of each host. */
#ifndef CURSUS_DNS_H
#define CURSUS_DNS_H

#include <stddef.h>
#include <sys/socket.h>

#include "config/config.h"

struct event_base;
struct dns;
struct dns_query;

/* resolver: "ADDRESS[@PORT]" to forward every query to (tests, a local unbound), or
 * NULL for the system's resolv.conf. trust_anchor: a file of DS or DNSKEY records
 * (ub_ctx_add_ta_file) that turns DNSSEC validation on; NULL: no answer is ever
 * secure. Returns NULL with *err_r (malloc'd) on failure. */
struct dns *dns_create(struct event_base *base, const char *resolver,
		       const char *trust_anchor, char **err_r);
/* Cancels every query in flight (their callbacks are not called). */
void dns_destroy(struct dns **d);
/* How long one dns_resolve_* may take, all its lookups included (default 10000 ms);
 * past it the query answers DNS_TEMPFAIL (or, once the MX are known, with the
 * addresses found so far). Applies to queries started afterwards. */
void dns_set_timeout(struct dns *d, unsigned ms);

enum dns_status {
	DNS_OK,          /* targets has at least one address */
	DNS_NXDOMAIN,    /* the domain (or, for an implicit MX, its address) does not exist: permanent */
	DNS_NODATA,      /* the name exists with no usable MX/A/AAAA: permanent */
	DNS_NULLMX,      /* "MX 0 ." (RFC 7505): the domain accepts no mail: permanent, 5.1.10 */
	DNS_LOOP,        /* the best MX is this host itself: permanent, 5.4.6 */
	DNS_TEMPFAIL,    /* SERVFAIL, timeout, no answer: temporary */
};

/* What DNSSEC validation said of an answer (RFC 4033 5). Without a trust anchor
 * everything is insecure. A bogus answer is never used: the lookup fails. */
enum dns_sec { DNS_SEC_INSECURE, DNS_SEC_SECURE, DNS_SEC_BOGUS };

/* One address to try, in the order to try them. */
struct dns_target {
	char *host;                 /* the MX host name (or the domain, implicit MX) */
	unsigned pref;              /* MX preference (0 for an implicit MX or a host lookup) */
	int addr_secure;            /* the A/AAAA answer this address came from was secure */
	struct sockaddr_storage addr; /* with the port set */
	socklen_t addrlen;
};

struct dns_result {
	enum dns_status status;
	char detail[256];           /* why, for logs and DSNs: "SERVFAIL looking up MX of x" */
	int implicit_mx;            /* no MX: the domain's own A/AAAA */
	/* The MX answer (or, for an implicit MX, its denial) was secure; a host lookup
	 * (dns_resolve_host) has no MX step and sets it. */
	int mx_secure;
	struct dns_target *targets; /* MX by preference, equal preferences shuffled; each
				     * host's addresses in the order of the family policy */
	size_t n_targets;
	/* Hosts whose addresses could not be found temporarily: if no target answers,
	 * the delivery is deferred, not bounced. */
	size_t n_host_tempfail;
	/* dns_resolve_rr only: the records' rdata (wire format, as received), and how
	 * validation judged the answer (status DNS_TEMPFAIL with DNS_SEC_BOGUS: bogus). */
	enum dns_sec sec;
	unsigned char **rr_data;
	size_t *rr_len;
	size_t n_rr;
	char **txt;                 /* DNS_RR_TXT only: each record as one string */
	size_t n_txt;
};

/* Called on the loop thread, once, unless cancelled; res is the callee's to
 * dns_result_free. The query handle is already freed when cb runs: do not cancel it. */
typedef void (*dns_cb)(void *arg, struct dns_result *res);

/* The MX hosts of domain and their addresses (A and/or AAAA as fam says), each with
 * port. MX hosts named self_hostname, and every MX of a preference equal to or above
 * it, are dropped (RFC 5321 5.1); when that leaves none: DNS_LOOP. At most max_targets
 * addresses (0: no limit). */
struct dns_query *dns_resolve_mx(struct dns *d, const char *domain, enum ip_family fam,
				 unsigned port, const char *self_hostname, size_t max_targets,
				 dns_cb cb, void *arg);
/* Only the addresses of host (a bracketed smart host); an address literal answers at
 * once (still through cb, never from inside this call). */
struct dns_query *dns_resolve_host(struct dns *d, const char *host, enum ip_family fam,
				   unsigned port, size_t max_targets, dns_cb cb, void *arg);
/* The records of one type at name, as they are (TLSA for DANE): DNS_OK with n_rr > 0,
 * DNS_NXDOMAIN, DNS_NODATA or DNS_TEMPFAIL, with sec saying whether it was secure. */
#define DNS_RR_TXT 16
#define DNS_RR_TLSA 52
struct dns_query *dns_resolve_rr(struct dns *d, const char *name, int rrtype, dns_cb cb,
				 void *arg);
void dns_cancel(struct dns_query *q);
void dns_result_free(struct dns_result *res);

/* TXT records (RFC 1035 3.3.14), for policy discovery (MTA-STS's _mta-sts.DOMAIN,
 * TLS-RPT's _smtp._tls.DOMAIN): dns_resolve_rr with DNS_RR_TXT, whose result also has
 * each record's character-strings joined into one string (txt, n_txt), as RFC 8461
 * 3.1 and RFC 8460 3 read them; a NUL inside a record is turned into '?'. */
struct dns_query *dns_resolve_txt(struct dns *d, const char *name, dns_cb cb, void *arg);
const char *dns_status_name(enum dns_status st);

#endif
