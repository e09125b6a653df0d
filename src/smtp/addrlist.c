/* addrlist: see addrlist.h. One pass over the field: comments are skipped (nested,
 * with quoted pairs), quoted strings copied whole, and for each element the text in
 * angle brackets wins over the bare text (which is then a display name). */
#include "smtp/addrlist.h"

#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct addrlist_buf {
	char *p;
	size_t len, cap;
};

static void addrlist_put(struct addrlist_buf *b, char c)
{
	if (b->len + 2 > b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->p = xrealloc(b->p, b->cap);
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

/* The element ends: its address, if it has one, joins the list. */
static size_t addrlist_end(struct addrlist_buf *plain, struct addrlist_buf *angle, int got_angle,
			   char ***list_r, size_t *n_r)
{
	struct addrlist_buf *b = got_angle ? angle : plain;
	const char *a = b->len ? b->p : "";
	size_t added = 0;

	/* RFC 5322 4.4 obs-route "<@relay,@relay:user@domain>": the route is ignored. */
	if (got_angle && a[0] == '@' && strchr(a, ':'))
		a = strchr(a, ':') + 1;
	if (*a) {
		*list_r = xrealloc(*list_r, (*n_r + 1) * sizeof(**list_r));
		(*list_r)[(*n_r)++] = xstrdup(a);
		added = 1;
	}
	plain->len = angle->len = 0;
	return added;
}

size_t addrlist_parse(const char *s, size_t len, char ***list_r, size_t *n_r)
{
	struct addrlist_buf plain = {0}, angle = {0}, *cur = &plain;
	int got_angle = 0;
	size_t i = 0, added = 0;

	while (i < len) {
		char c = s[i];
		if (c == '(') {
			int depth = 0;
			for (; i < len; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')' && --depth == 0)
					break;
			}
			i++;
			continue;
		}
		if (c == '"') {
			addrlist_put(cur, c);
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					addrlist_put(cur, s[i++]);
				if (s[i] != '\r' && s[i] != '\n')
					addrlist_put(cur, s[i]);
			}
			addrlist_put(cur, '"');
			i++;
			continue;
		}
		i++;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (cur == &angle) {
			if (c == '>')
				cur = &plain;
			else
				addrlist_put(cur, c);
			continue;
		}
		switch (c) {
		case '<':
			cur = &angle;
			angle.len = 0;
			got_angle = 1;
			break;
		case ':':
			/* "group: a, b;" - what came before is the group's name. */
			plain.len = 0;
			break;
		case ',':
		case ';':
			added += addrlist_end(&plain, &angle, got_angle, list_r, n_r);
			got_angle = 0;
			break;
		default:
			addrlist_put(cur, c);
		}
	}
	added += addrlist_end(&plain, &angle, got_angle, list_r, n_r);
	free(plain.p);
	free(angle.p);
	return added;
}

void addrlist_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}
