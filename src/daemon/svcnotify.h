/* svcnotify: tells the service manager (systemd, Type=notify) what cursusd is doing:
 * ready once its listeners are bound and it serves, reloading around SIGHUP, stopping on
 * shutdown. Without NOTIFY_SOCKET in the environment (a start by hand, the tests) every
 * call does nothing. */
#ifndef CURSUS_SVCNOTIFY_H
#define CURSUS_SVCNOTIFY_H

void svcnotify_ready(void);
void svcnotify_reloading(void);
void svcnotify_stopping(void);

#endif
