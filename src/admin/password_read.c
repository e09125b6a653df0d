/* admin password_read: gets a password from the administrator without it ever
 * touching argv, the screen or a stdio buffer: read(2) one byte at a time into a
 * fixed buffer that is wiped afterwards. On a terminal echo is off (restored even
 * if a signal interrupts the prompt), and the password is asked twice. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "admin/admin.h"
#include "util/xmalloc.h"

/* The terminal state to restore from a signal handler. */
static volatile sig_atomic_t admin_tty_fd = -1;
static struct termios admin_tty_saved;

static const int admin_tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define ADMIN_N_SIGNALS (sizeof(admin_tty_signals) / sizeof(admin_tty_signals[0]))

static void admin_tty_restore_signal(int sig)
{
	if (admin_tty_fd >= 0)
		tcsetattr(admin_tty_fd, TCSAFLUSH, &admin_tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line (without its newline, nor a CR before it) into buf.
 * Returns its length, -1 on EOF before any byte or an error, -2 when it does not
 * fit (the rest of the line is consumed). */
static int admin_read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	int too_long = 0, got = 0;

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0 || !got)
				return -1;
			break;
		}
		got = 1;
		if (c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
		else
			too_long = 1;
		c = 0;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return too_long ? -2 : (int)n;
}

/* Prompts on the terminal with echo off. Same returns as admin_read_line; -3 when
 * the terminal cannot be used. */
static int admin_tty_prompt(int fd, const char *prompt, char *buf, size_t size)
{
	struct termios t;
	struct sigaction sa, old[ADMIN_N_SIGNALS];
	int n;

	if (tcgetattr(fd, &admin_tty_saved) < 0)
		return -3;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = admin_tty_restore_signal;
	sigemptyset(&sa.sa_mask);
	admin_tty_fd = fd;
	for (size_t i = 0; i < ADMIN_N_SIGNALS; i++)
		sigaction(admin_tty_signals[i], &sa, &old[i]);
	t = admin_tty_saved;
	t.c_lflag &= ~(tcflag_t)ECHO;
	/* ECHONL: the Enter still moves the cursor, so the next prompt is on its own line. */
	t.c_lflag |= ECHONL | ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &t) < 0) {
		n = -3;
	} else {
		if (write(fd, prompt, strlen(prompt)) < 0)
			n = -3;
		else
			n = admin_read_line(fd, buf, size);
		tcsetattr(fd, TCSAFLUSH, &admin_tty_saved);
	}
	admin_tty_fd = -1;
	for (size_t i = 0; i < ADMIN_N_SIGNALS; i++)
		sigaction(admin_tty_signals[i], &old[i], NULL);
	return n;
}

static int admin_check_length(int n)
{
	if (n == -1)
		admin_error("no password given");
	else if (n == -2)
		admin_error("password too long (at most %d octets)", ADMIN_PASSWORD_MAX);
	else if (n == -3)
		admin_error("cannot turn off echo on the terminal");
	else if (n == 0)
		admin_error("empty password refused");
	return n > 0;
}

char *admin_password_read(int confirm)
{
	char pw[ADMIN_PASSWORD_MAX + 1], again[ADMIN_PASSWORD_MAX + 1];
	char *out = NULL;
	int n;

	if (!isatty(STDIN_FILENO)) {
		n = admin_read_line(STDIN_FILENO, pw, sizeof(pw));
		if (admin_check_length(n))
			out = xstrdup(pw);
		explicit_bzero(pw, sizeof(pw));
		return out;
	}
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		admin_error("cannot open /dev/tty: %s", strerror(errno));
		return NULL;
	}
	n = admin_tty_prompt(fd, "Password: ", pw, sizeof(pw));
	if (admin_check_length(n)) {
		if (!confirm) {
			out = xstrdup(pw);
		} else {
			int m = admin_tty_prompt(fd, "Retype password: ", again, sizeof(again));
			if (m == n && strcmp(pw, again) == 0)
				out = xstrdup(pw);
			else if (m >= 0 || m == -2)
				admin_error("the passwords do not match");
			else
				admin_check_length(m);
		}
	}
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(again, sizeof(again));
	close(fd);
	return out;
}

char *admin_secret_read(const char *prompt, const char *what, int optional)
{
	char *buf = xmalloc(ADMIN_SECRET_MAX + 1), *out = NULL;
	int n, fd = STDIN_FILENO;

	if (isatty(STDIN_FILENO) && (fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0) {
		admin_error("cannot open /dev/tty: %s", strerror(errno));
		free(buf);
		return NULL;
	}
	n = fd == STDIN_FILENO ? admin_read_line(fd, buf, ADMIN_SECRET_MAX + 1)
			       : admin_tty_prompt(fd, prompt, buf, ADMIN_SECRET_MAX + 1);
	if (fd != STDIN_FILENO)
		close(fd);
	if (n > 0 || (optional && n == 0))
		out = xstrdup(buf);
	else if (n == -2)
		admin_error("%s too long (at most %d octets)", what, ADMIN_SECRET_MAX);
	else if (n == -3)
		admin_error("cannot turn off echo on the terminal");
	else
		admin_error("no %s given", what);
	explicit_bzero(buf, ADMIN_SECRET_MAX + 1);
	free(buf);
	return out;
}
