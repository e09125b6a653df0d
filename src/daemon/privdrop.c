/* privdrop: see privdrop.h. Modelled on Postfix (the queue given to mail_owner by
 * `postfix set-permissions`, the daemons running as it) and OpenSMTPD (setgroups,
 * setresgid, setresuid, then a check that the ids stuck). */
#include "daemon/privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* The queue is <dir>/{msg,tmp,corrupt}/file; Maildirs <dir>/<domain>/<local>/new/file. */
#define PRIV_TREE_DEPTH 8

int priv_lookup(const struct config *cfg, struct priv_id *id, char **err_r)
{
	struct passwd *pw;
	struct group *gr;

	memset(id, 0, sizeof(*id));
	if (!cfg->user)
		return 0;
	if (!(pw = getpwnam(cfg->user))) {
		*err_r = xasprintf("user %s: no such user", cfg->user);
		return -1;
	}
	id->uid = pw->pw_uid;
	id->gid = pw->pw_gid;
	if (cfg->group) {
		if (!(gr = getgrnam(cfg->group))) {
			*err_r = xasprintf("group %s: no such group", cfg->group);
			return -1;
		}
		id->gid = gr->gr_gid;
	}
	if (id->uid == 0) {
		*err_r = xasprintf("user %s: is root; name an unprivileged user", cfg->user);
		return -1;
	}
	if (geteuid() != 0) {
		/* Started as that very user (by a service manager, say): nothing to drop. */
		if (geteuid() == id->uid && getuid() == id->uid && getegid() == id->gid)
			return 0;
		*err_r = xasprintf("user %s: cursusd must be started as root to switch to it "
				   "(running as uid %ld)", cfg->user, (long)geteuid());
		return -1;
	}
	id->drop = 1;
	return 0;
}

/* Whether a, a directory, is path or one of its parents. */
static int holds(const char *a, const char *path)
{
	size_t n = strlen(a);
	while (n > 1 && a[n - 1] == '/')
		n--;
	return path && strncmp(a, path, n) == 0 && (path[n] == '/' || path[n] == '\0' || n == 1);
}

static char *parent_of(const char *path)
{
	char *d = xstrdup(path), *slash = strrchr(d, '/');
	if (slash)
		slash[slash == d ? 1 : 0] = '\0';
	return d;
}

/* Makes dir (0700; missing parents 0755) and gives it to the user; with depth, everything below too. */
static int give_dir(const struct config *cfg, const struct priv_id *id, const char *what,
		    const char *dir, int depth, char **err_r)
{
	const char *root_reads[] = { cfg->path, cfg->tls_cert, cfg->tls_key, cfg->auth_client_ca };
	size_t changed = 0;
	int e;

	/* The mail user could rename what root reads at the next start and plant its own. */
	for (size_t i = 0; i < sizeof(root_reads) / sizeof(root_reads[0]); i++) {
		if (root_reads[i] && holds(dir, root_reads[i])) {
			*err_r = xasprintf("%s: %s would be given to user %s but holds %s, which "
					   "root reads at start; use a directory of its own", what,
					   dir, cfg->user, root_reads[i]);
			return -1;
		}
	}
	/* Parents made here must let the user through to its own directory. */
	if ((e = fs_mkparent(dir, 0755)) != 0 || (e = fs_mkdirs(dir, 0700)) != 0 ||
	    (e = fs_chown_tree(dir, id->uid, id->gid, depth, &changed)) != 0) {
		*err_r = xasprintf("%s: %s: %s", what, dir, strerror(e));
		return -1;
	}
	if (changed > 1)
		log_info("privileges event=chown dir=%s entries=%zu owner=%s", dir, changed, cfg->user);
	return 0;
}

static int give_file(const struct priv_id *id, const char *path, char **err_r)
{
	struct stat st;
	if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* made later, by the user */
	if (!S_ISREG(st.st_mode)) {
		*err_r = xasprintf("%s: not a regular file", path);
		return -1;
	}
	if ((st.st_uid != id->uid || st.st_gid != id->gid) &&
	    fchownat(AT_FDCWD, path, id->uid, id->gid, AT_SYMLINK_NOFOLLOW) < 0) {
		*err_r = xasprintf("%s: chown: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int priv_prepare(const struct config *cfg, const struct priv_id *id, char **err_r)
{
	static const char *const db_files[] = { "", "-wal", "-shm", "-journal" };
	struct stat st;
	char *dir;
	int rc = 0, mail_new;

	if (!id->drop)
		return 0;
	/* state_dir stays root's, but the user must pass through it to its directories; a
	 * run without `user` made it 0700. Search only: its listing stays root's. */
	if (fs_mkdirs(cfg->state_dir, 0755) == 0 && stat(cfg->state_dir, &st) == 0 &&
	    S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0111) != 0111 &&
	    chmod(cfg->state_dir, (st.st_mode & 07777) | 0111) < 0) {
		*err_r = xasprintf("state_dir: %s: chmod: %s", cfg->state_dir, strerror(errno));
		return -1;
	}
	/* Messages of a run as root (before `user` was set) must become readable. */
	if (give_dir(cfg, id, "queue_dir", cfg->queue_dir, PRIV_TREE_DEPTH, err_r) < 0)
		return -1;
	/* Walking every Maildir at each start would be slow: only the first time. */
	mail_new = stat(cfg->mail_dir, &st) < 0 || st.st_uid != id->uid || st.st_gid != id->gid;
	if (give_dir(cfg, id, "mail_dir", cfg->mail_dir, mail_new ? PRIV_TREE_DEPTH : 0, err_r) < 0)
		return -1;
	/* SQLite makes -wal and -shm beside the database: its directory must be writable. */
	dir = parent_of(cfg->user_db);
	rc = give_dir(cfg, id, "user_db", dir, 0, err_r);
	free(dir);
	for (size_t i = 0; rc == 0 && i < sizeof(db_files) / sizeof(db_files[0]); i++) {
		char *f = xasprintf("%s%s", cfg->user_db, db_files[i]);
		rc = give_file(id, f, err_r);
		free(f);
	}
	if (rc == 0) {
		dir = parent_of(cfg->control_socket);
		rc = give_dir(cfg, id, "control_socket", dir, 0, err_r);
		free(dir);
	}
	if (rc == 0) {
		dir = parent_of(cfg->local_socket);
		rc = give_dir(cfg, id, "local_socket", dir, 0, err_r);
		free(dir);
	}
	/* The MTA-STS policies the network process fetches and keeps. */
	if (rc == 0)
		rc = give_dir(cfg, id, "mta_sts_cache_dir", cfg->mta_sts_cache_dir, 1, err_r);
	/* The TLS-RPT counts (docs/tls-rpt.md), written by the network process. */
	if (rc == 0 && cfg->tls_rpt)
		rc = give_dir(cfg, id, "tls_rpt_dir", cfg->tls_rpt_dir, 1, err_r);
	if (rc == 0) {
		dir = parent_of(cfg->pid_file);
		rc = give_dir(cfg, id, "pid_file", dir, 0, err_r);
		free(dir);
	}
	return rc;
}

int priv_drop(const struct priv_id *id, char **err_r)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (!id->drop)
		return 0;
	if (setgroups(1, &id->gid) < 0 || setresgid(id->gid, id->gid, id->gid) < 0 ||
	    setresuid(id->uid, id->uid, id->uid) < 0) {
		*err_r = xasprintf("cannot switch to uid %ld gid %ld: %s", (long)id->uid,
				   (long)id->gid, strerror(errno));
		return -1;
	}
	/* For good: every id changed, and root not to be had back. */
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != id->uid ||
	    eu != id->uid || su != id->uid || rg != id->gid || eg != id->gid || sg != id->gid ||
	    getuid() != id->uid || geteuid() != id->uid || setuid(0) == 0 || seteuid(0) == 0) {
		*err_r = xasprintf("switched to uid %ld gid %ld but root could be taken back",
				   (long)id->uid, (long)id->gid);
		return -1;
	}
	return 0;
}
