/* smtp-bench: an SMTP load generator for cursusd. One thread per concurrent session,
 * blocking sockets; each session says EHLO, optionally STARTTLS (no certificate
 * verification: the benchmark's server is self-signed) and EHLO again, then sends its
 * messages. Latency is measured per message from the write of the final "\r\n.\r\n" to
 * the reply; anything but 250 counts as an error. Every socket carries SO_RCVTIMEO and
 * SO_SNDTIMEO, so a silent server costs at most the timeout per operation, never a hang.
 * With --auth, each session authenticates after its (last) EHLO: PLAIN with an initial
 * response, or SCRAM-SHA-256 through GNU SASL's client side; the password comes from a
 * file, never from argv, and is wiped at exit. A failed AUTH fails the session: its
 * messages count as errors.
 * With --accept-log, the wall-clock time of each 250 is written per message, keyed as its
 * Message-ID is, so that a next hop's arrival times can be set against it (the relay
 * benchmark): both sides must use CLOCK_REALTIME, on the same machine.
 * The last line of output is machine readable: "RESULT key=value ...". */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gsasl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* The longest reply line we keep; longer lines are read and truncated. */
#define BENCH_LINE_MAX 1024
#define BENCH_MAX_ERR_SHOWN 8

struct bench_opts {
	const char *host;
	const char *port;
	unsigned concurrency;
	unsigned per_session;      /* messages per session; sessions per thread with per_conn */
	size_t size;
	int starttls;
	int per_conn;
	const char *rcpt;
	const char *from;
	const char *helo;
	unsigned timeout;          /* seconds, each socket operation */
	const char *auth_mech;     /* "PLAIN" or "SCRAM-SHA-256"; NULL: no AUTH */
	const char *user;
	const char *password_file;
	const char *accept_log;    /* NULL: no per-message record of the 250s */
};

/* One SMTP connection: a socket, maybe a TLS layer over it, and a read buffer. */
struct bench_conn {
	int fd;
	SSL *ssl;
	char buf[8192];
	size_t off, len;
};

struct bench_thread {
	pthread_t tid;
	unsigned id;
	unsigned long sent;        /* messages answered 250 */
	unsigned long errors;      /* messages not accepted, for whatever reason */
	unsigned long sessions;    /* sessions completed through QUIT */
	double *lat;               /* ms, one per accepted message */
	size_t n_lat;
	unsigned long *acc_seq;    /* with --accept-log: the seq of each accepted message */
	struct timespec *acc_at;   /* ... and the CLOCK_REALTIME of its 250 */
	double *sess;              /* ms, connect to 221, per-connection mode only */
	size_t n_sess;
	unsigned long auth_fail;   /* AUTH exchanges that did not end in 235 */
	double *auth;              /* ms, AUTH command to 235, one per success */
	size_t n_auth;
};

static struct bench_opts opts = {
	.host = "127.0.0.1", .port = "2525", .concurrency = 10, .per_session = 10, .size = 4096,
	.rcpt = "alice@example.test", .from = "bench@bench.example", .helo = "bench.example",
	.timeout = 30,
};
static struct addrinfo *bench_ai;
static SSL_CTX *bench_ssl_ctx;
static pthread_barrier_t bench_start;
static pthread_mutex_t bench_err_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned bench_err_shown;
static char bench_tls_info[128];
static Gsasl *bench_gsasl;          /* shared: each session has its own Gsasl_session */
static char *bench_password;
static size_t bench_password_len;

static double bench_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The first few failures go to stderr, so that a failing run says why. */
static void bench_report_error(unsigned thread, const char *what, const char *detail)
{
	pthread_mutex_lock(&bench_err_lock);
	if (bench_err_shown < BENCH_MAX_ERR_SHOWN)
		fprintf(stderr, "smtp-bench: thread %u: %s: %s\n", thread, what, detail);
	else if (bench_err_shown == BENCH_MAX_ERR_SHOWN)
		fprintf(stderr, "smtp-bench: (further errors not shown)\n");
	bench_err_shown++;
	pthread_mutex_unlock(&bench_err_lock);
}

static int bench_conn_open(struct bench_conn *c, char *err, size_t errsz)
{
	struct timeval tv = { .tv_sec = opts.timeout };
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = socket(bench_ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	/* On Linux SO_SNDTIMEO bounds connect() as well. */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* The final ".\r\n" is a separate small write: Nagle would add its delay to the
	 * latency we measure. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, bench_ai->ai_addr, bench_ai->ai_addrlen) < 0) {
		snprintf(err, errsz, "connect: %s", strerror(errno));
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void bench_conn_close(struct bench_conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static int bench_write(struct bench_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		if (c->ssl) {
			size_t done = 0;
			if (SSL_write_ex(c->ssl, p, n, &done) <= 0)
				return -1;
			w = (ssize_t)done;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int bench_fill(struct bench_conn *c)
{
	ssize_t r;
	if (c->ssl) {
		size_t got = 0;
		if (SSL_read_ex(c->ssl, c->buf, sizeof(c->buf), &got) <= 0)
			return -1;
		r = (ssize_t)got;
	} else {
		do
			r = recv(c->fd, c->buf, sizeof(c->buf), 0);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			return -1;
	}
	c->off = 0;
	c->len = (size_t)r;
	return 0;
}

/* One line without its CRLF into line (truncated to linesz - 1). */
static int bench_readline(struct bench_conn *c, char *line, size_t linesz)
{
	size_t n = 0;
	for (;;) {
		if (c->off == c->len && bench_fill(c) < 0)
			return -1;
		char ch = c->buf[c->off++];
		if (ch == '\n')
			break;
		if (n + 1 < linesz)
			line[n++] = ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return 0;
}

/* Reads a whole (multi-line) reply; returns its code, or -1 on a closed or silent
 * connection. last gets the last line; if caps is given, it gets every line joined by
 * '\n' (for the EHLO keywords). */
static int bench_reply(struct bench_conn *c, char *last, size_t lastsz, char *caps, size_t capsz)
{
	char line[BENCH_LINE_MAX];
	size_t capn = 0;
	if (caps && capsz)
		caps[0] = '\0';
	errno = 0;
	for (;;) {
		if (bench_readline(c, line, sizeof(line)) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				snprintf(last, lastsz, "(no reply within %u s)", opts.timeout);
			else if (errno)
				snprintf(last, lastsz, "(read failed: %s)", strerror(errno));
			else
				snprintf(last, lastsz, "(connection closed by the server)");
			return -1;
		}
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5') {
			snprintf(last, lastsz, "(malformed reply line: %.200s)", line);
			return -1;
		}
		if (caps && capn + strlen(line) + 2 < capsz)
			capn += (size_t)snprintf(caps + capn, capsz - capn, "%s\n", line);
		if (line[3] != '-') {
			snprintf(last, lastsz, "%s", line);
			return atoi(line);
		}
	}
}

/* Sends cmd (CRLF added) and reads the reply; 0 if its code is want. */
static int bench_cmd(struct bench_conn *c, const char *cmd, int want, char *last, size_t lastsz,
		     char *caps, size_t capsz)
{
	char out[600];
	int n = snprintf(out, sizeof(out), "%s\r\n", cmd);
	if (bench_write(c, out, (size_t)n) < 0) {
		snprintf(last, lastsz, "(write failed: %s)", strerror(errno));
		return -1;
	}
	return bench_reply(c, last, lastsz, caps, capsz) == want ? 0 : -1;
}

static int bench_ehlo(struct bench_conn *c, char *last, size_t lastsz, char *caps, size_t capsz)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "EHLO %s", opts.helo);
	return bench_cmd(c, cmd, 250, last, lastsz, caps, capsz);
}

/* Is mech among the mechanisms of the EHLO reply's AUTH line? */
static int bench_auth_offered(const char *caps, const char *mech)
{
	size_t mlen = strlen(mech);
	for (const char *l = caps; *l; ) {
		const char *end = strchr(l, '\n');
		size_t llen = end ? (size_t)(end - l) : strlen(l);
		if (llen > 9 && strncasecmp(l + 4, "AUTH ", 5) == 0) {
			for (const char *p = l + 9; p < l + llen; ) {
				const char *sp = memchr(p, ' ', (size_t)(l + llen - p));
				size_t tlen = sp ? (size_t)(sp - p) : (size_t)(l + llen - p);
				if (tlen == mlen && strncasecmp(p, mech, mlen) == 0)
					return 1;
				p += tlen + 1;
			}
		}
		if (!end)
			break;
		l = end + 1;
	}
	return 0;
}

/* Writes "prefix b64\r\n" (or just "b64\r\n" for a NULL prefix). */
static int bench_write_auth_line(struct bench_conn *c, const char *prefix, const char *b64)
{
	size_t n = (prefix ? strlen(prefix) + 1 : 0) + strlen(b64) + 3;
	char *out = xmalloc(n);
	int len = snprintf(out, n, "%s%s%s\r\n", prefix ? prefix : "", prefix ? " " : "", b64);
	int rc = bench_write(c, out, (size_t)len);
	free(out);
	return rc;
}

/* One AUTH exchange (RFC 4954 4) driven by GNU SASL's client: the initial response on
 * the AUTH line, then one step per 334 challenge. SCRAM's server-final message arrives
 * as a 334 challenge; the client verifies it and answers with an empty line. Returns 0
 * on 235, with last describing the failure otherwise. */
static int bench_auth(struct bench_conn *c, char *last, size_t lastsz)
{
	Gsasl_session *sx = NULL;
	char *out = NULL, cmd[64];
	int rc, code, steps = 0;

	rc = gsasl_client_start(bench_gsasl, opts.auth_mech, &sx);
	if (rc != GSASL_OK) {
		snprintf(last, lastsz, "(gsasl_client_start: %s)", gsasl_strerror(rc));
		return -1;
	}
	gsasl_property_set(sx, GSASL_AUTHID, opts.user);
	gsasl_property_set(sx, GSASL_PASSWORD, bench_password);
	rc = gsasl_step64(sx, "", &out);
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		snprintf(last, lastsz, "(client first step: %s)", gsasl_strerror(rc));
		goto fail;
	}
	snprintf(cmd, sizeof(cmd), "AUTH %s", opts.auth_mech);
	/* RFC 4954 4: "=" stands for an initial response of zero length. */
	if (bench_write_auth_line(c, cmd, out[0] ? out : "=") < 0) {
		snprintf(last, lastsz, "(write failed: %s)", strerror(errno));
		goto fail;
	}
	for (;;) {
		gsasl_free(out);
		out = NULL;
		code = bench_reply(c, last, lastsz, NULL, 0);
		if (code == 235 && rc == GSASL_OK)
			break;
		if (code == 235) {
			/* Success before the client has verified the server (SCRAM's
			 * server-final) is a failure: the server's proof was never checked. */
			snprintf(last, lastsz, "(235 before the server's proof was verified)");
			goto fail;
		}
		if (code != 334 || ++steps > 8)
			goto fail;
		rc = gsasl_step64(sx, strlen(last) > 4 ? last + 4 : "", &out);
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			snprintf(last, lastsz, "(client step after 334: %s)", gsasl_strerror(rc));
			bench_write(c, "*\r\n", 3); /* RFC 4954 4: cancel the exchange */
			bench_reply(c, cmd, sizeof(cmd), NULL, 0);
			goto fail;
		}
		if (bench_write_auth_line(c, NULL, out) < 0) {
			snprintf(last, lastsz, "(write failed: %s)", strerror(errno));
			goto fail;
		}
	}
	gsasl_finish(sx);
	return 0;
fail:
	gsasl_free(out);
	gsasl_finish(sx);
	return -1;
}

/* Connects and brings the session to the point where MAIL may be sent. */
static int bench_session_open(struct bench_conn *c, struct bench_thread *t)
{
	char last[BENCH_LINE_MAX], caps[4096];
	unsigned id = t->id;
	double a0;

	if (bench_conn_open(c, last, sizeof(last)) < 0) {
		bench_report_error(id, "session", last);
		return -1;
	}
	if (bench_reply(c, last, sizeof(last), NULL, 0) != 220) {
		bench_report_error(id, "greeting", last);
		goto fail;
	}
	if (bench_ehlo(c, last, sizeof(last), caps, sizeof(caps)) < 0) {
		bench_report_error(id, "EHLO", last);
		goto fail;
	}
	if (!opts.starttls)
		goto auth;
	if (!strstr(caps, "STARTTLS")) {
		bench_report_error(id, "EHLO", "STARTTLS not advertised");
		goto fail;
	}
	if (bench_cmd(c, "STARTTLS", 220, last, sizeof(last), NULL, 0) < 0) {
		bench_report_error(id, "STARTTLS", last);
		goto fail;
	}
	/* RFC 3207 4.2: the client MUST discard what it knows from the server; a server
	 * that pipelined bytes past the 220 would be a bug (and an injection). */
	if (c->off != c->len) {
		bench_report_error(id, "STARTTLS", "data after the 220 reply");
		goto fail;
	}
	c->ssl = SSL_new(bench_ssl_ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
		char e[256];
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		bench_report_error(id, "TLS handshake", e);
		goto fail;
	}
	pthread_mutex_lock(&bench_err_lock);
	if (!bench_tls_info[0])
		snprintf(bench_tls_info, sizeof(bench_tls_info), "%s %s", SSL_get_version(c->ssl),
			 SSL_get_cipher_name(c->ssl));
	pthread_mutex_unlock(&bench_err_lock);
	if (bench_ehlo(c, last, sizeof(last), caps, sizeof(caps)) < 0) {
		bench_report_error(id, "EHLO after STARTTLS", last);
		goto fail;
	}
auth:
	if (!opts.auth_mech)
		return 0;
	if (!bench_auth_offered(caps, opts.auth_mech)) {
		t->auth_fail++;
		bench_report_error(id, "EHLO", "the AUTH mechanism is not advertised");
		goto fail;
	}
	a0 = bench_now_ms();
	if (bench_auth(c, last, sizeof(last)) < 0) {
		t->auth_fail++;
		bench_report_error(id, "AUTH", last);
		goto fail;
	}
	t->auth[t->n_auth++] = bench_now_ms() - a0;
	return 0;
fail:
	bench_conn_close(c);
	return -1;
}

static int bench_session_quit(struct bench_conn *c, unsigned id)
{
	char last[BENCH_LINE_MAX];
	int rc = 0;
	if (bench_cmd(c, "QUIT", 221, last, sizeof(last), NULL, 0) < 0) {
		bench_report_error(id, "QUIT", last);
		rc = -1;
	}
	if (c->ssl)
		SSL_shutdown(c->ssl);
	bench_conn_close(c);
	return rc;
}

/* A message of about opts.size octets: headers with a unique Message-ID, then lines of
 * 78 letters. No line starts with '.', so no dot-stuffing is needed. The buffer ends
 * with the CRLF of the last line and the ".\r\n" terminator. */
static size_t bench_make_message(char *buf, size_t bufsz, unsigned id, unsigned long seq)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	struct timespec ts;
	size_t n, target = opts.size;

	clock_gettime(CLOCK_REALTIME, &ts);
	n = (size_t)snprintf(buf, bufsz,
			     "From: <%s>\r\nTo: <%s>\r\nSubject: smtp-bench %u/%lu\r\n"
			     "Message-ID: <bench.%ld.%09ld.%d.%u.%lu@smtp-bench.example>\r\n"
			     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
			     opts.from, opts.rcpt, id, seq, (long)ts.tv_sec, ts.tv_nsec, (int)getpid(),
			     id, seq);
	while (n + 3 <= target) {
		size_t room = target - n - 2; /* octets of text left, CRLF excluded */
		size_t len = room > 78 ? 78 : room;
		if (room > 78 && room - 78 < 3)
			len = room - 3; /* keep a last line of at least one letter */
		for (size_t i = 0; i < len; i++)
			buf[n + i] = alphabet[(i + seq + id) % (sizeof(alphabet) - 1)];
		n += len;
		buf[n++] = '\r';
		buf[n++] = '\n';
	}
	memcpy(buf + n, ".\r\n", 3);
	return n + 3;
}

/* One transaction; returns 0 when the message was accepted with 250. */
static int bench_send_one(struct bench_thread *t, struct bench_conn *c, char *msg, unsigned long seq)
{
	char cmd[600], last[BENCH_LINE_MAX];
	size_t len = bench_make_message(msg, opts.size + 1024, t->id, seq);
	double t0;
	int code;

	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>", opts.from);
	if (bench_cmd(c, cmd, 250, last, sizeof(last), NULL, 0) < 0) {
		bench_report_error(t->id, "MAIL", last);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>", opts.rcpt);
	if (bench_cmd(c, cmd, 250, last, sizeof(last), NULL, 0) < 0) {
		bench_report_error(t->id, "RCPT", last);
		return -1;
	}
	if (bench_cmd(c, "DATA", 354, last, sizeof(last), NULL, 0) < 0) {
		bench_report_error(t->id, "DATA", last);
		return -1;
	}
	/* The last 5 octets are "\r\n.\r\n": the clock starts when they are written. */
	if (bench_write(c, msg, len - 5) < 0)
		goto write_failed;
	t0 = bench_now_ms();
	if (bench_write(c, msg + len - 5, 5) < 0)
		goto write_failed;
	code = bench_reply(c, last, sizeof(last), NULL, 0);
	if (code != 250) {
		bench_report_error(t->id, "end of DATA", last);
		return -1;
	}
	if (t->acc_seq) {
		clock_gettime(CLOCK_REALTIME, &t->acc_at[t->n_lat]);
		t->acc_seq[t->n_lat] = seq;
	}
	t->lat[t->n_lat++] = bench_now_ms() - t0;
	return 0;
write_failed:
	snprintf(last, sizeof(last), "(write failed: %s)", strerror(errno));
	bench_report_error(t->id, "message body", last);
	return -1;
}

static void *bench_thread_main(void *arg)
{
	struct bench_thread *t = arg;
	struct bench_conn *c = xmalloc(sizeof(*c));
	char *msg = xmalloc(opts.size + 1024);
	unsigned long seq = 0;

	c->fd = -1;
	c->ssl = NULL;
	pthread_barrier_wait(&bench_start);
	if (opts.per_conn) {
		for (unsigned i = 0; i < opts.per_session; i++) {
			double s0 = bench_now_ms();
			if (bench_session_open(c, t) < 0) {
				t->errors++;
				continue;
			}
			if (bench_send_one(t, c, msg, seq++) == 0)
				t->sent++;
			else
				t->errors++;
			if (bench_session_quit(c, t->id) == 0) {
				t->sessions++;
				t->sess[t->n_sess++] = bench_now_ms() - s0;
			}
		}
	} else {
		unsigned i = 0;
		if (bench_session_open(c, t) == 0) {
			for (; i < opts.per_session; i++) {
				if (bench_send_one(t, c, msg, seq++) == 0) {
					t->sent++;
					continue;
				}
				t->errors++;
				/* After a failed transaction the session's state is unknown. */
				char last[BENCH_LINE_MAX];
				if (bench_cmd(c, "RSET", 250, last, sizeof(last), NULL, 0) < 0) {
					bench_report_error(t->id, "RSET", last);
					i++;
					break;
				}
			}
			if (i == opts.per_session && bench_session_quit(c, t->id) == 0)
				t->sessions++;
			bench_conn_close(c);
		}
		t->errors += opts.per_session - i;
	}
	free(msg);
	free(c);
	return NULL;
}

/* Written after the run, so the file costs nothing while it is measured. */
static int bench_write_accept_log(const struct bench_thread *th)
{
	FILE *f = fopen(opts.accept_log, "w");
	if (!f) {
		fprintf(stderr, "smtp-bench: %s: %s\n", opts.accept_log, strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < opts.concurrency; i++)
		for (size_t k = 0; k < th[i].n_lat; k++)
			fprintf(f, "%d.%u.%lu %ld.%09ld\n", (int)getpid(), th[i].id, th[i].acc_seq[k],
				(long)th[i].acc_at[k].tv_sec, th[i].acc_at[k].tv_nsec);
	if (fclose(f) != 0) {
		fprintf(stderr, "smtp-bench: %s: %s\n", opts.accept_log, strerror(errno));
		return -1;
	}
	return 0;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (p in 1..100) of a sorted array. */
static double bench_pct(const double *v, size_t n, size_t p)
{
	if (n == 0)
		return 0;
	size_t k = (p * n + 99) / 100;
	return v[k == 0 ? 0 : k - 1];
}

static void bench_usage(void)
{
	fprintf(stderr,
		"usage: smtp-bench [-H host] [-p port] [-c concurrency] [-n messages] [-s size]\n"
		"                  [--starttls] [--per-connection] [--rcpt addr] [--from addr]\n"
		"                  [--helo name] [-t timeout]\n"
		"                  [--auth PLAIN|SCRAM-SHA-256 --user name --password-file file]\n"
		"  -c N   concurrent sessions, one thread each (default 10)\n"
		"  -n N   messages per session; with --per-connection, sessions per thread,\n"
		"         each carrying one message (default 10)\n"
		"  -s N   message size in octets, headers included (default 4096)\n"
		"  -t N   seconds allowed for each socket operation (default 30)\n"
		"  --auth M           authenticate each session after its last EHLO\n"
		"  --password-file F  the password: the first line of F (never on the command line)\n"
		"  --accept-log F     write \"PID.THREAD.SEQ SECONDS\" per accepted message: the key of\n"
		"                     its Message-ID and the wall-clock time of its 250\n");
	exit(2);
}

static unsigned long bench_num(const char *s, unsigned long min, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "smtp-bench: bad number \"%s\" (%lu..%lu)\n", s, min, max);
		exit(2);
	}
	return v;
}

static void bench_parse_args(int argc, char **argv)
{
	enum { O_STARTTLS = 256, O_RCPT, O_FROM, O_PER_CONN, O_HELO, O_AUTH, O_USER, O_PWFILE, O_ACCLOG };
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "messages", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "starttls", no_argument, NULL, O_STARTTLS },
		{ "per-connection", no_argument, NULL, O_PER_CONN },
		{ "rcpt", required_argument, NULL, O_RCPT },
		{ "from", required_argument, NULL, O_FROM },
		{ "helo", required_argument, NULL, O_HELO },
		{ "auth", required_argument, NULL, O_AUTH },
		{ "user", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "accept-log", required_argument, NULL, O_ACCLOG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "H:p:c:n:s:t:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'H': opts.host = optarg; break;
		case 'p': opts.port = optarg; break;
		case 'c': opts.concurrency = (unsigned)bench_num(optarg, 1, 10000); break;
		case 'n': opts.per_session = (unsigned)bench_num(optarg, 1, 10000000); break;
		case 's': opts.size = bench_num(optarg, 256, 256UL << 20); break;
		case 't': opts.timeout = (unsigned)bench_num(optarg, 1, 3600); break;
		case O_STARTTLS: opts.starttls = 1; break;
		case O_PER_CONN: opts.per_conn = 1; break;
		case O_RCPT: opts.rcpt = optarg; break;
		case O_FROM: opts.from = optarg; break;
		case O_HELO: opts.helo = optarg; break;
		case O_AUTH: opts.auth_mech = optarg; break;
		case O_USER: opts.user = optarg; break;
		case O_PWFILE: opts.password_file = optarg; break;
		case O_ACCLOG: opts.accept_log = optarg; break;
		default: bench_usage();
		}
	}
	if (optind != argc)
		bench_usage();
	if (strlen(opts.rcpt) > 256 || strlen(opts.from) > 256 || strlen(opts.helo) > 255) {
		fprintf(stderr, "smtp-bench: address or HELO name too long\n");
		exit(2);
	}
	if (opts.auth_mech) {
		if (strcasecmp(opts.auth_mech, "PLAIN") == 0)
			opts.auth_mech = "PLAIN";
		else if (strcasecmp(opts.auth_mech, "SCRAM-SHA-256") == 0)
			opts.auth_mech = "SCRAM-SHA-256";
		else {
			fprintf(stderr, "smtp-bench: --auth: PLAIN or SCRAM-SHA-256\n");
			exit(2);
		}
		if (!opts.user || !opts.password_file) {
			fprintf(stderr, "smtp-bench: --auth needs --user and --password-file\n");
			exit(2);
		}
		if (strlen(opts.user) > 255) {
			fprintf(stderr, "smtp-bench: user name too long\n");
			exit(2);
		}
	} else if (opts.user || opts.password_file) {
		fprintf(stderr, "smtp-bench: --user and --password-file go with --auth\n");
		exit(2);
	}
}

/* The password: the first line of the file (without its LF, nor a CR before it). Read
 * with read(2) into one buffer, so no stdio buffer keeps a copy. */
static void bench_read_password(const char *path)
{
	char buf[1024];
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "smtp-bench: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	char *nl = memchr(buf, '\n', n);
	if (nl)
		n = (size_t)(nl - buf);
	else if (n == sizeof(buf)) {
		explicit_bzero(buf, sizeof(buf));
		fprintf(stderr, "smtp-bench: %s: the password line is too long\n", path);
		exit(2);
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0 || memchr(buf, '\0', n)) {
		explicit_bzero(buf, sizeof(buf));
		fprintf(stderr, "smtp-bench: %s: no password on the first line\n", path);
		exit(2);
	}
	bench_password = xmalloc(n + 1);
	memcpy(bench_password, buf, n);
	bench_password[n] = '\0';
	bench_password_len = n;
	explicit_bzero(buf, sizeof(buf));
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct bench_thread *th;
	unsigned long sent = 0, errors = 0, sessions = 0, auth_fail = 0;
	size_t n_lat = 0, n_sess = 0, n_auth = 0;
	double *lat, *sess, *auth, t0, elapsed;
	int rc;

	bench_parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (opts.auth_mech) {
		bench_read_password(opts.password_file);
		if ((rc = gsasl_init(&bench_gsasl)) != GSASL_OK) {
			fprintf(stderr, "smtp-bench: gsasl_init: %s\n", gsasl_strerror(rc));
			return 1;
		}
		if (!gsasl_client_support_p(bench_gsasl, opts.auth_mech)) {
			fprintf(stderr, "smtp-bench: GNU SASL lacks %s on the client side\n",
				opts.auth_mech);
			return 1;
		}
	}
	if ((rc = getaddrinfo(opts.host, opts.port, &hints, &bench_ai)) != 0) {
		fprintf(stderr, "smtp-bench: %s:%s: %s\n", opts.host, opts.port, gai_strerror(rc));
		return 1;
	}
	if (opts.starttls) {
		bench_ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!bench_ssl_ctx) {
			fprintf(stderr, "smtp-bench: SSL_CTX_new failed\n");
			return 1;
		}
		/* The benchmark measures the server, whose certificate is self-signed. */
		SSL_CTX_set_verify(bench_ssl_ctx, SSL_VERIFY_NONE, NULL);
		/* Every handshake is a full one, as from distinct clients. */
		SSL_CTX_set_session_cache_mode(bench_ssl_ctx, SSL_SESS_CACHE_OFF);
	}

	th = xcalloc(opts.concurrency, sizeof(*th));
	if (pthread_barrier_init(&bench_start, NULL, opts.concurrency + 1) != 0) {
		fprintf(stderr, "smtp-bench: pthread_barrier_init failed\n");
		return 1;
	}
	for (unsigned i = 0; i < opts.concurrency; i++) {
		pthread_attr_t attr;
		th[i].id = i;
		th[i].lat = xcalloc(opts.per_session, sizeof(double));
		th[i].sess = xcalloc(opts.per_session, sizeof(double));
		th[i].auth = xcalloc(opts.per_session, sizeof(double));
		if (opts.accept_log) {
			th[i].acc_seq = xcalloc(opts.per_session, sizeof(unsigned long));
			th[i].acc_at = xcalloc(opts.per_session, sizeof(struct timespec));
		}
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		rc = pthread_create(&th[i].tid, &attr, bench_thread_main, &th[i]);
		pthread_attr_destroy(&attr);
		if (rc != 0) {
			fprintf(stderr, "smtp-bench: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	pthread_barrier_wait(&bench_start);
	t0 = bench_now_ms();
	for (unsigned i = 0; i < opts.concurrency; i++)
		pthread_join(th[i].tid, NULL);
	elapsed = (bench_now_ms() - t0) / 1e3;
	if (opts.accept_log && bench_write_accept_log(th) < 0)
		return 1;

	lat = xcalloc((size_t)opts.concurrency * opts.per_session + 1, sizeof(double));
	sess = xcalloc((size_t)opts.concurrency * opts.per_session + 1, sizeof(double));
	auth = xcalloc((size_t)opts.concurrency * opts.per_session + 1, sizeof(double));
	for (unsigned i = 0; i < opts.concurrency; i++) {
		sent += th[i].sent;
		errors += th[i].errors;
		sessions += th[i].sessions;
		memcpy(lat + n_lat, th[i].lat, th[i].n_lat * sizeof(double));
		n_lat += th[i].n_lat;
		memcpy(sess + n_sess, th[i].sess, th[i].n_sess * sizeof(double));
		n_sess += th[i].n_sess;
		memcpy(auth + n_auth, th[i].auth, th[i].n_auth * sizeof(double));
		n_auth += th[i].n_auth;
		auth_fail += th[i].auth_fail;
		free(th[i].lat);
		free(th[i].sess);
		free(th[i].auth);
		free(th[i].acc_seq);
		free(th[i].acc_at);
	}
	qsort(lat, n_lat, sizeof(double), bench_cmp_double);
	qsort(sess, n_sess, sizeof(double), bench_cmp_double);
	qsort(auth, n_auth, sizeof(double), bench_cmp_double);
	if (elapsed <= 0)
		elapsed = 1e-9;

	double p50 = bench_pct(lat, n_lat, 50), p90 = bench_pct(lat, n_lat, 90);
	double p99 = bench_pct(lat, n_lat, 99), pmax = n_lat ? lat[n_lat - 1] : 0;
	printf("target        %s:%s%s%s%s%s, %u sessions x %u %s, %zu octets\n", opts.host,
	       opts.port, opts.starttls ? " STARTTLS" : "", opts.auth_mech ? " AUTH " : "",
	       opts.auth_mech ? opts.auth_mech : "", opts.per_conn ? " per-connection" : "",
	       opts.concurrency, opts.per_session,
	       opts.per_conn ? "connections of one message" : "messages", opts.size);
	if (bench_tls_info[0])
		printf("tls           %s\n", bench_tls_info);
	printf("messages      %lu accepted\n", sent);
	printf("errors        %lu\n", errors);
	printf("elapsed       %.3f s\n", elapsed);
	printf("messages/s    %.1f\n", (double)sent / elapsed);
	printf("sessions/s    %.1f (%lu sessions completed)\n", (double)sessions / elapsed, sessions);
	printf("latency ms    p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (end of DATA to 250)\n", p50,
	       p90, p99, pmax);
	if (opts.per_conn)
		printf("session ms    p50 %.2f  p99 %.2f  max %.2f  (connect to 221)\n",
		       bench_pct(sess, n_sess, 50), bench_pct(sess, n_sess, 99),
		       n_sess ? sess[n_sess - 1] : 0);
	if (opts.auth_mech)
		printf("auth ms       p50 %.2f  p99 %.2f  max %.2f  (%zu ok, %lu failed; AUTH to 235)\n",
		       bench_pct(auth, n_auth, 50), bench_pct(auth, n_auth, 99),
		       n_auth ? auth[n_auth - 1] : 0, n_auth, auth_fail);
	printf("RESULT messages=%lu errors=%lu elapsed=%.3f msgs_per_s=%.1f sessions=%lu "
	       "sessions_per_s=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	       "session_p50_ms=%.2f session_p99_ms=%.2f auths=%zu auth_failures=%lu "
	       "auth_p50_ms=%.2f auth_p99_ms=%.2f\n",
	       sent, errors, elapsed, (double)sent / elapsed, sessions, (double)sessions / elapsed,
	       p50, p90, p99, pmax, bench_pct(sess, n_sess, 50), bench_pct(sess, n_sess, 99),
	       n_auth, auth_fail, bench_pct(auth, n_auth, 50), bench_pct(auth, n_auth, 99));

	free(lat);
	free(sess);
	free(auth);
	free(th);
	if (bench_gsasl)
		gsasl_done(bench_gsasl);
	if (bench_password)
		xfree_secret(bench_password, bench_password_len);
	pthread_barrier_destroy(&bench_start);
	if (bench_ssl_ctx)
		SSL_CTX_free(bench_ssl_ctx);
	freeaddrinfo(bench_ai);
	return errors || auth_fail ? 1 : 0;
}
