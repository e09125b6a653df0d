/* sendmail_spool: reads the message a program pipes to sendmail into an unlinked
 * temporary file, so that a slow writer (a cron job's output) never holds a session
 * of the daemon open, and the header can be changed before anything is sent. Lines
 * may end in LF, CR or CRLF and leave in CRLF; the header loses its Bcc: fields (the
 * one place they would leak), gains a From: if it has none, and with -t gives its
 * To:, Cc: and Bcc: addresses as recipients. Nothing is sent from here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/sendmail.h"
#include "smtp/addrlist.h"
#include "util/strbuf.h"
#include "util/xmalloc.h"

struct spool {
	FILE *in;
	const struct sendmail_read_opts *o;
	struct sendmail_msg *m;
	struct strbuf line;    /* the line read, without its end */
	struct strbuf field;   /* the header field being read, its lines joined by CRLF */
	int has_from;
	unsigned long lineno;
};

/* The next line into sp->line: 1, 0 at the end of the input, -1 after saying why. */
static int spool_line(struct spool *sp)
{
	int c, any = 0;

	sp->line.len = 0;
	sp->lineno++;
	while ((c = getc_unlocked(sp->in)) != EOF) {
		any = 1;
		if (c == '\n')
			return 1;
		if (c == '\r') {
			if ((c = getc_unlocked(sp->in)) != '\n' && c != EOF)
				ungetc(c, sp->in);
			return 1;
		}
		char ch = (char)c;
		/* A line end and a stuffed dot must fit the daemon's max_text_line. */
		if (sp->line.len + 3 + (sp->line.len ? sp->line.p[0] == '.' : ch == '.') > sp->o->max_line) {
			admin_error("sendmail: line %lu is longer than %zu octets (max_text_line); "
				    "the message was not sent", sp->lineno, sp->o->max_line - 2);
			return -1;
		}
		if ((unsigned char)c >= 0x80)
			sp->m->eightbit = 1;
		strbuf_put(&sp->line, &ch, 1);
	}
	if (ferror(sp->in)) {
		admin_error("sendmail: reading the message: %s", strerror(errno));
		return -1;
	}
	return any;
}

static int spool_write(struct spool *sp, const char *p, size_t n)
{
	if (sp->m->size + n > sp->o->max_size) {
		admin_error("sendmail: the message is larger than %zu octets (max_message_size); "
			    "it was not sent", sp->o->max_size);
		return -1;
	}
	if (n && fwrite(p, 1, n, sp->m->file) != n) {
		admin_error("sendmail: writing the temporary copy: %s", strerror(errno));
		return -1;
	}
	sp->m->size += n;
	return 0;
}

/* RFC 5322 2.2: a field name is printable ASCII but ':', then ':' (obsolete syntax
 * allows white space before it). */
static size_t spool_field_name(const char *p, size_t len)
{
	size_t i = 0;
	while (i < len && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
		i++;
	size_t name = i;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return name > 0 && i < len && p[i] == ':' ? name : 0;
}

static int spool_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* The field read ends: it is looked at, then written unless it is Bcc:. */
static int spool_field_end(struct spool *sp)
{
	struct strbuf *f = &sp->field;
	size_t n;
	int bcc;

	if (!f->len)
		return 0;
	n = spool_field_name(f->p, f->len);
	bcc = spool_is(f->p, n, "Bcc");
	if (spool_is(f->p, n, "From"))
		sp->has_from = 1;
	if (sp->o->extract && (bcc || spool_is(f->p, n, "To") || spool_is(f->p, n, "Cc"))) {
		const char *v = memchr(f->p, ':', f->len) + 1;
		addrlist_parse(v, f->len - (size_t)(v - f->p), &sp->m->rcpts, &sp->m->n_rcpts);
	}
	if (!bcc && (spool_write(sp, f->p, f->len) < 0 || spool_write(sp, "\r\n", 2) < 0))
		return -1;
	f->len = 0;
	return 0;
}

/* The header ends (blank line, a line that is no field, or the end of the input). */
static int spool_header_end(struct spool *sp, int blank)
{
	const char *from = sp->o->from_field;
	if (spool_field_end(sp) < 0)
		return -1;
	if (!sp->has_from && from &&
	    (spool_write(sp, from, strlen(from)) < 0 || spool_write(sp, "\r\n", 2) < 0))
		return -1;
	return blank ? spool_write(sp, "\r\n", 2) : 0;
}

static int spool_run(struct spool *sp)
{
	int rc, in_header = 1;

	while ((rc = spool_line(sp)) > 0) {
		const char *p = sp->line.len ? sp->line.p : "";
		size_t len = sp->line.len;
		if (sp->o->dot_ends && len == 1 && p[0] == '.')
			break;
		if (in_header) {
			/* An mbox "From " line before the header (mail(1) and friends). */
			if (sp->lineno == 1 && len >= 5 && memcmp(p, "From ", 5) == 0 &&
			    !spool_field_name(p, len))
				continue;
			if ((p[0] == ' ' || p[0] == '\t') && len && sp->field.len) {
				strbuf_put(&sp->field, "\r\n", 2);
				strbuf_put(&sp->field, p, len);
				continue;
			}
			if (len && spool_field_name(p, len)) {
				if (spool_field_end(sp) < 0)
					return -1;
				strbuf_put(&sp->field, p, len);
				continue;
			}
			/* A blank line ends the header; a line that is no field starts the
			 * body, after the blank line it lacked. */
			in_header = 0;
			if (spool_header_end(sp, 1) < 0)
				return -1;
			if (len == 0)
				continue;
		}
		if (spool_write(sp, p, len) < 0 || spool_write(sp, "\r\n", 2) < 0)
			return -1;
	}
	if (rc < 0)
		return -1;
	if (in_header && spool_header_end(sp, 0) < 0)
		return -1;
	return 0;
}

static FILE *spool_tmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	char *path = xasprintf("%s/cursus-sendmail.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	FILE *f = NULL;

	if (fd >= 0) {
		/* Unlinked at once: nothing is left behind, whatever happens. */
		unlink(path);
		if (!(f = fdopen(fd, "w+")))
			close(fd);
	}
	if (!f)
		admin_error("sendmail: cannot make a temporary file in %s: %s", dir && *dir ? dir : "/tmp",
			    strerror(errno));
	free(path);
	return f;
}

int sendmail_spool_read(FILE *in, const struct sendmail_read_opts *o, struct sendmail_msg *m)
{
	struct spool sp = { .in = in, .o = o, .m = m };
	int rc = 0;

	memset(m, 0, sizeof(*m));
	if (!(m->file = spool_tmpfile()))
		return EX_CANTCREAT;
	if (spool_run(&sp) < 0)
		rc = ferror(in) ? EX_IOERR : ferror(m->file) ? EX_CANTCREAT : EX_DATAERR;
	else if (fflush(m->file) != 0 || fseek(m->file, 0, SEEK_SET) != 0) {
		admin_error("sendmail: writing the temporary copy: %s", strerror(errno));
		rc = EX_CANTCREAT;
	}
	free(sp.line.p);
	free(sp.field.p);
	return rc;
}

void sendmail_msg_clear(struct sendmail_msg *m)
{
	if (m->file)
		fclose(m->file);
	addrlist_free(m->rcpts, m->n_rcpts);
	memset(m, 0, sizeof(*m));
}
