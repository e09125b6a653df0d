/* Tests of auth_ipc, the codec between the network process and cursus-auth: what one
 * side builds the other parses back exactly; every message cut short, padded, lying
 * about a length or carrying more than the bounds is refused whole; a datagram larger
 * than a message is refused at the socket. */
#include "unit.h"
#include "auth/auth_ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct auth_ipc_buf b;
static unsigned char raw[AUTH_IPC_MSG_MAX + 64];

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void round_trip(void)
{
	struct auth_ipc_msg m;
	long long v;
	char *s;

	auth_ipc_begin(&b, AUTH_IPC_SASL_STEP, 0x01020304);
	auth_ipc_add_int(&b, -7);
	auth_ipc_add_str(&b, "alice@example.test");
	auth_ipc_add_str(&b, NULL);
	auth_ipc_add_str(&b, "");
	auth_ipc_add(&b, "a\0b", 3);
	CHECK(auth_ipc_finish(&b) == 0);
	CHECK(auth_ipc_parse(b.data, b.len, &m) == 0);
	CHECK(m.type == AUTH_IPC_SASL_STEP && m.id == 0x01020304 && m.nfields == 5);
	CHECK(auth_ipc_int(&m, 0, &v) == 0 && v == -7);
	CHECK(auth_ipc_str(&m, 1, 100, &s) == 0);
	CHECK_STR(s, "alice@example.test");
	free(s);
	/* Absent and empty are two things (no initial response, and "=" ). */
	CHECK(auth_ipc_str(&m, 2, 100, &s) == 0 && s == NULL);
	CHECK(auth_ipc_str(&m, 3, 100, &s) == 0 && s && s[0] == '\0');
	free(s);
	/* Bytes are bytes; as a string a NUL inside is refused. */
	CHECK(m.f[4].len == 3 && memcmp(m.f[4].p, "a\0b", 3) == 0);
	CHECK(auth_ipc_str(&m, 4, 100, &s) == -1 && s == NULL);
	/* Over the caller's bound, past the last field, a string read as an integer. */
	CHECK(auth_ipc_str(&m, 1, 5, &s) == -1 && s == NULL);
	CHECK(auth_ipc_str(&m, 5, 100, &s) == -1);
	CHECK(auth_ipc_int(&m, 1, &v) == -1);
	CHECK(auth_ipc_int(&m, 2, &v) == -1);
	CHECK(auth_ipc_int(&m, 9, &v) == -1);
}

/* Every proper prefix of a good message, and the message with a byte more. */
static void truncated_and_padded(void)
{
	struct auth_ipc_msg m;
	size_t len;
	int all_refused = 1;

	auth_ipc_begin(&b, AUTH_IPC_RELAY_AUTH, 9);
	auth_ipc_add_str(&b, "[smart.example]:587");
	auth_ipc_add_str(&b, NULL);
	auth_ipc_add_int(&b, 1);
	CHECK(auth_ipc_finish(&b) == 0);
	len = b.len;
	for (size_t n = 0; n < len; n++)
		all_refused &= auth_ipc_parse(b.data, n, &m) == -1 && m.nfields == 0;
	CHECK(all_refused);
	/* Cut short with the header's length made to agree: a field runs past the end. */
	all_refused = 1;
	for (size_t n = AUTH_IPC_HDR_LEN; n < len; n++) {
		memcpy(raw, b.data, n);
		put32(raw + 8, (uint32_t)n);
		all_refused &= auth_ipc_parse(raw, n, &m) == -1;
	}
	CHECK(all_refused);
	/* A byte after the last field, length agreeing: not what was built. */
	memcpy(raw, b.data, len);
	raw[len] = 0;
	put32(raw + 8, (uint32_t)len + 1);
	CHECK(auth_ipc_parse(raw, len + 1, &m) == -1);
	CHECK(auth_ipc_parse(b.data, len, &m) == 0 && m.nfields == 3);
}

static void lying_lengths(void)
{
	struct auth_ipc_msg m;
	size_t len;

	auth_ipc_begin(&b, AUTH_IPC_MAY_SEND_AS, 1);
	auth_ipc_add_str(&b, "alice@example.test");
	auth_ipc_add_str(&b, "bob@example.test");
	CHECK(auth_ipc_finish(&b) == 0);
	len = b.len;

	/* The header's length against the datagram's. */
	memcpy(raw, b.data, len);
	put32(raw + 8, (uint32_t)len - 1);
	CHECK(auth_ipc_parse(raw, len, &m) == -1);
	/* A field's length larger than what is left, and larger than any field. */
	memcpy(raw, b.data, len);
	put32(raw + AUTH_IPC_HDR_LEN, 1000);
	CHECK(auth_ipc_parse(raw, len, &m) == -1);
	put32(raw + AUTH_IPC_HDR_LEN, AUTH_IPC_FIELD_MAX + 1);
	CHECK(auth_ipc_parse(raw, len, &m) == -1);
	put32(raw + AUTH_IPC_HDR_LEN, 0xfffffffe);
	CHECK(auth_ipc_parse(raw, len, &m) == -1);
	/* More fields announced than there are, and more than any message may have. */
	memcpy(raw, b.data, len);
	raw[3] = 3;
	CHECK(auth_ipc_parse(raw, len, &m) == -1);
	raw[2] = (AUTH_IPC_FIELDS_MAX + 1) >> 8;
	raw[3] = (AUTH_IPC_FIELDS_MAX + 1) & 0xff;
	CHECK(auth_ipc_parse(raw, len, &m) == -1);
	/* Fewer: the rest would be trailing bytes. */
	memcpy(raw, b.data, len);
	raw[3] = 1;
	CHECK(auth_ipc_parse(raw, len, &m) == -1);
	/* A datagram longer than any message, whatever its header says. */
	memset(raw, 0, sizeof(raw));
	put32(raw + 8, AUTH_IPC_MSG_MAX + 1);
	CHECK(auth_ipc_parse(raw, AUTH_IPC_MSG_MAX + 1, &m) == -1);
}

/* The builder refuses to make what the parser would refuse. */
static void oversized_build(void)
{
	static char big[AUTH_IPC_FIELD_MAX + 1];
	struct auth_ipc_msg m;
	int ok = 1;

	memset(big, 'A', sizeof(big));
	auth_ipc_begin(&b, AUTH_IPC_SASL_STEP, 1);
	auth_ipc_add(&b, big, AUTH_IPC_FIELD_MAX);
	CHECK(auth_ipc_finish(&b) == 0);
	CHECK(auth_ipc_parse(b.data, b.len, &m) == 0 && m.f[0].len == AUTH_IPC_FIELD_MAX);
	auth_ipc_begin(&b, AUTH_IPC_SASL_STEP, 1);
	auth_ipc_add(&b, big, AUTH_IPC_FIELD_MAX + 1);
	CHECK(auth_ipc_finish(&b) == -1);
	/* Two largest fields overflow the message. */
	auth_ipc_begin(&b, AUTH_IPC_SASL_STEP, 1);
	auth_ipc_add(&b, big, AUTH_IPC_FIELD_MAX);
	auth_ipc_add(&b, big, AUTH_IPC_FIELD_MAX);
	CHECK(auth_ipc_finish(&b) == -1);
	auth_ipc_begin(&b, AUTH_IPC_RESOLVE_PART, 1);
	for (int i = 0; i < AUTH_IPC_FIELDS_MAX; i++)
		auth_ipc_add_str(&b, "example.test/a");
	CHECK(auth_ipc_finish(&b) == 0);
	CHECK(auth_ipc_parse(b.data, b.len, &m) == 0 && m.nfields == AUTH_IPC_FIELDS_MAX);
	auth_ipc_add_str(&b, "example.test/b");
	CHECK(auth_ipc_finish(&b) == -1);
	/* A message wiped after use leaves nothing behind. */
	auth_ipc_begin(&b, AUTH_IPC_SASL_STEP, 1);
	auth_ipc_add_str(&b, "secret");
	auth_ipc_finish(&b);
	size_t used = b.len;
	auth_ipc_wipe(&b);
	for (size_t i = 0; i < used; i++)
		ok &= b.data[i] == 0;
	CHECK(ok && b.len == 0);
}

static void over_the_socket(void)
{
	static unsigned char in[AUTH_IPC_MSG_MAX], big[AUTH_IPC_MSG_MAX + 100];
	struct auth_ipc_msg m;
	int sv[2], sz = 4 * AUTH_IPC_MSG_MAX;
	long n;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	auth_ipc_begin(&b, AUTH_IPC_RESULT, 5);
	auth_ipc_add_int(&b, 1);
	CHECK(auth_ipc_finish(&b) == 0 && auth_ipc_send(sv[0], &b) == 0);
	n = auth_ipc_recv(sv[1], in, 1000);
	CHECK(n == (long)b.len && auth_ipc_parse(in, (size_t)n, &m) == 0 && m.id == 5);
	/* Larger than a message: refused, not read as a message cut at the buffer's end. */
	memset(big, 0, sizeof(big));
	CHECK(send(sv[0], big, sizeof(big), 0) == (ssize_t)sizeof(big));
	errno = 0;
	CHECK(auth_ipc_recv(sv[1], in, 1000) == -1 && errno == EMSGSIZE);
	/* Nothing within the time: a timeout, not a hang. */
	errno = 0;
	CHECK(auth_ipc_recv(sv[1], in, 10) == -1 && errno == ETIMEDOUT);
	close(sv[0]);
	CHECK(auth_ipc_recv(sv[1], in, 1000) == 0);
	close(sv[1]);
}

void unit_main(void)
{
	round_trip();
	truncated_and_padded();
	lying_lengths();
	oversized_build();
	over_the_socket();
}
