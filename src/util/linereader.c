/* linereader: see linereader.h. RFC 5321 2.3.8: "In addition, the appearance of
 * "bare" "CR" or "LF" characters in text (i.e., either without the other) has a long
 * history of causing problems in mail implementations ... SMTP client implementations
 * MUST NOT transmit these characters except when they are intended as line terminators
 * and then MUST, as indicated above, transmit them only as a <CRLF> sequence." */
#include "util/linereader.h"

#include <string.h>

void linereader_init(struct linereader *lr, size_t limit)
{
	lr->limit = limit < 3 ? 3 : limit;
	lr->skipping = 0;
	lr->last_cr = 0;
	lr->crlf = 0;
}

enum line_status linereader_next(struct linereader *lr, const char *buf, size_t len,
				 size_t *len_r, size_t *consumed_r)
{
	const char *lf;
	size_t window;

	*len_r = 0;
	*consumed_r = 0;
	if (lr->skipping) {
		lf = memchr(buf, '\n', len);
		if (!lf) {
			if (len > 0)
				lr->last_cr = buf[len - 1] == '\r';
			*consumed_r = len;
			return LINE_NEED_MORE;
		}
		*consumed_r = (size_t)(lf - buf) + 1;
		/* A "." after a bare LF must not end DATA, so say how this line ended. */
		lr->crlf = lf > buf ? lf[-1] == '\r' : lr->last_cr;
		lr->skipping = 0;
		lr->last_cr = 0;
		return LINE_TOO_LONG;
	}
	/* The terminator must fall within the limit: a line counts its CRLF. */
	window = len < lr->limit ? len : lr->limit;
	lf = memchr(buf, '\n', window);
	if (!lf) {
		if (len >= lr->limit) {
			size_t rest_len, rest_consumed;
			enum line_status st;
			lr->skipping = 1;
			lr->last_cr = buf[lr->limit - 1] == '\r';
			st = linereader_next(lr, buf + lr->limit, len - lr->limit, &rest_len,
					     &rest_consumed);
			*consumed_r = lr->limit + rest_consumed;
			return st;
		}
		return LINE_NEED_MORE;
	}
	size_t i = (size_t)(lf - buf);
	*consumed_r = i + 1;
	if (i == 0 || buf[i - 1] != '\r') {
		*len_r = i;
		return LINE_BARE_LF;
	}
	*len_r = i - 1;
	if (memchr(buf, '\r', i - 1))
		return LINE_BARE_CR;
	return LINE_OK;
}
