/* tlsrpt_data: the counts of a reporting period, their state file and their JSON
 * (tlsrpt_data.h). Reports are small (a policy per domain and MX host, a failure line
 * per distinct failure), so linear searches do. */
#include "relay/tlsrpt_data.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/json.h"
#include "util/xmalloc.h"

/* Distinct failures kept per policy: more is noise, or an attack on our memory. */
#define TLSRPT_FAILS_MAX 100
/* Policies kept per period. */
#define TLSRPT_POLS_MAX 10000

const char *tlsrpt_ptype_name(enum tlsrpt_ptype t)
{
	return t == TLSRPT_TLSA ? "tlsa" : t == TLSRPT_STS ? "sts" : "no-policy-found";
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void tlsrpt_policy_copy(struct tlsrpt_policy *dst, const struct tlsrpt_policy *src)
{
	dst->type = src->type;
	dst->domain = xstrdup(src->domain);
	dst->mx_host = dup_or_null(src->mx_host);
	dst->n_strings = src->n_strings;
	dst->strings = xcalloc(src->n_strings + 1, sizeof(*dst->strings));
	for (size_t i = 0; i < src->n_strings; i++)
		dst->strings[i] = xstrdup(src->strings[i]);
}

void tlsrpt_policy_clear(struct tlsrpt_policy *p)
{
	for (size_t i = 0; i < p->n_strings; i++)
		free(p->strings[i]);
	free(p->strings);
	free(p->domain);
	free(p->mx_host);
	memset(p, 0, sizeof(*p));
}

static int policy_same(const struct tlsrpt_policy *a, const struct tlsrpt_policy *b)
{
	if (a->type != b->type || strcmp(a->domain, b->domain) != 0 ||
	    !same(a->mx_host, b->mx_host) || a->n_strings != b->n_strings)
		return 0;
	for (size_t i = 0; i < a->n_strings; i++)
		if (strcmp(a->strings[i], b->strings[i]) != 0)
			return 0;
	return 1;
}

void tlsrpt_period_add(struct tlsrpt_period *pd, const struct tlsrpt_policy *p,
		       const char *result, const char *mx, const char *ip, const char *send_ip,
		       const char *info, unsigned long long n)
{
	struct tlsrpt_pol *pol = NULL;
	for (size_t i = 0; i < pd->n_pols && !pol; i++)
		if (policy_same(&pd->pols[i].p, p))
			pol = &pd->pols[i];
	if (!pol) {
		if (pd->n_pols >= TLSRPT_POLS_MAX)
			return;
		pd->pols = xrealloc(pd->pols, (pd->n_pols + 1) * sizeof(*pd->pols));
		pol = &pd->pols[pd->n_pols++];
		memset(pol, 0, sizeof(*pol));
		tlsrpt_policy_copy(&pol->p, p);
	}
	if (!result) {
		pol->ok += n;
		return;
	}
	pol->failed += n;
	for (size_t i = 0; i < pol->n_fails; i++) {
		struct tlsrpt_fail *f = &pol->fails[i];
		if (strcmp(f->result, result) == 0 && same(f->mx, mx) && same(f->ip, ip) &&
		    same(f->send_ip, send_ip) && same(f->info, info)) {
			f->count += n;
			return;
		}
	}
	if (pol->n_fails >= TLSRPT_FAILS_MAX)
		return; /* counted in the summary, not detailed */
	pol->fails = xrealloc(pol->fails, (pol->n_fails + 1) * sizeof(*pol->fails));
	pol->fails[pol->n_fails++] = (struct tlsrpt_fail){
		xstrdup(result), dup_or_null(mx), dup_or_null(ip), dup_or_null(send_ip),
		dup_or_null(info), n };
}

void tlsrpt_period_clear(struct tlsrpt_period *pd)
{
	for (size_t i = 0; i < pd->n_pols; i++) {
		struct tlsrpt_pol *pol = &pd->pols[i];
		for (size_t k = 0; k < pol->n_fails; k++) {
			free(pol->fails[k].result);
			free(pol->fails[k].mx);
			free(pol->fails[k].ip);
			free(pol->fails[k].send_ip);
			free(pol->fails[k].info);
		}
		free(pol->fails);
		tlsrpt_policy_clear(&pol->p);
	}
	free(pd->pols);
	memset(pd, 0, sizeof(*pd));
}

/* ---- the state file --------------------------------------------------------------- */

/* A field: "-" for NULL, else the text with \, tab, newline and CR escaped. */
static void put_field(FILE *f, const char *s)
{
	fputc('\t', f);
	if (!s) {
		fputc('-', f);
		return;
	}
	if (!*s) {
		fputs("\\z", f); /* the empty text */
		return;
	}
	if (*s == '-')
		fputc('\\', f); /* "\-" is the text "-", "-" alone NULL */
	for (; *s; s++) {
		if (*s == '\\' || *s == '\t' || *s == '\n' || *s == '\r')
			fprintf(f, "\\%c", *s == '\t' ? 't' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : '\\');
		else
			fputc(*s, f);
	}
}

int tlsrpt_period_save(const struct tlsrpt_period *pd, FILE *f)
{
	fprintf(f, "tlsrpt1\t%lld\t%lld\n", pd->start_ms, pd->end_ms);
	for (size_t i = 0; i < pd->n_pols; i++) {
		const struct tlsrpt_pol *pol = &pd->pols[i];
		fprintf(f, "policy\t%s", tlsrpt_ptype_name(pol->p.type));
		put_field(f, pol->p.domain);
		put_field(f, pol->p.mx_host);
		fprintf(f, "\t%zu", pol->p.n_strings);
		for (size_t k = 0; k < pol->p.n_strings; k++)
			put_field(f, pol->p.strings[k]);
		fprintf(f, "\nok\t%llu\n", pol->ok);
		/* Failures beyond the detailed ones: counted, with no detail. */
		unsigned long long detailed = 0;
		for (size_t k = 0; k < pol->n_fails; k++) {
			const struct tlsrpt_fail *fl = &pol->fails[k];
			detailed += fl->count;
			fprintf(f, "fail\t%llu", fl->count);
			put_field(f, fl->result);
			put_field(f, fl->mx);
			put_field(f, fl->ip);
			put_field(f, fl->send_ip);
			put_field(f, fl->info);
			fputc('\n', f);
		}
		if (pol->failed > detailed)
			fprintf(f, "undetailed\t%llu\n", pol->failed - detailed);
	}
	fputs("end\n", f);
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

/* Splits line (modified) at tabs, unescaping each field; NULL for "-". */
static size_t split_fields(char *line, char **out, size_t max)
{
	size_t n = 0;
	char *p = line;
	while (n < max) {
		char *start = p, *w = p;
		int raw_dash = p[0] == '-' && (p[1] == '\t' || p[1] == '\0');
		while (*p && *p != '\t') {
			if (*p == '\\' && p[1]) {
				p++;
				if (*p != 'z')
					*w++ = *p == 't' ? '\t' : *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p;
				p++;
			} else if (*p == '\\') {
				p++; /* "\" alone: the empty text */
			} else {
				*w++ = *p++;
			}
		}
		int more = *p == '\t';
		*w = '\0';
		out[n++] = raw_dash ? NULL : start;
		if (!more)
			break;
		p++;
	}
	return n;
}

int tlsrpt_period_load(struct tlsrpt_period *pd, FILE *f)
{
	char *line = NULL, *fld[8 + 64];
	size_t cap = 0, n;
	ssize_t len;
	int ended = 0, rc = -1, have_pol = 0;
	struct tlsrpt_policy cur = { 0 };

	if ((len = getline(&line, &cap, f)) <= 0 ||
	    sscanf(line, "tlsrpt1\t%lld\t%lld\n", &pd->start_ms, &pd->end_ms) != 2)
		goto out;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (strcmp(line, "end") == 0) {
			ended = 1;
			break;
		}
		n = split_fields(line, fld, sizeof(fld) / sizeof(*fld));
		if (strcmp(fld[0], "policy") == 0 && n >= 5 && fld[2]) {
			size_t ns = strtoul(fld[4] ? fld[4] : "", NULL, 10);
			if (ns != n - 5)
				goto out;
			tlsrpt_policy_clear(&cur);
			cur.type = strcmp(fld[1], "tlsa") == 0 ? TLSRPT_TLSA
				 : strcmp(fld[1], "sts") == 0 ? TLSRPT_STS : TLSRPT_NO_POLICY;
			cur.domain = xstrdup(fld[2]);
			cur.mx_host = dup_or_null(fld[3]);
			cur.n_strings = ns;
			cur.strings = xcalloc(ns + 1, sizeof(*cur.strings));
			for (size_t i = 0; i < ns; i++)
				cur.strings[i] = xstrdup(fld[5 + i] ? fld[5 + i] : "");
			have_pol = 1;
			tlsrpt_period_add(pd, &cur, NULL, NULL, NULL, NULL, NULL, 0);
		} else if (have_pol && strcmp(fld[0], "ok") == 0 && n == 2 && fld[1]) {
			tlsrpt_period_add(pd, &cur, NULL, NULL, NULL, NULL, NULL,
					  strtoull(fld[1], NULL, 10));
		} else if (have_pol && strcmp(fld[0], "fail") == 0 && n == 7 && fld[1] && fld[2]) {
			tlsrpt_period_add(pd, &cur, fld[2], fld[3], fld[4], fld[5], fld[6],
					  strtoull(fld[1], NULL, 10));
		} else if (have_pol && strcmp(fld[0], "undetailed") == 0 && n == 2 && fld[1]) {
			/* Counted in the summary only. */
			for (size_t i = 0; i < pd->n_pols; i++)
				if (policy_same(&pd->pols[i].p, &cur))
					pd->pols[i].failed += strtoull(fld[1], NULL, 10);
		} else {
			goto out;
		}
	}
	rc = ended ? 0 : -1;
out:
	tlsrpt_policy_clear(&cur);
	free(line);
	return rc;
}

/* ---- the JSON report (RFC 8460 4.4) ----------------------------------------------- */

void tlsrpt_time_text(long long ms, char *out, size_t outsz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	if (ms % 1000)
		snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	else
		strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_key_str(FILE *f, const char *key, const char *val)
{
	fprintf(f, "\"%s\":", key);
	json_put_str(f, val);
}

static void json_policy(FILE *f, const struct tlsrpt_pol *pol)
{
	fputs("{\"policy\":{", f);
	json_key_str(f, "policy-type", tlsrpt_ptype_name(pol->p.type));
	if (pol->p.n_strings) {
		fputs(",\"policy-string\":[", f);
		for (size_t i = 0; i < pol->p.n_strings; i++) {
			if (i)
				fputc(',', f);
			json_put_str(f, pol->p.strings[i]);
		}
		fputc(']', f);
	}
	fputc(',', f);
	json_key_str(f, "policy-domain", pol->p.domain);
	if (pol->p.mx_host) {
		fputc(',', f);
		json_key_str(f, "mx-host", pol->p.mx_host);
	}
	fprintf(f, "},\"summary\":{\"total-successful-session-count\":%llu,"
		"\"total-failure-session-count\":%llu}", pol->ok, pol->failed);
	if (pol->n_fails) {
		fputs(",\"failure-details\":[", f);
		for (size_t i = 0; i < pol->n_fails; i++) {
			const struct tlsrpt_fail *fl = &pol->fails[i];
			fputs(i ? ",{" : "{", f);
			json_key_str(f, "result-type", fl->result);
			if (fl->send_ip) {
				fputc(',', f);
				json_key_str(f, "sending-mta-ip", fl->send_ip);
			}
			if (fl->mx) {
				fputc(',', f);
				json_key_str(f, "receiving-mx-hostname", fl->mx);
			}
			if (fl->ip) {
				fputc(',', f);
				json_key_str(f, "receiving-ip", fl->ip);
			}
			fprintf(f, ",\"failed-session-count\":%llu", fl->count);
			if (fl->info) {
				fputc(',', f);
				json_key_str(f, "additional-information", fl->info);
			}
			fputc('}', f);
		}
		fputc(']', f);
	}
	fputc('}', f);
}

char *tlsrpt_json_build(const struct tlsrpt_period *pd, const char *domain,
			const struct tlsrpt_meta *m, size_t *len_r)
{
	char *buf = NULL, start[40], end[40];
	size_t len = 0;
	int any = 0;
	FILE *f;

	for (size_t i = 0; i < pd->n_pols && !any; i++)
		any = strcmp(pd->pols[i].p.domain, domain) == 0;
	if (!any || !(f = open_memstream(&buf, &len)))
		return NULL;
	tlsrpt_time_text(pd->start_ms, start, sizeof(start));
	/* RFC 8460 4.4: the end-datetime is the last moment of the range. */
	tlsrpt_time_text(pd->end_ms - (pd->start_ms % 1000 == 0 && pd->end_ms % 1000 == 0 ? 1000 : 1),
			 end, sizeof(end));
	fputc('{', f);
	json_key_str(f, "organization-name", m->org);
	fputs(",\"date-range\":{", f);
	json_key_str(f, "start-datetime", start);
	fputc(',', f);
	json_key_str(f, "end-datetime", end);
	fputs("},", f);
	json_key_str(f, "contact-info", m->contact);
	fputc(',', f);
	json_key_str(f, "report-id", m->report_id);
	fputs(",\"policies\":[", f);
	any = 0;
	for (size_t i = 0; i < pd->n_pols; i++) {
		if (strcmp(pd->pols[i].p.domain, domain) != 0)
			continue;
		if (any++)
			fputc(',', f);
		json_policy(f, &pd->pols[i]);
	}
	fputs("]}\n", f);
	fclose(f);
	*len_r = len;
	return buf;
}
