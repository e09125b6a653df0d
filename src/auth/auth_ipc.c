/* auth_ipc: see auth_ipc.h. Lengths are checked before every copy and every read; a
 * message that does not add up exactly (its header's length against the datagram's,
 * each field against what is left) is refused whole. */
#include "auth/auth_ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/xmalloc.h"

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void auth_ipc_begin(struct auth_ipc_buf *b, unsigned type, uint32_t id)
{
	b->len = AUTH_IPC_HDR_LEN;
	b->nfields = 0;
	b->overflow = 0;
	b->data[0] = type >> 8;
	b->data[1] = type;
	put32(b->data + 4, id);
}

static void auth_ipc_add_raw(struct auth_ipc_buf *b, const void *p, uint32_t flen, size_t len)
{
	if (b->overflow || b->nfields >= AUTH_IPC_FIELDS_MAX || len > AUTH_IPC_FIELD_MAX ||
	    4 + len > sizeof(b->data) - b->len) {
		b->overflow = 1;
		return;
	}
	put32(b->data + b->len, flen);
	if (len > 0)
		memcpy(b->data + b->len + 4, p, len);
	b->len += 4 + len;
	b->nfields++;
}

void auth_ipc_add(struct auth_ipc_buf *b, const void *p, size_t len)
{
	auth_ipc_add_raw(b, p, (uint32_t)len, len);
}

void auth_ipc_add_str(struct auth_ipc_buf *b, const char *s)
{
	if (s == NULL)
		auth_ipc_add_raw(b, NULL, AUTH_IPC_ABSENT, 0);
	else
		auth_ipc_add(b, s, strlen(s));
}

void auth_ipc_add_int(struct auth_ipc_buf *b, long long v)
{
	unsigned char n[8];
	put32(n, (uint32_t)((unsigned long long)v >> 32));
	put32(n + 4, (uint32_t)v);
	auth_ipc_add(b, n, sizeof(n));
}

int auth_ipc_finish(struct auth_ipc_buf *b)
{
	if (b->overflow)
		return -1;
	b->data[2] = b->nfields >> 8;
	b->data[3] = b->nfields;
	put32(b->data + 8, (uint32_t)b->len);
	return 0;
}

void auth_ipc_wipe(struct auth_ipc_buf *b)
{
	explicit_bzero(b->data, b->len);
	b->len = 0;
}

int auth_ipc_parse(const unsigned char *p, size_t len, struct auth_ipc_msg *m)
{
	size_t off = AUTH_IPC_HDR_LEN;

	m->nfields = 0;
	if (len < AUTH_IPC_HDR_LEN || len > AUTH_IPC_MSG_MAX || get32(p + 8) != len)
		return -1;
	m->type = (unsigned)p[0] << 8 | p[1];
	m->nfields = (size_t)p[2] << 8 | p[3];
	m->id = get32(p + 4);
	if (m->nfields > AUTH_IPC_FIELDS_MAX) {
		m->nfields = 0;
		return -1;
	}
	for (size_t i = 0; i < m->nfields; i++) {
		uint32_t flen;
		if (len - off < 4)
			goto bad;
		flen = get32(p + off);
		off += 4;
		if (flen == AUTH_IPC_ABSENT) {
			m->f[i].p = NULL;
			m->f[i].len = 0;
			continue;
		}
		if (flen > AUTH_IPC_FIELD_MAX || flen > len - off)
			goto bad;
		m->f[i].p = p + off;
		m->f[i].len = flen;
		off += flen;
	}
	if (off != len)
		goto bad; /* bytes after the last field: not what the sender built */
	return 0;
bad:
	m->nfields = 0;
	return -1;
}

int auth_ipc_str(const struct auth_ipc_msg *m, size_t i, size_t max, char **s_r)
{
	*s_r = NULL;
	if (i >= m->nfields)
		return -1;
	if (m->f[i].p == NULL)
		return 0;
	if (m->f[i].len > max || memchr(m->f[i].p, '\0', m->f[i].len))
		return -1;
	*s_r = xstrndup((const char *)m->f[i].p, m->f[i].len);
	return 0;
}

int auth_ipc_int(const struct auth_ipc_msg *m, size_t i, long long *v_r)
{
	if (i >= m->nfields || m->f[i].p == NULL || m->f[i].len != 8)
		return -1;
	*v_r = (long long)((unsigned long long)get32(m->f[i].p) << 32 | get32(m->f[i].p + 4));
	return 0;
}

int auth_ipc_send(int fd, const struct auth_ipc_buf *b)
{
	ssize_t n;
	do
		n = send(fd, b->data, b->len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != b->len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

long auth_ipc_recv(int fd, unsigned char *buf, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct iovec iov = { .iov_base = buf, .iov_len = AUTH_IPC_MSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	do
		n = recvmsg(fd, &mh, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (mh.msg_flags & MSG_TRUNC) {
		/* The rest of the datagram is gone: the stream of messages cannot be
		 * trusted any more. */
		explicit_bzero(buf, AUTH_IPC_MSG_MAX);
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}
