/* cursusd: the daemon. Loads the configuration, opens the stores and listeners,
 * resumes the queue, and runs one event loop for every session. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth_client.h"
#include "auth/auth_server.h"
#include "auth/auth_spawn.h"
#include "config/config.h"
#include "daemon/control.h"
#include "daemon/local.h"
#include "daemon/privdrop.h"
#include "daemon/reload.h"
#include "daemon/svcnotify.h"
#include "deliver/scheduler.h"
#include "deliver/transport.h"
#include "dkim/dkim_keys.h"
#include "metrics/metrics.h"
#include "metrics/metrics_http.h"
#include "net/dns.h"
#include "net/tls.h"
#include "queue/qstore.h"
#include "queue/queue.h"
#include "relay/tlsrpt.h"
#include "sasl/authlimit.h"
#include "smtp/session.h"
#include "smtp/trace.h"
#include "util/addrcount.h"
#include "util/fsutil.h"
#include "util/workers.h"
#include "util/xmalloc.h"

static void usage(void)
{
	fprintf(stderr, "usage: cursusd [-d] [-n] [-c FILE]\n"
			"  -c, --config FILE   configuration (default " CURSUS_DEFAULT_CONFIG ")\n"
			"  -d, --foreground    stay in the foreground, log to stderr\n"
			"  -n, --check         check the configuration and exit\n");
	exit(2);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	session_accept(arg, fd, sa, salen);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;
	for (size_t i = 0; i < srv->n_listeners; i++)
		evconnlistener_enable(srv->listeners[i]->evl);
	log_info("smtp event=accept-resumed sessions=%u", srv->nsessions);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct smtp_listener *l = arg;
	struct smtp_server *srv = l->srv;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {1, 0};

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warn("smtp event=accept-error listener=%s", l->lc->name);
		return;
	}
	/* Out of descriptors: the pending connection stays in the backlog and would make
	 * accept fail again at once, forever. Keep serving the sessions we have and try
	 * again in a second. */
	if (evtimer_pending(srv->accept_resume, NULL))
		return;
	for (size_t i = 0; i < srv->n_listeners; i++)
		evconnlistener_disable(srv->listeners[i]->evl);
	log_warnx("smtp event=accept-paused reason=\"%s\" sessions=%u retry=1s",
		  evutil_socket_error_to_string(err), srv->nsessions);
	evtimer_add(srv->accept_resume, &tv);
}

static struct smtp_listener *listen_on(struct smtp_server *srv, const struct config *cfg,
				       const struct listener_conf *lc)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char *spec = strchr(lc->host, ':') ? xasprintf("[%s]:%s", lc->host, lc->port)
					   : xasprintf("%s:%s", lc->host, lc->port);
	struct smtp_listener *l = xcalloc(1, sizeof(*l));

	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0)
		fatalx("listener %s: bad address %s", lc->name, spec);
	l->srv = srv;
	l->cfg = config_ref(cfg);
	l->lc = lc;
	/* V6ONLY so that "[::]:25" and "0.0.0.0:25" can both be configured. */
	l->evl = evconnlistener_new_bind(srv->base, on_accept, l,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
						 (ss.ss_family == AF_INET6 ? LEV_OPT_BIND_IPV6ONLY : 0),
					 1024, (struct sockaddr *)&ss, sslen);
	if (!l->evl)
		fatal("listener %s: cannot listen on %s", lc->name, spec);
	evconnlistener_set_error_cb(l->evl, on_accept_error);
	log_info("listen name=%s role=%s address=%s tls=%s", lc->name, config_role_name(lc->role), spec,
		 lc->tls == TLS_IMPLICIT ? "implicit" : lc->tls == TLS_STARTTLS ? "starttls" : "none");
	reload_cleartext_warn(lc);
	free(spec);
	return l;
}

/* The gauges read at scrape time; the counters are counted where they happen. */
struct daemon_metrics {
	struct smtp_server *srv;
	struct sched *sched;
};

static void metrics_collect(void *arg)
{
	struct daemon_metrics *dm = arg;
	struct sched_stats st;
	for (size_t i = 0; i < dm->srv->n_listeners; i++)
		metrics_set(METRIC_SESSIONS, dm->srv->listeners[i]->nsessions,
			    dm->srv->listeners[i]->lc->name, NULL, NULL);
	if (!dm->sched)
		return;
	sched_stats(dm->sched, &st);
	metrics_set(METRIC_QUEUE_MESSAGES, (long long)st.messages, NULL, NULL, NULL);
	metrics_set(METRIC_QUEUE_RECIPIENTS, (long long)st.recipients, NULL, NULL, NULL);
	metrics_set(METRIC_QUEUE_OLDEST, st.oldest_age, NULL, NULL, NULL);
}

/* The series known in advance start at 0, so that a rate over them is defined before
 * their first event. */
static void metrics_series_init(const struct smtp_server *srv, const struct transport *const *ts, size_t nt)
{
	static const char *const results[] = {"delivered", "deferred", "bounced"};
	for (size_t i = 0; i < srv->n_listeners; i++) {
		const char *name = srv->listeners[i]->lc->name;
		metrics_add(METRIC_SESSIONS_TOTAL, 0, name, NULL, NULL);
		metrics_add(METRIC_ACCEPTED, 0, name, NULL, NULL);
	}
	for (size_t i = 0; i < nt; i++)
		for (size_t r = 0; r < 3; r++)
			metrics_add(METRIC_DELIVERIES, 0, ts[i]->name, results[r], NULL);
}

/* Thousands of sessions need thousands of descriptors: take the hard limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("setrlimit RLIMIT_NOFILE");
	}
}

/* SIGHUP: re-read the configuration and apply what can change at runtime
 * (daemon/reload.h); the rest waits for a restart, named in a warning. */

/* Never through a link planted at path: that would write wherever it points. */
static void pid_file_write(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid()), e;
	if ((e = fs_mkparent(path, 0755)) != 0 ||
	    (e = fs_write_replace(path, buf, (size_t)n, 0644)) != 0)
		log_warnx("pid_file %s: %s", path, strerror(e));
}

/* Commits notify the scheduler from queue threads, through the delivery workers; at
 * shutdown those workers go first (their DSNs still commit to the queue), so the
 * notices stop before them. A commit not notified is found by the next start. */
static pthread_mutex_t notify_mu = PTHREAD_MUTEX_INITIALIZER;
static int notify_closed;

static void notify_sched(void *sched, const char *id)
{
	pthread_mutex_lock(&notify_mu);
	if (!notify_closed)
		sched_enqueue_cb(sched, id);
	pthread_mutex_unlock(&notify_mu);
}

static void notify_close(void)
{
	pthread_mutex_lock(&notify_mu);
	notify_closed = 1;
	pthread_mutex_unlock(&notify_mu);
}

/* SIGHUP as the service manager sees it: reloading until the new configuration is in
 * place (or refused, the old one kept), then ready again. */
/* A self-signed key made at this start is root's alone (0600, in a 0700 directory); the
 * mail user reads it again on SIGHUP (docs/reload.md), so its group gets read access, as
 * an administrator's key would have. The directory changes only when it is as made
 * (root:root 0700), never one of the administrator's such as /etc/ssl/private. */
static void key_share(const struct config *cfg, gid_t gid)
{
	char *dir = xstrdup(cfg->tls_key), *slash = strrchr(dir, '/');
	struct stat st;

	if (slash && slash != dir)
		*slash = '\0';
	if (chown(cfg->tls_key, 0, gid) < 0 || chmod(cfg->tls_key, 0640) < 0)
		log_warn("tls: cannot give the key %s to group %ld", cfg->tls_key, (long)gid);
	else if (slash && stat(dir, &st) == 0 && st.st_uid == 0 && st.st_gid == 0 &&
		 (st.st_mode & 07777) == 0700 && (chown(dir, 0, gid) < 0 || chmod(dir, 0750) < 0))
		log_warn("tls: cannot give the directory %s to group %ld", dir, (long)gid);
	free(dir);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	svcnotify_reloading();
	(void)reload_apply(arg); /* a failed reload keeps the running configuration: ready */
	svcnotify_ready();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal=%d event=shutdown", (int)sig);
	svcnotify_stopping();
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"foreground", no_argument, NULL, 'd'},
		{"check", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = getenv("CURSUS_CONFIG") ? getenv("CURSUS_CONFIG") : CURSUS_DEFAULT_CONFIG;
	int foreground = 0, check = 0, ch, need_tls = 0;
	struct smtp_server srv = {0};
	struct smtp_listener *ls[65], *local_l; /* the configured listeners, then the local one */
	size_t nl = 0;
	struct config *cfg;
	struct qstore *qs;
	struct workers *dwork;
	struct control *ctl;
	struct sched *sched;
	struct transport *local, *smtp, *lmtp;
	struct tlsrpt *rpt;
	struct dns *dns;
	struct metrics_http *mhttp = NULL;
	struct daemon_metrics dmetrics = {.srv = &srv};
	struct event *sigs[3];
	struct priv_id priv;
	int made_key;
	struct reload_target rt;
	char *err = NULL;

	/* The same binary is cursus-auth, the credential process (auth_spawn.h). */
	if (argc > 1 && strcmp(argv[1], AUTH_SPAWN_ARG) == 0)
		auth_server_main(argc, argv);
	while ((ch = getopt_long(argc, argv, "c:dnh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'd': foreground = 1; break;
		case 'n': check = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (!(cfg = config_load(path, stderr)))
		return 1;
	if (check) {
		printf("%s: configuration OK\n", path);
		config_free(&cfg);
		return 0;
	}
	log_init("cursusd", foreground);
	log_set_debug(cfg->log_debug);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (!foreground && daemon(1, 0) < 0)
		fatal("daemon");

	evthread_use_pthreads();
	srv.base = event_base_new();
	if (!srv.base)
		fatalx("cannot create the event loop");
	/* cfg stays as started (restart-only options are read from it); srv.cfg is the
	 * current configuration, replaced by every reload. */
	srv.cfg = config_ref(cfg);
	srv.trace = trace_rules_load(cfg, stderr);
	srv.clients = addrcount_create(cfg->client_ipv6_prefix);
	for (size_t i = 0; i < cfg->n_client_limit_exempt; i++)
		(void)netlist_add(&srv.client_exempt, cfg->client_limit_exempt[i]); /* "none" adds nothing */
	if (priv_lookup(cfg, &priv, &err) < 0)
		fatalx("%s", err);
	/* As root: the key and auth_client_ca, the queue lock, the ports; then root goes,
	 * before any thread exists, and everything else is opened as the mail user. */
	for (const struct listener_conf *lc = cfg->listeners; lc; lc = lc->next)
		need_tls |= lc->tls != TLS_NONE;
	made_key = need_tls && cfg->tls_self_signed && access(cfg->tls_key, F_OK) != 0;
	if (need_tls && !(srv.tls = tls_server_ctx_create(cfg)))
		fatalx("tls: cannot load certificate %s and key %s", cfg->tls_cert, cfg->tls_key);
	if (made_key && priv.drop)
		key_share(cfg, priv.gid);
	/* DKIM keys too, as root: a key readable by root alone is kept across reloads. */
	if (!(srv.dkim = dkim_keys_load(cfg, NULL, &err)))
		fatalx("dkim: %s", err);
	if (srv.dkim->n)
		log_info("dkim event=keys-loaded keys=%zu", srv.dkim->n);
	if (!(qs = qstore_open(cfg->queue_dir, &err)))
		fatalx("queue: %s", err);
	/* Two daemons on one queue would both deliver every message; the second stops
	 * here, before it changes anything in the queue or binds a port. */
	if ((ch = qstore_lock(qs)) != 0)
		fatalx("queue: %s is in use by another cursusd (lock: %s)", cfg->queue_dir,
		       strerror(ch));
	if (priv_prepare(cfg, &priv, &err) < 0)
		fatalx("privileges: %s", err);
	for (const struct listener_conf *lc = cfg->listeners; lc && nl < 64; lc = lc->next)
		ls[nl++] = listen_on(&srv, cfg, lc);
	if (cfg->metrics_host) {
		metrics_enable();
		if (!(mhttp = metrics_http_create(srv.base, cfg->metrics_host, cfg->metrics_port,
						  cfg->metrics_timeout_ms, metrics_collect, &dmetrics, &err)))
			fatalx("%s", err);
	}
	if (priv_drop(&priv, &err) < 0)
		fatalx("privileges: %s", err);
	if (priv.drop)
		log_info("privileges event=dropped user=%s uid=%ld gid=%ld", cfg->user,
			 (long)priv.uid, (long)priv.gid);
	{
		/* The user database is cursus-auth's alone: this process, which reads the
		 * network, only asks it. One connection per thread that may ask. */
		struct auth_client_conf ac = {
			.user_store = cfg->user_store, .store_timeout_ms = cfg->store_timeout_ms,
			.store_connections = cfg->store_connections,
			.addr_budget = cfg->auth.addr_budget, .account_budget = cfg->auth.account_budget,
			.window = cfg->auth.window, .cooldown = cfg->auth.cooldown,
			.scram_iterations = cfg->scram_iterations,
			.nconns = cfg->worker_threads + cfg->delivery_threads,
			.foreground = foreground, .debug = cfg->log_debug,
		};
		if (!(srv.auth = auth_client_create(srv.base, &ac, &err)))
			fatalx("%s", err);
	}
	{
		struct authlimit_conf ac;
		reload_authlimit_conf(&cfg->auth, &ac);
		srv.authlimit = authlimit_create(&ac);
	}
	srv.workers = workers_create(srv.base, cfg->worker_threads);
	/* Delivery's file work (Maildir writes, journal fsyncs) on its own threads, so it
	 * never delays a session's AUTH, nor widens how many passwords are checked at once. */
	dwork = workers_create(srv.base, cfg->delivery_threads);
	srv.queue = queue_create(cfg->queue_dir, cfg->queue_threads, srv.workers);
	if (!srv.queue)
		fatalx("queue: cannot use %s", cfg->queue_dir);
	if (!(dns = dns_create(srv.base, cfg->dns_resolver, cfg->dns_trust_anchor, &err)))
		fatalx("dns: %s", err);
	dns_set_timeout(dns, cfg->dns_timeout * 1000u);
	local = transport_maildir_create(cfg, dwork);
	smtp = transport_smtp_create(cfg, srv.base, dns, dwork);
	/* SMTP TLS reports (docs/tls-rpt.md): counted by the SMTP transport, mailed
	 * through the queue. */
	rpt = tlsrpt_create(cfg, srv.base, dns, dwork, srv.queue, &srv.dkim);
	transport_smtp_set_tlsrpt(smtp, rpt);
	lmtp = transport_lmtp_create(cfg, srv.base, dns, dwork);
	sched = sched_create(cfg, srv.base, dwork, qs, srv.queue, srv.auth, &srv.dkim, local, smtp,
			     lmtp);
	queue_set_notify(srv.queue, notify_sched, sched);
	/* Made as the mail user, like the control socket, and before it: the directories
	 * it makes must let local users through to it (the control socket's are 0700). */
	if (!(local_l = local_listener_create(&srv, on_accept, on_accept_error)))
		fatalx("local socket: cannot serve %s", cfg->local_socket);
	ls[nl++] = local_l;
	if (!(ctl = control_create(srv.base, cfg->control_socket, sched)))
		fatalx("control socket: cannot serve %s", cfg->control_socket);

	srv.listeners = ls;
	srv.n_listeners = nl;
	dmetrics.sched = sched;
	if (mhttp)
		metrics_series_init(&srv, (const struct transport *const[]){local, smtp, lmtp}, 3);
	srv.accept_resume = evtimer_new(srv.base, accept_resume, &srv);
	log_info("start event=ready hostname=%s queued=%zu", cfg->hostname, queue_recover(srv.queue));

	sigs[0] = evsignal_new(srv.base, SIGTERM, on_signal, srv.base);
	sigs[1] = evsignal_new(srv.base, SIGINT, on_signal, srv.base);
	rt = (struct reload_target){ .srv = &srv, .sched = sched, .dns = dns, .start = cfg };
	sigs[2] = evsignal_new(srv.base, SIGHUP, on_sighup, &rt);
	for (int i = 0; i < 3; i++)
		event_add(sigs[i], NULL);
	pid_file_write(cfg->pid_file);
	svcnotify_ready();
	event_base_dispatch(srv.base);
	metrics_http_destroy(&mhttp);
	control_destroy(&ctl);
	unlink(cfg->pid_file);

	event_free(srv.accept_resume);
	for (size_t i = 0; i < nl; i++) {
		if (ls[i] == local_l) {
			local_listener_destroy(&ls[i], cfg->local_socket);
			continue;
		}
		evconnlistener_free(ls[i]->evl);
		config_release(&ls[i]->cfg);
		free(ls[i]);
	}
	for (int i = 0; i < 3; i++)
		event_free(sigs[i]);
	trace_rules_free(&srv.trace);
	addrcount_destroy(&srv.clients);
	netlist_clear(&srv.client_exempt);
	/* The delivery workers first, so that no file work still uses what the
	 * scheduler owns, while the queue still takes the DSNs they may be writing;
	 * then the queue (its last commits notify no one), its workers, the transports
	 * (no callbacks from them any more), then the scheduler. */
	notify_close();
	workers_destroy(&dwork);
	queue_destroy(&srv.queue);
	workers_destroy(&srv.workers);
	/* After every worker and the queue: no report mail is being written any more. */
	transport_smtp_set_tlsrpt(smtp, NULL);
	tlsrpt_destroy(&rpt);
	dkim_keys_free(&srv.dkim);
	smtp->destroy(smtp);
	lmtp->destroy(lmtp);
	dns_destroy(&dns);
	sched_destroy(&sched);
	local->destroy(local);
	qstore_close(&qs);
	authlimit_destroy(&srv.authlimit);
	auth_client_destroy(&srv.auth);
	if (srv.tls)
		SSL_CTX_free(srv.tls);
	event_base_free(srv.base);
	config_release(&srv.cfg);
	config_free(&cfg);
	metrics_reset();
	log_info("stop event=done");
	return 0;
}
