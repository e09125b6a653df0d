/* smtpc_int: the client's state, shared by its modules (smtpc.c, smtpc_reply.c,
 * smtpc_auth.c, smtpc_body.c); not for use outside src/client. */
#ifndef CURSUS_SMTPC_INT_H
#define CURSUS_SMTPC_INT_H

#include <event2/event.h>
#include <gsasl.h>

#include "client/smtpc.h"
#include "net/conn.h"
#include "util/linereader.h"

enum smtpc_state {
	ST_CONNECTING,
	ST_TLS_IMPLICIT,   /* handshake before the greeting */
	ST_READY,          /* the greeting or a command's reply is awaited, or idle */
	ST_STARTTLS,       /* STARTTLS sent */
	ST_HANDSHAKE,      /* 220 received, TLS handshake running */
	ST_AUTH,           /* inside an AUTH exchange */
	ST_BODY,           /* streaming the message after 354 */
};

/* What a command's reply means to the client itself. */
enum smtpc_kind { K_CMD, K_EHLO, K_HELO };

struct smtpc_pend {
	enum smtpc_kind kind;
	unsigned timeout;
};

/* Output kept queued while streaming a body, and the block of it dot-stuffed at once. */
#define SMTPC_BODY_WATERMARK (64 * 1024)
#define SMTPC_BODY_BLOCK (16 * 1024)
/* Most asked of a body source at once. */
#define SMTPC_BODY_READ (64 * 1024)

struct smtpc {
	struct event_base *base;
	struct event *ev_connect;
	int fd;                    /* until the conn owns it */
	int connect_errno;
	struct conn *conn;
	char *server_name;
	SSL_CTX *implicit_tls, *starttls_ctx;
	unsigned timeout;
	const struct smtpc_cbs *cbs;
	void *arg;
	enum smtpc_state state;
	struct linereader lr;
	struct smtpc_reply cur;    /* lines of the reply being read */
	int cur_more;
	struct smtpc_pend *pend;   /* FIFO of commands awaiting replies */
	size_t n_pend, cap_pend;
	int helo_fallback, used_helo;
	char *ehlo_name;
	unsigned connect_timeout;
	/* ST_BODY: from memory (body), or asked of src a block at a time */
	const char *body;
	struct smtpc_body_src src;
	size_t body_len, body_off;
	int body_bol;
	int body_waiting;          /* src was asked and has not answered */
	int body_filling;          /* inside smtpc_body_fill (src may answer from want) */
	unsigned dot_timeout;
	size_t dot_replies;        /* replies the final dot gets: 1, LMTP one per recipient */
	struct smtpc_caps caps;
	Gsasl *gctx;
	Gsasl_session *gs;
	int saw_330;
	unsigned auth_rounds;      /* challenges answered in this exchange */
	int oauth;                 /* -1, or the enum oauth_mech of this exchange (ours) */
	char oauth_error[64];      /* the status of its error challenge, or "" */
	unsigned port;             /* the server's, for OAUTHBEARER's port= */
	struct event *ev_reply;    /* a whole reply (or handshake) must come within timeout */
	int ended, busy, doomed;
};

/* A server may not keep an exchange going for ever: SCRAM needs 2 challenges,
 * DIGEST-MD5 2; beyond this many the client cancels. */
#define SMTPC_AUTH_ROUNDS_MAX 8

/* smtpc.c */
void smtpc_hold(struct smtpc *s);
int smtpc_release(struct smtpc *s);
void smtpc_trace(struct smtpc *s, char dir, const char *line);
void smtpc_fail(struct smtpc *s, enum smtpc_error err, const char *detail);
void smtpc_reply_deadline(struct smtpc *s);
void smtpc_send(struct smtpc *s, const char *line, const char *shown);
void smtpc_push(struct smtpc *s, enum smtpc_kind kind, const char *line);
void smtpc_expect(struct smtpc *s, enum smtpc_kind kind);

/* smtpc_reply.c */
void smtpc_reply_clear(struct smtpc_reply *r);

/* smtpc_auth.c */
void smtpc_auth_end(struct smtpc *s);
void smtpc_auth_challenge(struct smtpc *s, const struct smtpc_reply *r);

/* smtpc_body.c */
void smtpc_body_fill(struct smtpc *s);

#endif
