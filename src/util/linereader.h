/* linereader: the one way cursus splits a byte stream into lines. Lines end in CRLF
 * only: a bare LF or a CR not followed by LF is reported, never taken as a line end
 * (SMTP smuggling). A line longer than the limit is skipped to its end and reported
 * once, so the session stays in step with the client. Pure: works on any buffer and
 * any split of the input, down to one byte at a time. */
#ifndef CURSUS_LINEREADER_H
#define CURSUS_LINEREADER_H

#include <stddef.h>

enum line_status {
	LINE_NEED_MORE,  /* no complete line yet; *consumed_r bytes may be dropped */
	LINE_OK,         /* a line of *len_r bytes (without CRLF) at buf[0] */
	LINE_TOO_LONG,   /* a line over the limit ended; its bytes are consumed */
	LINE_BARE_LF,    /* a line ended by LF alone; consumed, *len_r bytes before LF */
	LINE_BARE_CR,    /* a line with a CR not followed by LF; consumed to its LF */
};

struct linereader {
	size_t limit;    /* maximum line length including CRLF */
	int skipping;    /* inside an over-long line */
	int last_cr;     /* the skipped part so far ended in CR */
	int crlf;        /* after LINE_TOO_LONG: the line ended in CRLF, not a bare LF */
};

void linereader_init(struct linereader *lr, size_t limit);
/* Looks at buf[0..len). Always sets *consumed_r: the bytes to drop from the input
 * after handling the result (the whole line and its terminator for a complete line).
 * For LINE_OK and LINE_BARE_LF, buf[0..*len_r) is the line's content. */
enum line_status linereader_next(struct linereader *lr, const char *buf, size_t len,
				 size_t *len_r, size_t *consumed_r);

#endif
