/* check_report: the findings of `cursus check`, collected, sorted and printed. The text
 * form is one line per finding, like a compiler's; the JSON form is one document whose
 * keys do not change. Promises: the exit status is 1 exactly when an error or a warning
 * was printed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/check.h"
#include "util/json.h"
#include "util/xmalloc.h"

static const char *const check_severity_names[] = { "error", "warning", "info" };

void check_add(struct check_report *r, enum check_severity sev, const char *id, int line,
	       const char *fix, const char *fmt, ...)
{
	struct check_finding *f;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < r->n; i++) {
		f = &r->findings[i];
		if (strcmp(f->id, id) == 0 && f->line == line && strcmp(f->message, msg) == 0) {
			free(msg);
			return;
		}
	}
	r->findings = xrealloc(r->findings, (r->n + 1) * sizeof(*r->findings));
	r->findings[r->n] = (struct check_finding){ sev, id, line, msg, fix, r->n };
	r->n++;
}

int check_listener_line(const struct check_report *r, const struct listener_conf *l,
			const char *option)
{
	int line = config_listener_line(l, option);
	if (!line)
		line = config_option_line(r->cfg, option);
	return line ? line : l->line;
}

/* By line, the defaults (0) last; equal lines keep the order they were found in. */
static int check_cmp(const void *a, const void *b)
{
	const struct check_finding *x = a, *y = b;
	unsigned lx = (unsigned)x->line - 1, ly = (unsigned)y->line - 1;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void check_print_text(const struct check_report *r, const struct check_finding *f)
{
	char where[32];
	if (f->line)
		snprintf(where, sizeof(where), "%d", f->line);
	else
		snprintf(where, sizeof(where), "(default)");
	printf("%s:%s: %s: %s: %s. Fix: %s.\n", r->file, where, check_severity_names[f->severity],
	       f->id, f->message, f->fix);
}

static void check_print_json(const struct check_report *r, unsigned counts[3])
{
	printf("{\"file\":");
	json_put_str(stdout, r->file);
	printf(",\"status\":\"%s\",\"errors\":%u,\"warnings\":%u,\"infos\":%u,\"findings\":[",
	       counts[CHECK_ERROR] + counts[CHECK_WARNING] ? "problems" : "ok", counts[CHECK_ERROR],
	       counts[CHECK_WARNING], counts[CHECK_INFO]);
	for (size_t i = 0; i < r->n; i++) {
		const struct check_finding *f = &r->findings[i];
		printf("%s{\"id\":", i ? "," : "");
		json_put_str(stdout, f->id);
		printf(",\"severity\":\"%s\",\"file\":", check_severity_names[f->severity]);
		json_put_str(stdout, r->file);
		if (f->line)
			printf(",\"line\":%d", f->line);
		else
			printf(",\"line\":null");
		printf(",\"message\":");
		json_put_str(stdout, f->message);
		printf(",\"fix\":");
		json_put_str(stdout, f->fix);
		putchar('}');
	}
	printf("]}\n");
}

int check_report_print(struct check_report *r, int json)
{
	unsigned counts[3] = {0, 0, 0};

	if (r->n)
		qsort(r->findings, r->n, sizeof(*r->findings), check_cmp);
	for (size_t i = 0; i < r->n; i++)
		counts[r->findings[i].severity]++;
	if (json) {
		check_print_json(r, counts);
	} else {
		for (size_t i = 0; i < r->n; i++)
			check_print_text(r, &r->findings[i]);
		if (counts[CHECK_ERROR] + counts[CHECK_WARNING] == 0)
			printf("configuration OK\n");
		else
			printf("%u error%s, %u warning%s\n", counts[CHECK_ERROR],
			       counts[CHECK_ERROR] == 1 ? "" : "s", counts[CHECK_WARNING],
			       counts[CHECK_WARNING] == 1 ? "" : "s");
	}
	return counts[CHECK_ERROR] + counts[CHECK_WARNING] ? 1 : 0;
}

void check_report_clear(struct check_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->findings[i].message);
	free(r->findings);
	r->findings = NULL;
	r->n = 0;
}
