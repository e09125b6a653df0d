/* Tests of linereader, fed whole and one byte at a time. */
#include "unit.h"
#include "util/linereader.h"

#include <stdlib.h>

/* Feeds input in chunks of `step` bytes into a growing buffer, the way a session's
 * input buffer fills, and records each result as "S:content" joined by '|'. */
static void feed(const char *in, size_t inlen, size_t limit, size_t step, char *out, size_t outsz)
{
	struct linereader lr;
	char buf[4096];
	size_t have = 0, fed = 0, o = 0;
	linereader_init(&lr, limit);
	out[0] = '\0';
	while (fed < inlen || have) {
		size_t n = inlen - fed < step ? inlen - fed : step;
		memcpy(buf + have, in + fed, n);
		have += n;
		fed += n;
		for (;;) {
			size_t len, consumed;
			enum line_status st = linereader_next(&lr, buf, have, &len, &consumed);
			if (st != LINE_NEED_MORE) {
				const char *tag = st == LINE_OK ? "OK"
					: st == LINE_TOO_LONG ? (lr.crlf ? "LONG" : "LONGLF")
					: st == LINE_BARE_LF ? "LF" : "CR";
				o += (size_t)snprintf(out + o, outsz - o, "%s:%.*s|", tag,
					(st == LINE_OK || st == LINE_BARE_LF) ? (int)len : 0, buf);
			}
			memmove(buf, buf + consumed, have - consumed);
			have -= consumed;
			if (st == LINE_NEED_MORE)
				break;
		}
		if (n == 0)
			break;
	}
}

static void both(const char *in, size_t limit, const char *want)
{
	char whole[2048], bytewise[2048];
	feed(in, strlen(in), limit, 4096, whole, sizeof(whole));
	feed(in, strlen(in), limit, 1, bytewise, sizeof(bytewise));
	CHECK_STR(whole, want);
	CHECK_STR(bytewise, want);
}

void unit_main(void)
{
	both("EHLO x\r\nQUIT\r\n", 512, "OK:EHLO x|OK:QUIT|");
	both("\r\n", 512, "OK:|");
	both("MAIL\nRCPT\r\n", 512, "LF:MAIL|OK:RCPT|");
	both("A\rB\r\nC\r\n", 512, "CR:|OK:C|");
	both("\n.\r\n", 512, "LF:|OK:.|");
	both("x\r.\r\n", 512, "CR:|");
	/* limit counts CRLF: 8 octets fit, 9 do not */
	both("123456\r\n", 8, "OK:123456|");
	both("1234567\r\nNOOP\r\n", 8, "LONG:|OK:NOOP|");
	both("12345678901234567890\r\nQUIT\r\n", 8, "LONG:|OK:QUIT|");
	both("partial", 512, "");
	/* how an over-long line ended decides whether a following "." may end DATA */
	both("123456789\nNOOP\r\n", 8, "LONGLF:|OK:NOOP|");
	both("123456789012\r\n.\r\n", 8, "LONG:|OK:.|");
	both("1234567\r\n", 8, "LONG:|");
}
