/* control: the daemon's control socket (control.h). One request line per connection,
 * parsed by queue/qctl, handed to the scheduler, and its one-line answer sent back.
 * Promises: only the daemon's own user (or root) is served; input is bounded
 * (QCTL_LINE_MAX, CONTROL_MAX_CLIENTS, CONTROL_TIMEOUT) and anything malformed is
 * answered "error ..." and closed, never trusted further; the loop never blocks; a
 * client that hangs up before the answer costs nothing but the answer. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/control.h"
#include "deliver/scheduler.h"
#include "net/conn.h"
#include "net/unixsock.h"
#include "queue/qctl.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define CONTROL_MAX_CLIENTS 16
#define CONTROL_TIMEOUT 10        /* seconds for the request line to arrive */
#define CONTROL_REPLY_MAX 400     /* octets of the scheduler's text passed on */

struct control_client {
	struct control *ctl;      /* NULL once the control socket is gone */
	struct conn *conn;        /* NULL once the connection ended */
	int pending;              /* a request is with the scheduler */
	int skipping;             /* an overlong line is being discarded */
	struct qctl_req req;
	struct control_client *prev, *next;
};

struct control {
	struct event_base *base;
	struct evconnlistener *evl;
	struct sched *sched;
	char *path;
	unsigned nclients;
	struct control_client *clients;
};

static void control_unlink(struct control_client *cl)
{
	struct control *ctl = cl->ctl;
	if (!ctl)
		return;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		ctl->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	ctl->nclients--;
	cl->ctl = NULL;
}

/* Sends the one reply and ends the connection. cl may be freed on return. */
static void control_reply(struct control_client *cl, const char *word, const char *text)
{
	char clean[CONTROL_REPLY_MAX + 1], *line;

	qctl_clean(clean, sizeof(clean), text);
	line = xasprintf("%s %s\n", word, clean);
	conn_write(cl->conn, line, strlen(line));
	free(line);
	conn_close_after_flush(cl->conn);
}

/* The scheduler's answer, on the loop thread. */
static void control_done(void *arg, int err, const char *text)
{
	struct control_client *cl = arg;
	char esc[LOG_ESCAPE_BUFSZ];
	const char *t = text && *text ? text : err == ENOENT ? "no such message" : err ? strerror(err) : "done";

	cl->pending = 0;
	log_info("control request=%s id=%s domain=%s result=%s text=\"%s\"",
		 qctl_verb_name(cl->req.verb), cl->req.id[0] ? cl->req.id : "-",
		 cl->req.domain[0] ? cl->req.domain : "-", err ? "error" : "ok",
		 log_escape(esc, sizeof(esc), t, strlen(t)));
	if (!cl->conn) {
		free(cl);
		return;
	}
	control_reply(cl, err ? "error" : "ok", t);
}

/* Hands the parsed request to the scheduler; cl may be freed on return (the
 * scheduler may answer at once). */
static void control_dispatch(struct control_client *cl)
{
	struct sched *s = cl->ctl->sched;
	const struct qctl_req *r = &cl->req;

	cl->pending = 1;
	conn_pause(cl->conn);
	switch (r->verb) {
	case QCTL_FLUSH:
		sched_flush(s, r->id[0] ? r->id : NULL, r->domain[0] ? r->domain : NULL,
			    control_done, cl);
		break;
	case QCTL_HOLD:
		sched_hold(s, r->id, control_done, cl);
		break;
	case QCTL_RELEASE:
		sched_release(s, r->id, control_done, cl);
		break;
	case QCTL_DELETE:
		sched_delete(s, r->id, control_done, cl);
		break;
	case QCTL_BOUNCE:
		sched_bounce(s, r->id, control_done, cl);
		break;
	}
}

/* An overlong request is skipped to its line end and then refused, so the client,
 * still writing, reads the refusal instead of a reset connection. */
static void control_on_read(struct conn *c, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer *in = conn_input(c);
	struct evbuffer_ptr eol;
	const char *why = NULL;
	char line[QCTL_LINE_MAX + 2];
	size_t len;

	if (cl->pending || !cl->ctl)
		return;
	eol = evbuffer_search(in, "\n", 1, NULL);
	if (eol.pos < 0) {
		if (cl->skipping || evbuffer_get_length(in) > QCTL_LINE_MAX + 1) {
			cl->skipping = 1;
			evbuffer_drain(in, evbuffer_get_length(in));
		}
		return;
	}
	if (cl->skipping || (size_t)eol.pos > QCTL_LINE_MAX + 1) {
		evbuffer_drain(in, evbuffer_get_length(in));
		control_reply(cl, "error", "request too long");
		return;
	}
	len = (size_t)eol.pos;
	evbuffer_remove(in, line, len + 1);
	/* One request per connection: whatever follows is ignored. */
	evbuffer_drain(in, evbuffer_get_length(in));
	if (qctl_parse(line, len, &cl->req, &why) < 0) {
		log_info("control event=bad-request reason=\"%s\"", why);
		control_reply(cl, "error", why);
		return;
	}
	control_dispatch(cl);
}

static void control_on_timeout(struct conn *c, void *arg)
{
	control_reply(arg, "error", "timeout");
}

static void control_on_end(struct conn *c, void *arg, enum conn_end why, const char *detail)
{
	struct control_client *cl = arg;

	conn_destroy(&cl->conn);
	control_unlink(cl);
	/* The scheduler still holds cl as its callback argument: control_done frees it. */
	if (!cl->pending)
		free(cl);
}

static const struct conn_cbs control_cbs = {
	.on_read = control_on_read,
	.on_timeout = control_on_timeout,
	.on_end = control_on_end,
};

/* Only the daemon's own user, or root, may steer it; the socket's mode says the same,
 * this holds even if someone loosens it. */
static int control_peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void control_on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
			      int salen, void *arg)
{
	struct control *ctl = arg;
	struct control_client *cl;

	if (ctl->nclients >= CONTROL_MAX_CLIENTS || !control_peer_allowed(fd)) {
		log_warnx("control event=refused reason=%s",
			  ctl->nclients >= CONTROL_MAX_CLIENTS ? "too-many-clients" : "peer-uid");
		close(fd);
		return;
	}
	cl = xcalloc(1, sizeof(*cl));
	cl->ctl = ctl;
	cl->next = ctl->clients;
	if (cl->next)
		cl->next->prev = cl;
	ctl->clients = cl;
	ctl->nclients++;
	cl->conn = conn_create(ctl->base, fd, NULL, &control_cbs, cl);
	conn_set_timeout(cl->conn, CONTROL_TIMEOUT);
}

struct control *control_create(struct event_base *base, const char *path, struct sched *s)
{
	struct control *ctl;
	int fd;

	if (!path || !*path) {
		log_warnx("control error=\"no control_socket configured\"");
		return NULL;
	}
	if ((fd = unixsock_listen("control", path, 0600, 0700, CONTROL_MAX_CLIENTS)) < 0)
		return NULL;
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->base = base;
	ctl->sched = s;
	ctl->path = xstrdup(path);
	ctl->evl = evconnlistener_new(base, control_on_accept, ctl,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!ctl->evl) {
		log_warnx("control cannot serve %s", path);
		close(fd);
		unlink(path);
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	log_info("control path=%s event=listening", path);
	return ctl;
}

void control_destroy(struct control **ctlp)
{
	struct control *ctl = *ctlp;

	if (!ctl)
		return;
	evconnlistener_free(ctl->evl);
	while (ctl->clients) {
		struct control_client *cl = ctl->clients;
		control_unlink(cl);
		conn_destroy(&cl->conn);
		if (!cl->pending)
			free(cl);
	}
	if (unlink(ctl->path) < 0 && errno != ENOENT)
		log_warn("control cannot remove %s", ctl->path);
	free(ctl->path);
	free(ctl);
	*ctlp = NULL;
}
