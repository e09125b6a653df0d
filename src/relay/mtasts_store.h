/* mtasts_store: the MTA-STS policy cache on disk, one small file per policy domain in
 * mta_sts_cache_dir, so that a restart keeps what MTA-STS relies on: the cached policy
 * is what protects against a downgrade of the next discovery (an attacker on the path
 * can block the TXT lookup or the fetch too). Blocking file work: a worker thread, or
 * the start of the daemon.
 *
 * A file: "cursus-mta-sts 1", "domain D", "id I", "fetched T" (Unix time), an empty
 * line, then the policy as it was served. It is parsed again when read, by the same
 * strict parser, so a file that was tampered with or torn is dropped, not trusted. */
#ifndef CURSUS_MTASTS_STORE_H
#define CURSUS_MTASTS_STORE_H

#include <stddef.h>
#include <time.h>

#include "relay/mtasts_policy.h"

struct mtasts_stored {
	char *domain;
	char id[MTASTS_ID_MAX + 1];
	time_t fetched;
	char *text;                /* the policy as served */
	size_t len;
	struct mtasts_policy policy;
};

void mtasts_stored_clear(struct mtasts_stored *s);

/* Writes (replaces) the domain's file: temporary name, fsync, rename. Returns 0 or an
 * errno. */
int mtasts_store_save(const char *dir, const struct mtasts_stored *s);
/* Removes the domain's file (an expired policy). */
void mtasts_store_remove(const char *dir, const char *domain);
/* Calls cb for each good file of dir, in no order (the callee takes s's contents);
 * logs and skips the bad ones. Returns how many were read. */
size_t mtasts_store_load(const char *dir, void (*cb)(void *arg, struct mtasts_stored *s),
			 void *arg);

#endif
