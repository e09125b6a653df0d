/* sched_int: the state the scheduler's modules share (scheduler.c, sched_load.c,
 * sched_round.c, sched_deliver.c, sched_outcome.c, sched_dsn.c, sched_ctl.c); not for
 * use outside src/deliver. */
#ifndef CURSUS_SCHED_INT_H
#define CURSUS_SCHED_INT_H

#include <stddef.h>
#include <time.h>

#include "auth/auth_client.h"
#include "config/config.h"
#include "deliver/sched_dest.h"
#include "deliver/scheduler.h"
#include "deliver/transport.h"
#include "dsn/dsn.h"
#include "queue/envelope.h"
#include "queue/qstore.h"
#include "route/route.h"

#define SCHED_BUCKETS 4096

struct smsg {
	char id[24];
	struct sched *s;
	struct qmsg m;          /* the last loaded state, without the body */
	int loaded, busy;       /* busy: a round (or a load, or an admin change) runs */
	int again;              /* asked for while busy: a new round when this one ends */
	int flush_now;          /* next round: every recipient is due */
	int bounce_now;         /* next round: fail every pending recipient (admin) */
	int doomed;             /* deleted by the admin: removed when the round ends */
	int vanished;           /* found corrupt (moved aside) or gone when a delivery
				 * opened it: forgotten when the round ends */
	unsigned pending;       /* jobs and records of this round not yet back */
	unsigned load_failures;
	unsigned ctl_refs;      /* hold/release requests not yet back from the journal */
	sched_ctl_cb del_cb;    /* `cursus queue delete` waiting for the removal */
	void *del_arg;
	int gone;               /* removed while ctl_refs: freed when the last comes back */
	struct dsn_item *items; /* DSN being queued */
	size_t n_items;
	struct event *timer;
	struct smsg *hnext;
};

struct sjob {
	struct sched *s;
	const struct config *cfg; /* held: policy's strings point into it */
	struct smsg *msg;
	struct sdest *dest;
	struct route route;
	struct relay_policy policy;
	struct auth_client_relay_cred cred; /* a smart host's credentials, if any */
	char *rejected;         /* the OAuth token the next hop refused (wiped) */
	int oauth_retried;      /* a refused OAuth token was refreshed once */
	struct delivery d;
	struct qev *evs;        /* the outcomes to record */
	size_t n_evs;
	int err;
	struct sjob *next, *prev; /* every live job, for sched_destroy */
};

struct sched {
	const struct config *cfg; /* held; replaced by sched_reconfigure */
	struct event_base *base;
	struct workers *w;
	struct qstore *qs;
	struct queue *q;
	struct auth_client *users;
	struct dkim_keys *const *dkim; /* the daemon's, replaced by reloads: DSNs are signed */
	struct transport *local, *smtp, *lmtp;
	struct smsg *buckets[SCHED_BUCKETS];
	struct sdests *dests;
	struct sjob *jobs;
	int stopping;
};

/* scheduler.c: the message table and a message's removal */
struct smsg **sched_find(struct sched *s, const char *id);
struct smsg *sched_msg_get(struct sched *s, const char *id);
void sched_msg_free(struct smsg *msg);
void sched_msg_drop(struct smsg *msg);
unsigned sched_backoff(const struct config *cfg, unsigned attempts);
void sched_removed_work(void *arg);
void sched_removed_done(void *arg);

/* sched_load.c */
void sched_load(struct smsg *msg);

/* sched_round.c */
void sched_round(struct smsg *msg);
void sched_round_end(struct smsg *msg);

/* sched_outcome.c */
void sched_job_free(struct sjob *j);
struct sjob *sched_job_new(struct sched *s, struct smsg *msg);
void sched_record(struct sjob *j);
struct qev *sched_ev_add(struct sjob *j, enum qev_kind kind, size_t rcpt, time_t when);
struct transport *sched_transport(const struct sjob *j);
void sched_log_attempt(struct sjob *j, const struct env_rcpt *r, const char *result,
		       const char *status, const char *diag, time_t now, unsigned retry);
void sched_outcomes(struct sjob *j);

/* sched_deliver.c */
void sched_dest_run_cb(void *job, const char *suspended);

/* sched_dsn.c */
size_t sched_collect_dsn(struct smsg *msg, time_t now, struct qev **evs_r, size_t *nev_r);
void sched_notify_record(struct smsg *msg, struct qev *evs, size_t nev);
void sched_notified(void *arg, int err);

#endif
