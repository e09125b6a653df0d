/* userdb_alias: aliases and catch-alls, and resolving a recipient through them to
 * mailboxes (any backend).
 * Promises: resolution follows aliases recursively but at most USERDB_ALIAS_DEPTH hops,
 * expands each address once (loops end), stops as soon as the expansion passes the
 * caller's bound, and never lists a mailbox twice; a store failure anywhere is -1. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/username.h"
#include "store/userdb_private.h"
#include "util/log.h"
#include "util/strset.h"
#include "util/xmalloc.h"

/* How many alias hops a recipient may take before we stop following. */
#define USERDB_ALIAS_DEPTH 8

/* The targets of an alias address. 0 ok (possibly none), -1 failure. */
static int userdb_alias_targets(struct userdb *u, const char *address, char ***list_r,
				size_t *n_r)
{
	struct userdb_param p[] = { UPT(address) };
	struct userdb_rows r = { 0 };
	char *err = NULL;

	*list_r = NULL;
	*n_r = 0;
	if (userdb_q(u, "SELECT target FROM aliases WHERE address = $1 ORDER BY target", p, 1,
		     userdb_rows_add, &r, NULL, &err) < 0) {
		log_warnx("userdb alias_failed error=\"%s\"", err ? err : "?");
		free(err);
		userdb_rows_free(&r);
		return -1;
	}
	for (size_t i = 0; i < r.n; i++)
		if (!r.v[i])
			r.v[i] = xstrdup("");
	*list_r = r.v;
	*n_r = r.n;
	return 0;
}

struct userdb_resolution {
	char **mailboxes;
	size_t n, cap;
	size_t max;               /* more mailboxes than this: stop, USERDB_TOO_MANY */
	struct strset boxes;      /* the mailboxes, for de-duplication without a scan */
	struct strset seen;       /* lookup keys already expanded: loops end here */
};

/* What userdb_resolve_address returns when r->max was passed. */
#define USERDB_TOO_MANY (-2)

static void userdb_mailbox_add(struct userdb_resolution *r, char *mb)
{
	if (!strset_add(&r->boxes, mb)) {
		free(mb);
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 4;
		r->mailboxes = xrealloc(r->mailboxes, r->cap * sizeof(*r->mailboxes));
	}
	r->mailboxes[r->n++] = mb;
}

/* Marks key as expanded; 0 when it already was. */
static int userdb_visit(struct userdb_resolution *r, const char *key)
{
	return strset_add(&r->seen, key);
}

static int userdb_resolve_address(struct userdb *u, struct userdb_resolution *r,
				  const char *address, int depth)
{
	char **targets = NULL;
	size_t n_targets = 0;
	const char *at = strrchr(address, '@');
	int rc;

	if (!at || at == address || !userdb_visit(r, address))
		return 0;
	rc = userdb_user_exists(u, address);
	if (rc != 0) {
		if (rc == 1) {
			userdb_mailbox_add(r, xasprintf("%s/%.*s", at + 1, (int)(at - address), address));
			if (r->n > r->max)
				return USERDB_TOO_MANY;
		}
		return rc < 0 ? -1 : 0;
	}
	if (userdb_alias_targets(u, address, &targets, &n_targets) < 0)
		return -1;
	if (n_targets == 0 && userdb_visit(r, at)) {
		/* No user and no alias: the domain's catch-all, stored as "@domain". */
		if (userdb_alias_targets(u, at, &targets, &n_targets) < 0)
			return -1;
	}
	rc = 0;
	for (size_t i = 0; i < n_targets && rc == 0; i++) {
		if (depth + 1 > USERDB_ALIAS_DEPTH) {
			char esc[LOG_ESCAPE_BUFSZ];
			log_warnx("userdb alias_too_deep address=%s max=%d",
				  log_escape(esc, sizeof(esc), address, strlen(address)),
				  USERDB_ALIAS_DEPTH);
			break;
		}
		/* A target that is neither a user nor an alias nor caught by a catch-all
		 * adds nothing: forwarding to remote addresses is not supported yet. */
		rc = userdb_resolve_address(u, r, targets[i], depth + 1);
	}
	userdb_free_list(targets, n_targets);
	return rc;
}

int userdb_resolve_max(struct userdb *u, const char *address, size_t max, char ***mailboxes_r,
		       size_t *n_r)
{
	struct userdb_resolution r = { 0 };
	char *addr = xstrdup(address);
	int rc;

	*mailboxes_r = NULL;
	*n_r = 0;
	r.max = max;
	username_lower(addr);
	rc = userdb_resolve_address(u, &r, addr, 0);
	free(addr);
	strset_clear(&r.seen);
	strset_clear(&r.boxes);
	if (rc < 0 || r.n == 0) {
		userdb_free_list(r.mailboxes, r.n);
		return rc == USERDB_TOO_MANY ? USERDB_RESOLVE_TOO_MANY : rc < 0 ? -1 : 0;
	}
	*mailboxes_r = r.mailboxes;
	*n_r = r.n;
	return 1;
}

int userdb_resolve(struct userdb *u, const char *address, char ***mailboxes_r, size_t *n_r)
{
	return userdb_resolve_max(u, address, SIZE_MAX, mailboxes_r, n_r);
}

int userdb_alias_add(struct userdb *u, const char *address, const char *target, char **err)
{
	char *addr, *tgt;
	int rc = -1;

	if (!(addr = username_normalize_alias(address, err)))
		return -1;
	if (!(tgt = username_normalize(target, "alias target", err))) {
		free(addr);
		return -1;
	}
	if (strcmp(addr, tgt) == 0) {
		*err = xasprintf("alias %s points at itself", addr);
	} else {
		rc = userdb_write(u, "INSERT INTO aliases (address, target) VALUES ($1, $2)", addr, tgt,
				  NULL, "cannot add alias", err);
		if (rc == -3)
			*err = xasprintf("alias %s -> %s already exists", addr, tgt);
	}
	free(addr);
	free(tgt);
	return rc == 0 ? 0 : -1;
}

int userdb_alias_del(struct userdb *u, const char *address, const char *target, char **err)
{
	char *addr = xstrdup(address), *tgt = target ? xstrdup(target) : NULL;
	int rc;

	username_lower(addr);
	if (tgt) {
		char *both;
		username_lower(tgt);
		both = xasprintf("%s -> %s", addr, tgt);
		rc = userdb_delete(u, "DELETE FROM aliases WHERE address = $1 AND target = $2",
				   addr, tgt, userdb_missing("alias", both), err);
		free(both);
	} else {
		rc = userdb_delete(u, "DELETE FROM aliases WHERE address = $1", addr, NULL,
				   userdb_missing("alias", addr), err);
	}
	free(addr);
	free(tgt);
	return rc;
}

int userdb_alias_list(struct userdb *u,
		      void (*fn)(void *arg, const char *address, const char *target), void *arg,
		      char **err)
{
	struct userdb_rows r = { 0 };
	char *why = NULL;
	int rc = userdb_q(u, "SELECT address, target FROM aliases ORDER BY address, target", NULL,
			  0, userdb_rows_add, &r, NULL, &why);
	if (rc < 0)
		*err = userdb_err("cannot list aliases", why);
	for (size_t i = 0; rc == 0 && i + 1 < r.n; i += 2)
		fn(arg, r.v[i] ? r.v[i] : "", r.v[i + 1] ? r.v[i + 1] : "");
	userdb_rows_free(&r);
	return rc < 0 ? -1 : 0;
}
