/* cmd_probe_report: what `cursus probe` concludes and how it says it. Each finding
 * has a stable identifier (scripts read them from --json) and a plain-words
 * explanation; a "problem" finding makes the exit status 1, an "info" one does not.
 * The TLS inspection is net/tls_client's, shared with the relay. */
#include "admin/cmd_probe.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/smtpc.h"
#include "net/tls_client.h"
#include "sasl/sasl.h"
#include "util/json.h"
#include "util/xmalloc.h"

/* ---- TLS -------------------------------------------------------------------------- */

void probe_tls_inspect(SSL *ssl, const char *host, struct probe_tls *t)
{
	struct tls_check c;
	tls_client_check(ssl, host, &c);
	memset(t, 0, sizeof(*t));
	t->done = 1;
	t->proto = c.proto;
	memcpy(t->version, c.version, sizeof(t->version));
	memcpy(t->cipher, c.cipher, sizeof(t->cipher));
	memcpy(t->subject, c.subject, sizeof(t->subject));
	memcpy(t->issuer, c.issuer, sizeof(t->issuer));
	memcpy(t->not_before, c.not_before, sizeof(t->not_before));
	memcpy(t->not_after, c.not_after, sizeof(t->not_after));
	t->have_cert = c.have_cert;
	t->name_match = c.name_match;
	t->chain_ok = c.chain_ok;
	t->expired = c.expired;
	t->not_yet_valid = c.not_yet_valid;
	t->self_signed = c.self_signed;
	t->untrusted = c.untrusted;
	memcpy(t->verify_error, c.verify_error, sizeof(t->verify_error));
}

/* ---- findings --------------------------------------------------------------------- */

static void probe_add(struct probe_result *pr, const char *id, int problem, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

static void probe_add(struct probe_result *pr, const char *id, int problem, const char *fmt, ...)
{
	va_list ap;
	char *text;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		fatal("vasprintf");
	va_end(ap);
	pr->findings = xrealloc(pr->findings, (pr->n_findings + 1) * sizeof(*pr->findings));
	pr->findings[pr->n_findings++] = (struct probe_finding){ id, problem, text };
}

/* Which mechanisms send the password itself is the registry's to say. */
static int probe_has_cleartext_mech(const char *list)
{
	size_t n;
	const struct sasl_mech *m = sasl_mechs(&n);
	for (size_t i = 0; i < n; i++)
		if ((m[i].flags & SASLF_CLEARTEXT) && smtpc_list_has(list, m[i].name))
			return 1;
	return 0;
}

static void probe_tls_findings(struct probe_result *pr)
{
	const struct probe_tls *t = &pr->tls;
	const char *insecure = pr->insecure
		? " You gave --insecure, so the probe went on anyway." : "";
	if (!t->done)
		return;
	if (t->proto && t->proto < TLS1_2_VERSION)
		probe_add(pr, "tls-old", 1, "The server negotiated %s. Versions older than TLS 1.2 "
			  "are deprecated (RFC 8996) and current clients refuse them.", t->version);
	if (t->expired)
		probe_add(pr, "cert-expired", 1, "The certificate expired (not after %s). Clients "
			  "refuse it, or warn the user every time.%s", t->not_after, insecure);
	if (t->not_yet_valid)
		probe_add(pr, "cert-not-yet-valid", 1, "The certificate is not valid yet (not "
			  "before %s): check the server's clock.%s", t->not_before, insecure);
	if (t->self_signed)
		probe_add(pr, "cert-self-signed", 1, "The certificate is self-signed: no client "
			  "trusts it unless told to. Use a certificate from a public CA (e.g. "
			  "Let's Encrypt).%s", insecure);
	else if (t->untrusted)
		probe_add(pr, "cert-untrusted", 1, "The certificate chain does not verify (%s). "
			  "Check that the server sends its intermediate certificates.%s",
			  t->verify_error[0] ? t->verify_error : "unknown error", insecure);
	if (t->have_cert && !t->name_match)
		probe_add(pr, "cert-name-mismatch", 1, "The certificate (%s) is not valid for "
			  "the name \"%s\": clients connecting by this name will refuse it.%s",
			  t->subject, pr->host, insecure);
}

static void probe_auth_findings(struct probe_result *pr)
{
	char works[256] = "", fails[256] = "";
	size_t n_works = 0, n_fails = 0, n_skipped_clear = 0;
	int saw_330 = 0;
	for (size_t i = 0; i < pr->n_auth; i++) {
		const struct probe_auth *a = &pr->auth[i];
		char *list = a->result == AUTH_WORKS ? works : a->result == AUTH_FAILS ? fails : NULL;
		saw_330 |= a->saw_330;
		if (a->result == AUTH_SKIPPED && strstr(a->reply, "--allow-cleartext"))
			n_skipped_clear++;
		if (!list)
			continue;
		snprintf(list + strlen(list), 256 - strlen(list), "%s%s", *list ? ", " : "", a->mech);
		if (a->result == AUTH_WORKS)
			n_works++;
		else
			n_fails++;
	}
	if (saw_330)
		probe_add(pr, "auth-330-not-334", 1, "During AUTH the server answered 330 where "
			  "RFC 4954 requires 334 for a challenge. Standard clients treat 330 as "
			  "an error and cannot log in.");
	if (n_works && n_fails)
		probe_add(pr, "mechanism-fails-others-work", 1, "%s failed while %s worked with "
			  "the same credentials. Clients pick the mechanism themselves, usually "
			  "the strongest offered: Outlook and Thunderbird choose CRAM-MD5 when "
			  "it is advertised and then fail, although the password is right. Stop "
			  "advertising mechanisms that cannot work for this user (for CRAM-MD5 "
			  "the server needs a password-equivalent secret).", fails, works);
	if (!n_works && n_fails)
		probe_add(pr, "auth-failed", 1, "No mechanism worked (%s): check the user name "
			  "and password, then the server's authentication back end.", fails);
	if (n_skipped_clear)
		probe_add(pr, "auth-not-tried-cleartext", 0, "The credentials were not sent: the "
			  "connection has no TLS. Use --allow-cleartext to send them anyway.");
}

void probe_findings(struct probe_result *pr)
{
	const struct probe_caps *fin = pr->after.valid ? &pr->after : &pr->before;
	int submission = pr->port != 25;

	if (pr->connect_failed)
		return;
	if (pr->banner && pr->banner_code != 220)
		probe_add(pr, "greeting-refused", 1, "The server greeted with %d instead of 220: "
			  "it does not accept sessions from here.", pr->banner_code);
	if (pr->tls_failed)
		probe_add(pr, "tls-failed", 1, "The TLS handshake failed (%s): no client can "
			  "talk to this port.", pr->tls_error);
	if (pr->mode == PROBE_STARTTLS && pr->before.valid && !pr->before.starttls)
		probe_add(pr, "no-starttls", 1, "The server does not offer STARTTLS%s: "
			  "passwords and mail would cross the network unencrypted, and clients "
			  "set to require TLS cannot connect.", submission ? " on a submission port" : "");
	if (pr->starttls_failed)
		probe_add(pr, "starttls-failed", 1, "STARTTLS is offered but fails (%s). Clients "
			  "that saw it offered will try it and give up.", pr->starttls_error);
	probe_tls_findings(pr);
	if (pr->before.valid && probe_has_cleartext_mech(pr->before.auth))
		probe_add(pr, "auth-plaintext-in-clear", 1, "AUTH with a plaintext mechanism (%s) "
			  "is offered before TLS: a client may send its password unencrypted. Offer "
			  "AUTH only after STARTTLS.", pr->before.auth);
	if (pr->mode == PROBE_STARTTLS && pr->before.valid && !pr->before.auth && pr->after.valid &&
	    pr->after.auth)
		probe_add(pr, "auth-after-starttls-only", 0, "AUTH is offered only after STARTTLS. "
			  "That is the safe, normal setup; a client configured without TLS (or "
			  "with \"TLS if available\" broken) sees no AUTH and fails with "
			  "\"authentication not supported\": set it to STARTTLS on port 587.");
	if (fin->valid && !fin->auth && !fin->auth_legacy)
		probe_add(pr, "auth-not-offered", 0, "The server offers no AUTH%s.",
			  pr->after.valid ? " even after TLS" : "");
	if (fin->valid && fin->auth_legacy)
		probe_add(pr, "legacy-auth-line-present", 0, "The server also sends the draft "
			  "form \"AUTH=%s\", which only Outlook versions before 2000 need. Harmless.",
			  fin->auth_legacy);
	else if (fin->valid && fin->auth)
		probe_add(pr, "legacy-auth-line-absent", 0, "No \"AUTH=\" line: very old Outlook "
			  "versions (before 2000) will not see AUTH. Current clients do not need it.");
	if (pr->mail_accepted && submission)
		probe_add(pr, "mail-without-auth", 1, "MAIL FROM was accepted without AUTH on a "
			  "submission port (%u): anyone could submit mail here (an open relay "
			  "risk). The probe sent RSET and no message.", pr->port);
	probe_auth_findings(pr);
	if (pr->lost[0])
		probe_add(pr, "connection-lost", 1, "The connection ended early: %s.", pr->lost);
}

int probe_exit_status(const struct probe_result *pr)
{
	if (pr->connect_failed)
		return 2;
	for (size_t i = 0; i < pr->n_findings; i++)
		if (pr->findings[i].problem)
			return 1;
	return 0;
}

/* ---- output ----------------------------------------------------------------------- */

/* The probe writes "" for what it did not see. */
static void probe_json_str(const char *s)
{
	json_put_str(stdout, s ? s : "");
}

static void probe_json_list(const char *list)
{
	const char *p = list;
	int first = 1;
	if (!list) {
		fputs("null", stdout);
		return;
	}
	putchar('[');
	while (*p) {
		size_t w = strcspn(p, " ");
		if (w) {
			char *word = xstrndup(p, w);
			printf("%s", first ? "" : ",");
			probe_json_str(word);
			free(word);
			first = 0;
		}
		p += w;
		while (*p == ' ')
			p++;
	}
	putchar(']');
}

static void probe_json_caps(const char *key, const struct probe_caps *c)
{
	printf("\"%s\":", key);
	if (!c->valid) {
		fputs("null", stdout);
		return;
	}
	printf("{\"starttls\":%s,\"auth\":", c->starttls ? "true" : "false");
	probe_json_list(c->auth);
	fputs(",\"auth_legacy\":", stdout);
	probe_json_list(c->auth_legacy);
	fputs(",\"lines\":[", stdout);
	for (size_t i = 0; i < c->n_lines; i++) {
		printf("%s", i ? "," : "");
		probe_json_str(c->lines[i]);
	}
	fputs("]}", stdout);
}

static const char *const probe_mode_names[] = { "starttls", "tls", "plain" };
static const char *const probe_auth_names[] = { "works", "fails", "skipped", "error" };

static void probe_print_json(const struct probe_result *pr)
{
	const struct probe_tls *t = &pr->tls;
	fputs("{\"host\":", stdout);
	probe_json_str(pr->host);
	printf(",\"port\":%u,\"mode\":\"%s\",\"connected\":%s", pr->port, probe_mode_names[pr->mode],
	       pr->connect_failed ? "false" : "true");
	if (pr->connect_failed) {
		fputs(",\"connect_error\":", stdout);
		probe_json_str(pr->connect_error);
	}
	fputs(",\"banner\":", stdout);
	if (pr->banner)
		probe_json_str(pr->banner);
	else
		fputs("null", stdout);
	putchar(',');
	probe_json_caps("capabilities_before_tls", &pr->before);
	putchar(',');
	probe_json_caps("capabilities_after_tls", &pr->after);
	fputs(",\"tls\":", stdout);
	if (t->done) {
		fputs("{\"version\":", stdout);
		probe_json_str(t->version);
		fputs(",\"cipher\":", stdout);
		probe_json_str(t->cipher);
		fputs(",\"subject\":", stdout);
		probe_json_str(t->subject);
		fputs(",\"issuer\":", stdout);
		probe_json_str(t->issuer);
		fputs(",\"not_before\":", stdout);
		probe_json_str(t->not_before);
		fputs(",\"not_after\":", stdout);
		probe_json_str(t->not_after);
		printf(",\"name_match\":%s,\"chain_verified\":%s,\"verify_error\":",
		       t->name_match ? "true" : "false", t->chain_ok ? "true" : "false");
		probe_json_str(t->verify_error);
		putchar('}');
	} else {
		fputs("null", stdout);
	}
	fputs(",\"mail_without_auth\":", stdout);
	if (pr->mail_tested) {
		printf("{\"accepted\":%s,\"reply\":", pr->mail_accepted ? "true" : "false");
		probe_json_str(pr->mail_reply);
		putchar('}');
	} else {
		fputs("null", stdout);
	}
	fputs(",\"auth\":[", stdout);
	for (size_t i = 0; i < pr->n_auth; i++) {
		printf("%s{\"mechanism\":", i ? "," : "");
		probe_json_str(pr->auth[i].mech);
		printf(",\"result\":\"%s\",\"reply\":", probe_auth_names[pr->auth[i].result]);
		probe_json_str(pr->auth[i].reply);
		putchar('}');
	}
	fputs("],\"findings\":[", stdout);
	for (size_t i = 0; i < pr->n_findings; i++) {
		printf("%s{\"id\":\"%s\",\"severity\":\"%s\",\"text\":", i ? "," : "",
		       pr->findings[i].id, pr->findings[i].problem ? "problem" : "info");
		probe_json_str(pr->findings[i].text);
		putchar('}');
	}
	fputs("],\"transcript\":[", stdout);
	for (size_t i = 0; i < pr->n_lines; i++) {
		printf("%s{\"conn\":%d,\"dir\":\"%c\",\"line\":", i ? "," : "", pr->lines[i].conn,
		       pr->lines[i].dir);
		probe_json_str(pr->lines[i].text);
		putchar('}');
	}
	printf("],\"exit_status\":%d}\n", probe_exit_status(pr));
}

static void probe_print_caps(const char *title, const struct probe_caps *c)
{
	printf("  %s:", title);
	if (!c->valid) {
		puts(" (not seen)");
		return;
	}
	putchar('\n');
	for (size_t i = 0; i < c->n_lines; i++)
		printf("      %s\n", c->lines[i]);
	printf("    mechanisms: %s%s%s\n", c->auth ? c->auth : "(no AUTH)",
	       c->auth_legacy ? "; AUTH= line: " : "", c->auth_legacy ? c->auth_legacy : "");
}

void probe_print(const struct probe_result *pr)
{
	const struct probe_tls *t = &pr->tls;
	if (pr->json) {
		probe_print_json(pr);
		return;
	}
	printf("\nReport for %s port %u (%s)\n", pr->host, pr->port, probe_mode_names[pr->mode]);
	if (pr->connect_failed) {
		printf("  could not connect: %s\n", pr->connect_error);
		return;
	}
	printf("  banner: %s\n", pr->banner ? pr->banner : "(none)");
	if (pr->mode != PROBE_TLS)
		probe_print_caps("capabilities before TLS", &pr->before);
	if (pr->mode != PROBE_PLAIN)
		probe_print_caps("capabilities after TLS", &pr->after);
	if (t->done) {
		printf("  TLS: %s, cipher %s\n", t->version, t->cipher);
		printf("    certificate subject: %s\n    issuer: %s\n    valid: %s to %s\n",
		       t->subject, t->issuer, t->not_before, t->not_after);
		printf("    name \"%s\": %s\n    chain: %s%s%s\n", pr->host,
		       t->name_match ? "matches" : "DOES NOT MATCH",
		       t->chain_ok ? "verified" : "NOT VERIFIED", t->verify_error[0] ? ": " : "",
		       t->verify_error);
	}
	if (pr->mail_tested)
		printf("  MAIL FROM without AUTH: %s (%s)\n", pr->mail_accepted ? "ACCEPTED" : "refused",
		       pr->mail_reply);
	if (pr->n_auth) {
		printf("  authentication as %s:\n", pr->user);
		for (size_t i = 0; i < pr->n_auth; i++)
			printf("    %-20s %-8s %s\n", pr->auth[i].mech,
			       probe_auth_names[pr->auth[i].result], pr->auth[i].reply);
	}
	printf("\nFindings:\n");
	if (pr->n_findings == 0)
		printf("  nothing to report\n");
	for (size_t i = 0; i < pr->n_findings; i++)
		printf("  [%s] %s\n      %s\n", pr->findings[i].problem ? "problem" : "info",
		       pr->findings[i].id, pr->findings[i].text);
}

static void probe_caps_clear(struct probe_caps *c)
{
	for (size_t i = 0; i < c->n_lines; i++)
		free(c->lines[i]);
	free(c->lines);
	free(c->auth);
	free(c->auth_legacy);
	memset(c, 0, sizeof(*c));
}

void probe_result_clear(struct probe_result *pr)
{
	free(pr->banner);
	probe_caps_clear(&pr->before);
	probe_caps_clear(&pr->after);
	free(pr->auth);
	for (size_t i = 0; i < pr->n_lines; i++)
		free(pr->lines[i].text);
	free(pr->lines);
	for (size_t i = 0; i < pr->n_findings; i++)
		free(pr->findings[i].text);
	free(pr->findings);
}
