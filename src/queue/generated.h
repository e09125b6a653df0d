/* generated: mail cursus writes itself (DSNs of every kind, TLS reports) into the queue
 * by one path, so that all of it is DKIM-signed alike, with every key of its From:
 * domain when one is configured (docs/dkim.md): large receivers junk unsigned mail, and
 * a lost bounce is a sender never told. The signature is made by the queue writer's
 * seal, as for a submission, never on the loop. */
#ifndef CURSUS_GENERATED_H
#define CURSUS_GENERATED_H

#include <stddef.h>

#include "queue/queue.h"

struct dkim_keys;
struct envelope;

/* A reference to the keys as they are now, or NULL. Loop thread only: reloads replace
 * *current there without a lock (daemon/reload.c). Release with dkim_keys_free. */
struct dkim_keys *generated_keys(struct dkim_keys *const *current);

/* Fills env (zeroed) for one generated message from mail_from ("" : the null sender) to
 * rcpt (mailbox: its local target, or NULL), received now, with a fresh id. NOTIFY=NEVER:
 * generated mail that fails is logged, never answered with more generated mail. */
void generated_envelope(struct queue *q, struct envelope *env, const char *helo,
			const char *mail_from, const char *rcpt, const char *mailbox);

/* queue_commit of text (a whole message, taken over) sealed by a DKIM signer of keys (a
 * reference the caller keeps; NULL or empty: unsigned). Any thread. */
void queue_commit_generated(struct queue *q, struct dkim_keys *keys, const struct envelope *env,
			    char *text, size_t len, queue_commit_cb cb, void *arg);

#endif
