/* auth_server: see auth_server.h. Each connection is served by its own thread, one
 * request at a time, in order; the network process never has two requests in flight
 * on one connection. A message that breaks the codec's rules or the protocol's (an
 * unknown type, a missing field, a field too long) ends the process: the daemon
 * restarts it, and whatever sent it learns nothing. The process exits when the daemon
 * closes its connections. */
#include "auth/auth_server.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth_ipc.h"
#include "auth/auth_oauth.h"
#include "auth/auth_spawn.h"
#include "sasl/sasl.h"
#include "store/userdb.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* A certificate subject as the TLS layer keeps it (struct sasl_channel). */
#define AUTH_SERVER_SUBJECT_MAX 255
/* Exchanges the network process began and has not ended: bounded, and an idle one
 * (a session gone while the END was lost) is reaped. */
#define AUTH_SERVER_EXCHANGES_MAX 10000
#define AUTH_SERVER_EXCHANGE_IDLE 900
/* The network process answers a PRECHECK from memory: a slow answer is a broken one. */
#define AUTH_SERVER_PRECHECK_MS 30000
/* Mailboxes per RESOLVE_PART: well inside AUTH_IPC_MSG_MAX at the longest names. */
#define AUTH_SERVER_PART_BOXES 32

struct auth_server;

struct auth_server_conn {
	struct auth_server *srv;
	int fd;
	unsigned idx;
	unsigned char in[AUTH_IPC_MSG_MAX];
	unsigned char reply_in[AUTH_IPC_MSG_MAX]; /* a PRECHECK_REPLY, mid-request */
	struct auth_ipc_buf out;
};

struct auth_server_x {
	long long xid;
	struct sasl_exchange *sx;
	time_t used;
	int busy;
	int gen_read;
	long long gen;
	struct auth_server_conn *cur; /* while busy: where to ask the precheck */
	char client[56];              /* the client's budget key, "" when none came */
	uint32_t req;
	struct auth_server_x *next;
};

struct auth_server {
	struct userdb *db;
	struct sasl_server *sasl;
	pthread_mutex_t mu;           /* the exchanges */
	struct auth_server_x *xs;
	size_t nxs;
};

static void auth_server_broken(const struct auth_server_conn *c, const char *why)
{
	log_warnx("auth event=refused conn=%u reason=\"%s\"", c->idx, why);
	_exit(1);
}

static void auth_server_send(struct auth_server_conn *c)
{
	if (auth_ipc_finish(&c->out) < 0)
		auth_server_broken(c, "reply too large");
	if (auth_ipc_send(c->fd, &c->out) < 0) {
		log_warn("auth event=send-failed conn=%u", c->idx);
		_exit(1);
	}
	auth_ipc_wipe(&c->out);
}

static void auth_server_result(struct auth_server_conn *c, uint32_t id, long long r)
{
	auth_ipc_begin(&c->out, AUTH_IPC_RESULT, id);
	auth_ipc_add_int(&c->out, r);
	auth_server_send(c);
}

/* A required string field: a malformed one ends the process. */
static char *auth_server_str(struct auth_server_conn *c, const struct auth_ipc_msg *m, size_t i,
			     size_t max, int optional)
{
	char *s;
	if (auth_ipc_str(m, i, max, &s) < 0 || (!s && !optional))
		auth_server_broken(c, "bad field");
	return s;
}

static void auth_server_resolve(struct auth_server_conn *c, const struct auth_ipc_msg *m)
{
	char *addr = auth_server_str(c, m, 0, AUTH_IPC_FIELD_MAX, 0), **boxes = NULL;
	long long max;
	size_t n = 0;
	int r;

	if (auth_ipc_int(m, 1, &max) < 0 || max < -1)
		auth_server_broken(c, "bad field");
	r = max >= 0 ? userdb_resolve_max(c->srv->db, addr, (size_t)max, &boxes, &n)
		     : userdb_resolve(c->srv->db, addr, &boxes, &n);
	for (size_t i = 0; r == 1 && i < n; i += AUTH_SERVER_PART_BOXES) {
		auth_ipc_begin(&c->out, AUTH_IPC_RESOLVE_PART, m->id);
		for (size_t k = i; k < n && k < i + AUTH_SERVER_PART_BOXES; k++)
			auth_ipc_add_str(&c->out, boxes[k]);
		auth_server_send(c);
	}
	auth_server_result(c, m->id, r);
	userdb_free_list(boxes, n);
	free(addr);
}

static void auth_server_pair(struct auth_server_conn *c, const struct auth_ipc_msg *m)
{
	char *a = auth_server_str(c, m, 0, AUTH_IPC_FIELD_MAX, 0);
	char *b = auth_server_str(c, m, 1, AUTH_IPC_FIELD_MAX, 0);
	long long gen = 0;
	int r;

	switch (m->type) {
	case AUTH_IPC_MAY_SEND_AS:
		auth_server_result(c, m->id, userdb_may_send_as(c->srv->db, a, b));
		break;
	case AUTH_IPC_MAY_ACT_AS:
		auth_server_result(c, m->id, userdb_may_act_as(c->srv->db, a, b));
		break;
	default: /* AUTH_IPC_CRED_GEN */
		r = userdb_credential_gen(c->srv->db, a, b, &gen);
		auth_ipc_begin(&c->out, AUTH_IPC_RESULT, m->id);
		auth_ipc_add_int(&c->out, r);
		auth_ipc_add_int(&c->out, gen);
		auth_server_send(c);
		break;
	}
	free(a);
	free(b);
}

/* For a delivery through a smart host: the one secret that must leave this process,
 * because the network process sends it. For an OAuth credential that is the access
 * token, had here (auth_oauth.c): the client secret and refresh token stay. */
static void auth_server_relay_auth(struct auth_server_conn *c, const struct auth_ipc_msg *m)
{
	char *nexthop = auth_server_str(c, m, 0, AUTH_IPC_FIELD_MAX, 0);
	char *sender = auth_server_str(c, m, 1, AUTH_IPC_FIELD_MAX, 1);
	char *ca = auth_server_str(c, m, 2, AUTH_IPC_FIELD_MAX, 1);
	char *rejected = auth_server_str(c, m, 5, AUTH_IPC_FIELD_MAX, 1);
	char *user = NULL, *password = NULL, *token = NULL, reason[600] = "";
	struct userdb_relay_oauth o;
	enum auth_oauth_how how = AUTH_OAUTH_CACHED;
	long long timeout_ms, margin_ms;
	int r, oauth;

	if (m->nfields != 6 || auth_ipc_int(m, 3, &timeout_ms) < 0 ||
	    auth_ipc_int(m, 4, &margin_ms) < 0 || timeout_ms <= 0 || timeout_ms > 86400000LL ||
	    margin_ms < 0 || margin_ms > 86400000LL)
		auth_server_broken(c, "bad field");
	r = userdb_relay_auth_find(c->srv->db, nexthop, sender, &user, &password, &o);
	oauth = r == 1 && o.url;
	if (oauth) {
		struct auth_oauth_req req = { ca, (unsigned)timeout_ms, (unsigned)margin_ms, rejected };
		if (auth_oauth_token(c->srv->db, nexthop, user, &o, &req, &token, &how, reason,
				     sizeof(reason)) < 0)
			r = -2;
	}
	auth_ipc_begin(&c->out, AUTH_IPC_RESULT, m->id);
	auth_ipc_add_int(&c->out, r);
	auth_ipc_add_str(&c->out, r == 1 ? user : NULL);
	auth_ipc_add_str(&c->out, r == 1 ? (oauth ? token : password) : NULL);
	auth_ipc_add_str(&c->out, r == 1 && oauth ? o.mech : NULL);
	auth_ipc_add_int(&c->out, oauth ? (long long)how : -1);
	auth_ipc_add_str(&c->out, r == -2 ? reason : NULL);
	auth_server_send(c);
	free(user);
	if (password)
		xfree_secret(password, strlen(password));
	if (token)
		xfree_secret(token, strlen(token));
	userdb_relay_oauth_clear(&o);
	free(nexthop);
	free(sender);
	free(ca);
	if (rejected)
		xfree_secret(rejected, strlen(rejected));
}

/* Asked by GNU SASL's callbacks (sasl.c) before any secret is looked at: the network
 * process keeps the brute-force budgets, so it answers. Then, at once, the credential
 * generation the session will hold its login to (read before the check, so a change
 * racing it is seen at the next MAIL). Nonzero refuses. */
static int auth_server_precheck(void *arg, const char *authid)
{
	struct auth_server_x *x = arg;
	struct auth_server_conn *c = x->cur;
	struct auth_ipc_msg m;
	long long refuse;
	long n;

	auth_ipc_begin(&c->out, AUTH_IPC_PRECHECK, x->req);
	auth_ipc_add_str(&c->out, authid);
	auth_server_send(c);
	n = auth_ipc_recv(c->fd, c->reply_in, AUTH_SERVER_PRECHECK_MS);
	if (n == 0)
		_exit(0); /* the daemon is gone */
	if (n < 0 || auth_ipc_parse(c->reply_in, (size_t)n, &m) < 0 ||
	    m.type != AUTH_IPC_PRECHECK_REPLY || m.id != x->req || auth_ipc_int(&m, 0, &refuse) < 0)
		auth_server_broken(c, "no answer to a precheck");
	if (refuse)
		return 1;
	/* The budgets every node shares (a PostgreSQL store), before any secret too. */
	long wait = userdb_budget_blocked(c->srv->db, x->client[0] ? x->client : NULL, authid);
	if (wait != 0)
		return wait < 0 ? SASL_PRECHECK_TEMPFAIL : 1;
	x->gen_read = userdb_credential_gen(c->srv->db, authid, authid, &x->gen) == 1;
	return 0;
}

static void auth_server_x_free(struct auth_server_x *x)
{
	sasl_exchange_end(&x->sx);
	free(x);
}

/* Lock held. */
static struct auth_server_x **auth_server_x_find(struct auth_server *srv, long long xid)
{
	struct auth_server_x **pp = &srv->xs;
	while (*pp && (*pp)->xid != xid)
		pp = &(*pp)->next;
	return pp;
}

/* Lock held. */
static void auth_server_x_reap(struct auth_server *srv, time_t now)
{
	for (struct auth_server_x **pp = &srv->xs; *pp;) {
		struct auth_server_x *x = *pp;
		if (!x->busy && now - x->used > AUTH_SERVER_EXCHANGE_IDLE) {
			*pp = x->next;
			srv->nxs--;
			auth_server_x_free(x);
		} else {
			pp = &x->next;
		}
	}
}

/* The reply to a step, composed into c->out (not sent): composed while the exchange is
 * still this thread's, sent once it is not (see auth_server_sasl_step). */
static void auth_server_sasl_compose(struct auth_server_conn *c, uint32_t id, enum sasl_status st,
				     const char *out, const struct auth_server_x *x,
				     const char *reason)
{
	auth_ipc_begin(&c->out, AUTH_IPC_SASL_REPLY, id);
	auth_ipc_add_int(&c->out, st);
	auth_ipc_add_str(&c->out, out);
	auth_ipc_add_str(&c->out, x ? sasl_exchange_authid(x->sx) : NULL);
	auth_ipc_add_str(&c->out, x ? sasl_exchange_authzid(x->sx) : NULL);
	auth_ipc_add_str(&c->out, x ? sasl_exchange_user(x->sx) : NULL);
	auth_ipc_add_str(&c->out, x ? sasl_exchange_reason(x->sx) : reason);
	auth_ipc_add_int(&c->out, x ? x->gen_read : 0);
	auth_ipc_add_int(&c->out, x ? x->gen : 0);
}

static void auth_server_sasl_reply(struct auth_server_conn *c, uint32_t id, enum sasl_status st,
				   const char *out, const struct auth_server_x *x, const char *reason)
{
	auth_server_sasl_compose(c, id, st, out, x, reason);
	auth_server_send(c);
}

/* The channel data of a first step, each field within its bound. */
static void auth_server_channel(struct auth_server_conn *c, const struct auth_ipc_msg *m,
				struct sasl_channel *ch)
{
	char *fp, *subject;
	memset(ch, 0, sizeof(*ch));
	if (m->f[2].len > sizeof(ch->tls_unique) || m->f[3].len > sizeof(ch->tls_exporter))
		auth_server_broken(c, "bad field");
	if (m->f[2].p)
		memcpy(ch->tls_unique, m->f[2].p, ch->tls_unique_len = m->f[2].len);
	if (m->f[3].p)
		memcpy(ch->tls_exporter, m->f[3].p, ch->tls_exporter_len = m->f[3].len);
	fp = auth_server_str(c, m, 4, sizeof(ch->cert_fingerprint) - 1, 1);
	subject = auth_server_str(c, m, 5, AUTH_SERVER_SUBJECT_MAX, 1);
	if (fp)
		strcpy(ch->cert_fingerprint, fp);
	if (subject)
		strcpy(ch->cert_subject, subject);
	free(fp);
	free(subject);
}

static void auth_server_sasl_step(struct auth_server_conn *c, const struct auth_ipc_msg *m)
{
	struct auth_server *srv = c->srv;
	struct auth_server_x *x, **pp;
	const struct sasl_mech *mech = NULL;
	struct sasl_channel ch;
	enum sasl_status st;
	char *mname, *in = NULL, *out = NULL;
	size_t inlen = 0;
	long long xid;
	time_t now = time(NULL);

	if (m->nfields != 8 || auth_ipc_int(m, 0, &xid) < 0)
		auth_server_broken(c, "bad field");
	mname = auth_server_str(c, m, 1, 32, 1);
	if (mname && !(mech = sasl_mech_find(mname, strlen(mname))))
		auth_server_broken(c, "unknown mechanism");
	free(mname);
	if (m->f[6].p) {
		in = xmalloc(m->f[6].len + 1);
		memcpy(in, m->f[6].p, inlen = m->f[6].len);
		in[inlen] = '\0';
	}

	pthread_mutex_lock(&srv->mu);
	pp = auth_server_x_find(srv, xid);
	x = *pp;
	if (mech) {
		if (x)
			auth_server_broken(c, "exchange started twice");
		auth_server_x_reap(srv, now);
		if (srv->nxs >= AUTH_SERVER_EXCHANGES_MAX) {
			pthread_mutex_unlock(&srv->mu);
			log_warnx("auth event=exchanges-full max=%d", AUTH_SERVER_EXCHANGES_MAX);
			auth_server_sasl_reply(c, m->id, SASL_TEMPFAIL, NULL, NULL, "busy");
			goto out;
		}
		auth_server_channel(c, m, &ch);
		x = xcalloc(1, sizeof(*x));
		x->xid = xid;
		if (m->f[7].p && m->f[7].len < sizeof(x->client) && !memchr(m->f[7].p, 0, m->f[7].len))
			memcpy(x->client, m->f[7].p, m->f[7].len);
		x->sx = sasl_exchange_start(srv->sasl, mech, &ch, auth_server_precheck, x);
		explicit_bzero(&ch, sizeof(ch));
		x->next = srv->xs;
		srv->xs = x;
		srv->nxs++;
	} else if (!x) {
		/* Begun with a cursus-auth that has died since: its state died with it. */
		pthread_mutex_unlock(&srv->mu);
		auth_server_sasl_reply(c, m->id, SASL_TEMPFAIL, NULL, NULL, "auth-restarted");
		goto out;
	} else if (x->busy) {
		auth_server_broken(c, "exchange stepped twice at once");
	}
	x->busy = 1;
	x->cur = c;
	x->req = m->id;
	pthread_mutex_unlock(&srv->mu);

	st = sasl_exchange_step(x->sx, in, inlen, &out);
	if (st == SASL_OK && !x->gen_read) {
		/* No precheck ran (EXTERNAL's asks after the lookup; it still ran) or its
		 * read failed: read now. */
		const char *authid = sasl_exchange_authid(x->sx);
		if (!authid)
			authid = sasl_exchange_user(x->sx);
		x->gen_read = authid && userdb_credential_gen(srv->db, authid, authid, &x->gen) == 1;
	}
	if (st == SASL_FAIL && x->client[0])
		(void)userdb_budget_failure(srv->db, x->client, sasl_exchange_authid(x->sx));
	auth_server_sasl_compose(c, m->id, st, out, x, NULL);
	free(out);

	/* Released before the reply goes: the network process may send the next step
	 * (on another connection, to another thread) as soon as it has the reply, and
	 * must find the exchange free. */
	pthread_mutex_lock(&srv->mu);
	x->busy = 0;
	x->cur = NULL;
	x->used = now;
	if (st != SASL_MORE) {
		/* Ended: the network process will not step it again. */
		pp = auth_server_x_find(srv, xid);
		*pp = x->next;
		srv->nxs--;
	} else {
		x = NULL; /* still listed: from here on not this thread's */
	}
	pthread_mutex_unlock(&srv->mu);
	auth_server_send(c);
	if (x)
		auth_server_x_free(x);
out:
	if (in)
		xfree_secret(in, inlen);
}

static void auth_server_sasl_end(struct auth_server_conn *c, const struct auth_ipc_msg *m)
{
	struct auth_server *srv = c->srv;
	struct auth_server_x **pp, *x;
	long long xid;

	if (auth_ipc_int(m, 0, &xid) < 0)
		auth_server_broken(c, "bad field");
	pthread_mutex_lock(&srv->mu);
	pp = auth_server_x_find(srv, xid);
	if ((x = *pp) != NULL && !x->busy) {
		*pp = x->next;
		srv->nxs--;
		auth_server_x_free(x);
	}
	pthread_mutex_unlock(&srv->mu);
}

static void *auth_server_conn_run(void *arg)
{
	struct auth_server_conn *c = arg;
	struct auth_ipc_msg m;

	for (;;) {
		long n = auth_ipc_recv(c->fd, c->in, -1);
		if (n == 0)
			_exit(0); /* the daemon closed: stopping or gone */
		if (n < 0)
			auth_server_broken(c, errno == EMSGSIZE ? "message too large" : strerror(errno));
		if (auth_ipc_parse(c->in, (size_t)n, &m) < 0)
			auth_server_broken(c, "malformed message");
		switch (m.type) {
		case AUTH_IPC_RESOLVE:
			auth_server_resolve(c, &m);
			break;
		case AUTH_IPC_MAY_SEND_AS:
		case AUTH_IPC_MAY_ACT_AS:
		case AUTH_IPC_CRED_GEN:
			auth_server_pair(c, &m);
			break;
		case AUTH_IPC_RELAY_AUTH:
			auth_server_relay_auth(c, &m);
			break;
		case AUTH_IPC_SASL_STEP:
			auth_server_sasl_step(c, &m);
			break;
		case AUTH_IPC_SASL_END:
			auth_server_sasl_end(c, &m);
			break;
		default:
			auth_server_broken(c, "unexpected message type");
		}
		/* A PLAIN password passed through here. */
		explicit_bzero(c->in, (size_t)n);
	}
	return NULL;
}

static void auth_server_ready(const char *what)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s\n", what);
	if (n > 0)
		(void)!write(AUTH_SPAWN_STATUS_FD, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	close(AUTH_SPAWN_STATUS_FD);
}

int auth_server_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store-timeout", required_argument, NULL, 't'},
		{"store-conns", required_argument, NULL, 's'},
		{"budgets", required_argument, NULL, 'b'},
		{"scram-iterations", required_argument, NULL, 'i'},
		{"conns", required_argument, NULL, 'n'},
		{"foreground", no_argument, NULL, 'f'},
		{"debug", no_argument, NULL, 'g'},
		{NULL, 0, NULL, 0},
	};
	struct auth_server srv = {0};
	unsigned iterations = 0, nconns = 0, timeout_ms = 0, store_conns = 0;
	unsigned budget[4] = { 0 };
	char *db = NULL, *env;
	int foreground = 0, debug = 0, ch;
	char *err = NULL;
	pthread_t tid;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 't': timeout_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': store_conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'b':
			if (sscanf(optarg, "%u,%u,%u,%u", &budget[0], &budget[1], &budget[2],
				   &budget[3]) != 4)
				_exit(2);
			break;
		case 'i': iterations = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': nconns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'f': foreground = 1; break;
		case 'g': debug = 1; break;
		default: _exit(2);
		}
	}
	/* The store's spec comes in the environment (a password must not be in argv);
	 * the copy in the environment block is wiped, so /proc/PID/environ no longer
	 * shows it either. */
	if ((env = getenv(AUTH_SPAWN_STORE_ENV)) != NULL) {
		db = xstrdup(env);
		explicit_bzero(env, strlen(env));
		unsetenv(AUTH_SPAWN_STORE_ENV);
	}
	log_init("cursus-auth", foreground);
	log_set_debug(debug);
	if (!db || nconns == 0 || nconns > AUTH_SPAWN_CONNS_MAX) {
		auth_server_ready("bad arguments");
		_exit(2);
	}
	/* The network process runs as the same user: it may signal this one, never read
	 * its memory (ptrace, /proc/PID/mem) nor get root back through it. */
	if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_NAME, "cursus-auth") < 0)
		log_warn("auth event=prctl");
	signal(SIGPIPE, SIG_IGN);
	auth_oauth_init(); /* libcurl's global set-up, before any thread */
	/* Nothing here to reload (reload.h): a SIGHUP sent to the group must not end it. */
	signal(SIGHUP, SIG_IGN);
	/* A PostgreSQL server that is down now is connected to later (USERDB_LAZY):
	 * until then AUTH gets 454 and RCPT 451, and the daemon runs. */
	if (!(srv.db = userdb_open_opts(db, USERDB_CREATE | USERDB_LAZY, timeout_ms, store_conns,
					&err))) {
		/* A SQLite path is named; a connection string never (it may hold a password). */
		const char *name = strncmp(db, "postgresql:", 11) == 0 ? "postgresql"
				   : strncmp(db, "sqlite:", 7) == 0 ? db + 7 : db;
		char *msg = xasprintf("userdb: %s: %s", name, err ? err : "cannot open");
		auth_server_ready(msg);
		_exit(1);
	}
	userdb_set_scram_iterations(srv.db, iterations);
	userdb_set_budgets(srv.db, budget[0], budget[1], budget[2], budget[3]);
	srv.sasl = sasl_server_create(srv.db);
	pthread_mutex_init(&srv.mu, NULL);
	for (unsigned i = 0; i < nconns; i++) {
		struct auth_server_conn *c = xcalloc(1, sizeof(*c));
		c->srv = &srv;
		c->fd = AUTH_SPAWN_CONN_FD + (int)i;
		c->idx = i;
		if ((errno = pthread_create(&tid, NULL, auth_server_conn_run, c)) != 0)
			fatal("auth: pthread_create");
		pthread_detach(tid);
	}
	log_info("auth event=ready pid=%ld conns=%u", (long)getpid(), nconns);
	auth_server_ready("ok");
	for (;;)
		pause();
}
