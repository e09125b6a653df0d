/* local: see local.h. The listener is an ordinary smtp_listener whose listener_conf is
 * made here (name "local", the global limits), so every policy of the session code
 * applies to it unchanged but where ROLE_LOCAL says otherwise. */
#include "daemon/local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/unixsock.h"
#include "smtp/session.h"
#include "util/xmalloc.h"

#define LOCAL_BACKLOG 128

/* Any local user must reach the socket, the directory holding it included: search
 * only (x), so that its listing (the control socket, the pid file) stays private. */
static void local_open_dir(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	struct stat st;

	if (slash && slash != dir)
		*slash = '\0';
	if (stat(dir, &st) == 0 && (st.st_mode & 0011) != 0011) {
		if (st.st_uid != geteuid() || chmod(dir, (st.st_mode & 07777) | 0011) < 0)
			log_warnx("local path=%s warning=\"directory %s is not searchable by others: "
				  "only its owner can submit mail\"", path, dir);
	}
	free(dir);
}

struct smtp_listener *local_listener_create(struct smtp_server *srv, evconnlistener_cb on_accept,
					    evconnlistener_errorcb on_error)
{
	const struct config *cfg = srv->cfg;
	struct smtp_listener *l;
	int fd;

	if ((fd = unixsock_listen("local", cfg->local_socket, 0666, 0711, LOCAL_BACKLOG)) < 0)
		return NULL;
	local_open_dir(cfg->local_socket);
	l = xcalloc(1, sizeof(*l));
	l->srv = srv;
	l->cfg = config_ref(cfg);
	l->lc = &cfg->local_listener;
	l->evl = evconnlistener_new(srv->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				    -1, fd);
	if (!l->evl) {
		log_warnx("local cannot serve %s", cfg->local_socket);
		close(fd);
		unlink(cfg->local_socket);
		config_release(&l->cfg);
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->evl, on_error);
	log_info("listen name=local role=local address=%s tls=none", cfg->local_socket);
	return l;
}

void local_listener_destroy(struct smtp_listener **lp, const char *path)
{
	struct smtp_listener *l = *lp;

	if (!l)
		return;
	evconnlistener_free(l->evl);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("local cannot remove %s", path);
	config_release(&l->cfg);
	free(l);
	*lp = NULL;
}
