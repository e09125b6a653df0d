/* sendmail_submit: hands a spooled message to cursusd over its local socket, as an
 * SMTP client (smtpc, the one SMTP client of cursus) driven by a small event loop:
 * greeting, EHLO, MAIL, one RCPT per recipient, DATA, the message, QUIT. A recipient
 * refused for good is said and the message still goes to the others (exit
 * EX_NOUSER, as sendmail does); a temporary refusal of any recipient sends nothing
 * (exit EX_TEMPFAIL), so that a caller that retries does not duplicate. -bs is a
 * plain copy between stdin/stdout and the socket (sendmail_smtp_proxy). */
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/sendmail.h"
#include "client/smtpc.h"
#include "util/xmalloc.h"
#include "util/xtext.h"

/* Seconds for each reply; the daemon answers the final dot once the message is on
 * disk, which a loaded disk may take a while to say. */
#define SUBMIT_TIMEOUT 300

enum submit_step { ST_GREETING, ST_EHLO, ST_MAIL, ST_RCPT, ST_DATA, ST_BODY, ST_RSET, ST_QUIT };

struct submit {
	struct event_base *base;
	struct smtpc *c;
	const char *path;
	const struct sendmail_env *env;
	struct sendmail_msg *m;
	enum submit_step step;
	size_t rcpt;              /* the recipient whose reply is awaited */
	size_t batch_end;         /* past the last recipient of this transaction */
	size_t accepted, refused_syntax;
	int tempfail;             /* a recipient was refused for now */
	int rc;                   /* the exit code so far */
	int done;                 /* the message was accepted (or given up): the rest is QUIT */
	char buf[16384];
};

static int submit_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* The reply as one line for a message: "550 5.1.1 text". */
static void submit_say(const char *what, const struct smtpc_reply *r)
{
	char text[1024];
	size_t used = 0;
	for (size_t i = 0; i < r->n_lines && used + 2 < sizeof(text); i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", i ? " " : "", r->lines[i]);
	text[used < sizeof(text) ? used : sizeof(text) - 1] = '\0';
	admin_error("sendmail: %s: %d %s", what, r->code, text);
}

static void submit_quit(struct submit *sb, int rc)
{
	sb->rc = rc;
	sb->done = 1;
	sb->step = ST_QUIT;
	smtpc_command(sb->c, "QUIT");
}

/* A temporary reply to anything but a recipient: EX_TEMPFAIL, else what the caller says. */
static int submit_code(const struct smtpc_reply *r, int permanent)
{
	return r->code >= 400 && r->code < 500 ? EX_TEMPFAIL : permanent;
}

static void submit_rcpt(struct submit *sb)
{
	const struct sendmail_env *e = sb->env;
	char *line = xasprintf("RCPT TO:<%s>%s%s", e->rcpts[sb->rcpt], e->notify ? " NOTIFY=" : "",
			       e->notify ? e->notify : "");
	smtpc_command(sb->c, line);
	free(line);
}

static void submit_mail(struct submit *sb)
{
	const struct sendmail_env *e = sb->env;
	char *envid = e->envid ? xtext_encode(e->envid, strlen(e->envid)) : NULL;
	int utf8 = submit_non_ascii(e->sender);
	for (size_t i = 0; i < e->n_rcpts; i++)
		utf8 |= submit_non_ascii(e->rcpts[i]);
	char *line = xasprintf("MAIL FROM:<%s>%s%s%s%s%s%s", e->sender,
			       sb->m->eightbit ? " BODY=8BITMIME" : "", utf8 ? " SMTPUTF8" : "",
			       e->ret ? " RET=" : "", e->ret ? e->ret : "", envid ? " ENVID=" : "",
			       envid ? envid : "");
	smtpc_command(sb->c, line);
	free(line);
	free(envid);
}

static void submit_want(void *arg, size_t max)
{
	struct submit *sb = arg;
	size_t n = fread(sb->buf, 1, max < sizeof(sb->buf) ? max : sizeof(sb->buf), sb->m->file);
	if (n == 0) {
		smtpc_body_abort(sb->c, "the temporary copy of the message cannot be read");
		return;
	}
	smtpc_body_put(sb->c, sb->buf, n);
}

/* Every recipient has its answer: on to DATA, or give up. */
static void submit_rcpts_done(struct submit *sb)
{
	if (sb->tempfail) {
		admin_error("sendmail: a recipient was refused for now; nothing was sent, try again later");
		sb->rc = EX_TEMPFAIL;
		sb->step = ST_RSET;
		smtpc_command(sb->c, "RSET");
	} else if (!sb->accepted) {
		/* Every recipient refused for good; an earlier transaction's sent ones keep
		 * the exit code at EX_NOUSER at most. */
		submit_quit(sb, sb->refused_syntax == sb->env->n_rcpts ? EX_DATAERR : EX_NOUSER);
	} else {
		sb->step = ST_DATA;
		smtpc_command(sb->c, "DATA");
	}
}

static void submit_on_reply(struct smtpc *c, const struct smtpc_reply *r, void *arg)
{
	struct submit *sb = arg;
	char what[600];

	switch (sb->step) {
	case ST_GREETING:
		if (r->code != 220) {
			submit_say("the daemon's greeting", r);
			submit_quit(sb, submit_code(r, EX_UNAVAILABLE));
			return;
		}
		sb->step = ST_EHLO;
		smtpc_ehlo(c, "localhost");
		return;
	case ST_EHLO:
		if (r->code != 250) {
			submit_say("EHLO", r);
			submit_quit(sb, submit_code(r, EX_PROTOCOL));
			return;
		}
		sb->step = ST_MAIL;
		submit_mail(sb);
		return;
	case ST_MAIL:
		if (r->code != 250) {
			snprintf(what, sizeof(what), "sender <%s>", sb->env->sender);
			submit_say(what, r);
			submit_quit(sb, submit_code(r, EX_DATAERR));
			return;
		}
		sb->step = ST_RCPT;
		submit_rcpt(sb);
		return;
	case ST_RCPT:
		if (r->code == 452 && strcmp(r->enhanced, "4.5.3") == 0 && sb->accepted) {
			/* RFC 5321 4.5.3.1.10: too many recipients for one transaction; the
			 * rest follow in the next one. */
			sb->batch_end = sb->rcpt;
			sb->step = ST_DATA;
			smtpc_command(c, "DATA");
			return;
		}
		if (r->code == 250 || r->code == 251) {
			sb->accepted++;
		} else {
			snprintf(what, sizeof(what), "recipient <%s>", sb->env->rcpts[sb->rcpt]);
			submit_say(what, r);
			if (r->code < 500)
				sb->tempfail = 1;
			else if (r->code == 501)
				sb->refused_syntax++;
			if (r->code >= 500)
				sb->rc = r->code == 501 ? EX_DATAERR : EX_NOUSER;
		}
		sb->batch_end = ++sb->rcpt;
		if (sb->rcpt < sb->env->n_rcpts)
			submit_rcpt(sb);
		else
			submit_rcpts_done(sb);
		return;
	case ST_DATA:
		if (r->code != 354) {
			submit_say("DATA", r);
			submit_quit(sb, submit_code(r, EX_PROTOCOL));
			return;
		}
		sb->step = ST_BODY;
		{
			struct smtpc_body_src src = { submit_want, sb };
			smtpc_send_body_from(c, sb->m->size, &src, SUBMIT_TIMEOUT, SUBMIT_TIMEOUT);
		}
		return;
	case ST_BODY:
		if (r->code != 250) {
			submit_say("the message", r);
			submit_quit(sb, submit_code(r, EX_DATAERR));
			return;
		}
		if (sb->env->verbose)
			submit_say("accepted", r);
		if (sb->batch_end < sb->env->n_rcpts) {
			/* The next transaction, for the recipients the last one had no room for. */
			if (fseek(sb->m->file, 0, SEEK_SET) != 0) {
				admin_error("sendmail: the temporary copy of the message cannot be read");
				submit_quit(sb, EX_IOERR);
				return;
			}
			sb->rcpt = sb->batch_end;
			sb->accepted = 0;
			sb->step = ST_MAIL;
			submit_mail(sb);
			return;
		}
		/* Refused recipients keep their EX_NOUSER: the caller must hear of them. */
		submit_quit(sb, sb->rc);
		return;
	case ST_RSET:
		submit_quit(sb, EX_TEMPFAIL);
		return;
	case ST_QUIT:
		smtpc_close(c);
		return;
	}
}

static void submit_on_error(struct smtpc *c, void *arg, enum smtpc_error err, const char *detail)
{
	struct submit *sb = arg;

	if (!sb->done) {
		if (err == SMTPC_ERR_CONNECT)
			admin_error("sendmail: cannot reach cursusd at %s: %s (is it running?); the "
				    "message was not sent", sb->path, detail);
		else
			admin_error("sendmail: the connection to cursusd failed: %s; the message was "
				    "not sent", detail);
		sb->rc = EX_TEMPFAIL;
	}
	event_base_loopbreak(sb->base);
}

static const struct smtpc_cbs submit_cbs = {
	.on_reply = submit_on_reply,
	.on_error = submit_on_error,
};

static int submit_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (!path || strlen(path) >= sizeof(sun->sun_path)) {
		admin_error("sendmail: local_socket %s: path too long for a UNIX socket", path ? path : "");
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

int sendmail_submit(const char *socket_path, const struct sendmail_env *env, struct sendmail_msg *m)
{
	struct submit sb = { .path = socket_path, .env = env, .m = m, .rc = EX_OK };
	struct smtpc_opts opts = { .server_name = "localhost", .timeout = SUBMIT_TIMEOUT };
	struct sockaddr_un sun;

	if (submit_addr(socket_path, &sun) < 0)
		return EX_CONFIG;
	if (!(sb.base = event_base_new())) {
		admin_error("sendmail: cannot create an event loop");
		return EX_OSERR;
	}
	sb.c = smtpc_create(sb.base, (struct sockaddr *)&sun, sizeof(sun), &opts, &submit_cbs, &sb);
	event_base_dispatch(sb.base);
	smtpc_destroy(&sb.c);
	event_base_free(sb.base);
	return sb.rc;
}

/* Copies what fd `from` has into fd `to`: 1 copied, 0 end of input, -1 error. */
static int proxy_copy(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf)), off = 0;
	if (n <= 0)
		return n < 0 && errno == EINTR ? 1 : (int)n;
	while (off < n) {
		ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno == ENOTSOCK)
			w = write(to, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += w;
	}
	return 1;
}

int sendmail_smtp_proxy(const char *socket_path)
{
	struct sockaddr_un sun;
	struct pollfd p[2];
	int fd, in_open = 1, rc = EX_OK;

	if (submit_addr(socket_path, &sun) < 0)
		return EX_CONFIG;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		admin_error("sendmail: cannot reach cursusd at %s: %s (is it running?)", socket_path,
			    strerror(errno));
		if (fd >= 0)
			close(fd);
		return EX_TEMPFAIL;
	}
	/* Until the daemon closes (after QUIT, or its timeouts): those bound the session. */
	for (;;) {
		p[0] = (struct pollfd){ .fd = in_open ? 0 : -1, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = EX_OSERR;
			break;
		}
		if (p[1].revents) {
			int r = proxy_copy(fd, 1);
			if (r <= 0) {
				rc = r < 0 ? EX_IOERR : EX_OK;
				break;
			}
		}
		if (in_open && p[0].revents) {
			int r = proxy_copy(0, fd);
			if (r <= 0) {
				/* The client is done talking; the daemon's last replies still come. */
				in_open = 0;
				shutdown(fd, SHUT_WR);
			}
		}
	}
	close(fd);
	return rc;
}
