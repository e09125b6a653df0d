/* userdb_pg: the PostgreSQL backend of userdb_backend.h, for a store many cursusd
 * nodes share; its schema, secret and shared budgets are userdb_pg_schema.c.
 * Promises: a small pool of connections (store_connections), each used by one thread
 * at a time; every statement has parameters bound by libpq (never data in SQL text)
 * and a deadline (store_timeout) kept on this side with poll(), so a server that
 * stops answering costs a caller that long at most and never hangs it; the server's
 * statement_timeout says the same on its side. A connection that fails is dropped
 * and made again on use; when making one fails, no further attempt is made for a
 * backoff that doubles from 100 ms to 5 s, so while the server is down every call
 * fails at once, and service resumes by itself when it returns. The connection
 * string may hold a password: no message here quotes it. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/userdb_pg_impl.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define UPG_BACKOFF_MIN_MS 100
#define UPG_BACKOFF_MAX_MS 5000
#define UPG_CONNECTIONS_MAX 64
#define UPG_OID_INT8 20
#define UPG_OID_TEXT 25

long long upg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq's message, first line only, never the connection string. */
static char *upg_pgerr(PGconn *pg, const char *fallback)
{
	const char *m = pg ? PQerrorMessage(pg) : NULL;
	if (!m || !*m)
		return xstrdup(fallback);
	return xstrndup(m, strcspn(m, "\n"));
}

/* Waits for fd to be ready for events until deadline. 1 ready, 0 timed out, -1 error. */
static int upg_wait(int fd, short events, long long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	for (;;) {
		long long left = deadline - upg_now_ms();
		int r;
		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r > 0;
	}
}

static void upg_drop(struct upg_conn *c)
{
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
}

/* A connection within the deadline, its statement_timeout set. NULL with *err. */
static PGconn *upg_connect(struct upg *g, char **err)
{
	long long deadline = upg_now_ms() + g->timeout_ms;
	PGconn *pg = PQconnectStart(g->conninfo);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (!pg || PQstatus(pg) == CONNECTION_BAD)
		goto fail;
	while (st != PGRES_POLLING_OK) {
		int r;
		if (st == PGRES_POLLING_FAILED)
			goto fail;
		r = upg_wait(PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (r <= 0) {
			*err = xstrdup(r == 0 ? "connection timed out" : strerror(errno));
			PQfinish(pg);
			return NULL;
		}
		st = PQconnectPoll(pg);
	}
	return pg;
fail:
	*err = upg_pgerr(pg, "cannot connect");
	if (pg)
		PQfinish(pg);
	return NULL;
}

/* Sends the query and waits for its results within the deadline; the last result
 * (the first failed one, if any) is returned, or NULL on a timeout or a broken
 * connection. */
static PGresult *upg_run(struct upg *g, PGconn *pg, const char *sql, int simple, int np,
			 const Oid *types, const char *const *values, char **err)
{
	long long deadline = upg_now_ms() + g->timeout_ms;
	PGresult *res, *keep = NULL;
	int r;

	if (!(simple ? PQsendQuery(pg, sql)
		     : PQsendQueryParams(pg, sql, np, types, values, NULL, NULL, 0))) {
		*err = upg_pgerr(pg, "cannot send");
		return NULL;
	}
	while ((r = PQflush(pg)) == 1)
		if (upg_wait(PQsocket(pg), POLLOUT, deadline) <= 0)
			goto timeout;
	if (r < 0) {
		*err = upg_pgerr(pg, "cannot send");
		return NULL;
	}
	for (;;) {
		while (PQisBusy(pg)) {
			if ((r = upg_wait(PQsocket(pg), POLLIN, deadline)) <= 0)
				goto timeout;
			if (!PQconsumeInput(pg)) {
				*err = upg_pgerr(pg, "connection lost");
				PQclear(keep);
				return NULL;
			}
		}
		if (!(res = PQgetResult(pg)))
			break;
		if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(res);
			continue;
		}
		PQclear(keep);
		keep = res;
	}
	if (!keep)
		*err = upg_pgerr(pg, "no result");
	return keep;
timeout:
	*err = xasprintf("no answer within %u ms", g->timeout_ms);
	PQclear(keep);
	return NULL;
}

/* The error of a failed result: USERDB_CONFLICT for a uniqueness violation. */
static int upg_result_error(PGresult *res, char **err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *m = PQresultErrorMessage(res);
	if (state && strcmp(state, "23505") == 0)
		return USERDB_CONFLICT;
	if (err)
		*err = xstrndup(m && *m ? m : "statement failed", m ? strcspn(m, "\n") : 16);
	return -1;
}

int upg_simple(struct upg *g, struct upg_conn *c, const char *sql, char **err)
{
	char *why = NULL;
	PGresult *res = upg_run(g, c->pg, sql, 1, 0, NULL, NULL, &why);
	int rc = 0;

	if (!res || PQresultStatus(res) == PGRES_FATAL_ERROR) {
		if (res)
			rc = upg_result_error(res, &why);
		rc = rc == USERDB_CONFLICT ? USERDB_CONFLICT : -1;
		if (rc == -1 && !why)
			why = xstrdup("statement failed");
	}
	if (!res || PQstatus(c->pg) != CONNECTION_OK)
		upg_drop(c);
	PQclear(res);
	if (why && err)
		*err = why;
	else
		free(why);
	return rc;
}

/* After a connection attempt: the backoff, and one log line per change of state. */
static void upg_note(struct upg *g, int ok, const char *why)
{
	pthread_mutex_lock(&g->mu);
	if (ok) {
		if (g->backoff_ms)
			log_info("userdb postgresql event=reconnected");
		g->backoff_ms = 0;
		g->retry_at_ms = 0;
	} else {
		if (!g->backoff_ms)
			log_warnx("userdb postgresql event=unreachable error=\"%s\"", why ? why : "?");
		g->backoff_ms = g->backoff_ms ? g->backoff_ms * 2 : UPG_BACKOFF_MIN_MS;
		if (g->backoff_ms > UPG_BACKOFF_MAX_MS)
			g->backoff_ms = UPG_BACKOFF_MAX_MS;
		g->retry_at_ms = upg_now_ms() + g->backoff_ms;
	}
	pthread_mutex_unlock(&g->mu);
}

/* Connects c and makes it fit for use. 0, -1 with *err. */
static int upg_open_conn(struct upg *g, struct upg_conn *c, char **err)
{
	char sql[96], *why = NULL;
	int have;

	if (!(c->pg = upg_connect(g, &why)))
		goto fail;
	/* The number is ours, not data. */
	snprintf(sql, sizeof(sql), "SET statement_timeout = %u; SET application_name = 'cursus'",
		 g->timeout_ms);
	if (upg_simple(g, c, sql, &why) < 0)
		goto fail;
	if (!g->admin) {
		if ((have = upg_schema_have(g, c, &why)) < 0)
			goto fail;
		if (have != UPG_SCHEMA_VERSION) {
			/* Reachable, but not usable: no backoff log of "unreachable". */
			*err = have == 0 ? xstrdup("the database has no cursus schema "
						   "(`cursus store init` makes it)")
					 : xasprintf("the database has schema version %d, this "
						     "program needs %d (`cursus store migrate`)",
						     have, UPG_SCHEMA_VERSION);
			upg_drop(c);
			return -1;
		}
	}
	upg_note(g, 1, NULL);
	return 0;
fail:
	upg_note(g, 0, why);
	upg_drop(c);
	if (err)
		*err = why ? why : xstrdup("cannot connect");
	else
		free(why);
	return -1;
}

struct upg_conn *upg_acquire(struct upg *g, char **err)
{
	long long deadline = upg_now_ms() + g->timeout_ms;
	struct upg_conn *c = NULL;
	struct timespec ts;

	pthread_mutex_lock(&g->mu);
	for (;;) {
		/* A connected one first, so the pool does not grow while one will do. */
		for (unsigned i = 0; i < g->n && !c; i++)
			if (!g->conns[i].busy && g->conns[i].pg)
				c = &g->conns[i];
		for (unsigned i = 0; i < g->n && !c; i++)
			if (!g->conns[i].busy)
				c = &g->conns[i];
		if (c)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long left = deadline - upg_now_ms();
		if (left <= 0) {
			pthread_mutex_unlock(&g->mu);
			if (err)
				*err = xstrdup("every store connection is busy");
			return NULL;
		}
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	c->busy = 1;
	int backing_off = !c->pg && upg_now_ms() < g->retry_at_ms;
	pthread_mutex_unlock(&g->mu);
	if (backing_off) {
		if (err)
			*err = xstrdup("the database is unreachable (waiting to reconnect)");
		upg_release(g, c);
		return NULL;
	}
	if (!c->pg && upg_open_conn(g, c, err) < 0) {
		upg_release(g, c);
		return NULL;
	}
	return c;
}

void upg_release(struct upg *g, struct upg_conn *c)
{
	pthread_mutex_lock(&g->mu);
	c->busy = 0;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* One statement on c. 0, USERDB_CONFLICT, -1 (*err), or -2 when the connection broke
 * (it is dropped; the statement may be tried again on a new one). */
static int upg_query_on(struct upg *g, struct upg_conn *c, const char *sql,
			const struct userdb_param *p, size_t np, userdb_row_fn fn, void *arg,
			long long *changes_r, char **err)
{
	Oid types[24];
	const char *values[24];
	char nums[24][24];
	PGresult *res;
	int rc = 0;

	if (np > 24) {
		*err = xstrdup("too many parameters");
		return -1;
	}
	for (size_t i = 0; i < np; i++) {
		types[i] = p[i].type == UP_INT ? UPG_OID_INT8 : p[i].type == UP_TEXT ? UPG_OID_TEXT : 0;
		if (p[i].type == UP_INT) {
			snprintf(nums[i], sizeof(nums[i]), "%lld", p[i].i);
			values[i] = nums[i];
		} else {
			values[i] = p[i].s;
		}
	}
	res = upg_run(g, c->pg, sql, 0, (int)np, types, values, err);
	if (!res || PQstatus(c->pg) != CONNECTION_OK) {
		PQclear(res);
		upg_drop(c);
		return -2;
	}
	switch (PQresultStatus(res)) {
	case PGRES_TUPLES_OK: {
		int rows = PQntuples(res), cols = PQnfields(res);
		const char *v[24];
		if (cols > 24)
			cols = 24;
		for (int r = 0; fn && r < rows; r++) {
			for (int k = 0; k < cols; k++)
				v[k] = PQgetisnull(res, r, k) ? NULL : PQgetvalue(res, r, k);
			if (fn(arg, v, (size_t)cols))
				break;
		}
	}
		/* fall through */
	case PGRES_COMMAND_OK:
		if (changes_r)
			*changes_r = strtoll(PQcmdTuples(res), NULL, 10);
		break;
	default:
		rc = upg_result_error(res, err);
		break;
	}
	PQclear(res);
	return rc;
}

int upg_query(void *impl, void *tx, const char *sql, const struct userdb_param *p, size_t np,
	      userdb_row_fn fn, void *arg, long long *changes_r, char **err)
{
	struct upg *g = impl;
	char *why = NULL;
	int rc;

	if (tx) {
		struct upg_conn *c = tx;
		if (!c->pg) {
			rc = -2;
			why = xstrdup("connection lost in a transaction");
		} else {
			rc = upg_query_on(g, c, sql, p, np, fn, arg, changes_r, &why);
		}
	} else {
		/* A connection found broken (the server restarted since its last use) is
		 * made again once at once: a failover must not cost a client its command. */
		rc = -2;
		for (int attempt = 0; attempt < 2 && rc == -2; attempt++) {
			struct upg_conn *c = upg_acquire(g, &why);
			if (!c) {
				rc = -1;
				break;
			}
			free(why);
			why = NULL;
			rc = upg_query_on(g, c, sql, p, np, fn, arg, changes_r, &why);
			upg_release(g, c);
		}
	}
	if (rc == -2)
		rc = -1;
	if (rc == -1 && err)
		*err = why ? why : xstrdup("store failure");
	else
		free(why);
	return rc;
}

static void *upg_begin(void *impl, char **err)
{
	struct upg *g = impl;
	struct upg_conn *c = upg_acquire(g, err);
	if (c && upg_simple(g, c, "BEGIN", err) < 0) {
		upg_release(g, c);
		return NULL;
	}
	return c;
}

static int upg_end(void *impl, void *tx, int commit, char **err)
{
	struct upg *g = impl;
	struct upg_conn *c = tx;
	int rc = -1;

	if (c->pg)
		rc = upg_simple(g, c, commit ? "COMMIT" : "ROLLBACK", err);
	else if (err)
		*err = xstrdup("connection lost in a transaction");
	upg_release(g, c);
	return rc;
}

static void upg_close(void *impl)
{
	struct upg *g = impl;
	for (unsigned i = 0; i < g->n; i++)
		upg_drop(&g->conns[i]);
	free(g->conns);
	explicit_bzero(g->conninfo, strlen(g->conninfo));
	free(g->conninfo);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

static void *upg_open(const char *conninfo, const struct userdb_options *o, int flags, char **err)
{
	struct upg *g = xcalloc(1, sizeof(*g));
	char *why = NULL;

	g->conninfo = xstrdup(conninfo);
	g->timeout_ms = o->timeout_ms ? o->timeout_ms : USERDB_TIMEOUT_MS_DEFAULT;
	g->n = o->connections ? o->connections : USERDB_CONNECTIONS_DEFAULT;
	if (g->n > UPG_CONNECTIONS_MAX)
		g->n = UPG_CONNECTIONS_MAX;
	g->conns = xcalloc(g->n, sizeof(*g->conns));
	g->admin = !(flags & USERDB_LAZY) || (flags & USERDB_ANY_SCHEMA);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	if (flags & USERDB_LAZY)
		return g;
	/* The tool: the server must answer now, and with CREATE the schema is made. */
	struct upg_conn *c = upg_acquire(g, &why);
	int rc = c ? 0 : -1;
	if (c && (flags & USERDB_CREATE))
		rc = upg_migrate(g, c, &why);
	else if (c && upg_schema_have(g, c, &why) != UPG_SCHEMA_VERSION && !why)
		why = xstrdup("no cursus schema of this version (`cursus store init|migrate`)");
	if (c && !(flags & USERDB_CREATE) && why)
		rc = -1;
	if (c)
		upg_release(g, c);
	if (rc < 0) {
		*err = xasprintf("postgresql store: %s", why ? why : "cannot connect");
		free(why);
		upg_close(g);
		return NULL;
	}
	free(why);
	return g;
}

const struct userdb_ops userdb_pg_ops = {
	.name = "postgresql",
	.open = upg_open,
	.close = upg_close,
	.secret_load = upg_secret_load,
	.secret_store = upg_secret_store,
	.query = upg_query,
	.begin = upg_begin,
	.end = upg_end,
	.version = upg_version,
	.budget_blocked = upg_budget_blocked,
	.budget_failure = upg_budget_failure,
};
