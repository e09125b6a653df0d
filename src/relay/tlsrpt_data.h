/* tlsrpt_data: the counts of one TLS-RPT reporting period (RFC 8460 4): per policy
 * domain and policy (type, policy strings, mx-host), the sessions that succeeded and
 * the failures, aggregated by result type, hosts, addresses and additional
 * information. Pure: adding, the state file's text (saved by a worker, read back after
 * a restart) and the JSON report (tlsrpt_json_build). No I/O but through a FILE given. */
#ifndef CURSUS_TLSRPT_DATA_H
#define CURSUS_TLSRPT_DATA_H

#include <stddef.h>
#include <stdio.h>

/* RFC 8460 4.4: "tlsa", "sts" or "no-policy-found". */
enum tlsrpt_ptype { TLSRPT_TLSA, TLSRPT_STS, TLSRPT_NO_POLICY };

/* The policy a session ran under: what a report's "policy" object holds. */
struct tlsrpt_policy {
	enum tlsrpt_ptype type;
	char *domain;          /* the policy domain: the recipient domain, lower case */
	char **strings;        /* the TLSA records ("3 1 1 ab..."), or the policy's lines */
	size_t n_strings;
	char *mx_host;         /* tlsa: the MX host; sts: its mx patterns, ", "-joined; or NULL */
};

struct tlsrpt_fail {
	char *result;          /* RFC 8460 4.3 result type ("certificate-host-mismatch") */
	char *mx, *ip, *send_ip, *info; /* any of them NULL when unknown */
	unsigned long long count;
};

struct tlsrpt_pol {
	struct tlsrpt_policy p;
	unsigned long long ok, failed;
	struct tlsrpt_fail *fails;
	size_t n_fails;
};

struct tlsrpt_period {
	long long start_ms, end_ms;     /* [start, end), UTC milliseconds since the epoch */
	struct tlsrpt_pol *pols;
	size_t n_pols;
};

const char *tlsrpt_ptype_name(enum tlsrpt_ptype t);
void tlsrpt_policy_copy(struct tlsrpt_policy *dst, const struct tlsrpt_policy *src);
void tlsrpt_policy_clear(struct tlsrpt_policy *p);

/* One session under policy p: a success (result NULL) or a failure of that type.
 * Counts are added: n sessions at once (a state file read back). */
void tlsrpt_period_add(struct tlsrpt_period *pd, const struct tlsrpt_policy *p,
		       const char *result, const char *mx, const char *ip, const char *send_ip,
		       const char *info, unsigned long long n);
void tlsrpt_period_clear(struct tlsrpt_period *pd);

/* The state file: a line per policy and per failure, tab-separated, escaped; the
 * last line "end" so a torn file is seen. */
int tlsrpt_period_save(const struct tlsrpt_period *pd, FILE *f);
/* Adds what f holds to pd (start and end from the file). -1: malformed or torn. */
int tlsrpt_period_load(struct tlsrpt_period *pd, FILE *f);

/* The report for one policy domain (RFC 8460 4.4), malloc'd JSON text, *len_r its
 * length; NULL when pd has nothing for that domain. */
struct tlsrpt_meta {
	const char *org;       /* organization-name */
	const char *contact;   /* contact-info */
	const char *report_id;
};
char *tlsrpt_json_build(const struct tlsrpt_period *pd, const char *domain,
			const struct tlsrpt_meta *m, size_t *len_r);
/* RFC 3339 in UTC, "2024-05-01T00:00:00Z" (milliseconds shown when not whole). */
void tlsrpt_time_text(long long ms, char *out, size_t outsz);

#endif
