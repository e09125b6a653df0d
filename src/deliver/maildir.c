/* maildir: local delivery into Maildir as described at https://cr.yp.to/proto/maildir.html.
 * Promises: a message appears in new/ only whole (written and fsync'd in tmp/ under a
 * unique name, then renamed) and the rename is durable (new/ fsync'd) before success
 * is returned; a failed delivery leaves nothing in tmp/ or new/. */
#include "deliver/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/xmalloc.h"

static unsigned long maildir_counter;
static char maildir_host[256];
static pthread_once_t maildir_host_once = PTHREAD_ONCE_INIT;

/* "So you can't use a slash or a colon in the host name: replace / with \057 and
 * : with \072" (maildir.html, "How a message is delivered"). */
static void maildir_host_init(void)
{
	char raw[128];
	size_t o = 0;
	if (gethostname(raw, sizeof(raw)) < 0)
		strcpy(raw, "localhost");
	raw[sizeof(raw) - 1] = '\0';
	for (const char *s = raw; *s && o + 5 < sizeof(maildir_host); s++) {
		if (*s == '/' || *s == ':') {
			o += (size_t)snprintf(maildir_host + o, sizeof(maildir_host) - o, "\\%03o",
					      (unsigned char)*s);
		} else {
			maildir_host[o++] = *s;
		}
	}
	maildir_host[o] = '\0';
}

int maildir_error_is_permanent(int err)
{
	return err == EINVAL || err == ENAMETOOLONG;
}

/* One component "domain" or "local-part": never empty, ".", "..", hidden or a path. */
static int maildir_valid_mailbox(const char *mailbox)
{
	const char *slash = strchr(mailbox, '/');
	if (!slash || strchr(slash + 1, '/'))
		return 0;
	if (slash == mailbox || mailbox[0] == '.' || slash[1] == '\0' || slash[1] == '.')
		return 0;
	return 1;
}

static int maildir_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	if (fd < 0)
		return errno;
	if (fsync(fd) < 0)
		err = errno;
	close(fd);
	return err;
}

/* mkdir -p with 0700; each directory made is made durable in its parent so a
 * crash cannot lose a Maildir that already holds a delivered message. */
static int maildir_mkdir_p(char *path)
{
	for (char *s = path + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(path, 0700) == 0) {
			char *parent = xstrdup(path), *sl = strrchr(parent, '/');
			int err;
			if (sl && sl != parent)
				*sl = '\0';
			else
				strcpy(parent, sl ? "/" : ".");
			err = maildir_fsync_dir(parent);
			free(parent);
			if (err) {
				*s = c;
				return err;
			}
		} else if (errno != EEXIST) {
			*s = c;
			return errno;
		}
		*s = c;
		if (!c)
			return 0;
	}
}

static int maildir_create(const char *box)
{
	/* tmp last: a concurrent delivery that finds tmp/ must also find new/. */
	static const char *const subs[] = { "cur", "new", "tmp" };
	for (int i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", box, subs[i]);
		int err = maildir_mkdir_p(p);
		free(p);
		if (err)
			return err;
	}
	return 0;
}

static int maildir_write_file(const char *path, const char *body, size_t len)
{
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600), err = 0;
	size_t off = 0;
	if (fd < 0)
		return errno;
	while (off < len) {
		ssize_t n = write(fd, body + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		off += (size_t)n;
	}
	if (!err && fsync(fd) < 0)
		err = errno;
	if (close(fd) < 0 && !err)
		err = errno;
	if (err)
		unlink(path);
	return err;
}

int maildir_deliver(const char *mail_dir, const char *mailbox, const char *body,
		    size_t len, char *name_r, size_t namesz)
{
	struct timespec ts;
	char name[400];
	char *box, *tmp, *new, *newdir;
	int err;

	if (!maildir_valid_mailbox(mailbox))
		return EINVAL;
	pthread_once(&maildir_host_once, maildir_host_init);
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Unique per host: the time, the pid, and a counter shared by every
	 * delivery thread of this process. */
	snprintf(name, sizeof(name), "%lld.%ld_%lu.%s", (long long)ts.tv_sec, (long)getpid(),
		 __atomic_add_fetch(&maildir_counter, 1, __ATOMIC_RELAXED), maildir_host);
	box = xasprintf("%s/%s", mail_dir, mailbox);
	tmp = xasprintf("%s/tmp/%s", box, name);
	new = xasprintf("%s/new/%s", box, name);
	newdir = xasprintf("%s/new", box);

	err = maildir_write_file(tmp, body, len);
	if (err == ENOENT) {
		/* First delivery to this mailbox: make it, then try once more. */
		if (!(err = maildir_create(box)))
			err = maildir_write_file(tmp, body, len);
	}
	if (!err && rename(tmp, new) < 0) {
		err = errno;
		unlink(tmp);
	}
	if (!err && (err = maildir_fsync_dir(newdir)) != 0) {
		/* Not known to be durable: take it back, the retry delivers again. */
		unlink(new);
	}
	if (!err && name_r && namesz)
		snprintf(name_r, namesz, "%s", name);
	free(box);
	free(tmp);
	free(new);
	free(newdir);
	return err;
}
