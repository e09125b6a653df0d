/* admin control_client: one request to the daemon's control socket (queue/qctl.h) and
 * its one-line reply. Bounded: the reply is at most QCTL_LINE_MAX octets and must come
 * within ADMIN_CONTROL_TIMEOUT seconds, so a hung daemon cannot hang the tool. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "queue/qctl.h"
#include "util/xmalloc.h"

#define ADMIN_CONTROL_TIMEOUT 60

static long long admin_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0 timeout,
 * -1 error. */
static int admin_wait(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		long long left = deadline - admin_now_ms();
		int rc;
		if (left <= 0)
			return 0;
		rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		return rc < 0 ? -1 : rc;
	}
}

int admin_control_request(const char *path, const char *request, char **reply_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	long long deadline = admin_now_ms() + ADMIN_CONTROL_TIMEOUT * 1000LL;
	char buf[QCTL_LINE_MAX + 2];
	size_t len = strlen(request), off = 0, got = 0;
	int fd, e;

	*reply_r = NULL;
	if (strlen(path) >= sizeof(sun.sun_path))
		return ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		e = errno;
		close(fd);
		return e;
	}
	while (off < len) {
		ssize_t n;
		if (admin_wait(fd, POLLOUT, deadline) <= 0)
			goto timeout;
		n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto broken;
		off += (size_t)n;
	}
	while (!memchr(buf, '\n', got)) {
		ssize_t n;
		if (got == sizeof(buf) - 1)
			goto broken;
		if (admin_wait(fd, POLLIN, deadline) <= 0)
			goto timeout;
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto broken;
		got += (size_t)n;
	}
	close(fd);
	*(char *)memchr(buf, '\n', got) = '\0';
	*reply_r = xstrdup(buf);
	return 0;
timeout:
	close(fd);
	return ETIMEDOUT;
broken:
	close(fd);
	return EPROTO;
}
