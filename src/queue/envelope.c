/* envelope: the recipient list and the owned strings of a queued message's envelope.
 * Promises: envelope_clear frees exactly what envelope_add_rcpt and the decoder
 * allocated, and leaves a zeroed struct that can be reused. */
#include "queue/envelope.h"

#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct env_rcpt *envelope_add_rcpt(struct envelope *env, const char *address,
				   const char *orcpt, unsigned notify, const char *mailbox)
{
	struct env_rcpt *r;
	size_t n = env->n_rcpts;
	/* The capacity is implicit (4, then powers of two) so the struct needs no
	 * extra field and thousands of recipients do not cost quadratic copying. */
	if (n == 0 || (n >= 4 && (n & (n - 1)) == 0))
		env->rcpts = xrealloc(env->rcpts, (n ? 2 * n : 4) * sizeof(*env->rcpts));
	r = &env->rcpts[env->n_rcpts++];
	r->address = xstrdup(address ? address : "");
	r->orcpt = orcpt ? xstrdup(orcpt) : NULL;
	r->notify = notify;
	r->mailbox = mailbox ? xstrdup(mailbox) : NULL;
	r->done = 0;
	r->state = RCPT_PENDING;
	r->route = r->diag = r->remote_mta = NULL;
	r->attempts = 0;
	r->last_attempt = r->next_attempt = 0;
	r->status[0] = '\0';
	r->delay_warned = 0;
	r->notified = 0;
	return r;
}

void envelope_set_str(char **field, const char *value)
{
	char *v = value ? xstrdup(value) : NULL;
	free(*field);
	*field = v;
}

void envelope_clear(struct envelope *env)
{
	for (size_t i = 0; i < env->n_rcpts; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].mailbox);
		free(env->rcpts[i].route);
		free(env->rcpts[i].diag);
		free(env->rcpts[i].remote_mta);
	}
	free(env->rcpts);
	free(env->helo);
	free(env->client_addr);
	free(env->mail_from);
	free(env->auth);
	free(env->envid);
	free(env->prepend);
	memset(env, 0, sizeof(*env));
}
