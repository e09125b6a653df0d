/* control: the daemon's control socket, through which `cursus queue` asks the running
 * scheduler to flush, hold, release, delete or bounce (protocol: queue/qctl.h). A UNIX
 * stream socket, mode 0600, served on the event loop. */
#ifndef CURSUS_CONTROL_H
#define CURSUS_CONTROL_H

struct event_base;
struct sched;
struct control;

/* Creates the socket at path (its directory made if missing, a stale socket left by
 * a dead daemon removed; a live one, or anything that is not a socket, is an error)
 * and serves it on base. Returns NULL after logging why. */
struct control *control_create(struct event_base *base, const char *path, struct sched *s);
/* Closes every connection, removes the socket file. Call before sched_destroy: a
 * request still in flight is answered to nobody when the scheduler calls back. */
void control_destroy(struct control **ctl);

#endif
