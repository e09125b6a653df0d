/* generated: the one way cursus queues the mail it writes itself (generated.h). */
#include "queue/generated.h"

#include <string.h>
#include <time.h>

#include "dkim/dkim_keys.h"
#include "dkim/dkim_sign.h"
#include "queue/envelope.h"
#include "util/xmalloc.h"

struct dkim_keys *generated_keys(struct dkim_keys *const *current)
{
	return current ? dkim_keys_ref(*current) : NULL;
}

void generated_envelope(struct queue *q, struct envelope *env, const char *helo,
			const char *mail_from, const char *rcpt, const char *mailbox)
{
	memset(env, 0, sizeof(*env));
	env->received = time(NULL);
	env->helo = xstrdup(helo);
	env->mail_from = xstrdup(mail_from);
	env->body = BODY_7BIT;
	envelope_add_rcpt(env, rcpt, NULL, DSN_NOTIFY_NEVER, mailbox);
	queue_new_id(q, env);
}

void queue_commit_generated(struct queue *q, struct dkim_keys *keys, const struct envelope *env,
			    char *text, size_t len, queue_commit_cb cb, void *arg)
{
	/* Made here, not by the caller: a message given up before this point (a sender
	 * without a mailbox) never had a signer to dispose of. The id names it in the log
	 * line of the outcome (signed, or unsigned and why). */
	queue_commit(q, env, text, len, dkim_signer_create(keys, env->id), cb, arg);
}
