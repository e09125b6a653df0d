/* fsutil: see fsutil.h. Directories that must survive a crash (Maildirs) are made
 * by their owners, which also fsync the parents; these are for state directories. */
#include "util/fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
