/* auth_ipc: the messages between cursusd's network process and cursus-auth, the
 * process that alone opens the user database (docs/privileges.md). One message is one
 * SOCK_SEQPACKET datagram: a fixed header (type, request id, field count, total
 * length) and up to AUTH_IPC_FIELDS_MAX length-prefixed fields, each bounded. Both
 * sides parse with the same checks, so a truncated, oversized or inconsistent message
 * is refused whichever process sent it. */
#ifndef CURSUS_AUTH_IPC_H
#define CURSUS_AUTH_IPC_H

#include <stddef.h>
#include <stdint.h>

/* The largest AUTH line (max_auth_line, 64 KiB) plus the channel data must fit. */
#define AUTH_IPC_FIELD_MAX (64 * 1024 + 16)
#define AUTH_IPC_MSG_MAX (80 * 1024)
#define AUTH_IPC_FIELDS_MAX 64
#define AUTH_IPC_HDR_LEN 12
/* A field's length that means "absent" (NULL), as opposed to "" (length 0). */
#define AUTH_IPC_ABSENT 0xffffffffu

enum auth_ipc_type {
	/* Requests of the network process, each answered on the same connection. */
	AUTH_IPC_RESOLVE = 1,      /* address, max (-1: none) -> RESOLVE_PART*, RESULT(r) */
	AUTH_IPC_MAY_SEND_AS,      /* user, address -> RESULT(r) */
	AUTH_IPC_MAY_ACT_AS,       /* authid, authzid -> RESULT(r) */
	AUTH_IPC_CRED_GEN,         /* authid, user -> RESULT(r, gen) */
	AUTH_IPC_RELAY_AUTH,       /* nexthop, sender?, ca?, timeout_ms, margin_ms, rejected?
				    * -> RESULT(r, user?, password?, oauth_mech?, how, reason?) */
	AUTH_IPC_SASL_STEP,        /* xid, mech? (first step only), tls_unique, tls_exporter,
				   * cert_fingerprint, cert_subject, in?, client? (first step:
				   * the budget key) -> PRECHECK* , SASL_REPLY */
	AUTH_IPC_SASL_END,         /* xid; no reply */
	AUTH_IPC_PRECHECK_REPLY,   /* refuse (0/1): the answer to a PRECHECK */
	/* Answers of cursus-auth. */
	AUTH_IPC_RESULT = 64,      /* r, then per request */
	AUTH_IPC_RESOLVE_PART,     /* up to AUTH_IPC_FIELDS_MAX mailboxes */
	AUTH_IPC_PRECHECK,         /* authid: may a secret be checked for it? */
	AUTH_IPC_SASL_REPLY,       /* status, out?, authid?, authzid?, user?, reason?,
				   * gen_read, gen */
};

struct auth_ipc_field {
	const unsigned char *p;   /* NULL when absent */
	size_t len;
};

/* A parsed message: its fields point into the buffer it was parsed from. */
struct auth_ipc_msg {
	unsigned type;
	uint32_t id;
	size_t nfields;
	struct auth_ipc_field f[AUTH_IPC_FIELDS_MAX];
};

/* A message being built. Adding past a bound sets overflow; auth_ipc_finish says so. */
struct auth_ipc_buf {
	unsigned char data[AUTH_IPC_MSG_MAX];
	size_t len;
	size_t nfields;
	int overflow;
};

void auth_ipc_begin(struct auth_ipc_buf *b, unsigned type, uint32_t id);
void auth_ipc_add(struct auth_ipc_buf *b, const void *p, size_t len);
/* NULL adds an absent field. */
void auth_ipc_add_str(struct auth_ipc_buf *b, const char *s);
void auth_ipc_add_int(struct auth_ipc_buf *b, long long v);
/* Fills in the header. 0, or -1 when a bound was passed (nothing may be sent). */
int auth_ipc_finish(struct auth_ipc_buf *b);
/* Wipes what the message held (it may have carried a password). */
void auth_ipc_wipe(struct auth_ipc_buf *b);

/* Parses one whole datagram. 0, or -1 when it is not exactly one well-formed
 * message within the bounds. */
int auth_ipc_parse(const unsigned char *p, size_t len, struct auth_ipc_msg *m);
/* Field i as a malloc'd C string (NULL when absent). -1 when there is no field i, or
 * it is longer than max octets or holds a NUL; *s_r is then NULL. */
int auth_ipc_str(const struct auth_ipc_msg *m, size_t i, size_t max, char **s_r);
/* Field i as an integer (8 octets, big-endian). 0, or -1 when it is not one. */
int auth_ipc_int(const struct auth_ipc_msg *m, size_t i, long long *v_r);

/* One datagram on a SOCK_SEQPACKET socket. send: 0, or -1 (errno). recv: the length
 * (> 0), 0 at end of file, -1 on error (errno; EMSGSIZE when the datagram was larger
 * than AUTH_IPC_MSG_MAX, ETIMEDOUT when timeout_ms passed; -1 waits forever). */
int auth_ipc_send(int fd, const struct auth_ipc_buf *b);
long auth_ipc_recv(int fd, unsigned char *buf, int timeout_ms);

#endif
