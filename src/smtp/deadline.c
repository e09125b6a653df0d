/* deadline: the timers that keep a session from being held by a slow client.
 *
 * The connection's own timeout is an idle timeout: every byte restarts it, so a client
 * that trickles one byte a second never meets it. Each phase that a client could
 * stretch that way therefore also has a deadline counted from its start: a command
 * line from its first byte (command_timeout), the DATA phase from the 354 to the final
 * dot or one BDAT chunk (data_phase_timeout), a TLS handshake from its start
 * (tls_handshake_timeout). One timer per session holds whichever applies.
 *
 * Stress mode (Postfix's): when a listener holds stress_threshold percent of its
 * max_sessions, the idle timeouts, the command deadline and the handshake deadline
 * shrink to stress_timeout, for the sessions already there too, so that slow clients
 * make room for new ones. The DATA phase keeps its deadline: shrinking it would cut
 * off legitimate large messages. Stress ends below 90% of the level it started at. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <time.h>

#include "net/conn.h"
#include "smtp/session.h"

static const char *const kind_names[] = {"none", "command", "data-phase", "tls-handshake"};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void timer_add_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static int command_state(enum smtp_state st)
{
	return st == S_INIT || st == S_READY || st == S_MAIL || st == S_RCPT || st == S_AUTH;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	enum deadline_kind kind = (enum deadline_kind)s->deadline_kind;
	s->deadline_kind = DL_NONE;
	/* A last reply waiting for a handshake (a refusal over implicit TLS) waits no
	 * longer than the handshake may take. */
	if (!s->conn || (s->state == S_CLOSING && kind != DL_HANDSHAKE))
		return;
	log_info("smtp session=%s event=timeout deadline=%s%s", s->id, kind_names[kind],
		 s->listener->stress ? " stress=yes" : "");
	if (kind == DL_HANDSHAKE) {
		/* Nothing can be said inside an unfinished handshake: close now. This may
		 * free the session. */
		conn_abort(s->conn, "tls handshake deadline");
		return;
	}
	session_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->cfg->hostname);
	session_close(s);
}

void session_deadline_init(struct session *s)
{
	s->deadline = evtimer_new(s->srv->base, deadline_cb, s);
	s->deadline_kind = DL_NONE;
}

void session_deadline_free(struct session *s)
{
	if (s->deadline)
		event_free(s->deadline);
	s->deadline = NULL;
}

unsigned session_timeout_ms(const struct session *s, unsigned configured_ms)
{
	unsigned stress = s->limits->stress_timeout_ms;
	return s->listener->stress && stress < configured_ms ? stress : configured_ms;
}

void session_deadline_set(struct session *s, enum deadline_kind kind)
{
	const struct limits *l = s->limits;
	unsigned ms = 0;
	if (!s->deadline)
		return;
	evtimer_del(s->deadline);
	s->deadline_kind = kind;
	switch (kind) {
	case DL_NONE: return;
	case DL_COMMAND: ms = session_timeout_ms(s, l->command_timeout_ms); break;
	case DL_DATA: ms = l->data_phase_timeout_ms; break;
	case DL_HANDSHAKE: ms = session_timeout_ms(s, l->tls_handshake_timeout_ms); break;
	}
	s->deadline_at = now_ms() + ms;
	timer_add_ms(s->deadline, ms);
}

static unsigned idle_ms(const struct session *s, enum smtp_state st)
{
	/* RFC 5321 4.5.3.2.7: "An SMTP server SHOULD have a timeout of at least 5 minutes
	 * while it is awaiting the next command from the sender." */
	return session_timeout_ms(s, (st == S_DATA || st == S_BDAT) ? s->limits->data_timeout_ms
								  : s->limits->command_timeout_ms);
}

void session_deadline_state(struct session *s, enum smtp_state next)
{
	if (s->conn)
		conn_set_timeout_ms(s->conn, idle_ms(s, next));
	if (next == S_DATA || next == S_BDAT)
		session_deadline_set(s, DL_DATA);
	else if (next == S_TLS)
		session_deadline_set(s, DL_HANDSHAKE);
	else if (next != S_CLOSING)
		session_deadline_set(s, DL_NONE);
}

void session_deadline_input(struct session *s, int line_done)
{
	if (!s->conn || !command_state(s->state))
		return;
	if (line_done) {
		if (s->deadline_kind == DL_COMMAND)
			session_deadline_set(s, DL_NONE);
		return;
	}
	if (s->deadline_kind == DL_NONE && !s->parked &&
	    (evbuffer_get_length(conn_input(s->conn)) > 0 || s->lr.skipping))
		session_deadline_set(s, DL_COMMAND);
}

/* Entering stress: what the sessions already wait for shrinks too. */
static void stress_shrink(struct session *s)
{
	uint64_t now = now_ms(), stress = s->limits->stress_timeout_ms;
	if (!s->conn || s->state == S_CLOSING)
		return;
	conn_set_timeout_ms(s->conn, idle_ms(s, s->state));
	if ((s->deadline_kind == DL_COMMAND || s->deadline_kind == DL_HANDSHAKE) &&
	    s->deadline_at > now + stress) {
		s->deadline_at = now + stress;
		timer_add_ms(s->deadline, stress);
	}
}

void session_stress_update(struct smtp_listener *l)
{
	const struct limits *lim = &l->lc->limits;
	uint64_t level = (uint64_t)l->nsessions * 100, start = (uint64_t)lim->max_sessions * lim->stress_threshold;

	if (!l->stress && lim->stress_threshold && level >= start) {
		l->stress = 1;
		log_warnx("smtp event=stress-start listener=%s sessions=%u max_sessions=%u timeout=%ums",
			  l->lc->name, l->nsessions, lim->max_sessions, lim->stress_timeout_ms);
		for (struct session *s = l->sessions; s; s = s->lnext)
			stress_shrink(s);
	} else if (l->stress && level * 10 < start * 9) {
		l->stress = 0;
		log_info("smtp event=stress-end listener=%s sessions=%u max_sessions=%u", l->lc->name,
			 l->nsessions, lim->max_sessions);
	}
}
