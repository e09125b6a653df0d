/* log: formats one line per event and sends it to stderr or syslog. Never given a
 * secret: callers pass AUTH payloads as "<hidden>". */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static int log_foreground = 1;
static int log_debugging;

void log_init(const char *ident, int foreground)
{
	log_foreground = foreground;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_debug(int on) { log_debugging = on; }
int log_debug_enabled(void) { return log_debugging; }

__attribute__((format(printf, 2, 0)))
static void log_vemit(int prio, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (log_foreground) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		/* One fprintf per line so concurrent threads do not interleave. */
		fprintf(stderr, "%s.%03ldZ %s%s%s\n", stamp, ts.tv_nsec / 1000000, line,
			suffix ? ": " : "", suffix ? suffix : "");
	} else {
		syslog(prio, "%s%s%s", line, suffix ? ": " : "", suffix ? suffix : "");
	}
}

#define LOG_BODY(prio, suffix)             \
	do {                               \
		va_list ap;                \
		va_start(ap, fmt);         \
		log_vemit(prio, fmt, ap, suffix); \
		va_end(ap);                \
	} while (0)

void log_info(const char *fmt, ...) { LOG_BODY(LOG_INFO, NULL); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_WARNING, NULL); }

void log_debug(const char *fmt, ...)
{
	if (log_debugging)
		LOG_BODY(LOG_DEBUG, NULL);
}

void log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);
	LOG_BODY(LOG_WARNING, e);
}

void fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);
	LOG_BODY(LOG_CRIT, e);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, NULL);
	exit(1);
}

char *log_escape(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;
	if (dstsz == 0)
		return dst;
	for (i = 0; i < srclen && i < LOG_ESCAPE_MAX; i++) {
		unsigned char c = (unsigned char)src[i];
		if (o + 5 >= dstsz)
			break;
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		} else {
			dst[o++] = (char)c;
		}
	}
	if (i < srclen && o + 4 < dstsz) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}
