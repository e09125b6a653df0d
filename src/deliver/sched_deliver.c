/* sched_deliver: running a job once its destination lets it: the body and (for a smart
 * host) the credentials fetched on a worker, the transport started, and one retry with
 * a fresh OAuth token when the next hop refused the first. */
#include "deliver/sched_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "util/workers.h"
#include "util/xmalloc.h"

static void sched_reauth(struct sjob *j);

static void sched_delivered(struct delivery *d, void *arg)
{
	struct sjob *j = arg;
	/* The next hop refused an OAuth token (expired or revoked early): one fresh
	 * token, one more try, before the refusal stands. */
	if (d->auth_rejected && j->cred.mech && !j->oauth_retried) {
		sched_reauth(j);
		return;
	}
	sched_dest_done(j->dest, d->dest_ok, d->rcpts[0].diag);
	sched_outcomes(j);
	sched_record(j);
}

static void sched_start_delivery(struct sjob *j)
{
	struct transport *t = sched_transport(j);
	j->d.auth_user = j->cred.user;
	j->d.auth_password = j->cred.password;
	j->d.auth_mech = j->cred.mech;
	j->d.auth_rejected = 0;
	t->deliver(t, &j->d, sched_delivered, j);
}

/* On a worker: the smart host's credentials; for OAuth the token, which cursus-auth
 * may have to fetch (relay_oauth_timeout bounds it). */
static void sched_creds_work(struct sjob *j)
{
	const char *sender = j->msg->m.env.mail_from;
	struct auth_client_relay_req req = {
		.ca = j->policy.ca,
		.timeout_ms = j->cfg->relay_oauth_timeout_ms,
		.margin_ms = j->cfg->relay_oauth_refresh_margin_ms,
		.rejected = j->rejected,
	};
	char *nexthop = route_nexthop(&j->route);
	int r;
	auth_client_relay_cred_clear(&j->cred);
	r = auth_client_relay_auth_find(j->s->users, nexthop, *sender ? sender : NULL, &req,
					&j->cred);
	if (j->cred.fetch)
		metrics_add(METRIC_RELAY_OAUTH_FETCH, 1, j->cred.fetch, NULL, NULL);
	j->err = r == -2 ? EACCES : r < 0 ? EAGAIN : 0;
	free(nexthop);
}

/* On a worker: what the delivery needs from disk, the body (opened after a check of
 * the whole file, never read into memory) and (for a smart host) the credentials. */
static void sched_prepare_work(void *arg)
{
	struct sjob *j = arg;
	if ((j->err = qstore_open_body(j->s->qs, j->msg->id, &j->d.body)) != 0)
		return;
	if (j->route.kind != ROUTE_LOCAL)
		j->d.hops = delivery_count_hops(&j->d.body);
	if (j->route.kind != ROUTE_RELAY || !j->s->users)
		return;
	sched_creds_work(j);
}

static void sched_reauth_work(void *arg)
{
	sched_creds_work(arg);
}

static void sched_prepare_done(void *arg)
{
	struct sjob *j = arg;
	if (j->err == EBADMSG || j->err == ENOENT) {
		/* Corrupt (moved to corrupt/ and logged by qstore) or removed: nothing
		 * of it is sent, and nothing more is recorded. */
		j->msg->vanished = 1;
		sched_dest_done(j->dest, 1, NULL);
		sched_record(j);
		return;
	}
	if (j->err) {
		/* Not sent without its body or the credentials it may need: deferred. An
		 * OAuth token that could not be had says why (the endpoint's words). */
		const char *why = j->err == EACCES ? j->cred.reason
				: j->err == EAGAIN ? "cannot read the relay credentials"
						   : "cannot read the queued message";
		for (size_t i = 0; i < j->d.n_rcpts; i++)
			transport_delivery_set(&j->d.rcpts[i], DR_TEMPFAIL,
					       j->err == EACCES ? "4.7.0" : "4.3.0", why);
		j->d.dest_ok = 1; /* not the destination's fault */
		sched_delivered(&j->d, j);
		return;
	}
	sched_start_delivery(j);
}

/* Again with a fresh token; the recipients' outcomes of the refused try are
 * forgotten (they say only that the token was refused). */
static void sched_reauth(struct sjob *j)
{
	j->oauth_retried = 1;
	if (j->rejected)
		xfree_secret(j->rejected, strlen(j->rejected));
	j->rejected = xstrdup(j->cred.password);
	transport_delivery_clear(&j->d);
	j->d.dest_ok = 1;
	j->d.auth_rejected = 0;
	workers_submit(j->s->w, sched_reauth_work, sched_prepare_done, j);
}

/* Called by the destination when the job may run (or must be deferred unrun). */
static void sched_job_run(struct sjob *j, const char *suspended)
{
	if (suspended) {
		for (size_t i = 0; i < j->d.n_rcpts; i++)
			transport_delivery_set(&j->d.rcpts[i], DR_TEMPFAIL, "4.4.1", suspended);
		sched_outcomes(j);
		sched_record(j);
		return;
	}
	workers_submit(j->s->w, sched_prepare_work, sched_prepare_done, j);
}

void sched_dest_run_cb(void *job, const char *suspended)
{
	sched_job_run(job, suspended);
}
