/* queue: durable acceptance. A message is acknowledged only after its file (envelope
 * and body, ending in an end marker) is written, fsync'd, renamed into the queue and
 * the queue directory fsync'd. Writes of many sessions share fsyncs (group commit). */
#ifndef CURSUS_QUEUE_H
#define CURSUS_QUEUE_H

#include <stddef.h>

struct event_base;
struct workers;
struct envelope;
struct queue;

/* Creates dir/{tmp,msg} if needed. nthreads: parallel writers. The callbacks of
 * queue_commit are run on the loop thread through w. */
struct queue *queue_create(const char *dir, unsigned nthreads, struct workers *w);
void queue_destroy(struct queue **q);

/* Fills env->id with a fresh unique id (call before building the Received header). */
void queue_new_id(struct queue *q, struct envelope *env);

/* Called on the loop thread; err is 0 when the message is safely queued, else an
 * errno value (ENOSPC, EIO, ...), which the session answers with 451/452. */
typedef void (*queue_commit_cb)(void *arg, int err);

/* The last step before a message is final (its DKIM signatures, dkim/dkim_sign.h):
 * it sees every octet of the message in order (the trace fields, then the body, as
 * they are written, on the queue's writer thread, never the loop), and once the whole
 * message has been written, finish may return header fields (malloc'd, CRLF-ended, or
 * NULL) that every delivery sends before the message (the file's trailer, qfile.h).
 * The slow part of signing (a private key operation: milliseconds for RSA 4096) thus
 * runs on the thread that is about to fsync the file anyway, and the message is
 * acknowledged only with its signatures on disk. The queue owns it once handed over and
 * calls destroy whatever happens. */
struct queue_seal {
	void (*update)(struct queue_seal *seal, const char *p, size_t n);
	char *(*finish)(struct queue_seal *seal);
	void (*destroy)(struct queue_seal *seal);
};

/* Takes ownership of body (malloc'd, len bytes) and of seal (NULL: none) but not of
 * env (copied as needed). */
void queue_commit(struct queue *q, const struct envelope *env, char *body, size_t len,
		  struct queue_seal *seal, queue_commit_cb cb, void *arg);

/* A message written to its file while it arrives, so that only the caller's buffers
 * are in memory. All calls on the loop thread; the file system work is done in order
 * on a writer thread. open takes a copy of env's head and of prefix (the first body
 * octets: the trace fields), and seal as queue_commit does; nothing touches the disk
 * before the first write. */
struct queue_stream;
struct envelope;
struct queue_stream *queue_stream_open(struct queue *q, const struct envelope *env,
				       const char *prefix, size_t plen, struct queue_seal *seal);
/* Appends p[0..n) to the body; p must stay valid until cb(arg, err) (on the loop
 * thread) says it was written. After an error later writes fail too, and so does the
 * commit. */
void queue_stream_write(struct queue_stream *st, const char *p, size_t n, queue_commit_cb cb,
			void *arg);
/* Ends the message as queue_commit does: cb(arg, 0) once file and directory are
 * durable. env is the final envelope (it may have gained recipients since open).
 * The stream is consumed (*st set to NULL). */
void queue_stream_commit(struct queue_stream **st, const struct envelope *env,
			 queue_commit_cb cb, void *arg);
/* Gives the message up: its file is removed once the writes before are done. Write
 * callbacks still come. Sets *st to NULL; NULL is a no-op. */
void queue_stream_abort(struct queue_stream **st);

/* Committed messages are handed to this function (on a queue thread, not the loop) so
 * the deliverer can pick them up; set once before any commit. */
typedef void (*queue_notify_fn)(void *arg, const char *id);
void queue_set_notify(struct queue *q, queue_notify_fn fn, void *arg);

/* At start: removes half-written files from tmp/ and calls the notify function for
 * every committed message. Returns the number of messages found. */
size_t queue_recover(struct queue *q);

#endif
