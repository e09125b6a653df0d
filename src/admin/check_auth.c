/* check_auth: the SMTP AUTH policy of each listener, as SPEC "SMTP AUTH" and
 * "Diagnostics" want it: no password in clear, AUTH where it is needed and nowhere
 * else, no mechanism that forces a password-equivalent secret on the server. What a
 * mechanism does is the registry's data (sasl/sasl.h), never a list of names here. */
#include <stdio.h>
#include <string.h>

#include "admin/check.h"
#include "sasl/sasl.h"

/* The names of the mechanisms of set that have any of flags (all when flags is 0). */
static const char *check_mech_names(unsigned set, unsigned flags, char *buf, size_t sz)
{
	size_t n, used = 0;
	const struct sasl_mech *m = sasl_mechs(&n);
	buf[0] = '\0';
	for (size_t i = 0; i < n && i < MECH__COUNT && used + 1 < sz; i++)
		if ((set & MECH_BIT(i)) && (!flags || (m[i].flags & flags)))
			used += (size_t)snprintf(buf + used, sz - used, "%s%s", used ? " " : "",
						 m[i].name);
	return buf;
}

/* What a client can ever use on l: before TLS only what is allowed in clear and needs
 * no channel; EXTERNAL only with a CA to verify client certificates by. */
static unsigned check_usable(const struct config *cfg, const struct listener_conf *l)
{
	size_t n;
	const struct sasl_mech *m = sasl_mechs(&n);
	unsigned set = l->limits.auth_mechanisms;
	if (l->tls == TLS_NONE)
		set &= l->limits.auth_cleartext;
	for (size_t i = 0; i < n && i < MECH__COUNT; i++)
		if (((m[i].flags & SASLF_CHANNEL) && l->tls == TLS_NONE) ||
		    ((m[i].flags & SASLF_EXTERNAL) && !cfg->auth_client_ca))
			set &= ~MECH_BIT(i);
	return set;
}

static int check_has_submission(const struct config *cfg)
{
	for (const struct listener_conf *l = cfg->listeners; l; l = l->next)
		if (l->role != ROLE_SMTP)
			return 1;
	return 0;
}

static void check_listener_auth(struct check_report *r, const struct listener_conf *l)
{
	const struct config *cfg = r->cfg;
	char names[256];
	unsigned in_clear = l->tls == TLS_IMPLICIT ? 0
			    : l->limits.auth_mechanisms & l->limits.auth_cleartext;
	/* Named or numbered as submission: clients will send their users' mail there. */
	int submission_port = strcmp(l->port, "587") == 0 || strcmp(l->port, "465") == 0 ||
			      strncmp(l->name, "submission", 10) == 0;

	if (*check_mech_names(in_clear, SASLF_CLEARTEXT, names, sizeof(names)))
		check_add(r, CHECK_ERROR, "auth-cleartext",
			  check_listener_line(r, l, "auth_cleartext_mechanisms"),
			  "remove PLAIN and LOGIN from auth_cleartext_mechanisms: clients then send "
			  "the password only after STARTTLS",
			  "listener \"%s\" accepts %s before TLS: passwords cross the network in "
			  "clear", l->name, names);
	if (*check_mech_names(l->limits.auth_mechanisms, SASLF_PLAIN_EQUIV, names, sizeof(names)))
		check_add(r, CHECK_WARNING, "auth-password-equivalent",
			  check_listener_line(r, l, "auth_mechanisms"),
			  "remove CRAM-MD5 and DIGEST-MD5 from auth_mechanisms; clients that "
			  "know them also know SCRAM or PLAIN over TLS",
			  "auth_mechanisms enables %s, which needs a password-equivalent "
			  "secret stored on the server", names);
	if ((l->limits.auth_mechanisms & MECH_BIT(MECH_EXTERNAL)) && !cfg->auth_client_ca)
		check_add(r, CHECK_INFO, "auth-external-no-ca",
			  check_listener_line(r, l, "auth_mechanisms"),
			  "set auth_client_ca to the CA of your client certificates, or remove "
			  "EXTERNAL from auth_mechanisms",
			  "auth_mechanisms enables EXTERNAL, which is never offered without "
			  "auth_client_ca");

	if (l->role == ROLE_SMTP) {
		if (submission_port)
			check_add(r, CHECK_ERROR, "submission-auth-not-required",
				  check_listener_line(r, l, "role"),
				  "give this listener role submission (or submissions with tls "
				  "implicit on port 465)",
				  "listener \"%s\" on the submission port %s has role smtp: it "
				  "takes mail without AUTH", l->name, l->port);
		else if (check_usable(cfg, l) && check_has_submission(cfg))
			check_add(r, CHECK_WARNING, "auth-on-smtp-port",
				  check_listener_line(r, l, "auth_mechanisms"),
				  "set auth_mechanisms none in this listener block: users submit "
				  "on the submission listeners",
				  "listener \"%s\" (port %s) offers AUTH although submission "
				  "listeners exist: it only invites password guessing", l->name,
				  l->port);
		if (l->tls == TLS_NONE)
			check_add(r, CHECK_WARNING, "smtp-no-tls", check_listener_line(r, l, "tls"),
				  "set tls starttls",
				  "listener \"%s\" offers no STARTTLS: mail from other servers "
				  "crosses the network in clear", l->name);
		return;
	}
	/* RFC 8314 3: mail submission should use TLS, implicit or at least STARTTLS. */
	if (l->tls == TLS_NONE)
		check_add(r, CHECK_ERROR, "submission-no-tls", check_listener_line(r, l, "tls"),
			  "set tls starttls (or use role submissions with tls implicit)",
			  "listener \"%s\" has tls none: users' mail and passwords cross the "
			  "network in clear", l->name);
	if (!check_usable(cfg, l))
		check_add(r, CHECK_ERROR, "submission-no-mechanism",
			  check_listener_line(r, l, "auth_mechanisms"),
			  "list mechanisms in auth_mechanisms (the default: SCRAM, PLAIN and "
			  "LOGIN) and offer TLS",
			  "listener \"%s\" requires AUTH but can offer no mechanism: nobody can "
			  "submit mail there", l->name);
}

void check_auth(struct check_report *r)
{
	for (const struct listener_conf *l = r->cfg->listeners; l; l = l->next)
		check_listener_auth(r, l);
}
