/* auth_spawn: starts cursus-auth, the credential process, as a fresh image of the
 * daemon's own binary (fork, then exec of /proc/self/exe), so that it shares no memory
 * with the network process: neither the TLS key nor any session's data goes over, and
 * nothing of the user database comes back but what the IPC answers. */
#ifndef CURSUS_AUTH_SPAWN_H
#define CURSUS_AUTH_SPAWN_H

#include <sys/types.h>

/* The first argument that makes cursusd run as cursus-auth. */
#define AUTH_SPAWN_ARG "--auth-server"
/* The descriptors cursus-auth finds: its readiness pipe, then its connections. */
#define AUTH_SPAWN_STATUS_FD 3
#define AUTH_SPAWN_CONN_FD 4
#define AUTH_SPAWN_CONNS_MAX 64

/* The environment variable that carries user_store to cursus-auth: a connection
 * string may hold a password, which argv would show to every local user. */
#define AUTH_SPAWN_STORE_ENV "CURSUS_USER_STORE"

struct auth_spawn_conf {
	const char *user_store;  /* "sqlite:PATH" or "postgresql:CONNINFO" */
	unsigned store_timeout_ms, store_connections;
	/* The shared failure budgets (a PostgreSQL store counts them for every node). */
	unsigned addr_budget, account_budget, window, cooldown;
	unsigned scram_iterations;
	unsigned nconns;         /* 1..AUTH_SPAWN_CONNS_MAX */
	int foreground;          /* log to stderr */
	int debug;
};

/* Starts it with conf->nconns SOCK_SEQPACKET connections: fills conns_r with this
 * side's ends (close-on-exec) and *status_fd_r with the read end of its readiness pipe,
 * on which it writes "ok\n" once the database is open, or the reason it cannot. The
 * caller must be able to run only async-signal-safe code in the child: nothing here
 * allocates after fork. Returns the pid, or -1 (errno). */
pid_t auth_spawn_start(const struct auth_spawn_conf *conf, int *conns_r, int *status_fd_r);

/* Reads the readiness line: 0 when "ok", else -1 with *err_r (malloc'd). Waits at most
 * timeout_ms; closes fd. */
int auth_spawn_wait_ready(int fd, int timeout_ms, char **err_r);

#endif
