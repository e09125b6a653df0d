/* unixsock: a listening UNIX stream socket at a path, for the daemon's control socket
 * and its local submission socket. */
#ifndef CURSUS_UNIXSOCK_H
#define CURSUS_UNIXSOCK_H

#include <sys/types.h>

/* Binds and listens at path, non-blocking and close-on-exec, the file with exactly
 * mode (not the umask's say). Missing directories are made with dir_mode; a socket a
 * dead daemon left there is removed, while a live one, or anything that is not a
 * socket, is an error. what names the socket in the log ("control", "local").
 * Returns the descriptor, or -1 after logging why. */
int unixsock_listen(const char *what, const char *path, mode_t mode, mode_t dir_mode, int backlog);

#endif
