/* smtpc_body: the message after 354: dot-stuffed and written a block at a time while
 * the output is under a watermark, from memory or from a source asked for each block,
 * then the final dot and the replies it gets. */
#include "client/smtpc_int.h"

#include <stdlib.h>
#include <string.h>

size_t smtpc_dot_stuff(const char *src, size_t len, char *dst, int *at_bol)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		/* RFC 5321 4.5.2: "Before sending a line of mail text, the SMTP client
		 * checks the first character of the line. If it is a period, one
		 * additional period is inserted at the beginning of the line." */
		if (*at_bol && src[i] == '.')
			dst[o++] = '.';
		dst[o++] = src[i];
		*at_bol = src[i] == '\n';
	}
	return o;
}

/* Dot-stuffs and queues n octets of the body, a block at a time. */
static void smtpc_body_write(struct smtpc *s, const char *data, size_t n)
{
	char out[2 * SMTPC_BODY_BLOCK];
	while (n > 0) {
		size_t k = n < SMTPC_BODY_BLOCK ? n : SMTPC_BODY_BLOCK;
		size_t o = smtpc_dot_stuff(data, k, out, &s->body_bol);
		conn_write(s->conn, out, o);
		s->body_off += k;
		data += k;
		n -= k;
	}
	smtpc_reply_deadline(s); /* one more block left: a new block_timeout */
}

/* Writes body blocks while the output is under the watermark (asking the source for
 * each, which may answer later); the final dot once the body is all out. */
void smtpc_body_fill(struct smtpc *s)
{
	if (s->body_filling)
		return; /* the source answered from inside want: the loop below goes on */
	smtpc_hold(s);
	s->body_filling = 1;
	while (s->state == ST_BODY && !s->ended && !s->doomed && !s->body_waiting &&
	       s->body_off < s->body_len && conn_output_length(s->conn) < SMTPC_BODY_WATERMARK) {
		size_t n = s->body_len - s->body_off;
		if (s->body) {
			smtpc_body_write(s, s->body + s->body_off,
					 n < SMTPC_BODY_BLOCK ? n : SMTPC_BODY_BLOCK);
		} else {
			s->body_waiting = 1;
			s->src.want(s->src.arg, n < SMTPC_BODY_READ ? n : SMTPC_BODY_READ);
		}
	}
	s->body_filling = 0;
	if (s->state == ST_BODY && !s->ended && !s->doomed && s->body_off == s->body_len) {
		if (s->body_len > 0 && !s->body_bol)
			conn_write(s->conn, "\r\n", 2);
		s->state = ST_READY;
		s->body = NULL;
		smtpc_set_timeout(s, s->dot_timeout);
		smtpc_push(s, K_CMD, ".");
		/* RFC 2033 4.2: "there is one reply for each successful RCPT command",
		 * "in the same order as the successful RCPT commands". */
		for (size_t i = 1; i < s->dot_replies; i++)
			smtpc_expect(s, K_CMD);
		s->dot_replies = 1;
	}
	smtpc_release(s);
}

void smtpc_body_put(struct smtpc *s, const char *data, size_t n)
{
	if (s->state != ST_BODY || !s->body_waiting || s->ended || s->doomed)
		return;
	if (n == 0) {
		/* Nothing would ever end the body. */
		smtpc_body_abort(s, "the message body source gave nothing");
		return;
	}
	if (n > s->body_len - s->body_off)
		n = s->body_len - s->body_off;
	s->body_waiting = 0;
	smtpc_body_write(s, data, n);
	smtpc_body_fill(s);
}

void smtpc_body_abort(struct smtpc *s, const char *why)
{
	if (s->state != ST_BODY || s->ended || s->doomed)
		return;
	s->body_waiting = 0;
	smtpc_hold(s);
	/* Closed with no final dot: the server drops the transaction (RFC 5321 3.8). */
	smtpc_fail(s, SMTPC_ERR_IO, why);
	if (s->conn)
		conn_close_after_flush(s->conn);
	smtpc_release(s);
}

static void smtpc_body_start(struct smtpc *s, const char *body, const struct smtpc_body_src *src,
			     size_t len, unsigned block_timeout, unsigned dot_timeout)
{
	if (!s->conn || s->ended)
		return;
	s->state = ST_BODY;
	s->body = body;
	if (src)
		s->src = *src;
	s->body_len = len;
	s->body_off = 0;
	s->body_bol = 1;
	s->body_waiting = 0;
	s->dot_timeout = dot_timeout;
	smtpc_set_timeout(s, block_timeout);
	smtpc_trace(s, SMTPC_INFO, "message body");
	smtpc_body_fill(s);
}

void smtpc_send_body(struct smtpc *s, const char *body, size_t len, unsigned block_timeout,
		     unsigned dot_timeout)
{
	smtpc_body_start(s, body ? body : "", NULL, len, block_timeout, dot_timeout);
}

void smtpc_send_body_from(struct smtpc *s, size_t len, const struct smtpc_body_src *src,
			  unsigned block_timeout, unsigned dot_timeout)
{
	smtpc_body_start(s, NULL, src, len, block_timeout, dot_timeout);
}

void smtpc_dot_replies(struct smtpc *s, size_t n)
{
	s->dot_replies = n ? n : 1;
}
