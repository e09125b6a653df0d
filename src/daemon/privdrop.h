/* privdrop: cursusd started as root gives up root for good once it holds what only root
 * may open (listeners on ports below 1024, the TLS key). Before that, the directories the
 * daemon writes are made and given to the mail user (docs/privileges.md). */
#ifndef CURSUS_PRIVDROP_H
#define CURSUS_PRIVDROP_H

#include <sys/types.h>

#include "config/config.h"

struct priv_id {
	int drop;         /* 0: no `user`, or already running as that user */
	uid_t uid;
	gid_t gid;
};

/* Resolves cfg->user and cfg->group. Returns 0, or -1 with *err_r (malloc'd): an unknown
 * name, or not root while the user asked for is not the one running. */
int priv_lookup(const struct config *cfg, struct priv_id *id, char **err_r);
/* As root, before the drop: makes the queue, mail_dir and the directories of user_db,
 * control_socket, local_socket and pid_file and mta_sts_cache_dir, and gives them (the queue with all it holds; mail_dir's
 * contents once, when it was not the user's yet) and the user database to id. Refuses a
 * directory that holds what root reads at start (configuration, TLS files). Returns 0, or
 * -1 with *err_r (malloc'd). */
int priv_prepare(const struct config *cfg, const struct priv_id *id, char **err_r);
/* setgroups, setgid, setuid to id, then checks that root cannot be taken back. Returns 0,
 * or -1 with *err_r (malloc'd): the caller must not go on. */
int priv_drop(const struct priv_id *id, char **err_r);

#endif
