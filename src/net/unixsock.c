/* unixsock: see unixsock.h. Modes are set so that the socket is never reachable with a
 * wider mode than asked, not even between bind and chmod. */
#include "net/unixsock.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"

/* Removes a socket left at path by a daemon that is gone: connecting to it is
 * refused. 0 when path is free now, else -1 after logging why. */
static int unixsock_clear_stale(const char *what, const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (log_warn("%s cannot stat %s", what, path), -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("%s path=%s error=\"exists and is not a socket\"", what, path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("%s socket", what);
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		log_warnx("%s path=%s error=\"another daemon answers on it\"", what, path);
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		log_warn("%s cannot remove the stale socket %s", what, path);
		return -1;
	}
	log_info("%s path=%s event=stale-socket-removed", what, path);
	return 0;
}

int unixsock_listen(const char *what, const char *path, mode_t mode, mode_t dir_mode, int backlog)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("%s path=%s error=\"path too long for a UNIX socket\"", what, path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((e = fs_mkparent(path, dir_mode)) != 0) {
		log_warnx("%s cannot create the directory of %s: %s", what, path, strerror(e));
		return -1;
	}
	if (unixsock_clear_stale(what, path, &sun) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		log_warn("%s socket", what);
		return -1;
	}
	/* Linux gives the socket file the socket inode's mode (less the umask): set before
	 * bind, the file is never wider than mode; chmod after bind makes it exact. */
	if (fchmod(fd, mode) < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, mode) < 0 || listen(fd, backlog) < 0) {
		log_warn("%s cannot listen on %s", what, path);
		close(fd);
		return -1;
	}
	return fd;
}
