/* conn: the one buffered I/O object, with TLS inside. A server session, and later the
 * relay and LMTP clients, read lines from conn_input() and write replies with
 * conn_write(); STARTTLS is one call (conn_starttls), not a second code path. */
#ifndef CURSUS_CONN_H
#define CURSUS_CONN_H

#include <stddef.h>
#include <openssl/ssl.h>

struct event_base;
struct evbuffer;
struct conn;

enum conn_end { CONN_EOF, CONN_ERROR, CONN_TIMEOUT, CONN_CLOSED, CONN_TLS_FAILED };

struct conn_cbs {
	void (*on_read)(struct conn *c, void *arg);          /* new input */
	void (*on_tls)(struct conn *c, void *arg);           /* handshake done */
	/* No input for the timeout: the owner may write a last reply and must then
	 * call conn_close_after_flush(). */
	void (*on_timeout)(struct conn *c, void *arg);
	/* The connection is over; the owner must conn_destroy() it (now or later). */
	void (*on_end)(struct conn *c, void *arg, enum conn_end why, const char *detail);
	/* Optional: every byte written so far has left (a writer streaming a large
	 * message refills here rather than buffer it whole). */
	void (*on_drain)(struct conn *c, void *arg);
	/* Optional, client side: the SSL before its handshake, names set (DANE arms it
	 * here). Non-zero ends the connection with CONN_TLS_FAILED. */
	int (*tls_setup)(struct conn *c, SSL *ssl, void *arg);
};

/* Takes ownership of fd. With tls_ctx set, TLS starts at once (implicit TLS). */
struct conn *conn_create(struct event_base *base, int fd, SSL_CTX *tls_ctx,
			 const struct conn_cbs *cbs, void *arg);
/* Client side (relay, LMTP, `cursus probe`): fd is a connected socket. TLS handshakes
 * are made as the client; server_name (may be NULL) is sent as SNI unless it is an
 * address literal, and becomes the name or address the certificate must match, which
 * fails the handshake only when tls_ctx verifies peers (SSL_VERIFY_PEER). With tls_ctx
 * set, TLS starts at once (implicit TLS); on_tls is called when it is up. */
struct conn *conn_create_client(struct event_base *base, int fd, SSL_CTX *tls_ctx,
				const char *server_name, const struct conn_cbs *cbs, void *arg);
void conn_destroy(struct conn **c);

struct evbuffer *conn_input(struct conn *c);
void conn_write(struct conn *c, const void *data, size_t len);
/* Stops or resumes reading, e.g. while a session waits for a worker. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/* Seconds without input before on_timeout (or, when writing stalls too,
 * on_end(CONN_TIMEOUT)); 0 disables. */
void conn_set_timeout(struct conn *c, unsigned seconds);
void conn_set_timeout_ms(struct conn *c, unsigned ms);
/* Ends the connection now, without writing what is pending (a deadline passed where
 * no reply can be sent, e.g. inside a TLS handshake): on_end(CONN_TIMEOUT, detail). */
void conn_abort(struct conn *c, const char *detail);
/* Ends the connection once the output is written: on_end(CONN_CLOSED). */
void conn_close_after_flush(struct conn *c);
/* Discards all pending input, then starts a TLS handshake as server once the output
 * (the 220 reply) is written. RFC 3207 section 6: the client's pre-TLS input must not
 * survive into the TLS session. on_tls is called when the handshake succeeds. */
void conn_starttls(struct conn *c, SSL_CTX *ctx);
/* Client side, after the server's 220 to STARTTLS: discards pending input and starts
 * the handshake as client (with the name given to conn_create_client). */
void conn_starttls_client(struct conn *c, SSL_CTX *ctx);
/* The TLS session, NULL before TLS. */
SSL *conn_ssl(struct conn *c);
/* Bytes written but not yet sent. */
size_t conn_output_length(struct conn *c);
int conn_fd(struct conn *c);

#endif
