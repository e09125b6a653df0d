/* params: ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 esmtp-param): SIZE
 * (RFC 1870), BODY (6152, 3030), SMTPUTF8 (6531), DSN's RET, ENVID, NOTIFY, ORCPT
 * (3461), AUTH (4954) and REQUIRETLS (8689), with xtext (RFC 3461 4). Pure. */
#ifndef CURSUS_PARAMS_H
#define CURSUS_PARAMS_H

#include <stddef.h>

#include "queue/envelope.h"
#include "util/xtext.h"

struct mail_params {
	size_t size;           /* SIZE=, 0 when absent */
	enum body_type body;
	int smtputf8;
	int requiretls;        /* REQUIRETLS (RFC 8689 2), given without a value */
	enum dsn_ret ret;
	char *envid;           /* decoded xtext, or NULL */
	char *auth;            /* decoded xtext ("<>" kept as "<>"), or NULL */
};

struct rcpt_params {
	unsigned notify;       /* DSN_NOTIFY_* bits, 0 when absent */
	char *orcpt;           /* "addr-type;decoded-address", or NULL */
};

/* The outcome of a failed parse: the reply code, enhanced code and text to send. */
struct param_error {
	int code;              /* 501 syntax, 555 unknown parameter (RFC 5321 4.1.1.11) */
	const char *enhanced;  /* "5.5.4", "5.5.2" ... */
	const char *text;
};

/* s points just after the path's '>'; parameters are separated by SP. Duplicate,
 * unknown or malformed parameters fail. Returns 0 or -1 with *err filled. */
int params_parse_mail(const char *s, size_t len, struct mail_params *p, struct param_error *err);
int params_parse_rcpt(const char *s, size_t len, struct rcpt_params *p, struct param_error *err);
void params_mail_clear(struct mail_params *p);
void params_rcpt_clear(struct rcpt_params *p);

#endif
