/* cursus queue: look at and steer the mail queue. list and show read the queue
 * directory (queue_show.c). The others change what the daemon does, so they go to
 * the running daemon through its control socket, which acts at once; when no daemon
 * runs (its queue lock is free, and we take it while we act), hold, release and
 * delete change the queue's journal directly, and flush and bounce, which need the
 * scheduler, say so. Exit codes: 0 ok, 1 no such message or refused, 2 usage,
 * 75 the daemon is not reachable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin.h"
#include "config/config.h"
#include "queue/qctl.h"
#include "queue/qstore.h"
#include "util/xmalloc.h"

/* The request from argv (after "queue"): 0, or -1 for a usage error (said). */
static int queue_request(int argc, char **argv, struct qctl_req *r)
{
	char line[QCTL_LINE_MAX + 1];
	const char *why = NULL;
	size_t len = 0;

	/* Built as the wire line, so the tool and the daemon accept the same forms. */
	for (int i = 1; i < argc; i++) {
		int n = snprintf(line + len, sizeof(line) - len, "%s%s", i > 1 ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(line) - len)
			return admin_usage_error(), -1;
		len += (size_t)n;
	}
	if (qctl_parse(line, len, r, &why) < 0) {
		admin_error("%s", why);
		admin_usage_error();
		return -1;
	}
	return 0;
}

/* Sends r to the daemon. */
static int queue_via_daemon(const char *socket_path, const struct qctl_req *r)
{
	char line[QCTL_LINE_MAX + 2], *reply = NULL;
	int err;

	if (!socket_path || !*socket_path) {
		admin_error("the daemon runs but no control_socket is configured");
		return ADMIN_EXIT_TEMPFAIL;
	}
	qctl_format(r, line, sizeof(line));
	if ((err = admin_control_request(socket_path, line, &reply)) != 0) {
		admin_error("the daemon holds the queue but does not answer on %s: %s", socket_path,
			    strerror(err));
		return ADMIN_EXIT_TEMPFAIL;
	}
	if (strncmp(reply, "ok", 2) == 0 && (reply[2] == ' ' || !reply[2])) {
		qctl_clean(line, sizeof(line), reply[2] ? reply + 3 : "ok");
		printf("%s%s%s\n", r->id, r->id[0] ? ": " : "", line);
		free(reply);
		return ADMIN_EXIT_OK;
	}
	qctl_clean(line, sizeof(line), strncmp(reply, "error ", 6) == 0 ? reply + 6 : reply);
	admin_error("%s%s%s", r->id, r->id[0] ? ": " : "", line);
	free(reply);
	return ADMIN_EXIT_FAIL;
}

/* hold, release or delete with the daemon stopped (we hold the queue's lock). */
static int queue_direct(struct qstore *qs, const struct qctl_req *r)
{
	struct qmsg m;
	struct qev ev = { .when = time(NULL) };
	int err = qstore_load(qs, r->id, 0, &m);

	if (err == ENOENT || err == EBADMSG) {
		admin_error("%s: no such message", r->id);
		return ADMIN_EXIT_FAIL;
	}
	if (err) {
		admin_error("cannot read queued message %s: %s", r->id, strerror(err));
		return ADMIN_EXIT_FAIL;
	}
	if (r->verb == QCTL_DELETE) {
		err = qstore_remove(qs, r->id);
	} else if ((r->verb == QCTL_HOLD) == (m.held != 0)) {
		printf("%s: %s (the daemon is not running)\n", r->id, m.held ? "held" : "released");
		qmsg_clear(&m);
		return ADMIN_EXIT_OK;
	} else {
		ev.kind = r->verb == QCTL_HOLD ? QEV_HOLD : QEV_RELEASE;
		err = qstore_record(qs, r->id, &ev, 1);
	}
	qmsg_clear(&m);
	if (err) {
		admin_error("cannot %s %s: %s", qctl_verb_name(r->verb), r->id, strerror(err));
		return err == ENOENT ? ADMIN_EXIT_FAIL : ADMIN_EXIT_TEMPFAIL;
	}
	printf("%s: %s (the daemon is not running)\n", r->id,
	       r->verb == QCTL_DELETE ? "deleted" : r->verb == QCTL_HOLD ? "held" : "released");
	return ADMIN_EXIT_OK;
}

static int queue_change(struct qstore *qs, const char *socket_path, const struct qctl_req *r)
{
	int err = qstore_lock(qs);

	if (err == EWOULDBLOCK)
		return queue_via_daemon(socket_path, r);
	if (err) {
		admin_error("cannot lock the queue %s: %s", qstore_dir(qs), strerror(err));
		return ADMIN_EXIT_FAIL;
	}
	if (r->verb == QCTL_FLUSH || r->verb == QCTL_BOUNCE) {
		admin_error("the daemon is not running: %s needs it%s", qctl_verb_name(r->verb),
			    r->verb == QCTL_FLUSH ? " (it attempts every message when it starts)" : "");
		return ADMIN_EXIT_TEMPFAIL;
	}
	return queue_direct(qs, r);
}

int cmd_queue(const char *config_path, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct qctl_req req;
	struct config *cfg;
	struct qstore *qs;
	char *err = NULL, *socket_path;
	int ret, json = 0;

	if (strcmp(sub, "list") == 0) {
		if (argc > 3 || (argc == 3 && !(json = strcmp(argv[2], "--json") == 0)))
			return admin_usage_error();
	} else if (strcmp(sub, "show") == 0) {
		if (argc != 3)
			return admin_usage_error();
		if (!qctl_valid_id(argv[2])) {
			admin_error("not a queue id: %s", argv[2]);
			return admin_usage_error();
		}
	} else if (queue_request(argc, argv, &req) < 0) {
		return ADMIN_EXIT_USAGE;
	}
	if (!(cfg = config_load(config_path, stderr)))
		return ADMIN_EXIT_FAIL;
	if (!(qs = qstore_open(cfg->queue_dir, &err))) {
		admin_error("cannot open the queue: %s", err);
		free(err);
		config_free(&cfg);
		return ADMIN_EXIT_FAIL;
	}
	socket_path = cfg->control_socket ? xstrdup(cfg->control_socket) : NULL;
	config_free(&cfg);
	if (strcmp(sub, "list") == 0)
		ret = admin_queue_list(qs, json);
	else if (strcmp(sub, "show") == 0)
		ret = admin_queue_show(qs, argv[2]);
	else
		ret = queue_change(qs, socket_path, &req);
	qstore_close(&qs);
	free(socket_path);
	return ret;
}
