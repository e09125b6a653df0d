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

extern char **environ;

#include "auth/auth_ipc.h"
#include "util/xmalloc.h"

/* Room for one largest message each way, whatever the system's default. */
static void auth_spawn_bufsize(int fd)
{
	int sz = 2 * AUTH_IPC_MSG_MAX;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/* The one string auth_spawn_start made (it may hold a password), and the array. */
static void auth_spawn_env_free(char **envp, size_t n)
{
	xfree_secret(envp[n], strlen(envp[n]));
	free(envp);
}

pid_t auth_spawn_start(const struct auth_spawn_conf *conf, int *conns_r, int *status_fd_r)
{
	int child[AUTH_SPAWN_CONNS_MAX], status[2] = { -1, -1 }, e;
	unsigned n = conf->nconns, made = 0;
	char iters[16], nconns[16], timeout[16], sconns[16], budgets[64];
	const char *argv[24];
	char **envp;
	size_t ac = 0, ne = 0, envlen;
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
	snprintf(timeout, sizeof(timeout), "%u", conf->store_timeout_ms);
	snprintf(sconns, sizeof(sconns), "%u", conf->store_connections);
	snprintf(budgets, sizeof(budgets), "%u,%u,%u,%u", conf->addr_budget, conf->account_budget,
		 conf->window, conf->cooldown);
	argv[ac++] = "--store-timeout";
	argv[ac++] = timeout;
	argv[ac++] = "--store-conns";
	argv[ac++] = sconns;
	argv[ac++] = "--budgets";
	argv[ac++] = budgets;
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
	/* The environment, made before fork (the child may not allocate): the daemon's,
	 * with the store's spec in place of any inherited one. */
	for (char **ep = environ; *ep; ep++)
		ne++;
	envp = xcalloc(ne + 2, sizeof(*envp));
	ne = 0;
	envlen = strlen(AUTH_SPAWN_STORE_ENV);
	for (char **ep = environ; *ep; ep++)
		if (strncmp(*ep, AUTH_SPAWN_STORE_ENV, envlen) != 0 || (*ep)[envlen] != '=')
			envp[ne++] = *ep;
	envp[ne] = xasprintf("%s=%s", AUTH_SPAWN_STORE_ENV, conf->user_store);

	if ((pid = fork()) < 0) {
		auth_spawn_env_free(envp, ne);
		goto fail;
	}
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
		execve("/proc/self/exe", (char *const *)argv, envp);
		_exit(127);
	}
	auth_spawn_env_free(envp, ne);
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
