/* smtp_transport: the SMTP transport (deliver/transport.h) for MX delivery and smart
 * hosts, and in its LMTP flavour (RFC 2033) for local mailboxes behind an LMTP server.
 * A delivery (a job) finds its addresses (DNS, or none for an address literal or an
 * LMTP server), tries them in order through relay_session, and ends with a result for
 * every recipient. Connections that carried a message are kept idle for a moment,
 * keyed by destination and relay user, and carry the next message there. */
#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "config/config.h"
#include "net/dns.h"
#include "net/tls_client.h"
#include "queue/envelope.h"
#include "relay/mtasts.h"
#include "relay/relay_dane.h"
#include "relay/relay_int.h"
#include "relay/relay_tlsrpt.h"
#include "relay/requiretls.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct ctx_ent {
	char *ca;                 /* NULL: the system store */
	SSL_CTX *ctx;
};

struct smtp_transport {
	struct transport base;
	const struct config *cfg;  /* held; replaced by smtp_reconfigure */
	struct event_base *ev;
	struct dns *dns;
	struct workers *w;
	struct ctx_ent *ctxs;
	size_t n_ctxs;
	struct relay_sess **idle;
	size_t n_idle;
	struct relay_job *jobs;
	int lmtp;                 /* LMTP to ROUTE_LMTP servers, not SMTP */
	struct mtasts *sts;       /* MTA-STS policies (MX delivery only) */
	struct tlsrpt *rpt;       /* TLS-RPT counts, or NULL */
};

struct relay_job {
	struct smtp_transport *t;
	struct delivery *d;
	delivery_done_fn done;
	void *arg;
	char *key;
	struct dns_query *q;
	struct dns_result *res;
	struct dns_target literal;   /* an address literal needs no DNS */
	char *lmtp_host;             /* LMTP over TCP: the server's name or address, bare */
	struct dns_target *targets;
	size_t n_targets, ti, tried;
	struct relay_sess *sess;
	struct relay_fail last;
	int have_last, retried_fresh, clear_retry;
	/* The route's relay_tls (mta-sts and auto of a smart host made may and dane);
	 * cur_tls: the policy of the attempt in progress. */
	int tls, cur_tls;
	struct relay_dane *dane;     /* the DANE step, per host */
	const char *skip_label;      /* a skipped host's tls_policy, for the log when all fail */
	size_t n_perm;               /* of tried: hosts that can never take it (REQUIRETLS) */
	struct mtasts_req *stsq;  /* the domain's MTA-STS policy, being looked up */
	int sts_known;            /* looked up (or not wanted): targets may be tried */
	int sts_mode;             /* enum mtasts_mode; MTASTS_NONE: no policy applies */
	int sts_failed;           /* the domain announced a policy that could not be had: */
	const char *sts_fail_result; /* its RFC 8460 result type, */
	char *sts_fail_why;       /* and why (mtasts_verdict) */
	struct mtasts_policy sts_policy;
	char *sts_reported;       /* the last host whose mismatch was logged */
	struct event *ev_done;
	struct relay_job *next, **pprev;
};

static struct smtp_transport *tp(struct transport *t) { return (struct smtp_transport *)t; }

struct delivery *relay_job_delivery(struct relay_job *j) { return j->d; }
const struct config *relay_job_config(struct relay_job *j) { return j->t->cfg; }
unsigned relay_reuse_limit(struct smtp_transport *t)
{
	return t->cfg->relay_reuse_limit ? t->cfg->relay_reuse_limit : 1;
}
unsigned relay_idle_time(struct smtp_transport *t) { return t->cfg->relay_idle_time; }
const struct config *relay_config(struct smtp_transport *t) { return t->cfg; }
struct event_base *relay_base(struct smtp_transport *t) { return t->ev; }
struct workers *relay_workers(struct smtp_transport *t) { return t->w; }

/* ---- the end of a job ------------------------------------------------------------- */

static void job_free(struct relay_job *j)
{
	mtasts_cancel(j->stsq);
	mtasts_policy_clear(&j->sts_policy);
	free(j->sts_reported);
	free(j->sts_fail_why);
	if (j->q)
		dns_cancel(j->q);
	if (j->res)
		dns_result_free(j->res);
	relay_sess_free(j->sess);
	relay_dane_destroy(&j->dane);
	if (j->ev_done)
		event_free(j->ev_done);
	if (j->pprev) {
		*j->pprev = j->next;
		if (j->next)
			j->next->pprev = j->pprev;
	}
	free(j->key);
	free(j->lmtp_host);
	free(j);
}

static void job_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_job *j = arg;
	delivery_done_fn done = j->done;
	struct delivery *d = j->d;
	void *darg = j->arg;
	job_free(j);
	done(d, darg);
}

/* done is called from the loop, never from inside a call of ours. */
static void job_finish(struct relay_job *j)
{
	struct timeval tv = { 0, 0 };
	evtimer_add(j->ev_done, &tv);
}

/* The same outcome for every recipient still without one. dest_ok: the destination
 * itself answered (a permanent DNS answer is an answer, not an outage). */
static void job_fail_all_as(struct relay_job *j, enum delivery_result res, const char *status,
			    const char *diag, int dest_ok)
{
	for (size_t i = 0; i < j->d->n_rcpts; i++)
		if (j->d->rcpts[i].result == DR_NONE)
			transport_delivery_set(&j->d->rcpts[i], res, status, diag);
	j->d->dest_ok = dest_ok;
	job_finish(j);
}

static void job_fail_all(struct relay_job *j, enum delivery_result res, const char *status,
			 const char *diag)
{
	job_fail_all_as(j, res, status, diag, 0);
}

/* ---- connection cache ------------------------------------------------------------- */

void relay_cache_put(struct smtp_transport *t, struct relay_sess *s)
{
	t->idle = xrealloc(t->idle, (t->n_idle + 1) * sizeof(*t->idle));
	t->idle[t->n_idle++] = s;
	relay_cache_idle_start(s);
}

void relay_cache_drop(struct smtp_transport *t, struct relay_sess *s)
{
	for (size_t i = 0; i < t->n_idle; i++)
		if (t->idle[i] == s) {
			t->idle[i] = t->idle[--t->n_idle];
			return;
		}
}

static struct relay_sess *cache_take(struct smtp_transport *t, const char *key)
{
	for (size_t i = 0; i < t->n_idle; i++)
		if (strcmp(relay_sess_key(t->idle[i]), key) == 0) {
			struct relay_sess *s = t->idle[i];
			t->idle[i] = t->idle[--t->n_idle];
			return s;
		}
	return NULL;
}

/* ---- trying addresses ------------------------------------------------------------- */

static unsigned relay_target_port(const struct dns_target *tg)
{
	const struct sockaddr *sa = (const struct sockaddr *)&tg->addr;
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

static SSL_CTX *ctx_for(struct smtp_transport *t, const char *ca, char **err_r)
{
	SSL_CTX *ctx;
	for (size_t i = 0; i < t->n_ctxs; i++)
		if ((!ca && !t->ctxs[i].ca) || (ca && t->ctxs[i].ca && strcmp(ca, t->ctxs[i].ca) == 0))
			return t->ctxs[i].ctx;
	if (!(ctx = tls_client_ctx_create(ca, 0, err_r)))
		return NULL;
	t->ctxs = xrealloc(t->ctxs, (t->n_ctxs + 1) * sizeof(*t->ctxs));
	t->ctxs[t->n_ctxs++] = (struct ctx_ent){ ca ? xstrdup(ca) : NULL, ctx };
	return ctx;
}

static void job_connect(struct relay_job *j, const struct relay_dane_verdict *v);
static void job_try(struct relay_job *j);

/* TLS-RPT counts MX deliveries, never those of its own reports (RFC 8460: no loops). */
static struct tlsrpt *job_tlsrpt(const struct relay_job *j)
{
	if (j->t->lmtp || j->d->route->kind != ROUTE_MX || tlsrpt_is_report(j->t->rpt, j->d->sender))
		return NULL;
	return j->t->rpt;
}

/* A host the DANE step ruled out: the reason stands if nothing else works. */
static void job_skip(struct relay_job *j, const struct relay_dane_verdict *v)
{
	log_info("relay %s: %s", j->d->id, v->why);
	relay_tlsrpt_skipped(job_tlsrpt(j), j->d->route->target, j->targets[j->ti].host, v);
	memset(&j->last, 0, sizeof(j->last));
	snprintf(j->last.reason, sizeof(j->last.reason), "%s", v->why);
	snprintf(j->last.status, sizeof(j->last.status), "%s", v->status);
	j->have_last = 1;
	j->skip_label = v->label;
	j->clear_retry = 0;
	j->ti++;
	j->tried++;
}

static int job_out_of_targets(struct relay_job *j)
{
	unsigned max = j->t->cfg->relay_max_addresses ? j->t->cfg->relay_max_addresses : 10;
	if (j->ti < j->n_targets && j->tried < max)
		return 0;
	if (j->skip_label) /* a host skipped last; a session that failed said its own */
		j->d->tls_policy = j->skip_label;
	/* Permanent only when every host tried said so (REQUIRETLS not offered); one
	 * that failed otherwise may take it at the next try. */
	if (j->have_last && j->last.permanent && j->n_perm == j->tried) {
		job_fail_all(j, DR_PERMFAIL, j->last.status, j->last.reason);
		return 1;
	}
	if (j->have_last && j->last.status[0] == '5')
		j->last.status[0] = '4';
	job_fail_all(j, DR_TEMPFAIL, j->have_last ? j->last.status : "4.4.1",
		     j->have_last ? j->last.reason : "no address to try");
	return 1;
}

/* MTA-STS's first test of a host (RFC 8461 4.1): its name in the policy's mx patterns.
 * Returns -1 when enforce mode forbids the host (the job goes on to the next). */
static int job_sts_gate(struct relay_job *j, const struct dns_target *tg)
{
	const char *domain = j->d->route->target;
	int first;
	if (j->sts_mode == MTASTS_NONE || mtasts_mx_match(&j->sts_policy, tg->host))
		return 0;
	/* One report per host, not per address. */
	first = !j->sts_reported || strcmp(j->sts_reported, tg->host) != 0;
	if (first) {
		free(j->sts_reported);
		j->sts_reported = xstrdup(tg->host);
		mtasts_report(domain, (enum mtasts_mode)j->sts_mode, tg->host, NULL,
			      MTASTS_FAIL_MX_MISMATCH, "MX host not in the policy's mx patterns");
		relay_tlsrpt_mx_mismatch(job_tlsrpt(j), domain, tg->host, j->sts_mode, &j->sts_policy);
	}
	if (j->sts_mode != MTASTS_ENFORCE)
		return 0;
	memset(&j->last, 0, sizeof(j->last));
	snprintf(j->last.reason, sizeof(j->last.reason),
		 "%s: MTA-STS policy of %s (enforce): MX host not in the policy's mx patterns",
		 tg->host, domain);
	snprintf(j->last.status, sizeof(j->last.status), "4.7.5");
	j->have_last = 1;
	j->skip_label = "mta-sts-enforce";
	return -1;
}

/* The policy of a host DANE does not decide for: verify under an MTA-STS policy in
 * enforce mode ("the MX ... MUST ... offer a valid PKIX-based TLS certificate", RFC
 * 8461 4.2), else the route's, where dane, mta-sts and auto are may (testing mode
 * delivers as before, and reports). */
static int job_plain_tls(const struct relay_job *j)
{
	if (j->sts_mode == MTASTS_ENFORCE)
		return RELAY_TLS_VERIFY;
	return j->tls >= RELAY_TLS_DANE ? RELAY_TLS_MAY : j->tls;
}

static void job_dane_done(void *arg, const struct relay_dane_verdict *v)
{
	struct relay_job *j = arg;
	if (v->kind != RDV_SKIP) {
		job_connect(j, v);
		return;
	}
	job_skip(j, v);
	job_try(j);
}

/* The next address, through the DANE step when the policy asks for it (the only
 * place DANE enters the transport: relay_dane.h decides, the session enforces). */
static void job_try(struct relay_job *j)
{
	int policy = j->tls;

	for (;;) {
		const struct relay_dane_verdict *v;
		struct dns_target *tg;
		if (job_out_of_targets(j))
			return;
		tg = &j->targets[j->ti];
		/* An enforce policy's mx patterns hold for every host, DANE or not: leaving
		 * a host out only narrows the choice, it never overrides a DANE failure
		 * (RFC 8461 2). Its TLS checks are for the hosts DANE does not cover. */
		if (job_sts_gate(j, tg) < 0) {
			j->ti++;
			continue;
		}
		/* dane and auto without a trust anchor are may and mta-sts word for word:
		 * nothing could be secure, and nothing about DANE is logged or counted. */
		if (j->t->lmtp || !relay_dane_policy(policy) ||
		    (policy != RELAY_TLS_DANE_ONLY && !j->t->cfg->dns_trust_anchor)) {
			job_connect(j, NULL);
			return;
		}
		if (!j->dane)
			j->dane = relay_dane_create();
		v = relay_dane_step(j->dane, j->t->dns, policy, j->res && j->res->mx_secure, tg,
				    relay_target_port(tg), job_dane_done, j);
		if (!v)
			return; /* the TLSA lookup answers job_dane_done */
		if (v->kind != RDV_SKIP) {
			job_connect(j, v);
			return;
		}
		job_skip(j, v);
	}
}

static void job_connect(struct relay_job *j, const struct relay_dane_verdict *v)
{
	struct smtp_transport *t = j->t;
	struct delivery *d = j->d;
	const struct relay_policy *pol = d->policy;
	struct relay_sess_params p = { .key = j->key };
	char addr[NI_MAXHOST], *err = NULL;
	const char *relaxed;
	struct dns_target *tg = &j->targets[j->ti];

	if (getnameinfo((struct sockaddr *)&tg->addr, tg->addrlen, addr, sizeof(addr), NULL, 0,
			NI_NUMERICHOST) != 0)
		snprintf(addr, sizeof(addr), "?");
	/* The name the certificate must carry: the MX host, the LMTP server's name or
	 * address (without the port), or the smart host as configured. */
	p.host = d->route->kind == ROUTE_MX || t->lmtp ? tg->host : d->route->target;
	p.addr_text = tg->addr.ss_family == AF_UNIX ? "local" : addr;
	if (v && v->kind != RDV_MAY) {
		/* RFC 7672: TLS mandatory with TLSA records, authenticated when usable. */
		p.tls = RELAY_TLS_ENCRYPT;
		p.dane = v->kind == RDV_AUTH ? v->tlsa : NULL;
		p.dane_label = v->label;
		p.dane_domain = d->route->kind == ROUTE_MX ? d->route->target : NULL;
		p.dane_port = relay_target_port(tg);
	} else {
		/* No DANE for this host: the domain's MTA-STS policy where there is one
		 * (the log names it), else the DANE step's word for why not. */
		p.tls = job_plain_tls(j);
		if (j->sts_mode != MTASTS_NONE) {
			p.sts_domain = d->route->target;
			p.sts_mode = j->sts_mode;
		} else if (v) {
			p.dane_label = v->label;
		}
	}
	/* REQUIRETLS: a verified certificate where DANE does not decide. */
	p.tls = requiretls_conn_tls(d, t->lmtp, p.tls, v && v->kind != RDV_MAY);
	if ((relaxed = requiretls_label(d, t->lmtp)))
		p.dane_label = relaxed;
	/* LMTP: the policy's lmtp_tls (router_policy: none for a UNIX socket), no AUTH. */
	p.lmtp = t->lmtp;
	j->cur_tls = p.tls;
	p.tls_disabled = j->clear_retry;
	p.auth_unverified = pol && pol->auth_unverified;
	if (d->route->kind == ROUTE_RELAY && d->auth_user) {
		p.auth_user = d->auth_user;
		p.auth_password = d->auth_password ? d->auth_password : "";
		p.auth_mech = d->auth_mech;
	}
	if (p.tls != RELAY_TLS_NONE && !(p.ctx = ctx_for(t, pol ? pol->ca : NULL, &err))) {
		job_fail_all(j, DR_TEMPFAIL, "4.7.5", err);
		free(err);
		return;
	}
	if (p.dane && dane_ctx_enable(p.ctx) < 0) {
		job_fail_all(j, DR_TEMPFAIL, "4.7.5", "OpenSSL refused to enable DANE");
		return;
	}
	/* A host DANE decides for reports under DANE, whatever became of MTA-STS. */
	if (j->sts_fail_result && !(v && v->kind != RDV_MAY))
		p.rpt = relay_tlsrpt_sts_failed(job_tlsrpt(j), d->route->target, tg->host,
						p.addr_text, j->sts_fail_result, j->sts_fail_why);
	else
		p.rpt = relay_tlsrpt_ticket(job_tlsrpt(j), d->route->target, tg->host, v,
					    j->sts_mode, &j->sts_policy);
	j->sess = relay_sess_open(t, j, (struct sockaddr *)&tg->addr, tg->addrlen, &p);
}

/* Both the MX hosts and (with relay_tls mta-sts or auto) the domain's policy are known. */
static void job_targets_ready(struct relay_job *j)
{
	char why[400];
	if (requiretls_domain_check(j->d, j->t->lmtp, j->res, j->sts_mode, why, sizeof(why)) < 0) {
		/* A policy announced but not fetched may vouch for the MX next time: wait for
		 * it rather than bounce on a web server's bad minute. */
		if (j->sts_failed)
			job_fail_all(j, DR_TEMPFAIL, "4.7.30", why);
		else
			job_fail_all_as(j, DR_PERMFAIL, "5.7.30", why, 1);
		return;
	}
	j->targets = j->res->targets;
	j->n_targets = j->res->n_targets;
	j->ti = j->tried = 0;
	job_try(j);
}

static void job_sts_done(void *arg, const struct mtasts_verdict *v)
{
	struct relay_job *j = arg;
	j->stsq = NULL;
	j->sts_known = 1;
	j->sts_failed = v->failed;
	j->sts_fail_result = v->failed ? v->fail_result : NULL;
	free(j->sts_fail_why);
	j->sts_fail_why = v->failed && v->fail_why ? xstrdup(v->fail_why) : NULL;
	mtasts_policy_clear(&j->sts_policy);
	j->sts_mode = MTASTS_NONE;
	if (v->have) {
		j->sts_mode = (int)v->policy->mode;
		mtasts_policy_copy(&j->sts_policy, v->policy);
	}
	if (j->res && j->res->status == DNS_OK && !j->q)
		job_targets_ready(j);
}

/* The LMTP server is our own configuration, not the sender's choice: whatever DNS
 * says (NXDOMAIN included), the mail waits for the name or the record to be fixed. */
static void job_lmtp_unresolved(struct relay_job *j, const struct dns_result *res)
{
	char why[400];
	snprintf(why, sizeof(why), "LMTP server %s: %s", j->d->route->target, res->detail);
	log_warnx("lmtp %s: cannot find the address of the LMTP server %s (%s); deferred: "
		  "check the name in lmtp and the DNS", j->d->id, j->d->route->target, res->detail);
	job_fail_all(j, DR_TEMPFAIL, "4.4.3", why);
}

static void job_dns_done(void *arg, struct dns_result *res)
{
	struct relay_job *j = arg;
	j->q = NULL;
	/* A second resolution (a reused connection died) replaces the first. */
	if (j->res)
		dns_result_free(j->res);
	j->res = res;
	if (j->t->lmtp && res->status != DNS_OK) {
		job_lmtp_unresolved(j, res);
		return;
	}
	switch (res->status) {
	case DNS_OK:
		if (j->sts_known)
			job_targets_ready(j);
		return;
	case DNS_NULLMX:
		job_fail_all_as(j, DR_PERMFAIL, "5.1.10", res->detail, 1);
		return;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		job_fail_all_as(j, DR_PERMFAIL, "5.1.2", res->detail, 1);
		return;
	case DNS_LOOP:
		job_fail_all_as(j, DR_PERMFAIL, "5.4.6", res->detail, 1);
		return;
	case DNS_TEMPFAIL:
	default:
		job_fail_all(j, DR_TEMPFAIL, "4.4.3", res->detail);
		return;
	}
}

static void job_resolve(struct relay_job *j)
{
	struct smtp_transport *t = j->t;
	const struct route *r = j->d->route;
	unsigned port = r->port ? r->port : t->cfg->relay_port ? t->cfg->relay_port : 25;
	unsigned max = t->cfg->relay_max_addresses ? t->cfg->relay_max_addresses : 10;
	enum ip_family fam = t->cfg->relay_ip_family;

	if (t->lmtp) {
		int rc;
		free(j->lmtp_host);
		if ((rc = relay_lmtp_target(r->target, &j->literal, &j->lmtp_host, &port)) < 0) {
			job_fail_all(j, DR_TEMPFAIL, "4.3.5", "not an LMTP server address");
			return;
		}
		j->sts_known = 1; /* no MTA-STS for LMTP */
		if (rc == 0) {
			j->targets = &j->literal;
			j->n_targets = 1;
			j->ti = j->tried = 0;
			job_try(j);
			return;
		}
	}
	if (r->kind == ROUTE_RELAY && relay_literal_target(r->target, port, &j->literal) == 0) {
		j->targets = &j->literal;
		j->n_targets = 1;
		j->ti = j->tried = 0;
		job_try(j);
		return;
	}
	if (!t->dns) {
		job_fail_all(j, DR_TEMPFAIL, "4.4.3", "no DNS resolver");
		return;
	}
	/* The policy is looked up beside the MX, once per delivery; a smart host has
	 * none (mta-sts is may there, auto is dane). */
	if (!j->sts_known && !j->stsq) {
		if (r->kind == ROUTE_MX && t->sts &&
		    (j->tls == RELAY_TLS_MTA_STS || j->tls == RELAY_TLS_AUTO ||
		     requiretls_wants_sts(j->d, t->lmtp)))
			j->stsq = mtasts_lookup(t->sts, r->target, job_sts_done, j);
		else
			j->sts_known = 1;
	}
	if (j->res) {
		dns_result_free(j->res);
		j->res = NULL;
	}
	if (t->lmtp)
		j->q = dns_resolve_host(t->dns, j->lmtp_host, fam, port, max, job_dns_done, j);
	/* RELAY without brackets: its MX first, as Postfix does for relayhost. */
	else if (r->kind == ROUTE_RELAY && r->literal)
		j->q = dns_resolve_host(t->dns, r->target, fam, port, max, job_dns_done, j);
	else
		j->q = dns_resolve_mx(t->dns, r->target, fam, port, t->cfg->hostname, max,
				      job_dns_done, j);
}

/* ---- called by the session -------------------------------------------------------- */

void relay_job_session_ready(struct relay_job *j, struct relay_sess *s)
{
	relay_sess_transact(s, j);
}

void relay_job_failed(struct relay_job *j, struct relay_sess *s, const struct relay_fail *f)
{
	j->sess = NULL;
	j->last = *f;
	j->have_last = 1;
	j->skip_label = NULL;
	if (f->reused && !j->retried_fresh) {
		/* A cached connection that died while idle says nothing of the host. */
		j->retried_fresh = 1;
		job_resolve(j);
		return;
	}
	if (f->final) {
		job_fail_all(j, DR_TEMPFAIL, f->status, f->reason);
		return;
	}
	if (f->tls_handshake && j->cur_tls == RELAY_TLS_MAY && !j->clear_retry) {
		/* Opportunistic TLS that fails is no reason to defer: once more in clear. */
		log_info("relay %s: %s; retrying without TLS", j->d->id, f->reason);
		j->clear_retry = 1;
		job_try(j);
		return;
	}
	j->clear_retry = 0;
	j->n_perm += f->permanent != 0;
	j->ti++;
	j->tried++;
	job_try(j);
}

/* LMTP: a recipient whose mailbox was another's in this delivery (two aliases of one
 * user) was not sent again; it shares that recipient's outcome. */
static void job_share_mailboxes(struct relay_job *j)
{
	struct delivery *d = j->d;
	for (size_t i = 0; i < d->n_rcpts; i++) {
		const char *box = d->env->rcpts[d->rcpts[i].index].mailbox;
		if (d->rcpts[i].result != DR_NONE || !box)
			continue;
		for (size_t k = 0; k < i; k++) {
			const char *other = d->env->rcpts[d->rcpts[k].index].mailbox;
			if (other && strcmp(other, box) == 0 && d->rcpts[k].result != DR_NONE) {
				transport_delivery_set(&d->rcpts[i], d->rcpts[k].result,
						       d->rcpts[k].status, d->rcpts[k].diag);
				break;
			}
		}
	}
}

void relay_job_tx_done(struct relay_job *j)
{
	if (j->t->lmtp)
		job_share_mailboxes(j);
	j->sess = NULL;
	j->d->dest_ok = 1;
	job_finish(j);
}

/* ---- the transport ---------------------------------------------------------------- */

/* The destination (route block included: its TLS policy, route.h) and the relay
 * user: connections are shared by neither other destinations nor other credentials,
 * nor by messages RFC 8689 treats otherwise. A reload closes the idle ones, so a
 * block's name stands for one policy here. */
static char *job_key(const struct delivery *d, int lmtp)
{
	char *dest = route_dest(d->route);
	char *k = xasprintf("%s|%s%s", dest,
			    d->route->kind == ROUTE_RELAY && d->auth_user ? d->auth_user : "",
			    requiretls_key_tag(d, lmtp));
	free(dest);
	return k;
}

/* Received: fields in the header section. */
static void smtp_deliver(struct transport *tr, struct delivery *d, delivery_done_fn done, void *arg)
{
	struct smtp_transport *t = tp(tr);
	struct relay_job *j = xcalloc(1, sizeof(*j));
	struct relay_sess *s;
	unsigned hops;

	j->t = t;
	j->d = d;
	j->done = done;
	j->arg = arg;
	j->ev_done = evtimer_new(t->ev, job_done_cb, j);
	j->next = t->jobs;
	if (t->jobs)
		t->jobs->pprev = &j->next;
	t->jobs = j;
	j->pprev = &t->jobs;
	d->dest_ok = 1;
	/* "TLS-Required: No" makes dane, mta-sts and auto `may` (relay/requiretls.h). */
	j->tls = requiretls_route_tls(d, t->lmtp, d->policy ? d->policy->tls : RELAY_TLS_MAY);

	hops = d->hops;
	if (t->cfg->max_received_headers && hops > t->cfg->max_received_headers) {
		char why[120];
		snprintf(why, sizeof(why), "too many hops (%u Received: header fields): a mail loop?",
			 hops);
		job_fail_all(j, DR_PERMFAIL, "5.4.6", why);
		d->dest_ok = 1; /* the message's fault, not the destination's */
		return;
	}
	if (t->lmtp ? d->route->kind != ROUTE_LMTP
		    : d->route->kind != ROUTE_MX && d->route->kind != ROUTE_RELAY) {
		job_fail_all(j, DR_TEMPFAIL, "4.3.5", t->lmtp ? "not an LMTP route" : "not an SMTP route");
		return;
	}
	j->key = job_key(d, t->lmtp);
	if ((s = cache_take(t, j->key))) {
		j->sess = s;
		relay_sess_transact(s, j);
		return;
	}
	job_resolve(j);
}

static void smtp_ctxs_clear(struct smtp_transport *t)
{
	for (size_t i = 0; i < t->n_ctxs; i++) {
		SSL_CTX_free(t->ctxs[i].ctx); /* connections hold their own reference */
		free(t->ctxs[i].ca);
	}
	free(t->ctxs);
	t->ctxs = NULL;
	t->n_ctxs = 0;
}

static void smtp_destroy(struct transport *tr)
{
	struct smtp_transport *t = tp(tr);
	/* Deliveries in flight are dropped without their done: the scheduler that
	 * would receive them is going away too. */
	while (t->jobs)
		job_free(t->jobs);
	/* Idle connections are closed without QUIT: the daemon's loop does not run
	 * again, so a queued QUIT would never be written and its session never freed. */
	for (size_t i = 0; i < t->n_idle; i++)
		relay_sess_free(t->idle[i]);
	free(t->idle);
	smtp_ctxs_clear(t);
	mtasts_destroy(&t->sts);
	config_release(&t->cfg);
	free(t);
}

struct transport *transport_lmtp_create(const struct config *cfg, struct event_base *base,
					struct dns *dns, struct workers *w)
{
	/* Created without DNS, then given it: no MTA-STS state for LMTP. */
	struct transport *tr = transport_smtp_create(cfg, base, NULL, w);
	tr->name = "lmtp";
	tp(tr)->lmtp = 1;
	tp(tr)->dns = dns;
	return tr;
}

static void smtp_reconfigure(struct transport *tr, const struct config *cfg)
{
	struct smtp_transport *t = tp(tr);
	const struct config *old = t->cfg;
	t->cfg = config_ref(cfg);
	config_release(&old);
	/* Opened under the old policy (TLS, CA, credentials): not for new deliveries. */
	for (size_t i = 0; i < t->n_idle; i++)
		relay_sess_close(t->idle[i]);
	t->n_idle = 0;
	/* CA files are read again when next needed: one renewed in place is taken. */
	smtp_ctxs_clear(t);
	if (t->sts)
		mtasts_reconfigure(t->sts, cfg);
}

void transport_smtp_set_tlsrpt(struct transport *tr, struct tlsrpt *r)
{
	tp(tr)->rpt = r;
}

struct transport *transport_smtp_create(const struct config *cfg, struct event_base *base,
					struct dns *dns, struct workers *w)
{
	struct smtp_transport *t = xcalloc(1, sizeof(*t));
	t->base.name = "smtp";
	t->base.deliver = smtp_deliver;
	t->base.destroy = smtp_destroy;
	t->base.reconfigure = smtp_reconfigure;
	t->cfg = config_ref(cfg);
	t->ev = base;
	t->dns = dns;
	t->w = w;
	if (dns)
		t->sts = mtasts_create(cfg, base, dns);
	return &t->base;
}
