/* fsutil: see fsutil.h. Directories that must survive a crash (Maildirs) are made
 * by their owners, which also fsync the parents; these are for state directories. */
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xmalloc.h"

int fs_mkdirs(const char *dir, mode_t mode)
{
	char *p = xstrdup(dir);
	int err = 0;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			err = errno;
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return err;
}

int fs_mkparent(const char *path, mode_t mode)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int err = 0;
	if (slash && slash != dir) {
		*slash = '\0';
		err = fs_mkdirs(dir, mode);
	}
	free(dir);
	return err;
}

int fs_write_replace(const char *path, const char *data, size_t len, mode_t mode)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/'), *tmp;
	/* Into path, not dir: dir is freed once the directory is open. */
	const char *base = slash ? path + (slash - dir) + 1 : path;
	int dfd, fd, err = 0;
	size_t off = 0;

	if (!*base) {
		free(dir);
		return EINVAL;
	}
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (dfd < 0)
		return errno;
	tmp = xasprintf(".%s.%ld.tmp", base, (long)getpid());
	/* A leftover (or a planted link) of that name is only a name: unlinking it never
	 * touches what it points to. */
	(void)unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		err = errno;
		goto out;
	}
	while (!err && off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno != EINTR)
			err = errno;
		else if (n > 0)
			off += (size_t)n;
	}
	/* The umask must not decide who may read it. */
	if (!err && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
		err = errno;
	if (close(fd) < 0 && !err)
		err = errno;
	if (!err && renameat(dfd, tmp, dfd, base) < 0)
		err = errno;
	if (err)
		(void)unlinkat(dfd, tmp, 0);
out:
	free(tmp);
	close(dfd);
	return err;
}

static int chown_below(int dfd, uid_t uid, gid_t gid, int depth, size_t *changed)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	int err = 0;

	if (!d) {
		err = errno;
		close(dfd);
		return err;
	}
	while (!err && (errno = 0, e = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				err = errno;
			continue;
		}
		if (st.st_uid != uid || st.st_gid != gid) {
			if (fchownat(dirfd(d), e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0) {
				if (changed)
					(*changed)++;
			} else if (errno != ENOENT) {
				err = errno;
			}
		}
		if (S_ISDIR(st.st_mode) && depth > 0) {
			int sub = openat(dirfd(d), e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				err = chown_below(sub, uid, gid, depth - 1, changed);
			else if (errno != ENOENT)
				err = errno;
		}
	}
	if (!err && errno)
		err = errno;
	closedir(d);
	return err;
}

int fs_chown_tree(const char *dir, uid_t uid, gid_t gid, int max_depth, size_t *changed)
{
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), err;
	if (fd < 0)
		return errno;
	/* The top last: when interrupted, it still shows that the tree is not done. */
	err = max_depth > 0 ? chown_below(dup(fd), uid, gid, max_depth - 1, changed) : 0;
	if (!err && fstat(fd, &st) == 0 && (st.st_uid != uid || st.st_gid != gid)) {
		if (fchown(fd, uid, gid) < 0)
			err = errno;
		else if (changed)
			(*changed)++;
	}
	close(fd);
	return err;
}
