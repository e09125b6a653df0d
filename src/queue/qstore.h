/* qstore: the queue directory as the rest of cursus sees it. Only src/queue/ knows the
 * layout:
 *
 *   <dir>/lock            flock()ed by the one daemon that delivers from this queue
 *   <dir>/tmp/<id>        being written (queue.c)
 *   <dir>/msg/<id>        committed message, never changed (qfile.h format)
 *   <dir>/msg/<id>.state  the message's journal: one line per event (routed, delivered,
 *                         failed, deferred, warned, held, released, notified), appended
 *                         and fsync'd;
 *                         replaying it gives every recipient's state after a restart
 *   <dir>/msg/<id>.done   the journal of older versions ("<index> done"), still read
 *   <dir>/corrupt/        torn or malformed files, moved aside
 *
 * Every call blocks on the file system: the daemon calls them on worker threads, the
 * admin tool directly. */
#ifndef CURSUS_QSTORE_H
#define CURSUS_QSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "queue/envelope.h"

struct qstore;

/* Opens (creating tmp/ and msg/ as needed). NULL with *err_r (malloc'd) on failure. */
struct qstore *qstore_open(const char *dir, char **err_r);
void qstore_close(struct qstore **qs);
const char *qstore_dir(const struct qstore *qs);

/* Takes the queue's exclusive lock for as long as qs stays open. Returns 0, EWOULDBLOCK
 * when another process holds it (a running cursusd), or another errno value. */
int qstore_lock(struct qstore *qs);

/* Calls fn for every committed message id, in no particular order, until fn returns
 * nonzero. Returns 0 or an errno value. */
int qstore_each(struct qstore *qs, int (*fn)(void *arg, const char *id), void *arg);

struct qmsg {
	char id[24];
	struct envelope env;   /* every recipient's state replayed from the journal */
	int held;              /* on hold: not delivered until released */
	size_t size;           /* body octets */
	char *buf;             /* the file, when loaded with QSTORE_BODY */
	const char *body;      /* into buf, or NULL */
	size_t bodylen;
};

#define QSTORE_BODY 0x1    /* keep the message body in memory */

/* Reads the message and replays its journal. Returns 0; ENOENT when it is gone;
 * EBADMSG when it is torn or malformed (then moved to corrupt/ and logged); or
 * another errno value (the message stays, to be tried again). */
int qstore_load(struct qstore *qs, const char *id, int flags, struct qmsg *m);
void qmsg_clear(struct qmsg *m);
/* A committed message as one delivery reads it: the header fields the file's trailer
 * puts first (its DKIM signatures; in memory, small), then the body, never in memory,
 * at off in the open file fd. len counts both. pread only (never the file offset), so
 * any thread may read while others do. */
struct qbody {
	int fd;                /* -1: none */
	uint64_t off;
	size_t len;            /* hlen + the file's body octets */
	char *head;            /* malloc'd, or NULL */
	size_t hlen;
};

/* Opens id's file for one delivery after checking it whole (length, end line, CRC), so
 * a torn or corrupted message is never sent. Returns 0; ENOENT; EBADMSG when it is
 * torn or malformed (then moved to corrupt/ with its journal, and logged); or another
 * errno value. On failure b->fd is -1. */
int qstore_open_body(struct qstore *qs, const char *id, struct qbody *b);
/* Reads exactly n octets at pos (from the message's start: head, then body). Returns 0
 * or an errno value (EINVAL past the end). */
int qbody_read(const struct qbody *b, uint64_t pos, char *buf, size_t n);
/* Another reader of the same message, with its own descriptor and head (the caller
 * closes both). On failure the copy's fd is -1, and reads from it fail. */
void qbody_dup(const struct qbody *b, struct qbody *copy);
void qbody_close(struct qbody *b);

enum qev_kind {
	QEV_ROUTE,      /* rcpt routed: route */
	QEV_DELIVERED,  /* rcpt: status, remote, diag */
	QEV_RELAYED,    /* rcpt: as delivered, to a next hop without DSN */
	QEV_FAILED,     /* rcpt: status, remote, diag */
	QEV_DEFERRED,   /* rcpt: status, remote, diag, next */
	QEV_WARNED,     /* rcpt: a delay DSN was sent */
	QEV_HOLD,       /* the message */
	QEV_RELEASE,    /* the message */
	QEV_NOTIFIED,   /* rcpt: its final state was reported to the sender (DSN queued) */
};

struct qev {
	enum qev_kind kind;
	size_t rcpt;          /* recipient index (ignored for HOLD/RELEASE) */
	time_t when;          /* wall clock of the event */
	time_t next;          /* DEFERRED: the next attempt */
	const char *route;    /* ROUTE */
	const char *status;   /* enhanced status code, e.g. "5.1.1" */
	const char *remote;   /* remote MTA or NULL */
	const char *diag;     /* the remote reply or local reason, verbatim (any bytes but NUL) */
};

/* Appends the events to id's journal in one write and fsyncs it (and msg/ when the
 * journal is new). Returns 0 or an errno value; on failure nothing may be assumed
 * recorded (a torn last line is ignored when replayed). */
int qstore_record(struct qstore *qs, const char *id, const struct qev *evs, size_t n);
/* Applies one event to m in memory, as replaying the journal would. */
void qstore_apply(struct qmsg *m, const struct qev *ev);

/* Calls fn with every event of id's journal, in order (the history `cursus queue show`
 * prints). Returns 0 or an errno value (ENOENT: no journal yet, nothing called). */
int qstore_history(struct qstore *qs, const char *id,
		   void (*fn)(void *arg, const struct qev *ev), void *arg);

/* Removes the message, then its journals. Returns 0, ENOENT, or an errno value. */
int qstore_remove(struct qstore *qs, const char *id);

/* Whether every recipient is final (delivered, relayed or failed). */
int qmsg_finished(const struct qmsg *m);
const char *rcpt_state_name(enum rcpt_state st);

#endif
