/* cursus sendmail: the sendmail(8) command line that cron, mail(1), web applications
 * and mailing scripts call: options as Postfix's sendmail takes them (the ones with no
 * meaning here accepted and ignored, unknown ones refused with EX_USAGE), the sender
 * and recipients qualified with the local origin, the message from stdin, exit codes
 * from sysexits.h. Also -bp (mailq), -bi (newaliases), -q (flush) and -bs (SMTP on
 * stdin/stdout). No privilege: the daemon learns the caller's uid from the kernel. */
#include <ctype.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/sendmail.h"
#include "config/config.h"
#include "smtp/addrlist.h"
#include "util/xmalloc.h"

/* RFC 3461 4.4: an ENVID is at most 100 characters. */
#define SENDMAIL_ENVID_MAX 100
/* Octets of a full name kept for the From: field. */
#define SENDMAIL_NAME_MAX 200

struct sendmail_args {
	char mode;                /* 'm' deliver, 's' SMTP, 'p' mailq, 'i' newaliases, 'q' flush */
	int extract, dot_ends, verbose;
	const char *config;       /* -C */
	const char *sender;       /* -f, -r */
	const char *fullname;     /* -F */
	char notify[40];          /* -N, upper case */
	const char *ret;          /* -R */
	const char *envid;        /* -V */
	const char *flush_domain; /* -qR */
	char **rcpts;             /* the arguments after the options */
	int n_rcpts;
};

static int sendmail_usage(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int sendmail_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("cursus: sendmail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-N NOTIFY] [-R RET] [-V ENVID]"
	      " [-bm|-bs|-bp|-bi] [--] [RECIPIENT ...]\n", stderr);
	return EX_USAGE;
}

/* -N never | success,delay,failure (any of them, RFC 3461 4.1). */
static int sendmail_notify(struct sendmail_args *a, const char *v)
{
	char buf[sizeof(a->notify)], *tok, *save = NULL;
	size_t used = 0;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "never") && strcasecmp(tok, "success") && strcasecmp(tok, "delay") &&
		    strcasecmp(tok, "failure"))
			return -1;
		if (!strcasecmp(tok, "never") && (used || strcasecmp(v, "never")))
			return -1;
		used += (size_t)snprintf(a->notify + used, sizeof(a->notify) - used, "%s", used ? "," : "");
		for (; *tok && used + 1 < sizeof(a->notify); tok++)
			a->notify[used++] = (char)toupper((unsigned char)*tok);
		a->notify[used] = '\0';
	}
	return used ? 0 : -1;
}

/* -o: the options of sendmail's configuration file, all without meaning here but i. */
static int sendmail_o(struct sendmail_args *a, const char *v)
{
	if (strcmp(v, "i") == 0)
		a->dot_ends = 0;
	else if (!strchr("78ABdeimQ", v[0]))
		return sendmail_usage("-o%s: unknown option", v);
	return 0;
}

/* An option with a value; c is the option letter. */
static int sendmail_valued(struct sendmail_args *a, char c, const char *v)
{
	switch (c) {
	case 'C': a->config = v; break;
	case 'F': a->fullname = v; break;
	case 'f':
	case 'r': a->sender = v; break;
	case 'N':
		if (sendmail_notify(a, v) < 0)
			return sendmail_usage("-N %s: expected never, or success,delay,failure", v);
		break;
	case 'R':
		if (strcasecmp(v, "full") && strcasecmp(v, "hdrs"))
			return sendmail_usage("-R %s: expected full or hdrs", v);
		a->ret = strcasecmp(v, "full") ? "HDRS" : "FULL";
		break;
	case 'V':
		if (!*v || strlen(v) > SENDMAIL_ENVID_MAX)
			return sendmail_usage("-V %s: an envelope id is 1 to 100 characters", v);
		a->envid = v;
		break;
	case 'b':
		if (strlen(v) != 1 || !strchr("mspi", v[0]))
			return sendmail_usage("-b%s: not supported (only -bm, -bs, -bp, -bi)", v);
		a->mode = v[0];
		break;
	case 'o': return sendmail_o(a, v);
	default: break; /* -B -L -O -X -e -h -p: no meaning here */
	}
	return 0;
}

/* Options as getopt would read them ("-ti", "-fSENDER", "-f SENDER"), up to "--" or
 * the first argument that is none; the rest are recipients. */
static int sendmail_parse(struct sendmail_args *a, int argc, char **argv)
{
	int i;

	a->mode = 'm';
	a->dot_ends = 1;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0')
			break;
		for (const char *p = arg + 1; *p; p++) {
			if (*p == 'q') {
				/* -q: deliver the queue now; -qRdomain its mail; -qTIME: nothing. */
				a->mode = 'q';
				if (p[1] == 'R' && p[2])
					a->flush_domain = p + 2;
				else if (p[1] && p[1] != 'R')
					a->mode = 'n';
				break;
			}
			if (strchr("BCFLNORVXbefhopr", *p)) {
				const char *v = p[1] ? p + 1 : i + 1 < argc ? argv[++i] : NULL;
				char opt[3] = { '-', *p, '\0' };
				if (!v)
					return sendmail_usage("%s needs a value", opt);
				if (sendmail_valued(a, *p, v) != 0)
					return EX_USAGE;
				break;
			}
			switch (*p) {
			case 't': a->extract = 1; break;
			case 'i': a->dot_ends = 0; break;
			case 'v': a->verbose = 1; break;
			case 'I': a->mode = 'i'; break;
			case 'G': case 'U': case 'c': case 'm': case 'n': case 'x': break;
			default: {
				char opt[3] = { '-', *p, '\0' };
				return sendmail_usage("%s: unknown option", opt);
			}
			}
		}
	}
	a->rcpts = argv + i;
	a->n_rcpts = argc - i;
	return 0;
}

/* Unqualified addresses ("root") get this domain, as Postfix appends myorigin: the
 * hostname when it is a local domain, else the first local domain. */
static const char *sendmail_origin(const struct config *cfg)
{
	if (config_is_local_domain(cfg, cfg->hostname) || cfg->n_local_domains == 0)
		return cfg->hostname;
	return cfg->local_domains[0];
}

static char *sendmail_qualify(const char *addr, const char *origin)
{
	return strchr(addr, '@') ? xstrdup(addr) : xasprintf("%s@%s", addr, origin);
}

/* -f: one address, or "" / "<>" for the null sender. NULL when it is not one. */
static char *sendmail_sender_arg(const char *v, const char *origin)
{
	char **list = NULL, *out = NULL;
	size_t n = 0;

	if (!*v || strcmp(v, "<>") == 0)
		return xstrdup("");
	if (addrlist_parse(v, strlen(v), &list, &n) == 1)
		out = sendmail_qualify(list[0], origin);
	addrlist_free(list, n);
	return out;
}

/* The phrase of a From: field for name: as is, quoted, or RFC 2047 encoded words when
 * it is not ASCII. Control characters are dropped: no name may start a new field. */
static char *sendmail_phrase(const char *name)
{
	char clean[SENDMAIL_NAME_MAX + 1], out[4 * SENDMAIL_NAME_MAX + 64];
	size_t n = 0, o = 0;
	int specials = 0, utf8 = 0;

	for (; *name && n < SENDMAIL_NAME_MAX; name++) {
		unsigned char c = (unsigned char)*name;
		if (c < 0x20 || c == 0x7f)
			continue;
		specials |= c < 0x80 && strchr("()<>[]:;@\\,.\"", c) != NULL;
		utf8 |= c >= 0x80;
		clean[n++] = (char)c;
	}
	clean[n] = '\0';
	if (utf8) {
		/* Encoded words of at most 45 octets (75 characters, RFC 2047 2), each cut
		 * between UTF-8 characters. */
		for (size_t i = 0; i < n;) {
			size_t len = n - i < 45 ? n - i : 45;
			while (len > 1 && i + len < n && ((unsigned char)clean[i + len] & 0xc0) == 0x80)
				len--;
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s=?UTF-8?B?", o ? " " : "");
			o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, (const unsigned char *)clean + i,
						     (int)len);
			o += (size_t)snprintf(out + o, sizeof(out) - o, "?=");
			i += len;
		}
		return xstrdup(out);
	}
	if (!specials)
		return xstrdup(clean);
	out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (clean[i] == '"' || clean[i] == '\\')
			out[o++] = '\\';
		out[o++] = clean[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return xstrdup(out);
}

/* The From: field added when the message has none: -F, else $NAME, else the
 * account's full name (GECOS), as Postfix does. */
static char *sendmail_from_field(const char *sender, const char *fullname, const struct passwd *pw)
{
	char gecos[SENDMAIL_NAME_MAX + 1] = "", *phrase, *f;

	if (!*sender)
		return NULL;
	if (!fullname)
		fullname = getenv("NAME");
	if (!fullname && pw && pw->pw_gecos) {
		snprintf(gecos, sizeof(gecos), "%.*s", (int)strcspn(pw->pw_gecos, ","), pw->pw_gecos);
		fullname = gecos;
	}
	if (!fullname || !*fullname)
		return xasprintf("From: %s", sender);
	phrase = sendmail_phrase(fullname);
	f = *phrase ? xasprintf("From: %s <%s>", phrase, sender) : xasprintf("From: %s", sender);
	free(phrase);
	return f;
}

/* Qualified and without repeats (compared without regard to case). */
static void sendmail_add_rcpt(struct sendmail_env *e, const char *addr, const char *origin)
{
	char *q = sendmail_qualify(addr, origin);
	for (size_t i = 0; i < e->n_rcpts; i++) {
		if (strcasecmp(e->rcpts[i], q) == 0) {
			free(q);
			return;
		}
	}
	e->rcpts = xrealloc(e->rcpts, (e->n_rcpts + 1) * sizeof(*e->rcpts));
	e->rcpts[e->n_rcpts++] = q;
}

static int sendmail_deliver(const struct config *cfg, const struct sendmail_args *a)
{
	const char *origin = sendmail_origin(cfg);
	struct passwd *pw = getpwuid(getuid());
	struct sendmail_env env = { .notify = a->notify[0] ? a->notify : NULL, .ret = a->ret,
				    .envid = a->envid, .verbose = a->verbose };
	struct sendmail_msg m = {0};
	char *sender = NULL, *from = NULL;
	int rc;

	if (a->sender) {
		if (!(sender = sendmail_sender_arg(a->sender, origin)))
			return sendmail_usage("-f %s: not one address", a->sender);
	} else if (pw && pw->pw_name && *pw->pw_name) {
		sender = sendmail_qualify(pw->pw_name, origin);
	} else {
		admin_error("sendmail: uid %ld has no login name; say the sender with -f", (long)getuid());
		return EX_NOUSER;
	}
	for (int i = 0; i < a->n_rcpts; i++) {
		char **list = NULL;
		size_t n = 0;
		addrlist_parse(a->rcpts[i], strlen(a->rcpts[i]), &list, &n);
		for (size_t j = 0; j < n; j++)
			sendmail_add_rcpt(&env, list[j], origin);
		addrlist_free(list, n);
	}
	if (!env.n_rcpts && !a->extract) {
		rc = sendmail_usage("%s", "no recipients: name them, or use -t");
		goto out;
	}
	from = sendmail_from_field(sender, a->fullname, pw);
	struct sendmail_read_opts ro = {
		.extract = a->extract, .dot_ends = a->dot_ends, .from_field = from,
		.max_line = cfg->limits.max_text_line, .max_size = cfg->limits.max_message_size,
	};
	if ((rc = sendmail_spool_read(stdin, &ro, &m)) != 0)
		goto out;
	for (size_t i = 0; i < m.n_rcpts; i++)
		sendmail_add_rcpt(&env, m.rcpts[i], origin);
	if (!env.n_rcpts) {
		admin_error("sendmail: no recipient addresses found in the message header");
		rc = EX_USAGE;
		goto out;
	}
	env.sender = sender;
	rc = sendmail_submit(cfg->local_socket, &env, &m);
out:
	sendmail_msg_clear(&m);
	addrlist_free(env.rcpts, env.n_rcpts);
	free(sender);
	free(from);
	return rc;
}

int cmd_newaliases(void)
{
	fputs("cursus: aliases live in cursus's user store and take effect at once "
	      "(cursus alias add|del|list); there is nothing to rebuild\n", stderr);
	return EX_OK;
}

int cmd_mailq(const char *config_path)
{
	char *argv[] = { "queue", "list", NULL };
	return cmd_queue(config_path, 2, argv);
}

int cmd_sendmail(const char *config_path, int argc, char **argv)
{
	struct sendmail_args a = {0};
	struct config *cfg;
	int rc;

	if ((rc = sendmail_parse(&a, argc, argv)) != 0)
		return rc;
	if (a.config)
		config_path = a.config;
	switch (a.mode) {
	case 'i': return cmd_newaliases();
	case 'p': return cmd_mailq(config_path);
	case 'n': return EX_OK;
	case 'q': {
		char *fl[] = { "queue", "flush", "--domain", (char *)a.flush_domain, NULL };
		return cmd_queue(config_path, a.flush_domain ? 4 : 2, fl);
	}
	default: break;
	}
	if (!(cfg = config_load(config_path, stderr))) {
		admin_error("sendmail: cannot read the configuration %s; the message was not sent",
			    config_path);
		return EX_CONFIG;
	}
	rc = a.mode == 's' ? sendmail_smtp_proxy(cfg->local_socket) : sendmail_deliver(cfg, &a);
	config_free(&cfg);
	return rc;
}
