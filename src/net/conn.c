/* conn: a libevent bufferevent, plain or OpenSSL, behind a small API. The plain
 * bufferevent is replaced by an OpenSSL one on STARTTLS; the socket stays. */
#include "net/conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/xmalloc.h"

/* Pipelining clients may send much before reading replies; past this much unsent
 * output we stop reading until the client catches up. */
#define CONN_OUTPUT_HIGH (256 * 1024)
/* Input buffered at most; sessions consume lines as they arrive. */
#define CONN_INPUT_HIGH (256 * 1024)

struct conn {
	struct event_base *base;
	struct bufferevent *bev;
	int fd;
	SSL *ssl;
	SSL_CTX *pending_tls;     /* STARTTLS requested, waiting for the 220 to drain */
	const struct conn_cbs *cbs;
	void *arg;
	unsigned timeout_ms;
	int closing, paused, ended, throttled;
	int client;               /* TLS handshakes as the client (conn_create_client) */
	char *server_name;        /* client: SNI and the name the certificate must match */
};

static void conn_install(struct conn *c, struct bufferevent *bev);

static void conn_end(struct conn *c, enum conn_end why, const char *detail)
{
	if (c->ended)
		return;
	c->ended = 1;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->cbs->on_end(c, c->arg, why, detail);
}

static void conn_apply_read(struct conn *c)
{
	if (c->paused || c->throttled || c->pending_tls || c->closing || c->ended)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

/* Client side: SNI for a DNS name (RFC 6066 section 3: "Literal IPv4 and IPv6
 * addresses are not permitted in HostName"), and the name or address the certificate
 * must carry, which decides the handshake only when the context verifies peers. */
static void conn_client_names(struct conn *c, SSL *ssl)
{
	unsigned char addr[16];
	const char *n = c->server_name;
	if (!n || !*n)
		return;
	if (inet_pton(AF_INET, n, addr) == 1 || inet_pton(AF_INET6, n, addr) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), n);
		return;
	}
	SSL_set_tlsext_host_name(ssl, n);
	SSL_set1_host(ssl, n);
}

static void conn_start_tls_now(struct conn *c)
{
	SSL *ssl = SSL_new(c->pending_tls);
	struct bufferevent *bev;
	c->pending_tls = NULL;
	if (!ssl) {
		conn_end(c, CONN_TLS_FAILED, "SSL_new failed");
		return;
	}
	if (c->client)
		conn_client_names(c, ssl);
	if (c->cbs->tls_setup && c->cbs->tls_setup(c, ssl, c->arg) != 0) {
		SSL_free(ssl);
		conn_end(c, CONN_TLS_FAILED, "TLS setup refused");
		return;
	}
	/* The plain bufferevent does not own the socket, so freeing it keeps fd open. */
	bufferevent_free(c->bev);
	c->bev = NULL;
	bev = bufferevent_openssl_socket_new(c->base, c->fd, ssl,
					     c->client ? BUFFEREVENT_SSL_CONNECTING : BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		conn_end(c, CONN_TLS_FAILED, "bufferevent_openssl failed");
		return;
	}
	c->ssl = ssl;
	conn_install(c, bev);
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (!c->ended && !c->pending_tls)
		c->cbs->on_read(c, c->arg);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->ended)
		return;
	if (c->throttled && evbuffer_get_length(bufferevent_get_output(bev)) < CONN_OUTPUT_HIGH / 2) {
		c->throttled = 0;
		conn_apply_read(c);
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (c->closing)
		conn_end(c, CONN_CLOSED, NULL);
	else if (c->pending_tls)
		conn_start_tls_now(c);
	else if (c->cbs->on_drain)
		c->cbs->on_drain(c, c->arg);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char detail[256];
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->ssl && c->cbs->on_tls)
			c->cbs->on_tls(c, c->arg);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->cbs->on_timeout && !c->closing && !c->pending_tls) {
			/* The timeout disabled the bufferevent; writing the owner's last
			 * reply needs it back. A second timeout, while writing, ends it. */
			c->closing = 1;
			conn_apply_read(c);
			bufferevent_enable(bev, EV_WRITE);
			c->cbs->on_timeout(c, c->arg);
			return;
		}
		conn_end(c, CONN_TIMEOUT, NULL);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		conn_end(c, CONN_EOF, NULL);
		return;
	}
	detail[0] = '\0';
	if (c->ssl && (e = bufferevent_get_openssl_error(bev)) != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	else if (EVUTIL_SOCKET_ERROR())
		snprintf(detail, sizeof(detail), "%s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (c->ssl && !SSL_is_init_finished(c->ssl))
		conn_end(c, CONN_TLS_FAILED, detail);
	else
		conn_end(c, CONN_ERROR, detail);
}

static void conn_install(struct conn *c, struct bufferevent *bev)
{
	c->bev = bev;
	if (c->ssl)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_setwatermark(bev, EV_READ, 0, CONN_INPUT_HIGH);
	bufferevent_setcb(bev, conn_readcb, conn_writecb, conn_eventcb, c);
	conn_set_timeout_ms(c, c->timeout_ms);
	bufferevent_enable(bev, EV_WRITE);
	conn_apply_read(c);
}

static struct conn *conn_create_mode(struct event_base *base, int fd, SSL_CTX *tls_ctx,
				     const char *server_name, const struct conn_cbs *cbs, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	struct bufferevent *bev;
	c->base = base;
	c->fd = fd;
	c->cbs = cbs;
	c->arg = arg;
	c->client = server_name != NULL;
	c->server_name = server_name ? xstrdup(server_name) : NULL;
	evutil_make_socket_nonblocking(fd);
	/* Replies are small and already batched per read; Nagle would hold a reply back
	 * for the client's delayed ACK (about 40 ms after a TLS handshake). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	if (tls_ctx) {
		c->ssl = SSL_new(tls_ctx);
		if (!c->ssl) {
			close(fd);
			free(c->server_name);
			free(c);
			return NULL;
		}
		if (c->client)
			conn_client_names(c, c->ssl);
		bev = bufferevent_openssl_socket_new(base, fd, c->ssl,
						     c->client ? BUFFEREVENT_SSL_CONNECTING
							       : BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE);
	} else {
		bev = bufferevent_socket_new(base, fd, 0);
	}
	if (!bev) {
		if (c->ssl)
			SSL_free(c->ssl);
		close(fd);
		free(c->server_name);
		free(c);
		return NULL;
	}
	conn_install(c, bev);
	return c;
}

struct conn *conn_create(struct event_base *base, int fd, SSL_CTX *tls_ctx,
			 const struct conn_cbs *cbs, void *arg)
{
	return conn_create_mode(base, fd, tls_ctx, NULL, cbs, arg);
}

struct conn *conn_create_client(struct event_base *base, int fd, SSL_CTX *tls_ctx,
				const char *server_name, const struct conn_cbs *cbs, void *arg)
{
	return conn_create_mode(base, fd, tls_ctx, server_name ? server_name : "", cbs, arg);
}

void conn_destroy(struct conn **cp)
{
	struct conn *c = *cp;
	if (!c)
		return;
	if (c->bev) {
		int owns_fd = c->ssl != NULL;
		bufferevent_free(c->bev);
		if (!owns_fd)
			close(c->fd);
	} else {
		close(c->fd);
	}
	free(c->server_name);
	free(c);
	*cp = NULL;
}

struct evbuffer *conn_input(struct conn *c) { return bufferevent_get_input(c->bev); }

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->ended)
		return;
	bufferevent_write(c->bev, data, len);
	if (!c->throttled && evbuffer_get_length(bufferevent_get_output(c->bev)) > CONN_OUTPUT_HIGH) {
		c->throttled = 1;
		conn_apply_read(c);
	}
}

void conn_pause(struct conn *c)
{
	c->paused = 1;
	conn_apply_read(c);
}

void conn_resume(struct conn *c)
{
	c->paused = 0;
	conn_apply_read(c);
}

void conn_set_timeout(struct conn *c, unsigned seconds)
{
	conn_set_timeout_ms(c, seconds * 1000u);
}

void conn_set_timeout_ms(struct conn *c, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	c->timeout_ms = ms;
	if (c->bev)
		bufferevent_set_timeouts(c->bev, ms ? &tv : NULL, ms ? &tv : NULL);
}

void conn_abort(struct conn *c, const char *detail)
{
	conn_end(c, CONN_TIMEOUT, detail);
}

void conn_close_after_flush(struct conn *c)
{
	c->closing = 1;
	conn_apply_read(c);
	if (!c->ended && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_end(c, CONN_CLOSED, NULL);
}

void conn_starttls(struct conn *c, SSL_CTX *ctx)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	/* Anything the client pipelined after STARTTLS was sent in clear: drop it. */
	evbuffer_drain(in, evbuffer_get_length(in));
	c->pending_tls = ctx;
	conn_apply_read(c);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_start_tls_now(c);
}

void conn_starttls_client(struct conn *c, SSL_CTX *ctx)
{
	/* RFC 3207 section 4.2: "The client MUST discard any knowledge obtained from
	 * the server ... which was not obtained from the TLS negotiation itself": bytes
	 * the server sent after its 220 would otherwise be read as if protected. */
	conn_starttls(c, ctx);
}

SSL *conn_ssl(struct conn *c) { return c->ssl; }
int conn_fd(struct conn *c) { return c->fd; }
size_t conn_output_length(struct conn *c)
{
	return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}
