/* fuzz_linereader: feeds a byte stream to the linereader whole, one byte at a time
 * and in chunks of sizes drawn from the input, the way a session appends socket reads
 * to its buffer and drops what was consumed. Checks every promise of linereader.h on
 * every call (consumed <= len, no line over the limit, LINE_OK lines free of CR and
 * LF, a terminator where one is claimed, the unconsumed rest stays under the limit)
 * and that all three splits report the same lines: "works on any split".
 * Input: byte 0 picks the limit (0..255), byte 1 seeds the chunk sizes, the rest is
 * the stream. */
#include "fuzz.h"
#include "util/linereader.h"

struct lr_event {
	enum line_status st;
	int crlf;            /* LINE_TOO_LONG only */
	size_t len;
	char *line;          /* LINE_OK and LINE_BARE_LF: the content */
};

struct lr_run {
	struct lr_event *ev;
	size_t n, cap;
};

static void lr_run_add(struct lr_run *run, enum line_status st, int crlf, const char *line, size_t len)
{
	if (run->n == run->cap) {
		run->cap = run->cap ? run->cap * 2 : 16;
		run->ev = realloc(run->ev, run->cap * sizeof(*run->ev));
		FUZZ_CHECK(run->ev != NULL);
	}
	run->ev[run->n].st = st;
	run->ev[run->n].crlf = crlf;
	run->ev[run->n].len = len;
	run->ev[run->n].line = line ? fuzz_strndup((const uint8_t *)line, len) : NULL;
	run->n++;
}

static void lr_run_free(struct lr_run *run)
{
	for (size_t i = 0; i < run->n; i++)
		free(run->ev[i].line);
	free(run->ev);
}

/* Checks one result against buf[0..len). */
static void lr_check(const struct linereader *lr, const char *buf, size_t len, enum line_status st,
		     size_t line_len, size_t consumed)
{
	FUZZ_CHECK(consumed <= len);
	switch (st) {
	case LINE_NEED_MORE:
		FUZZ_CHECK(line_len == 0);
		break;
	case LINE_OK:
		/* A line counts its CRLF against the limit. */
		FUZZ_CHECK(line_len + 2 <= lr->limit);
		FUZZ_CHECK(consumed == line_len + 2);
		FUZZ_CHECK(buf[line_len] == '\r' && buf[line_len + 1] == '\n');
		FUZZ_CHECK(memchr(buf, '\r', line_len) == NULL);
		FUZZ_CHECK(memchr(buf, '\n', line_len) == NULL);
		break;
	case LINE_BARE_LF:
		FUZZ_CHECK(line_len + 1 <= lr->limit);
		FUZZ_CHECK(consumed == line_len + 1);
		FUZZ_CHECK(buf[line_len] == '\n');
		FUZZ_CHECK(line_len == 0 || buf[line_len - 1] != '\r');
		FUZZ_CHECK(memchr(buf, '\n', line_len) == NULL);
		break;
	case LINE_BARE_CR:
		FUZZ_CHECK(consumed >= 2 && consumed <= lr->limit);
		FUZZ_CHECK(buf[consumed - 1] == '\n' && buf[consumed - 2] == '\r');
		FUZZ_CHECK(memchr(buf, '\n', consumed - 1) == NULL);
		FUZZ_CHECK(memchr(buf, '\r', consumed - 2) != NULL);
		break;
	case LINE_TOO_LONG:
		FUZZ_CHECK(consumed >= 1 && buf[consumed - 1] == '\n');
		FUZZ_CHECK(memchr(buf, '\n', consumed - 1) == NULL);
		FUZZ_CHECK(lr->crlf == 0 || lr->crlf == 1);
		break;
	default:
		FUZZ_CHECK(!"unknown status");
	}
	if (st != LINE_NEED_MORE)
		FUZZ_CHECK(consumed > 0);
}

/* Feeds stream[0..n) in chunks; chunk 0 means "all at once". The pending buffer is
 * copied to an exact-size allocation before each call so over-reads are caught. */
static void lr_feed(size_t limit, const uint8_t *stream, size_t n, unsigned seed, int mode,
		    struct lr_run *run)
{
	struct linereader lr;
	uint8_t *pend = NULL;
	size_t plen = 0, off = 0, total = 0;

	linereader_init(&lr, limit);
	FUZZ_CHECK(lr.limit >= 3);
	while (off < n) {
		size_t chunk;
		if (mode == 0)
			chunk = n;
		else if (mode == 1)
			chunk = 1;
		else {
			seed = seed * 1103515245u + 12345u;
			chunk = 1 + (seed >> 16) % 23;
		}
		if (chunk > n - off)
			chunk = n - off;
		pend = realloc(pend, plen + chunk);
		FUZZ_CHECK(pend != NULL);
		memcpy(pend + plen, stream + off, chunk);
		plen += chunk;
		off += chunk;
		for (;;) {
			char *buf = fuzz_copy(pend, plen);
			size_t line_len = 99, consumed = 99;
			enum line_status st = linereader_next(&lr, buf, plen, &line_len, &consumed);

			lr_check(&lr, buf, plen, st, line_len, consumed);
			if (st == LINE_OK || st == LINE_BARE_LF)
				lr_run_add(run, st, 0, buf, line_len);
			else if (st != LINE_NEED_MORE)
				lr_run_add(run, st, st == LINE_TOO_LONG ? lr.crlf : 0, NULL, 0);
			free(buf);
			memmove(pend, pend + consumed, plen - consumed);
			plen -= consumed;
			total += consumed;
			if (st == LINE_NEED_MORE) {
				/* Bounded memory: what the reader leaves pending is less than
				 * one line's limit. */
				FUZZ_CHECK(plen < lr.limit);
				break;
			}
		}
	}
	FUZZ_CHECK(total + plen == n);
	free(pend);
}

static void lr_same(const struct lr_run *a, const struct lr_run *b)
{
	FUZZ_CHECK(a->n == b->n);
	for (size_t i = 0; i < a->n; i++) {
		FUZZ_CHECK(a->ev[i].st == b->ev[i].st);
		FUZZ_CHECK(a->ev[i].crlf == b->ev[i].crlf);
		FUZZ_CHECK(a->ev[i].len == b->ev[i].len);
		FUZZ_CHECK((a->ev[i].line == NULL) == (b->ev[i].line == NULL));
		if (a->ev[i].line)
			FUZZ_CHECK(memcmp(a->ev[i].line, b->ev[i].line, a->ev[i].len) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lr_run whole = { 0 }, bytes = { 0 }, chunks = { 0 };

	if (size < 2)
		return 0;
	size_t limit = data[0]; /* 0..2 check the clamp to 3 */
	unsigned seed = data[1];
	lr_feed(limit, data + 2, size - 2, seed, 0, &whole);
	lr_feed(limit, data + 2, size - 2, seed, 1, &bytes);
	lr_feed(limit, data + 2, size - 2, seed, 2, &chunks);
	lr_same(&whole, &bytes);
	lr_same(&whole, &chunks);
	lr_run_free(&whole);
	lr_run_free(&bytes);
	lr_run_free(&chunks);
	return 0;
}
