/* fsutil: small file-system helpers shared by the daemon and the admin tool. */
#ifndef CURSUS_FSUTIL_H
#define CURSUS_FSUTIL_H

#include <sys/types.h>

/* mkdir -p: makes dir and its missing parents with mode. Returns 0 or an errno. */
int fs_mkdirs(const char *dir, mode_t mode);
/* The same for the directory that is to hold the file path. */
int fs_mkparent(const char *path, mode_t mode);
/* Replaces path with a new file holding data (mode, fsync'd): written under a
 * temporary name beside it (O_EXCL, O_NOFOLLOW) and renamed into place, so that a
 * symbolic link planted at path is replaced, never followed. Returns 0 or an errno. */
int fs_write_replace(const char *path, const char *data, size_t len, mode_t mode);
/* chown -R without following links: dir itself (not a link) and everything below,
 * down to max_depth levels (0: dir alone); entries already owned by uid:gid are left alone.
 * *changed (if not NULL) counts the entries changed. Returns 0 or the first errno. */
int fs_chown_tree(const char *dir, uid_t uid, gid_t gid, int max_depth, size_t *changed);

#endif
