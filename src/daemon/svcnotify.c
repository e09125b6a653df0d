/* svcnotify: see svcnotify.h. A thin layer over libsystemd's sd_notify, so that the
 * daemon states its phases by name and the protocol's strings live in one place. */
#include "daemon/svcnotify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "util/log.h"

/* A failed notification is logged, never fatal: the daemon serves all the same, and
 * systemd's own timeout reports a readiness that never arrived. */
static void svcnotify_send(const char *state)
{
	int rc = sd_notify(0, state);
	if (rc < 0)
		log_warnx("svcnotify event=failed state=\"%s\" error=\"%s\"", state, strerror(-rc));
	else if (rc > 0)
		log_debug("svcnotify event=sent state=\"%s\"", state);
}

void svcnotify_ready(void) { svcnotify_send("READY=1\nSTATUS=serving"); }

/* systemd 253 and later want MONOTONIC_USEC beside RELOADING=1 (Type=notify-reload);
 * older ones ignore it. */
void svcnotify_reloading(void)
{
	struct timespec ts;
	char state[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(state, sizeof(state), "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	svcnotify_send(state);
}

void svcnotify_stopping(void) { svcnotify_send("STOPPING=1\nSTATUS=stopping"); }
