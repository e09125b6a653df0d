/* mtasts_store: see mtasts_store.h. File names are the domain names themselves: the
 * caller passes only domains it routes mail to (letters, digits, hyphens, dots; no
 * "/"), and a name that is not such a domain is neither written nor read. */
#include "relay/mtasts_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define MTASTS_STORE_MAGIC "cursus-mta-sts 1\n"
/* A stored file: the policy (at most mta_sts_max_size, itself at most 64 KiB) and
 * its few lines of header. */
#define MTASTS_STORE_FILE_MAX (64 * 1024 + 1024)

static int mtasts_store_name_ok(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > 253 || d[0] == '.')
		return 0;
	for (const char *p = d; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '.' || *p == '_'))
			return 0;
	return 1;
}

void mtasts_stored_clear(struct mtasts_stored *s)
{
	free(s->domain);
	free(s->text);
	mtasts_policy_clear(&s->policy);
	memset(s, 0, sizeof(*s));
}

int mtasts_store_save(const char *dir, const struct mtasts_stored *s)
{
	char *head, *data, *path;
	size_t hn;
	int e;
	if (!mtasts_store_name_ok(s->domain))
		return EINVAL;
	head = xasprintf(MTASTS_STORE_MAGIC "domain %s\nid %s\nfetched %lld\n\n", s->domain, s->id,
			 (long long)s->fetched);
	hn = strlen(head);
	data = xmalloc(hn + s->len + 1);
	memcpy(data, head, hn);
	memcpy(data + hn, s->text, s->len);
	path = xasprintf("%s/%s", dir, s->domain);
	if ((e = fs_mkdirs(dir, 0700)) == 0)
		e = fs_write_replace(path, data, hn + s->len, 0600);
	free(path);
	free(data);
	free(head);
	return e;
}

void mtasts_store_remove(const char *dir, const char *domain)
{
	char *path;
	if (!mtasts_store_name_ok(domain))
		return;
	path = xasprintf("%s/%s", dir, domain);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("mta-sts event=cache-remove-failed file=%s", path);
	free(path);
}

/* Reads one file (at most MTASTS_STORE_FILE_MAX) under dirfd; NULL when unreadable. */
static char *mtasts_store_read(int dirfd, const char *name, size_t *len_r)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char *buf;
	ssize_t n;
	size_t len = 0;
	if (fd < 0)
		return NULL;
	buf = xmalloc(MTASTS_STORE_FILE_MAX + 1);
	while (len < MTASTS_STORE_FILE_MAX + 1 &&
	       (n = read(fd, buf + len, MTASTS_STORE_FILE_MAX + 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (len > MTASTS_STORE_FILE_MAX) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

/* "key value\n" at *p; advances *p past it. */
static int mtasts_store_field(const char **p, const char *end, const char *key, char *out,
			      size_t outsz)
{
	size_t kn = strlen(key);
	const char *eol = memchr(*p, '\n', (size_t)(end - *p));
	size_t vn;
	if (!eol || (size_t)(eol - *p) <= kn + 1 || strncmp(*p, key, kn) != 0 || (*p)[kn] != ' ')
		return -1;
	vn = (size_t)(eol - *p) - kn - 1;
	if (vn >= outsz)
		return -1;
	memcpy(out, *p + kn + 1, vn);
	out[vn] = '\0';
	*p = eol + 1;
	return 0;
}

static int mtasts_store_parse(const char *name, const char *buf, size_t len,
			      struct mtasts_stored *s, const char **why)
{
	const char *p = buf, *end = buf + len;
	char domain[256], fetched[32], *e;
	size_t mn = strlen(MTASTS_STORE_MAGIC);
	memset(s, 0, sizeof(*s));
	if (len < mn || memcmp(buf, MTASTS_STORE_MAGIC, mn) != 0) {
		*why = "not a cursus MTA-STS cache file";
		return -1;
	}
	p += mn;
	if (mtasts_store_field(&p, end, "domain", domain, sizeof(domain)) < 0 ||
	    strcmp(domain, name) != 0 ||
	    mtasts_store_field(&p, end, "id", s->id, sizeof(s->id)) < 0 ||
	    mtasts_store_field(&p, end, "fetched", fetched, sizeof(fetched)) < 0 ||
	    p >= end || *p != '\n') {
		*why = "bad header";
		return -1;
	}
	p++;
	s->fetched = (time_t)strtoll(fetched, &e, 10);
	if (*e || s->fetched <= 0) {
		*why = "bad fetch time";
		return -1;
	}
	if (mtasts_policy_parse(p, (size_t)(end - p), &s->policy, why) < 0)
		return -1;
	s->domain = xstrdup(name);
	s->len = (size_t)(end - p);
	s->text = xstrndup(p, s->len);
	return 0;
}

size_t mtasts_store_load(const char *dir, void (*cb)(void *arg, struct mtasts_stored *s),
			 void *arg)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	if (!dp) {
		if (errno != ENOENT)
			log_warn("mta-sts event=cache-unreadable dir=%s", dir);
		return 0;
	}
	while ((de = readdir(dp)) != NULL) {
		struct mtasts_stored s;
		const char *why = NULL;
		size_t len = 0;
		char *buf;
		if (de->d_name[0] == '.' || !mtasts_store_name_ok(de->d_name))
			continue; /* ".", "..", and fs_write_replace's temporary files */
		if (!(buf = mtasts_store_read(dirfd(dp), de->d_name, &len))) {
			log_warnx("mta-sts event=cache-skipped file=%s/%s reason=\"unreadable or "
				  "too large\"", dir, de->d_name);
			continue;
		}
		if (mtasts_store_parse(de->d_name, buf, len, &s, &why) < 0) {
			log_warnx("mta-sts event=cache-skipped file=%s/%s reason=\"%s\"", dir,
				  de->d_name, why);
			mtasts_stored_clear(&s);
		} else {
			cb(arg, &s);
			n++;
		}
		free(buf);
	}
	closedir(dp);
	return n;
}
