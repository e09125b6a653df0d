/* auth_client: see auth_client.h. Connections are a pool of SOCK_SEQPACKET sockets,
 * one request in flight on each; a call that finds none free waits (bounded) for one.
 * A connection that breaks (end of file, a timeout, an answer that is not the one
 * expected) is never used again, and cursus-auth is killed if still there: out of
 * step with us, it cannot be trusted, and the restart gives fresh connections. The
 * event loop only reaps and restarts the process; it never waits on it. */
#include "auth/auth_client.h"

#include <errno.h>
#include <stdint.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth_ipc.h"
#include "auth/auth_spawn.h"
#include "metrics/metrics.h"
#include "store/userdb.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* A request unanswered this long means cursus-auth is stuck (a yescrypt check takes
 * well under a second). */
#define AUTH_CLIENT_TIMEOUT_MS 60000
#define AUTH_CLIENT_READY_MS 30000
/* How long a call waits for a free connection. */
#define AUTH_CLIENT_WAIT_S 30
/* Exchanges ended but not yet told to cursus-auth (its own bound reaps the rest). */
#define AUTH_CLIENT_ENDS_MAX 4096
/* Mailboxes one unbounded resolve may bring (an alias bigger than this is refused). */
#define AUTH_CLIENT_BOXES_MAX 100000
/* A death within this many seconds of the start counts as dying young: each one in a
 * row doubles the pause before the next start, from 100 ms up to 30 s. */
#define AUTH_CLIENT_YOUNG 10
#define AUTH_CLIENT_PAUSE_MAX_MS 30000

struct auth_client {
	struct event_base *base;
	struct auth_spawn_conf spawn;
	char *user_store;              /* may hold a password */
	int remote_store;              /* PostgreSQL: its latency is worth a metric */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int free_fds[AUTH_SPAWN_CONNS_MAX];
	size_t nfree;
	unsigned gen;                  /* of the running cursus-auth: its connections' */
	pid_t pid;                     /* 0 while down */
	time_t started;
	unsigned young;                /* deaths in a row soon after the start */
	uint32_t next_id;
	long long next_xid;
	long long ends[AUTH_CLIENT_ENDS_MAX];
	size_t nends;
	struct event *sigchld, *restart;
};

struct auth_conn {
	int fd;
	unsigned gen;
};

/* One request and its answers; on the heap (two messages' worth). */
struct auth_call {
	struct auth_ipc_buf out;
	unsigned char in[AUTH_IPC_MSG_MAX];
	long inlen;
	struct auth_ipc_msg m;
};

struct auth_client_sasl {
	struct auth_client *c;
	long long xid;
	const struct sasl_mech *mech;
	struct sasl_channel chan;
	int started, done;
	char *authid, *authzid, *user;
	const char *reason;            /* static: our own, or the copy below */
	char *reason_buf;
	int gen_read;
	long long gen;
};

/* ---- connections ---- */

static int auth_client_acquire(struct auth_client *c, struct auth_conn *conn)
{
	long long ends[AUTH_CLIENT_ENDS_MAX];
	size_t nends;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += AUTH_CLIENT_WAIT_S;
	pthread_mutex_lock(&c->mu);
	while (c->pid > 0 && c->nfree == 0)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
			break;
	if (c->pid <= 0 || c->nfree == 0) {
		pthread_mutex_unlock(&c->mu);
		return -1;
	}
	conn->fd = c->free_fds[--c->nfree];
	conn->gen = c->gen;
	nends = c->nends;
	memcpy(ends, c->ends, nends * sizeof(ends[0]));
	c->nends = 0;
	pthread_mutex_unlock(&c->mu);
	/* Exchanges the loop ended: told first, in order, on this connection. */
	for (size_t i = 0; i < nends; i++) {
		struct auth_ipc_buf b;
		auth_ipc_begin(&b, AUTH_IPC_SASL_END, 0);
		auth_ipc_add_int(&b, ends[i]);
		if (auth_ipc_finish(&b) == 0)
			(void)auth_ipc_send(conn->fd, &b);
	}
	return 0;
}

static void auth_client_release(struct auth_client *c, struct auth_conn *conn, int broken)
{
	pthread_mutex_lock(&c->mu);
	if (broken || conn->gen != c->gen) {
		close(conn->fd);
		/* Not reaped yet (the loop reaps under this lock), so the pid is still ours. */
		if (broken && conn->gen == c->gen && c->pid > 0)
			kill(c->pid, SIGKILL);
	} else {
		c->free_fds[c->nfree++] = conn->fd;
		pthread_cond_signal(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Parts of a resolve's answer, gathered as they come. */
struct auth_parts {
	size_t max;
	char **boxes;
	size_t n;
	int too_many, bad;
};

static void auth_parts_add(struct auth_parts *p, const struct auth_ipc_msg *m)
{
	for (size_t i = 0; i < m->nfields; i++) {
		char *s;
		if (auth_ipc_str(m, i, AUTH_IPC_FIELD_MAX, &s) < 0 || !s) {
			p->bad = 1;
			return;
		}
		if (p->n >= p->max) {
			free(s);
			p->too_many = 1;
			return;
		}
		p->boxes = xrealloc(p->boxes, (p->n + 1) * sizeof(*p->boxes));
		p->boxes[p->n++] = s;
	}
}

/* Sends call->out and reads until the final answer (RESULT or SASL_REPLY) is in
 * call->m. Returns 0, or -1 when cursus-auth is down or the connection broke. */
static int auth_client_call(struct auth_client *c, struct auth_call *call, sasl_precheck_fn precheck,
			    void *precheck_arg, struct auth_parts *parts)
{
	struct auth_conn conn;
	uint32_t id = __atomic_add_fetch(&c->next_id, 1, __ATOMIC_RELAXED);
	const char *why = NULL;
	int broken = 1;

	/* The id goes into the header the caller began. */
	call->out.data[4] = id >> 24;
	call->out.data[5] = id >> 16;
	call->out.data[6] = id >> 8;
	call->out.data[7] = id;
	if (auth_ipc_finish(&call->out) < 0) {
		log_warnx("auth event=request-too-large");
		auth_ipc_wipe(&call->out);
		return -1;
	}
	if (auth_client_acquire(c, &conn) < 0) {
		auth_ipc_wipe(&call->out);
		log_warnx("auth event=unavailable");
		return -1;
	}
	if (auth_ipc_send(conn.fd, &call->out) < 0) {
		why = strerror(errno);
		goto out;
	}
	auth_ipc_wipe(&call->out);
	for (;;) {
		call->inlen = auth_ipc_recv(conn.fd, call->in, AUTH_CLIENT_TIMEOUT_MS);
		if (call->inlen <= 0) {
			why = call->inlen == 0 ? "connection closed" : strerror(errno);
			goto out;
		}
		if (auth_ipc_parse(call->in, (size_t)call->inlen, &call->m) < 0 || call->m.id != id) {
			why = "malformed answer";
			goto out;
		}
		if (call->m.type == AUTH_IPC_RESULT || call->m.type == AUTH_IPC_SASL_REPLY)
			break;
		if (call->m.type == AUTH_IPC_RESOLVE_PART && parts) {
			auth_parts_add(parts, &call->m);
			if (parts->bad) {
				why = "malformed answer";
				goto out;
			}
		} else if (call->m.type == AUTH_IPC_PRECHECK && precheck) {
			struct auth_ipc_buf b;
			char *authid;
			if (auth_ipc_str(&call->m, 0, AUTH_IPC_FIELD_MAX, &authid) < 0 || !authid) {
				why = "malformed precheck";
				goto out;
			}
			auth_ipc_begin(&b, AUTH_IPC_PRECHECK_REPLY, id);
			auth_ipc_add_int(&b, precheck(precheck_arg, authid) != 0);
			free(authid);
			if (auth_ipc_finish(&b) < 0 || auth_ipc_send(conn.fd, &b) < 0) {
				why = strerror(errno);
				goto out;
			}
		} else {
			why = "unexpected answer";
			goto out;
		}
	}
	broken = 0;
out:
	if (broken) {
		auth_ipc_wipe(&call->out);
		log_warnx("auth event=request-failed reason=\"%s\"", why);
	}
	auth_client_release(c, &conn, broken);
	return broken ? -1 : 0;
}

static long long auth_client_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The store's latency and failures, as the network process sees them (the round
 * trip through cursus-auth, which is where a slow database shows). Only for a store on
 * a server: a local SQLite file's time is the daemon's own, and its metrics say so. */
static void auth_client_observe(const struct auth_client *c, const char *op, long long start_us,
				int failed)
{
	if (!c->remote_store)
		return;
	metrics_add(METRIC_STORE_REQUESTS, 1, op, NULL, NULL);
	metrics_add(METRIC_STORE_MICROS, auth_client_now_us() - start_us, op, NULL, NULL);
	if (failed)
		metrics_add(METRIC_STORE_FAILURES, 1, op, NULL, NULL);
}

static struct auth_call *auth_call_new(unsigned type)
{
	struct auth_call *call = xmalloc(sizeof(*call));
	call->inlen = 0;
	auth_ipc_begin(&call->out, type, 0);
	return call;
}

static void auth_call_free(struct auth_call *call)
{
	/* A relay password or a SASL challenge may have come through. */
	if (call->inlen > 0)
		explicit_bzero(call->in, (size_t)call->inlen);
	free(call);
}

/* The RESULT's first field, checked to be one of the values userdb.h returns. */
static int auth_client_r(const struct auth_call *call, int lo, int hi)
{
	long long r;
	if (call->m.type != AUTH_IPC_RESULT || auth_ipc_int(&call->m, 0, &r) < 0 || r < lo || r > hi)
		return -1;
	return (int)r;
}

/* ---- the store's calls ---- */

int auth_client_resolve(struct auth_client *c, const char *address, size_t max, char ***mailboxes_r,
			size_t *n_r)
{
	struct auth_call *call = auth_call_new(AUTH_IPC_RESOLVE);
	int bounded = max != SIZE_MAX;
	struct auth_parts parts = { .max = bounded && max < AUTH_CLIENT_BOXES_MAX ? max : AUTH_CLIENT_BOXES_MAX };
	long long start = auth_client_now_us();
	int r = -1;

	*mailboxes_r = NULL;
	*n_r = 0;
	auth_ipc_add_str(&call->out, address);
	auth_ipc_add_int(&call->out, bounded && max < AUTH_CLIENT_BOXES_MAX ? (long long)max : -1);
	if (auth_client_call(c, call, NULL, NULL, &parts) == 0)
		r = auth_client_r(call, USERDB_RESOLVE_TOO_MANY, 1);
	if (r == 1 && parts.too_many)
		r = bounded && max < AUTH_CLIENT_BOXES_MAX ? USERDB_RESOLVE_TOO_MANY : -1;
	if (r == 1) {
		*mailboxes_r = parts.boxes;
		*n_r = parts.n;
	} else {
		userdb_free_list(parts.boxes, parts.n);
	}
	auth_call_free(call);
	auth_client_observe(c, "resolve", start, r == -1);
	return r;
}

static int auth_client_pair(struct auth_client *c, unsigned type, const char *a, const char *b,
			    long long *gen_r)
{
	struct auth_call *call = auth_call_new(type);
	long long start = auth_client_now_us();
	int r = -1;

	auth_ipc_add_str(&call->out, a);
	auth_ipc_add_str(&call->out, b);
	if (auth_client_call(c, call, NULL, NULL, NULL) == 0 && (r = auth_client_r(call, -1, 1)) == 1 &&
	    gen_r && auth_ipc_int(&call->m, 1, gen_r) < 0)
		r = -1;
	auth_call_free(call);
	auth_client_observe(c, type == AUTH_IPC_MAY_SEND_AS ? "may-send-as"
			    : type == AUTH_IPC_MAY_ACT_AS ? "may-act-as" : "credential-gen", start,
			    r == -1);
	return r;
}

int auth_client_may_send_as(struct auth_client *c, const char *user, const char *address)
{
	return auth_client_pair(c, AUTH_IPC_MAY_SEND_AS, user, address, NULL);
}

int auth_client_may_act_as(struct auth_client *c, const char *authid, const char *authzid)
{
	return auth_client_pair(c, AUTH_IPC_MAY_ACT_AS, authid, authzid, NULL);
}

int auth_client_credential_gen(struct auth_client *c, const char *authid, const char *user,
			       long long *gen_r)
{
	return auth_client_pair(c, AUTH_IPC_CRED_GEN, authid, user, gen_r);
}

int auth_client_relay_auth_find(struct auth_client *c, const char *nexthop, const char *sender,
				const struct auth_client_relay_req *req,
				struct auth_client_relay_cred *cred)
{
	static const char *const fetch_names[] = { NULL, "ok", "refused", "error", "timeout" };
	struct auth_call *call = auth_call_new(AUTH_IPC_RELAY_AUTH);
	long long how = -1;
	long long start = auth_client_now_us();
	int r = -1;

	memset(cred, 0, sizeof(*cred));
	auth_ipc_add_str(&call->out, nexthop);
	auth_ipc_add_str(&call->out, sender);
	auth_ipc_add_str(&call->out, req->ca);
	auth_ipc_add_int(&call->out, req->timeout_ms);
	auth_ipc_add_int(&call->out, req->margin_ms);
	auth_ipc_add_str(&call->out, req->rejected);
	if (auth_client_call(c, call, NULL, NULL, NULL) == 0 && (r = auth_client_r(call, -2, 1)) != -1) {
		if (auth_ipc_str(&call->m, 1, AUTH_IPC_FIELD_MAX, &cred->user) < 0 ||
		    auth_ipc_str(&call->m, 2, AUTH_IPC_FIELD_MAX, &cred->password) < 0 ||
		    auth_ipc_str(&call->m, 3, 32, &cred->mech) < 0 ||
		    auth_ipc_int(&call->m, 4, &how) < 0 || how < -1 || how > 4 ||
		    auth_ipc_str(&call->m, 5, AUTH_IPC_FIELD_MAX, &cred->reason) < 0 ||
		    (r == 1 && (!cred->user || !cred->password)) || (r == -2 && !cred->reason))
			r = -1;
		else if (how >= 0)
			cred->fetch = fetch_names[how];
	}
	if (r == -1 || r == 0) {
		const char *fetch = cred->fetch; /* counted whatever came of it */
		auth_client_relay_cred_clear(cred);
		cred->fetch = fetch;
	}
	auth_call_free(call);
	/* A round trip that fetched an OAuth token timed the token endpoint, not the store
	 * (the relay_oauth metrics count that fetch). */
	if (!cred->fetch)
		auth_client_observe(c, "relay-auth", start, r == -1);
	return r;
}

void auth_client_relay_cred_clear(struct auth_client_relay_cred *cred)
{
	free(cred->user);
	if (cred->password)
		xfree_secret(cred->password, strlen(cred->password));
	free(cred->mech);
	free(cred->reason);
	memset(cred, 0, sizeof(*cred));
}

/* ---- SMTP AUTH ---- */

struct auth_client_sasl *auth_client_sasl_start(struct auth_client *c, const struct sasl_mech *mech,
						const struct sasl_channel *chan)
{
	struct auth_client_sasl *x = xcalloc(1, sizeof(*x));
	x->c = c;
	x->xid = __atomic_add_fetch(&c->next_xid, 1, __ATOMIC_RELAXED);
	x->mech = mech;
	if (chan)
		x->chan = *chan;
	return x;
}

static void auth_client_set(char **dst, char *src)
{
	free(*dst);
	*dst = src;
}

enum sasl_status auth_client_sasl_step(struct auth_client_sasl *x, const char *in, size_t len,
				       char **out_r, sasl_precheck_fn precheck, void *precheck_arg)
{
	struct auth_call *call;
	const struct sasl_channel *ch = &x->chan;
	long long st = SASL_TEMPFAIL, gen_read = 0, start = auth_client_now_us();
	char *out = NULL, *s;
	int first = !x->started;

	*out_r = NULL;
	if (x->done)
		return SASL_FAIL; /* a step after the end is the caller's slip */
	call = auth_call_new(AUTH_IPC_SASL_STEP);
	x->started = 1;
	auth_ipc_add_int(&call->out, x->xid);
	auth_ipc_add_str(&call->out, first ? x->mech->name : NULL);
	if (first && ch->tls_unique_len > 0 && ch->tls_unique_len <= sizeof(ch->tls_unique))
		auth_ipc_add(&call->out, ch->tls_unique, ch->tls_unique_len);
	else
		auth_ipc_add_str(&call->out, NULL);
	if (first && ch->tls_exporter_len > 0 && ch->tls_exporter_len <= sizeof(ch->tls_exporter))
		auth_ipc_add(&call->out, ch->tls_exporter, ch->tls_exporter_len);
	else
		auth_ipc_add_str(&call->out, NULL);
	auth_ipc_add_str(&call->out, first && ch->cert_fingerprint[0] ? ch->cert_fingerprint : NULL);
	auth_ipc_add_str(&call->out, first && ch->cert_subject[0] ? ch->cert_subject : NULL);
	if (in)
		auth_ipc_add(&call->out, in, len);
	else
		auth_ipc_add_str(&call->out, NULL);
	auth_ipc_add_str(&call->out, first && ch->client[0] ? ch->client : NULL);

	x->reason = "auth-unavailable";
	if (auth_client_call(x->c, call, precheck, precheck_arg, NULL) == 0) {
		const struct auth_ipc_msg *m = &call->m;
		if (m->type != AUTH_IPC_SASL_REPLY || m->nfields != 8 || auth_ipc_int(m, 0, &st) < 0 ||
		    st < SASL_MORE || st > SASL_BAD_BASE64 ||
		    auth_ipc_str(m, 1, AUTH_IPC_FIELD_MAX, &out) < 0 ||
		    auth_ipc_int(m, 6, &gen_read) < 0 || auth_ipc_int(m, 7, &x->gen) < 0) {
			log_warnx("auth event=bad-sasl-reply");
			st = SASL_TEMPFAIL;
		} else {
			/* For the log: what the client claimed, as cursus-auth parsed it. */
			if (auth_ipc_str(m, 2, AUTH_IPC_FIELD_MAX, &s) == 0 && s)
				auth_client_set(&x->authid, s);
			if (auth_ipc_str(m, 3, AUTH_IPC_FIELD_MAX, &s) == 0)
				auth_client_set(&x->authzid, s);
			if (auth_ipc_str(m, 4, AUTH_IPC_FIELD_MAX, &s) == 0)
				auth_client_set(&x->user, s);
			if (auth_ipc_str(m, 5, 64, &s) == 0) {
				auth_client_set(&x->reason_buf, s);
				x->reason = s;
			}
			x->gen_read = gen_read == 1;
			if (st == SASL_MORE && !out)
				out = xstrdup("");
			if (st == SASL_OK && !x->user)
				st = SASL_TEMPFAIL;
		}
	}
	auth_call_free(call);
	auth_client_observe(x->c, "sasl-step", start, st == SASL_TEMPFAIL);
	if (st != SASL_MORE) {
		free(out);
		out = NULL;
		x->done = 1;
	}
	*out_r = out;
	return (enum sasl_status)st;
}

const char *auth_client_sasl_user(const struct auth_client_sasl *x)
{
	return x->done ? x->user : NULL;
}

const char *auth_client_sasl_authid(const struct auth_client_sasl *x)
{
	return x->authid;
}

const char *auth_client_sasl_authzid(const struct auth_client_sasl *x)
{
	return x->authzid;
}

const char *auth_client_sasl_reason(const struct auth_client_sasl *x)
{
	return x->reason;
}

int auth_client_sasl_cred_gen(const struct auth_client_sasl *x, long long *gen_r)
{
	if (!x->gen_read)
		return 0;
	*gen_r = x->gen;
	return 1;
}

void auth_client_sasl_end(struct auth_client_sasl **xp)
{
	struct auth_client_sasl *x = *xp;
	struct auth_client *c;

	if (x == NULL)
		return;
	c = x->c;
	if (x->started && !x->done) {
		/* Abandoned mid-exchange ("*", a session gone): cursus-auth still holds it. */
		pthread_mutex_lock(&c->mu);
		if (c->nends < AUTH_CLIENT_ENDS_MAX)
			c->ends[c->nends++] = x->xid;
		pthread_mutex_unlock(&c->mu);
	}
	free(x->authid);
	free(x->authzid);
	free(x->user);
	free(x->reason_buf);
	explicit_bzero(x, sizeof(*x));
	free(x);
	*xp = NULL;
}

/* ---- the process ---- */

/* Lock held. */
static void auth_client_close_free(struct auth_client *c)
{
	for (size_t i = 0; i < c->nfree; i++)
		close(c->free_fds[i]);
	c->nfree = 0;
}

static void auth_client_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	char *err = NULL;
	pid_t pid = (pid_t)(long)arg;
	/* Written in one line at once: here already, the wait is only a formality. */
	if (auth_spawn_wait_ready(fd, 0, &err) < 0) {
		log_warnx("auth event=start-failed pid=%ld error=\"%s\"", (long)pid, err);
		free(err);
	}
}

/* 0, or -1 (errno). With wait, blocks until it is ready (the first start). */
static int auth_client_start(struct auth_client *c, int wait, char **err_r)
{
	int fds[AUTH_SPAWN_CONNS_MAX], status_fd;
	pid_t pid = auth_spawn_start(&c->spawn, fds, &status_fd);

	if (pid < 0) {
		*err_r = xasprintf("cannot start cursus-auth: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&c->mu);
	auth_client_close_free(c);
	c->gen++;
	c->pid = pid;
	c->started = time(NULL);
	for (unsigned i = 0; i < c->spawn.nconns; i++)
		c->free_fds[c->nfree++] = fds[i];
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (wait)
		return auth_spawn_wait_ready(status_fd, AUTH_CLIENT_READY_MS, err_r);
	if (event_base_once(c->base, status_fd, EV_READ, auth_client_ready_cb, (void *)(long)pid,
			    NULL) < 0)
		close(status_fd);
	return 0;
}

static void auth_client_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_client *c = arg;
	char *err = NULL;

	if (auth_client_start(c, 0, &err) < 0) {
		struct timeval tv = { 1, 0 };
		log_warnx("auth event=restart-failed error=\"%s\" retry=1s", err);
		free(err);
		evtimer_add(c->restart, &tv);
		return;
	}
	log_info("auth event=restarted pid=%ld", (long)c->pid);
}

static void auth_client_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct auth_client *c = arg;
	struct timeval tv = { 0, 0 };
	unsigned pause_ms = 0;
	int status;
	pid_t pid;

	pthread_mutex_lock(&c->mu);
	pid = c->pid;
	if (pid <= 0 || waitpid(pid, &status, WNOHANG) != pid) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	/* Calls in flight fail on their own connections; idle ones go now, and calls
	 * fail at once until the restart. */
	c->pid = 0;
	c->gen++;
	auth_client_close_free(c);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);

	if (time(NULL) - c->started < AUTH_CLIENT_YOUNG) {
		c->young++;
		pause_ms = c->young > 9 ? AUTH_CLIENT_PAUSE_MAX_MS : 100u << (c->young - 1);
		if (pause_ms > AUTH_CLIENT_PAUSE_MAX_MS)
			pause_ms = AUTH_CLIENT_PAUSE_MAX_MS;
	} else {
		c->young = 0;
	}
	if (WIFSIGNALED(status))
		log_warnx("auth event=died pid=%ld signal=%d restart=%ums", (long)pid, WTERMSIG(status),
			  pause_ms);
	else
		log_warnx("auth event=died pid=%ld status=%d restart=%ums", (long)pid, WEXITSTATUS(status),
			  pause_ms);
	tv.tv_sec = pause_ms / 1000;
	tv.tv_usec = (pause_ms % 1000) * 1000;
	evtimer_add(c->restart, &tv);
}

struct auth_client *auth_client_create(struct event_base *base, const struct auth_client_conf *conf,
				       char **err_r)
{
	struct auth_client *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->user_store = xstrdup(conf->user_store);
	c->remote_store = strncmp(conf->user_store, "postgresql:", 11) == 0;
	c->spawn.user_store = c->user_store;
	c->spawn.store_timeout_ms = conf->store_timeout_ms;
	c->spawn.store_connections = conf->store_connections;
	c->spawn.addr_budget = conf->addr_budget;
	c->spawn.account_budget = conf->account_budget;
	c->spawn.window = conf->window;
	c->spawn.cooldown = conf->cooldown;
	c->spawn.scram_iterations = conf->scram_iterations;
	c->spawn.nconns = conf->nconns < 1 ? 1 : conf->nconns > AUTH_SPAWN_CONNS_MAX ? AUTH_SPAWN_CONNS_MAX
										   : conf->nconns;
	c->spawn.foreground = conf->foreground;
	c->spawn.debug = conf->debug;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	/* Before the start: a death at once must not go unseen. */
	c->sigchld = evsignal_new(base, SIGCHLD, auth_client_sigchld, c);
	c->restart = evtimer_new(base, auth_client_restart_cb, c);
	event_add(c->sigchld, NULL);
	if (auth_client_start(c, 1, err_r) < 0) {
		auth_client_destroy(&c);
		return NULL;
	}
	log_info("auth event=started pid=%ld conns=%u", (long)c->pid, c->spawn.nconns);
	return c;
}

void auth_client_destroy(struct auth_client **cp)
{
	struct auth_client *c = *cp;
	int status;

	if (c == NULL)
		return;
	event_free(c->sigchld);
	event_free(c->restart);
	pthread_mutex_lock(&c->mu);
	auth_client_close_free(c);
	pthread_mutex_unlock(&c->mu);
	if (c->pid > 0) {
		/* Its connections closed, it exits; a wedged one is not waited for long. */
		for (int i = 0; i < 100 && waitpid(c->pid, &status, WNOHANG) == 0; i++)
			usleep(20000);
		if (waitpid(c->pid, &status, WNOHANG) == 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &status, 0);
		}
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	xfree_secret(c->user_store, strlen(c->user_store));
	free(c);
	*cp = NULL;
}
