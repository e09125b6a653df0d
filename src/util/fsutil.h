/* fsutil: small file-system helpers shared by the daemon and the admin tool. */
#ifndef CURSUS_FSUTIL_H
#define CURSUS_FSUTIL_H

#include <sys/types.h>

/* mkdir -p: makes dir and its missing parents with mode. Returns 0 or an errno. */
int fs_mkdirs(const char *dir, mode_t mode);
/* The same for the directory that is to hold the file path. */
int fs_mkparent(const char *path, mode_t mode);

#endif
