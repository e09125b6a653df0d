/* dns_impl: what dns.c (the unbound plumbing and a query's lifecycle) and
 * dns_targets.c (turning answers into ordered targets) share. Not for other modules. */
#ifndef CURSUS_DNS_IMPL_H
#define CURSUS_DNS_IMPL_H

#include "net/dns.h"
#include "util/log.h"

#define DNS_RR_A 1
#define DNS_RR_MX 15
#define DNS_RR_AAAA 28
/* Records kept from a dns_resolve_rr answer. */
#define DNS_RR_MAX 32
/* MX hosts kept per domain: more is a misconfiguration or an attack. */
#define DNS_MX_HOSTS_MAX 32
/* Addresses kept per host and family. */
#define DNS_ADDRS_MAX 16

enum dns_lk_outcome { LK_NONE, LK_DATA, LK_NODATA, LK_NXDOMAIN, LK_TEMPFAIL };

/* One question sent to unbound. */
struct dns_lookup {
	struct dns_query *q;
	int rrtype;
	int async_id;
	int pending;
	enum dns_lk_outcome outcome;
	enum dns_sec sec;
	char why[64];                   /* for LK_TEMPFAIL: "SERVFAIL", "no answer within 10 s" */
	struct sockaddr_storage *addrs; /* for A/AAAA with LK_DATA, port set */
	size_t n_addrs;
};

enum { DNS_LK_AAAA, DNS_LK_A };

struct dns_host {
	char *name;      /* lower case, no trailing dot */
	unsigned pref;
	unsigned shuffle;
	struct dns_lookup lk[2];
};

struct dns_query {
	struct dns *d;
	struct dns_query *prev, *next;
	dns_cb cb;
	void *arg;
	char *domain;     /* the mail domain, or the host of dns_resolve_host; normalised */
	char *self;       /* normalised, or NULL */
	enum ip_family fam;
	unsigned port;
	size_t max_targets;
	int want_mx;
	int rr_type;      /* dns_resolve_rr: the type asked in the mx slot; 0 otherwise */
	struct dns_lookup mx;
	size_t n_mx_records;
	int null_mx;
	struct dns_host *hosts;
	size_t n_hosts;
	size_t n_pending; /* lookups in flight */
	struct event *timer, *done_ev;
	struct dns_result *res;
	int finished;
};


/* dns.c */
void dns_query_finish(struct dns_query *q, enum dns_status st, const char *fmt, ...)
	PRINTF_LIKE(3, 4);
void dns_mx_answered(struct dns_query *q);

/* dns_targets.c */
char *dns_name_normal(const char *name);
void dns_hosts_add(struct dns_query *q, const char *name, unsigned pref);
void dns_hosts_free(struct dns_query *q);
void dns_mx_parse(struct dns_query *q, const unsigned char *const *data, const int *len);
void dns_addrs_parse(struct dns_query *q, struct dns_lookup *lk,
		     const unsigned char *const *data, const int *len);
/* Null MX, sort and shuffle, dropping this host and worse. Returns -1 when that
 * finished the query (null MX, loop, no usable host). */
int dns_mx_select(struct dns_query *q);
/* The targets from every host's answers, and the query's final status. */
void dns_targets_build(struct dns_query *q);
/* Finishes q at once when its name is an IPv4/IPv6 literal and returns 0, else -1. */
int dns_literal_target(struct dns_query *q);

#endif
