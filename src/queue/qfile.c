/* qfile: encoding and strict decoding of queue files (format in qfile.h), and the
 * append-only "done" sidecar. Promises: decode accepts exactly what encode produces
 * and rejects every truncation, extension or corrupted byte (exact length, end line
 * and CRC-32 over everything before it), so a torn file is never taken for mail. */
#include "queue/qfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/envelope.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xmalloc.h"
#include "util/xtext.h"

static uint32_t qfile_crc_table[256];
static pthread_once_t qfile_crc_once = PTHREAD_ONCE_INIT;

static void qfile_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		qfile_crc_table[i] = c;
	}
}

/* CRC-32 (IEEE 802.3, as zlib's crc32()): detects every burst error up to 32 bits
 * and tears; it guards against accidents, not against someone editing the queue. */
uint32_t qfile_crc32(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *s = p;
	pthread_once(&qfile_crc_once, qfile_crc_init);
	crc = ~crc;
	while (n--)
		crc = qfile_crc_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* A lone "-" is written "+2D", since "-" alone stands for NULL. */
static void qfile_put_xtext(struct strbuf *b, const char *s)
{
	char *e = strcmp(s, "-") == 0 ? xstrdup("+2D") : xtext_encode(s, strlen(s));
	strbuf_puts(b, e);
	free(e);
}

static void qfile_put_field(struct strbuf *b, const char *key, const char *val)
{
	if (!val)
		return;
	strbuf_puts(b, key);
	strbuf_puts(b, " ");
	qfile_put_xtext(b, val);
	strbuf_puts(b, "\n");
}

static void qfile_put_opt(struct strbuf *b, const char *s)
{
	if (s)
		qfile_put_xtext(b, s);
	else
		strbuf_puts(b, "-");
}

static const char *const qfile_bodytypes[] = { "7bit", "8bitmime", "binarymime" };

char *qfile_encode_head(const struct envelope *env, size_t *len_r)
{
	struct strbuf b = { 0 };
	char num[64];
	strbuf_puts(&b, QFILE_MAGIC "\n");
	qfile_put_field(&b, "id", env->id);
	snprintf(num, sizeof(num), "received %lld\n", (long long)env->received);
	strbuf_puts(&b, num);
	qfile_put_field(&b, "helo", env->helo);
	qfile_put_field(&b, "client", env->client_addr);
	qfile_put_field(&b, "from", env->mail_from);
	qfile_put_field(&b, "auth", env->auth);
	if (env->ret == DSN_RET_FULL)
		strbuf_puts(&b, "ret full\n");
	else if (env->ret == DSN_RET_HDRS)
		strbuf_puts(&b, "ret hdrs\n");
	qfile_put_field(&b, "envid", env->envid);
	strbuf_puts(&b, "bodytype ");
	strbuf_puts(&b, qfile_bodytypes[env->body <= BODY_BINARYMIME ? env->body : 0]);
	strbuf_puts(&b, env->smtputf8 ? "\nsmtputf8 1\n" : "\nsmtputf8 0\n");
	/* Only when set: a file without it is one as before (RFC 8689 unasked). */
	if (env->tlsreq != TLSREQ_DEFAULT)
		strbuf_puts(&b, env->tlsreq == TLSREQ_REQUIRETLS ? "tlsreq requiretls\n"
								  : "tlsreq no\n");
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct env_rcpt *r = &env->rcpts[i];
		snprintf(num, sizeof(num), "rcpt %u ", r->notify);
		strbuf_puts(&b, num);
		qfile_put_opt(&b, r->address ? r->address : "");
		strbuf_puts(&b, " ");
		qfile_put_opt(&b, r->orcpt);
		strbuf_puts(&b, " ");
		qfile_put_opt(&b, r->mailbox);
		strbuf_puts(&b, "\n");
	}
	strbuf_puts(&b, "body\n");
	*len_r = b.len;
	return b.p;
}

char *qfile_encode_trailer(const char *prepend, size_t *len_r)
{
	struct strbuf b = { 0 };
	strbuf_put(&b, "", 0);
	if (prepend && *prepend) {
		/* One line: xtext has no newline, so the fields' CRLFs are safe in it. */
		strbuf_puts(&b, "\nprepend ");
		qfile_put_xtext(&b, prepend);
	}
	*len_r = b.len;
	return b.p;
}

size_t qfile_encode_end(uint32_t crc, size_t bodylen, char end[QFILE_END_MAX + 1])
{
	/* The newline after the body is covered too: it is before "end". */
	crc = qfile_crc32(crc, "\n", 1);
	return (size_t)snprintf(end, QFILE_END_MAX + 1, "\nend %zu %08" PRIx32 "\n", bodylen, crc);
}

void qfile_encode_tail(uint32_t crc, char tail[QFILE_TAIL_LEN + 1])
{
	/* The newline after the body is covered too: it is before "end". */
	crc = qfile_crc32(crc, "\n", 1);
	snprintf(tail, QFILE_TAIL_LEN + 1, "\nend %08" PRIx32 "\n", crc);
}

char *qfile_encode(const struct envelope *env, const char *body, size_t bodylen,
		   size_t *len_r)
{
	size_t hlen, tlen, rlen;
	char *head = qfile_encode_head(env, &hlen), *trailer = qfile_encode_trailer(env->prepend, &rlen);
	char tail[QFILE_END_MAX + 1];
	uint32_t crc = qfile_crc32(qfile_crc32(0, head, hlen), body, bodylen);
	char *out;
	crc = qfile_crc32(crc, trailer, rlen);
	tlen = qfile_encode_end(crc, bodylen, tail);
	out = xmalloc(hlen + bodylen + rlen + tlen);
	memcpy(out, head, hlen);
	if (bodylen)
		memcpy(out + hlen, body, bodylen);
	memcpy(out + hlen + bodylen, trailer, rlen);
	memcpy(out + hlen + bodylen + rlen, tail, tlen);
	free(head);
	free(trailer);
	*len_r = hlen + bodylen + rlen + tlen;
	return out;
}

/* Strict unsigned decimal: digits only, no sign, no leading zeros, no overflow. */
static int qfile_get_num(const char *s, size_t n, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return 0;
}

static int qfile_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* "-" is NULL; anything else xtext. Returns -1 when malformed. */
static int qfile_get_opt(const char *s, size_t n, char **out)
{
	if (qfile_eq(s, n, "-")) {
		*out = NULL;
		return 0;
	}
	*out = xtext_decode(s, n);
	return *out ? 0 : -1;
}

static int qfile_parse_rcpt(const char *v, size_t vn, struct envelope *env)
{
	const char *f[4];
	size_t fl[4], k = 0, start = 0;
	uint64_t notify;
	char *addr = NULL, *orcpt = NULL, *mailbox = NULL;
	int rc = -1;
	for (size_t i = 0; i <= vn; i++) {
		if (i == vn || v[i] == ' ') {
			if (k == 4)
				return -1;
			f[k] = v + start;
			fl[k++] = i - start;
			start = i + 1;
		}
	}
	if (k != 4 || qfile_get_num(f[0], fl[0], 0xF, &notify) < 0)
		return -1;
	if (qfile_get_opt(f[1], fl[1], &addr) < 0 || !addr)
		goto out;
	if (qfile_get_opt(f[2], fl[2], &orcpt) < 0 || qfile_get_opt(f[3], fl[3], &mailbox) < 0)
		goto out;
	envelope_add_rcpt(env, addr, orcpt, (unsigned)notify, mailbox);
	rc = 0;
out:
	free(addr);
	free(orcpt);
	free(mailbox);
	return rc;
}

/* Each string field once at most; returns -1 on a duplicate or bad value. */
static int qfile_set_str(char **field, const char *v, size_t vn)
{
	if (*field)
		return -1;
	*field = xtext_decode(v, vn);
	return *field ? 0 : -1;
}

/* The head: returns 0 with *pos_r at the body, 1 when buf ends inside the head, -1
 * when malformed. *bodylen_r is the length a version 1 head declares, else
 * UINT64_MAX; *version_r the format's version. On anything but 0, *env is cleared. */
static int qfile_parse_head(const char *buf, size_t len, struct envelope *env, size_t *pos_r,
			    uint64_t *bodylen_r, int *version_r)
{
	size_t pos = 0;
	int have_id = 0, have_received = 0, have_type = 0, have_utf8 = 0, first = 1, v1 = 0;
	int version = 3;
	uint64_t bodylen = UINT64_MAX, v;

	memset(env, 0, sizeof(*env));
	for (;;) {
		const char *line = buf + pos, *nl, *sp, *val;
		size_t ln, kn, vn;
		if (pos >= len || !(nl = memchr(line, '\n', len - pos))) {
			envelope_clear(env);
			return 1;
		}
		ln = (size_t)(nl - line);
		pos += ln + 1;
		if (first) {
			if (qfile_eq(line, ln, QFILE_MAGIC_V1))
				v1 = 1, version = 1;
			else if (qfile_eq(line, ln, QFILE_MAGIC_V2))
				version = 2;
			else if (!qfile_eq(line, ln, QFILE_MAGIC))
				goto bad;
			first = 0;
			continue;
		}
		if (!v1 && qfile_eq(line, ln, "body"))
			break;
		if (!(sp = memchr(line, ' ', ln)))
			goto bad;
		kn = (size_t)(sp - line);
		val = sp + 1;
		vn = ln - kn - 1;
		if (qfile_eq(line, kn, "id")) {
			if (have_id++ || vn != 16)
				goto bad;
			for (int i = 0; i < 16; i++)
				if (!strchr("0123456789abcdef", val[i]))
					goto bad;
			memcpy(env->id, val, 16);
			env->id[16] = '\0';
		} else if (qfile_eq(line, kn, "received")) {
			if (have_received++ || qfile_get_num(val, vn, INT64_MAX, &v) < 0)
				goto bad;
			env->received = (time_t)v;
		} else if (qfile_eq(line, kn, "helo")) {
			if (qfile_set_str(&env->helo, val, vn) < 0)
				goto bad;
		} else if (qfile_eq(line, kn, "client")) {
			if (qfile_set_str(&env->client_addr, val, vn) < 0)
				goto bad;
		} else if (qfile_eq(line, kn, "from")) {
			if (qfile_set_str(&env->mail_from, val, vn) < 0)
				goto bad;
		} else if (qfile_eq(line, kn, "auth")) {
			if (qfile_set_str(&env->auth, val, vn) < 0)
				goto bad;
		} else if (qfile_eq(line, kn, "envid")) {
			if (qfile_set_str(&env->envid, val, vn) < 0)
				goto bad;
		} else if (qfile_eq(line, kn, "ret")) {
			if (env->ret != DSN_RET_UNSET)
				goto bad;
			if (qfile_eq(val, vn, "full"))
				env->ret = DSN_RET_FULL;
			else if (qfile_eq(val, vn, "hdrs"))
				env->ret = DSN_RET_HDRS;
			else
				goto bad;
		} else if (qfile_eq(line, kn, "bodytype")) {
			int t = -1;
			for (int i = 0; i < 3; i++)
				if (qfile_eq(val, vn, qfile_bodytypes[i]))
					t = i;
			if (have_type++ || t < 0)
				goto bad;
			env->body = (enum body_type)t;
		} else if (qfile_eq(line, kn, "smtputf8")) {
			if (have_utf8++ || qfile_get_num(val, vn, 1, &v) < 0)
				goto bad;
			env->smtputf8 = (int)v;
		} else if (qfile_eq(line, kn, "tlsreq")) {
			if (env->tlsreq != TLSREQ_DEFAULT)
				goto bad;
			if (qfile_eq(val, vn, "requiretls"))
				env->tlsreq = TLSREQ_REQUIRETLS;
			else if (qfile_eq(val, vn, "no"))
				env->tlsreq = TLSREQ_NO;
			else
				goto bad;
		} else if (qfile_eq(line, kn, "rcpt")) {
			if (qfile_parse_rcpt(val, vn, env) < 0)
				goto bad;
		} else if (v1 && qfile_eq(line, kn, "body")) {
			if (qfile_get_num(val, vn, SIZE_MAX - 1, &bodylen) < 0)
				goto bad;
			break;
		} else {
			goto bad;
		}
	}
	if (!have_id || !have_received || !have_type || !have_utf8)
		goto bad;
	*pos_r = pos;
	*bodylen_r = bodylen;
	*version_r = version;
	return 0;
bad:
	envelope_clear(env);
	return -1;
}

/* The file's last bytes (tail, n of them, ending at file offset size) hold its end
 * line: where the body ends, given the head's end pos and its declared length (or
 * UINT64_MAX for version 2 and 3), and how long the trailer between body and end line
 * is (version 3 only; else 0). Returns -1 when there is no well-formed end line there. */
static int qfile_body_end(const char *tail, size_t n, uint64_t size, size_t pos,
			  uint64_t declared, int version, uint64_t *bodylen_r, uint64_t *trailer_r)
{
	uint64_t bodylen, at;
	*trailer_r = 0;
	if (declared != UINT64_MAX) {
		if (size < pos || size - pos < QFILE_TAIL_LEN || size - pos - QFILE_TAIL_LEN != declared)
			return -1;
		*bodylen_r = declared;
		return 0;
	}
	/* "\nend <length> <crc>\n": the last newline but one starts it. */
	if (n < 2 || tail[n - 1] != '\n')
		return -1;
	for (size_t i = n - 1; i-- > 0;) {
		if (tail[i] != '\n')
			continue;
		const char *num = tail + i + 5, *sp;
		size_t rest = n - 1 - (i + 5);
		if (n - i < 5 || memcmp(tail + i, "\nend ", 5) != 0 ||
		    !(sp = memchr(num, ' ', rest)) ||
		    qfile_get_num(num, (size_t)(sp - num), SIZE_MAX - 1, &bodylen) < 0)
			return -1;
		/* The length must put the end line exactly where it is, or (version 3)
		 * a trailer of bounded size between the two. */
		at = size - (n - i);
		if (at < pos || at - pos < bodylen)
			return -1;
		*trailer_r = at - pos - bodylen;
		if (*trailer_r && (version < 3 || *trailer_r > QFILE_TRAILER_MAX))
			return -1;
		*bodylen_r = bodylen;
		return 0;
	}
	return -1;
}

/* Whether the end line at the file's end is the one crc (of head and body) gives. */
static int qfile_end_ok(const char *tail, size_t n, int v1, uint32_t crc, uint64_t bodylen)
{
	char want[QFILE_END_MAX + 1];
	size_t wn;
	if (v1) {
		qfile_encode_tail(crc, want);
		wn = QFILE_TAIL_LEN;
	} else {
		wn = qfile_encode_end(crc, (size_t)bodylen, want);
	}
	return n >= wn && memcmp(tail + n - wn, want, wn) == 0;
}

/* The trailer: "\nprepend <xtext>" lines, concatenated into env->prepend. */
static int qfile_parse_trailer(const char *r, size_t n, struct envelope *env)
{
	struct strbuf b = { 0 };
	size_t pos = 0;
	while (pos < n) {
		const char *line = r + pos + 1, *nl;
		size_t ln;
		char *v;
		if (r[pos] != '\n')
			goto bad;
		nl = memchr(line, '\n', n - pos - 1);
		ln = nl ? (size_t)(nl - line) : n - pos - 1;
		if (ln < 8 || memcmp(line, "prepend ", 8) != 0 || !(v = xtext_decode(line + 8, ln - 8)))
			goto bad;
		strbuf_puts(&b, v);
		free(v);
		pos += 1 + ln;
	}
	env->prepend = b.p;
	return 0;
bad:
	free(b.p);
	return -1;
}

int qfile_decode(const char *buf, size_t len, struct envelope *env_r,
		 const char **body_r, size_t *bodylen_r)
{
	struct envelope env;
	size_t pos, tn = len < QFILE_END_MAX ? len : QFILE_END_MAX;
	uint64_t declared, bodylen, rlen;
	int version;

	memset(env_r, 0, sizeof(*env_r));
	if (qfile_parse_head(buf, len, &env, &pos, &declared, &version) != 0)
		return -1;
	/* Exact length first: a torn file is shorter, an appended one longer. */
	if (qfile_body_end(buf + len - tn, tn, len, pos, declared, version, &bodylen, &rlen) < 0 ||
	    !qfile_end_ok(buf + len - tn, tn, declared != UINT64_MAX,
			  qfile_crc32(0, buf, pos + (size_t)bodylen + (size_t)rlen), bodylen) ||
	    qfile_parse_trailer(buf + pos + bodylen, (size_t)rlen, &env) < 0) {
		envelope_clear(&env);
		return -1;
	}
	*env_r = env;
	*body_r = buf + pos;
	*bodylen_r = (size_t)bodylen;
	return 0;
}

static int qfile_pread_all(int fd, char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno;
		if (r == 0)
			return EBADMSG; /* shorter than fstat said */
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Heads are small; this bounds what a malformed file can make us allocate. */
#define QFILE_HEAD_MAX (64u * 1024 * 1024)
#define QFILE_BLOCK (64u * 1024)

int qfile_load_env_at(int dirfd, const char *name, struct envelope *env_r,
		      size_t *bodylen_r)
{
	return qfile_open_at(dirfd, name, env_r, NULL, NULL, bodylen_r);
}

int qfile_open_at(int dirfd, const char *name, struct envelope *env_r, int *fd_r,
		  uint64_t *off_r, size_t *bodylen_r)
{
	struct stat st;
	struct envelope env;
	char *buf = NULL, tail[QFILE_END_MAX], *trailer = NULL;
	size_t have = 0, cap = 0, pos = 0, tn;
	uint64_t size, declared = 0, bodylen, off, rlen = 0;
	uint32_t crc;
	int err = 0, rc = 1, version = 3;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	memset(env_r, 0, sizeof(*env_r));
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = errno;
		if (fstat(fd, &st) == 0)
			err = EINVAL;
		close(fd);
		return err;
	}
	size = (uint64_t)st.st_size;
	/* The head, a block at a time until it is whole. */
	while (rc == 1 && have < size && have < QFILE_HEAD_MAX) {
		size_t n = size - have < QFILE_BLOCK ? (size_t)(size - have) : QFILE_BLOCK;
		if (have + n > cap)
			buf = xrealloc(buf, cap = have + n);
		if ((err = qfile_pread_all(fd, buf + have, n, have)) != 0)
			goto out;
		have += n;
		rc = qfile_parse_head(buf, have, &env, &pos, &declared, &version);
	}
	if (rc != 0) {
		err = EBADMSG;
		goto out;
	}
	tn = size < QFILE_END_MAX ? (size_t)size : QFILE_END_MAX;
	if ((err = qfile_pread_all(fd, tail, tn, size - tn)) != 0 ||
	    qfile_body_end(tail, tn, size, pos, declared, version, &bodylen, &rlen) < 0) {
		err = err ? err : EBADMSG;
		envelope_clear(&env);
		goto out;
	}
	/* The checksum over head and body, in blocks through the buffer. */
	crc = qfile_crc32(0, buf, pos);
	for (off = pos; off < pos + bodylen;) {
		size_t n = pos + bodylen - off < cap ? (size_t)(pos + bodylen - off) : cap;
		if ((err = qfile_pread_all(fd, buf, n, off)) != 0)
			break;
		crc = qfile_crc32(crc, buf, n);
		off += n;
	}
	if (!err && rlen) {
		trailer = xmalloc((size_t)rlen);
		if ((err = qfile_pread_all(fd, trailer, (size_t)rlen, pos + bodylen)) == 0)
			crc = qfile_crc32(crc, trailer, (size_t)rlen);
	}
	if (!err && (!qfile_end_ok(tail, tn, declared != UINT64_MAX, crc, bodylen) ||
		     qfile_parse_trailer(trailer, (size_t)rlen, &env) < 0))
		err = EBADMSG;
	if (err) {
		envelope_clear(&env);
		goto out;
	}
	*env_r = env;
	*bodylen_r = (size_t)bodylen;
	if (fd_r) {
		/* Checked whole: what is read from fd from now on is what was committed
		 * (the file is never changed once in msg/). */
		*fd_r = fd;
		*off_r = pos;
		fd = -1;
	}
out:
	free(buf);
	free(trailer);
	if (fd >= 0)
		close(fd);
	return err;
}

int qfile_read_at(int dirfd, const char *name, char **buf_r, size_t *len_r)
{
	struct stat st;
	size_t have = 0, cap;
	char *buf;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = errno;
		if (fstat(fd, &st) == 0)
			err = EINVAL;
		close(fd);
		return err;
	}
	cap = (size_t)st.st_size + 1;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;
		if (have + 1 == cap) {
			/* The file grew since fstat: a queue file never does, but a
			 * strict decoder will say so; just read it all. */
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + have, cap - 1 - have);
		if (n == 0)
			break;
		if (n < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			close(fd);
			free(buf);
			return err;
		}
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	*buf_r = buf;
	*len_r = have;
	return 0;
}

size_t qfile_done_apply(const char *buf, size_t len, struct envelope *env)
{
	size_t pos = 0, marked = 0;
	const char *nl;
	while (pos < len && (nl = memchr(buf + pos, '\n', len - pos))) {
		size_t n = (size_t)(nl - (buf + pos));
		uint64_t idx;
		/* The " done" suffix tells a whole line from a torn one closed later by
		 * qfile_done_append's newline: "1" torn from "12 done" must not count. */
		if (n > 5 && memcmp(buf + pos + n - 5, " done", 5) == 0 &&
		    qfile_get_num(buf + pos, n - 5, SIZE_MAX, &idx) == 0 && idx < env->n_rcpts) {
			env->rcpts[idx].done = 1;
			marked++;
		}
		pos += n + 1;
	}
	return marked;
}

int qfile_done_load(const char *path, struct envelope *env)
{
	char chunk[4096];
	struct strbuf b = { 0 };
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : errno;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			close(fd);
			free(b.p);
			return err;
		}
		strbuf_put(&b, chunk, (size_t)n);
	}
	close(fd);
	qfile_done_apply(b.p, b.len, env);
	free(b.p);
	return 0;
}

int qfile_done_append(const char *path, int dirfd, size_t index)
{
	char line[40];
	int n, created = 1, err = 0, torn = 0;
	struct stat st;
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		created = 0;
		fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
	}
	if (fd < 0)
		return errno;
	/* After a crash the last line may be torn: close it first so this entry
	 * stands on a line of its own (the torn one is then ignored). */
	if (!created && fstat(fd, &st) == 0 && st.st_size > 0) {
		char last;
		if (pread(fd, &last, 1, st.st_size - 1) != 1 || last != '\n')
			torn = 1;
	}
	n = snprintf(line, sizeof(line), "%s%zu done\n", torn ? "\n" : "", index);
	/* One write of a short line to an O_APPEND file: a crash leaves it whole or
	 * torn at the end, and a torn last line is ignored by qfile_done_apply. */
	for (ssize_t w;;) {
		w = write(fd, line, (size_t)n);
		if (w == n)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		err = w < 0 ? errno : EIO;
		break;
	}
	if (!err && fsync(fd) < 0)
		err = errno;
	if (close(fd) < 0 && !err)
		err = errno;
	/* The new name must be durable too, or a crash forgets the progress. */
	if (!err && created && dirfd >= 0 && fsync(dirfd) < 0)
		err = errno;
	return err;
}

void qfile_move_corrupt(const char *qdir, int msgfd, const char *name, const char *why)
{
	char *path = xasprintf("%s/corrupt", qdir);
	int fd, err = fs_mkdirs(path, 0700);
	if (err || (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_warnx("queue file=%s status=corrupt reason=\"%s\" (left in msg/: "
			  "cannot open %s)", name, why, path);
		free(path);
		return;
	}
	if (renameat(msgfd, name, fd, name) < 0)
		log_warn("queue file=%s status=corrupt reason=\"%s\" cannot move to %s",
			 name, why, path);
	else
		log_warnx("queue file=%s status=corrupt reason=\"%s\" moved to %s/%s",
			  name, why, path, name);
	fsync(fd);
	close(fd);
	free(path);
}
