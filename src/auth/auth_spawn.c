/* auth_spawn: see auth_spawn.h. The daemon has threads when it restarts cursus-auth,
 * so between fork and exec the child makes only system calls: its descriptors put in
 * place (everything else closed), a signal to die with the daemon, the signal mask
 * cleared. */
#include "auth/auth_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth_ipc.h"
#include "util/xmalloc.h"

/* Room for one largest message each way, whatever the system's default. */
static void auth_spawn_bufsize(int fd)
{
	int sz = 2 * AUTH_IPC_MSG_MAX;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

pid_t auth_spawn_start(const struct auth_spawn_conf *conf, int *conns_r, int *status_fd_r)
{
	int child[AUTH_SPAWN_CONNS_MAX], status[2] = { -1, -1 }, e;
	unsigned n = conf->nconns, made = 0;
	char iters[16], nconns[16];
	const char *argv[16];
	size_t ac = 0;
	sigset_t none;
	pid_t parent = getpid(), pid;

	if (n == 0 || n > AUTH_SPAWN_CONNS_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (pipe2(status, O_CLOEXEC) < 0)
		return -1;
	for (; made < n; made++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
			goto fail;
		auth_spawn_bufsize(sv[0]);
		auth_spawn_bufsize(sv[1]);
		conns_r[made] = sv[0];
		child[made] = sv[1];
	}
	snprintf(iters, sizeof(iters), "%u", conf->scram_iterations);
	snprintf(nconns, sizeof(nconns), "%u", n);
	argv[ac++] = "cursus-auth";
	argv[ac++] = AUTH_SPAWN_ARG;
	argv[ac++] = "--db";
	argv[ac++] = conf->user_db;
	argv[ac++] = "--scram-iterations";
	argv[ac++] = iters;
	argv[ac++] = "--conns";
	argv[ac++] = nconns;
	if (conf->foreground)
		argv[ac++] = "--foreground";
	if (conf->debug)
		argv[ac++] = "--debug";
	argv[ac] = NULL;
	sigemptyset(&none);

	if ((pid = fork()) < 0)
		goto fail;
	if (pid == 0) {
		/* Every source above the targets first, so no dup2 overwrites one still
		 * to be moved. */
		int top = AUTH_SPAWN_CONN_FD + (int)n, tmp_status = fcntl(status[1], F_DUPFD, top);
		int tmp[AUTH_SPAWN_CONNS_MAX];
		if (tmp_status < 0)
			_exit(127);
		for (unsigned i = 0; i < n; i++)
			if ((tmp[i] = fcntl(child[i], F_DUPFD, top)) < 0)
				_exit(127);
		if (dup2(tmp_status, AUTH_SPAWN_STATUS_FD) < 0)
			_exit(127);
		for (unsigned i = 0; i < n; i++)
			if (dup2(tmp[i], AUTH_SPAWN_CONN_FD + (int)i) < 0)
				_exit(127);
		/* Nothing else of the daemon's: no listener, no client, no queue file. */
		if (close_range((unsigned)top, ~0u, 0) < 0)
			_exit(127);
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(127);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	for (unsigned i = 0; i < n; i++)
		close(child[i]);
	close(status[1]);
	*status_fd_r = status[0];
	return pid;
fail:
	e = errno;
	for (unsigned i = 0; i < made; i++) {
		close(conns_r[i]);
		close(child[i]);
	}
	close(status[0]);
	close(status[1]);
	errno = e;
	return -1;
}

int auth_spawn_wait_ready(int fd, int timeout_ms, char **err_r)
{
	char buf[512];
	size_t len = 0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	*err_r = NULL;
	while (len < sizeof(buf) - 1) {
		ssize_t n;
		int r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*err_r = xstrdup(r == 0 ? "not ready in time" : strerror(errno));
			break;
		}
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len))
			break;
	}
	close(fd);
	if (*err_r)
		return -1;
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (strcmp(buf, "ok") == 0)
		return 0;
	*err_r = xstrdup(len > 0 ? buf : "exited before it was ready");
	return -1;
}
