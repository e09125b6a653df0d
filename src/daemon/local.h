/* local: the daemon's local submission socket (local_socket), on which `cursus
 * sendmail` hands messages in. A UNIX stream socket, mode 0666, served by the SMTP
 * session code as a listener of role ROLE_LOCAL: no TLS, no AUTH, any sender, any
 * recipient domain; the caller's uid comes from SO_PEERCRED and is recorded in the
 * Received: field and the log (smtp/session.h SESSION_LOCAL). */
#ifndef CURSUS_LOCAL_H
#define CURSUS_LOCAL_H

#include <event2/listener.h>

struct smtp_server;
struct smtp_listener;

/* Made after the privilege drop, as the mail user: the socket at cfg->local_socket
 * (its directory made if missing and opened to others for search only), served with
 * the server's accept callbacks. Returns NULL after logging why. */
struct smtp_listener *local_listener_create(struct smtp_server *srv, evconnlistener_cb on_accept,
					    evconnlistener_errorcb on_error);
/* Stops accepting, removes the socket file (path: where it was made at start), frees l. Its
 * sessions must be gone already (they point at it). */
void local_listener_destroy(struct smtp_listener **l, const char *path);

#endif
