/* smtpc: an event-driven SMTP client on the one buffered I/O object (conn). It
 * connects with a timeout, reads whole multi-line replies through the linereader,
 * sends commands (several at once when the server does PIPELINING, RFC 2920), does
 * STARTTLS and implicit TLS as the client, parses the EHLO capabilities (falling back
 * to HELO on request), runs SASL (GNU SASL, client side) over 334 challenges, and
 * streams a message body with dot-stuffing. For LMTP it says LHLO and takes one reply
 * per recipient after the final dot. It never blocks, and it sends a credential
 * only when smtpc_auth() is called, only on its own connection: the caller decides
 * whether the channel is good enough. Used by `cursus probe`, the relay and LMTP. */
#ifndef CURSUS_SMTPC_H
#define CURSUS_SMTPC_H

#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

struct event_base;
struct smtpc;

/* Longest reply line accepted, CRLF included. RFC 5321 4.5.3.1.5 says 512; servers
 * send longer EHLO lines and texts, so we allow more and call anything past this a
 * broken peer. */
#define SMTPC_LINE_MAX 4096
/* Lines in one reply at most. */
#define SMTPC_REPLY_LINES_MAX 256

struct smtpc_reply {
	int code;                /* 200..599 */
	char enhanced[16];       /* "2.7.0" (RFC 3463) when the first line starts with one, else "" */
	size_t n_lines;
	char **lines;            /* text after "NNN-" / "NNN " (may be ""), NUL-terminated */
};

/* What an EHLO reply says. */
struct smtpc_caps {
	int valid;               /* parsed from a 250 reply to EHLO */
	int starttls, pipelining, size, eightbitmime, chunking, smtputf8;
	char *auth;              /* the "AUTH" line's mechanisms, space-separated; NULL without one */
	char *auth_legacy;       /* the "AUTH=" line's (draft form, RFC 4954 predecessor), or NULL */
	size_t n_lines;
	char **lines;            /* every line after the greeting line, as sent */
};

enum smtpc_error {
	SMTPC_ERR_CONNECT,       /* the TCP connection could not be made */
	SMTPC_ERR_TIMEOUT,       /* no reply within the timeout */
	SMTPC_ERR_CLOSED,        /* the server closed the connection */
	SMTPC_ERR_IO,            /* read/write error */
	SMTPC_ERR_TLS,           /* the TLS handshake failed */
	SMTPC_ERR_PROTOCOL,      /* a malformed reply, or a line over SMTPC_LINE_MAX */
};

/* Transcript directions. */
#define SMTPC_SENT '>'
#define SMTPC_RECEIVED '<'
#define SMTPC_INFO '*'       /* "connected", "TLS established ..." */

struct smtpc_cbs {
	/* The greeting, or the final reply to the last command. For smtpc_auth that is
	 * 235 or the failure (334 challenges are answered inside); for smtpc_starttls
	 * it is called only when the reply is not 220 (then on_tls follows instead). */
	void (*on_reply)(struct smtpc *s, const struct smtpc_reply *r, void *arg);
	/* TLS is up (implicit TLS before the greeting, or after STARTTLS). */
	void (*on_tls)(struct smtpc *s, void *arg);
	/* The connection is over (or never was); nothing more is called. The owner
	 * destroys the client (now or later). */
	void (*on_error)(struct smtpc *s, void *arg, enum smtpc_error err, const char *detail);
	/* Every line sent and received, without CRLF; AUTH payloads (in both
	 * directions) are replaced by "<hidden>". May be NULL. */
	void (*transcript)(void *arg, char dir, const char *line);
	/* Optional: the SSL before the handshake (conn.h's tls_setup). */
	int (*tls_setup)(struct smtpc *s, SSL *ssl, void *arg);
};

struct smtpc_opts {
	const char *server_name; /* SNI and certificate name (see conn_create_client) */
	SSL_CTX *implicit_tls;   /* TLS at once (port 465), or NULL */
	unsigned timeout;        /* seconds, for the greeting and each reply; 0: 60 */
	unsigned connect_timeout; /* seconds for the TCP connection; 0: timeout */
	/* EHLO refused with 5xx: say HELO instead; its reply is then the EHLO's (with
	 * no capabilities). RFC 5321 3.2. */
	int helo_fallback;
};

/* Starts connecting to sa; every outcome arrives through the callbacks (never from
 * inside this call). The address is resolved by the caller. */
struct smtpc *smtpc_create(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
			   const struct smtpc_opts *opts, const struct smtpc_cbs *cbs, void *arg);
void smtpc_destroy(struct smtpc **s);

/* Sends one command line (without CRLF); its reply goes to on_reply. Several may be
 * sent before their replies come (only when the server offered PIPELINING, and never
 * EHLO, STARTTLS, AUTH or DATA but as the last of a group): replies are handed over
 * one by one in the order of the commands. */
void smtpc_command(struct smtpc *s, const char *line);
/* Commands sent whose replies have not come yet. */
size_t smtpc_pending(const struct smtpc *s);
/* The timeout for replies to commands sent from now on (RFC 5321 4.5.3.2 per stage),
 * and of the connection's inactivity. */
void smtpc_set_timeout(struct smtpc *s, unsigned seconds);
/* After a 354 to DATA: writes body (CRLF lines) dot-stuffed (RFC 5321 4.5.2), a CRLF
 * if it lacks a last one, and the final ".". The body is streamed in blocks as the
 * output drains, never copied whole; each block must leave within block_timeout.
 * The reply to the final dot goes to on_reply and must come within dot_timeout.
 * body must stay valid until that reply. */
void smtpc_send_body(struct smtpc *s, const char *body, size_t len, unsigned block_timeout,
		     unsigned dot_timeout);
/* Where smtpc_send_body_from gets the body: want(arg, max) is called when the output
 * has drained and more is wanted; the source answers once, from inside want or later
 * (after a read on a worker thread), with smtpc_body_put or smtpc_body_abort. A slow
 * answer counts against block_timeout. */
struct smtpc_body_src {
	void (*want)(void *arg, size_t max);
	void *arg;
};
/* As smtpc_send_body, for len octets asked of src a block at a time: the body is never
 * held whole. */
void smtpc_send_body_from(struct smtpc *s, size_t len, const struct smtpc_body_src *src,
			  unsigned block_timeout, unsigned dot_timeout);
/* The answer to want: the next 1..max octets of the body (copied before it returns). */
void smtpc_body_put(struct smtpc *s, const char *data, size_t n);
/* The body cannot be read: the connection closes without the final dot (so the server
 * drops the transaction) and on_error(SMTPC_ERR_IO, why) follows. */
void smtpc_body_abort(struct smtpc *s, const char *why);
/* LMTP: the final dot of the next body gets n replies (one per recipient accepted,
 * RFC 2033 4.2), each handed to on_reply in turn, each within the dot timeout of the
 * one before; 0 and 1 mean the one reply of SMTP. */
void smtpc_dot_replies(struct smtpc *s, size_t n);
/* Whether the last EHLO went to HELO. */
int smtpc_used_helo(const struct smtpc *s);
/* EHLO name; the reply is also parsed into smtpc_caps(). */
void smtpc_ehlo(struct smtpc *s, const char *name);
/* LHLO name (RFC 2033 4.1, LMTP's EHLO): the reply is parsed into smtpc_caps() the
 * same way; never a HELO fallback. */
void smtpc_lhlo(struct smtpc *s, const char *name);
/* STARTTLS; on 220, a handshake with ctx, then on_tls. The capabilities are
 * forgotten (RFC 3207 4.2): say EHLO again. */
void smtpc_starttls(struct smtpc *s, SSL_CTX *ctx);
/* AUTH mech as user with password (copied and wiped after use). Channel binding
 * data for -PLUS mechanisms comes from the TLS session. XOAUTH2 and OAUTHBEARER are
 * ours (oauth/oauth_sasl.h), the password being the access token; their error
 * challenge is answered inside, and the final reply (535) comes to on_reply. Returns
 * -1 (and sends nothing) when there is no client for mech, or the token cannot be
 * sent by it. */
int smtpc_auth(struct smtpc *s, const char *mech, const char *user, const char *password);
/* After an XOAUTH2/OAUTHBEARER exchange: the "status" of the server's error challenge
 * (RFC 7628 3.2.2, e.g. "invalid_token"; printable, short), or "" when none came. */
const char *smtpc_auth_oauth_error(const struct smtpc *s);
/* After smtpc_auth: whether the server sent 330 where RFC 4954 says 334 (we went on
 * as if it were 334). */
int smtpc_auth_saw_330(const struct smtpc *s);
/* Whether GNU SASL can run mech as a client. */
int smtpc_mech_supported(const char *mech);

/* The address this end of the connection has ("192.0.2.1"), for reports. -1: none. */
int smtpc_local_addr(const struct smtpc *s, char *out, size_t outsz);
const struct smtpc_caps *smtpc_caps(const struct smtpc *s);
SSL *smtpc_ssl(const struct smtpc *s);
/* Closes after the output is written; on_error(SMTPC_ERR_CLOSED) follows. */
void smtpc_close(struct smtpc *s);

/* Pure helpers, exposed for unit tests. */
/* Parses one reply line; returns the code (and *more_r: a continuation follows), or
 * -1 when the line is not "NNN", "NNN text" or "NNN-text" with NNN a reply code of
 * RFC 5321 4.2 (2..5, 0..5, 0..9). */
int smtpc_parse_line(const char *line, size_t len, int *more_r, size_t *text_off_r);
/* Fills caps from a 250 reply to EHLO; frees what caps held. */
void smtpc_caps_parse(struct smtpc_caps *caps, const struct smtpc_reply *r);
void smtpc_caps_clear(struct smtpc_caps *caps);
/* Whether the space-separated list has mech (case-insensitive). */
int smtpc_list_has(const char *list, const char *mech);
/* Dot-stuffs src[0..len) into dst (room for 2 * len), at_bol saying whether src starts
 * a line (updated for the next block). Returns the bytes written. */
size_t smtpc_dot_stuff(const char *src, size_t len, char *dst, int *at_bol);

#endif
