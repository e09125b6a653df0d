/* maildir: local delivery into Maildir as described at https://cr.yp.to/proto/maildir.html.
 * Promises: a message appears in new/ only whole (written and fsync'd in tmp/ under a
 * unique name, then renamed) and the rename is durable (new/ fsync'd) before success
 * is returned; a failed delivery leaves nothing in tmp/ or new/; nothing below mail_dir
 * is reached through a symbolic link (a planted one fails the delivery, temporarily). */
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

#include "util/fsutil.h"
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

static int maildir_fsync_fd(int fd)
{
	return fsync(fd) < 0 ? errno : 0;
}

/* The directory name in parent, made (0700, durable in parent) when missing. Never
 * through a symbolic link: one planted in place of a domain, a mailbox or new/ would
 * otherwise have mail written wherever it points, with the daemon's rights. */
static int maildir_subdir(int parent, const char *name, int *fd_r)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), err;
	if (fd < 0 && errno == ENOENT) {
		if (mkdirat(parent, name, 0700) == 0) {
			if ((err = maildir_fsync_fd(parent)) != 0)
				return err;
		} else if (errno != EEXIST) {
			return errno;
		}
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		struct stat st;
		err = errno;
		/* O_DIRECTORY makes a link ENOTDIR: say what it is in the log. */
		if (err == ENOTDIR && fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			err = ELOOP;
		return err;
	}
	*fd_r = fd;
	return 0;
}

/* mail_dir/<domain>/<local-part>/{cur,new,tmp}: tmp/ and new/ stay open, so the rename
 * below happens between the directories checked here whatever the paths become. */
static int maildir_open(const char *mail_dir, const char *mailbox, int *tmp_r, int *new_r)
{
	/* tmp last: a concurrent delivery that finds tmp/ must also find new/. */
	static const char *const subs[] = { "cur", "new", "tmp" };
	char *domain = xstrdup(mailbox), *local = strchr(domain, '/');
	int root, dom = -1, box = -1, fds[3] = { -1, -1, -1 }, err;

	*local++ = '\0';
	/* mail_dir itself is the administrator's choice and may be a link. */
	root = open(mail_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 && errno == ENOENT && fs_mkdirs(mail_dir, 0700) == 0)
		root = open(mail_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		err = errno;
		free(domain);
		return err;
	}
	if (!(err = maildir_subdir(root, domain, &dom)) && !(err = maildir_subdir(dom, local, &box)))
		for (int i = 0; i < 3 && !err; i++)
			err = maildir_subdir(box, subs[i], &fds[i]);
	if (fds[0] >= 0)
		close(fds[0]);
	if (err) {
		if (fds[1] >= 0)
			close(fds[1]);
		if (fds[2] >= 0)
			close(fds[2]);
	} else {
		*new_r = fds[1];
		*tmp_r = fds[2];
	}
	if (box >= 0)
		close(box);
	if (dom >= 0)
		close(dom);
	close(root);
	free(domain);
	return err;
}

/* Block of the read/write copy: bounded memory per delivery thread. */
#define MAILDIR_COPY_BLOCK (64 * 1024)

/* len octets of src at off into dst (both regular files): in the kernel where it can
 * (copy_file_range: no copy through user space), else through a bounded buffer. */
static int maildir_copy(int dst, int src, uint64_t off, size_t len)
{
	loff_t in = (loff_t)off;
	size_t done = 0;
	char *buf;
	while (done < len) {
		ssize_t n = copy_file_range(src, &in, dst, NULL, len - done, 0);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* Not supported here (another file system, an old kernel, a file system
		 * without it), or 0 (a file shorter than checked): the plain way, which
		 * tells the two apart. */
		if (n < 0 && errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP &&
		    errno != EINVAL)
			return errno;
		break;
	}
	if (done == len)
		return 0;
	buf = xmalloc(MAILDIR_COPY_BLOCK);
	while (done < len) {
		size_t want = len - done < MAILDIR_COPY_BLOCK ? len - done : MAILDIR_COPY_BLOCK;
		ssize_t r = pread(src, buf, want, (off_t)(off + done)), w = 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int err = r < 0 ? errno : EIO;
			free(buf);
			return err;
		}
		while (w < r) {
			ssize_t k = write(dst, buf + w, (size_t)(r - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				int err = errno;
				free(buf);
				return err;
			}
			w += k;
		}
		done += (size_t)r;
	}
	free(buf);
	return 0;
}

static int maildir_write_head(int fd, const char *head, size_t hlen)
{
	while (hlen > 0) {
		ssize_t k = write(fd, head, hlen);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno;
		head += k;
		hlen -= (size_t)k;
	}
	return 0;
}

static int maildir_write_file(int dir, const char *name, const char *head, size_t hlen, int src,
			      uint64_t off, size_t len)
{
	int fd = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	int err;
	if (fd < 0)
		return errno;
	err = maildir_write_head(fd, head, hlen);
	if (!err)
		err = maildir_copy(fd, src, off, len);
	if (!err && fsync(fd) < 0)
		err = errno;
	if (close(fd) < 0 && !err)
		err = errno;
	if (err)
		unlinkat(dir, name, 0);
	return err;
}

int maildir_deliver(const char *mail_dir, const char *mailbox, const char *head, size_t hlen,
		    int src, uint64_t off, size_t len, char *name_r, size_t namesz)
{
	struct timespec ts;
	char name[400];
	int tmpfd = -1, newfd = -1, err;

	if (!maildir_valid_mailbox(mailbox))
		return EINVAL;
	pthread_once(&maildir_host_once, maildir_host_init);
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Unique per host: the time, the pid, and a counter shared by every
	 * delivery thread of this process. */
	snprintf(name, sizeof(name), "%lld.%ld_%lu.%s", (long long)ts.tv_sec, (long)getpid(),
		 __atomic_add_fetch(&maildir_counter, 1, __ATOMIC_RELAXED), maildir_host);
	if ((err = maildir_open(mail_dir, mailbox, &tmpfd, &newfd)) != 0)
		return err;
	err = maildir_write_file(tmpfd, name, head, hlen, src, off, len);
	if (!err && renameat(tmpfd, name, newfd, name) < 0) {
		err = errno;
		unlinkat(tmpfd, name, 0);
	}
	if (!err && (err = maildir_fsync_fd(newfd)) != 0) {
		/* Not known to be durable: take it back, the retry delivers again. */
		unlinkat(newfd, name, 0);
	}
	if (!err && name_r && namesz)
		snprintf(name_r, namesz, "%s", name);
	close(tmpfd);
	close(newfd);
	return err;
}
