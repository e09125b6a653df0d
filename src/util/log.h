/* log: the one logging API. Lines are "event key=value ..." with untrusted text
 * escaped; stderr in the foreground, syslog otherwise. */
#ifndef CURSUS_LOG_H
#define CURSUS_LOG_H
#include <stddef.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

void log_init(const char *ident, int foreground);
void log_set_debug(int on);
int log_debug_enabled(void);
void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* log_warn appends strerror(errno); log_warnx does not. */
void log_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* For a broken environment: log and exit(1). */
void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));

/* Escapes untrusted bytes for a log line (quotes, backslash, controls, non-ASCII as
 * \xNN) and caps the output at LOG_ESCAPE_MAX source bytes, marking truncation with
 * "...". Always NUL-terminates dst. Returns dst. */
#define LOG_ESCAPE_MAX 200
#define LOG_ESCAPE_BUFSZ (LOG_ESCAPE_MAX * 4 + 8)
char *log_escape(char *dst, size_t dstsz, const char *src, size_t srclen);

#endif
