/* Tests of DSN building: the NOTIFY truth table, then each kind of report checked for
 * structure (CRLF only, no line over 998 octets, three parts in order, a boundary found
 * nowhere in the content) and for its fields. With DSN_SAMPLES_DIR set, every report is
 * also written there as NAME.eml for tests/test_dsn_format.py to parse with Python's
 * email package. */
#include "unit.h"
#include "dsn/dsn.h"
#include "queue/envelope.h"

#include <stdlib.h>
#include <time.h>

#define T_RECEIVED 1700000000 /* Tue, 14 Nov 2023 22:13:20 UTC */
#define T_ATTEMPT  1700003600
#define T_NOW      1700007200
#define T_UNTIL    1700345600

static const struct dsn_params params = {
	.reporting_mta = "mx.cursus.test", .msgid_domain = "mx.cursus.test",
	.now = T_NOW, .retry_until = T_UNTIL,
};

static const char plain_msg[] =
	"Received: from client (client [192.0.2.1])\r\n\tby mx.cursus.test\r\n"
	"From: Alice <alice@cursus.test>\r\nTo: bob@example.org\r\nSubject: Lunch\r\n"
	"Message-ID: <lunch.1@cursus.test>\r\n\r\nShall we meet at noon?\r\n";

static void test_wanted(void)
{
	static const struct {
		unsigned notify;
		int failed, delayed, success;
	} table[] = {
		{ 0, 1, 1, 0 },
		{ DSN_NOTIFY_NEVER, 0, 0, 0 },
		{ DSN_NOTIFY_SUCCESS, 0, 0, 1 },
		{ DSN_NOTIFY_FAILURE, 1, 0, 0 },
		{ DSN_NOTIFY_DELAY, 0, 1, 0 },
		{ DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, 1, 0, 1 },
		{ DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, 1, 1, 0 },
		{ DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY, 0, 1, 1 },
		{ DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, 1, 1, 1 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		for (int null_sender = 0; null_sender < 2; null_sender++) {
			struct envelope env = { 0 };
			int want = !null_sender;
			env.mail_from = strdup(null_sender ? "" : "alice@cursus.test");
			envelope_add_rcpt(&env, "bob@example.org", NULL, table[i].notify, NULL);
			CHECK(dsn_wanted(&env, 0, DSN_FAILED) == (want && table[i].failed));
			CHECK(dsn_wanted(&env, 0, DSN_DELAYED) == (want && table[i].delayed));
			CHECK(dsn_wanted(&env, 0, DSN_DELIVERED) == (want && table[i].success));
			CHECK(dsn_wanted(&env, 0, DSN_RELAYED) == (want && table[i].success));
			CHECK(dsn_wanted(&env, 1, DSN_FAILED) == 0); /* no such recipient */
			envelope_clear(&env);
		}
	}
}

/* Sets the state of the last recipient added. */
static void set_state(struct envelope *env, const char *status, const char *diag,
		      const char *remote, time_t last)
{
	struct env_rcpt *r = &env->rcpts[env->n_rcpts - 1];
	snprintf(r->status, sizeof(r->status), "%s", status);
	envelope_set_str(&r->diag, diag);
	envelope_set_str(&r->remote_mta, remote);
	r->last_attempt = last;
}

static void make_env(struct envelope *env, enum dsn_ret ret)
{
	memset(env, 0, sizeof(*env));
	strcpy(env->id, "0123456789abcdef");
	env->received = T_RECEIVED;
	env->mail_from = strdup("alice@cursus.test");
	env->ret = ret;
}

static const char *find(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle));
}

/* Every line ends in CRLF and is at most 998 octets; the boundary opens exactly
 * three parts and closes once, and occurs nowhere else. Returns the number of parts. */
static int check_structure(const char *m, size_t len)
{
	const char *b = find(m, len, "boundary=\""), *e;
	char delim[128], close[128];
	size_t line = 0, parts = 0, closes = 0, bl;
	int ok = 1;

	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
			ok = 0;
		if (m[i] == '\r' && (i + 1 == len || m[i + 1] != '\n'))
			ok = 0;
		if (m[i] == '\n')
			line = 0;
		else if (++line > 999) /* the CR counts here */
			ok = 0;
	}
	CHECK(ok);
	CHECK(len >= 2 && m[len - 2] == '\r' && m[len - 1] == '\n');
	CHECK(b != NULL);
	if (!b)
		return 0;
	b += 10;
	e = memchr(b, '"', len - (size_t)(b - m));
	bl = (size_t)(e - b);
	snprintf(delim, sizeof(delim), "\r\n--%.*s\r\n", (int)bl, b);
	snprintf(close, sizeof(close), "\r\n--%.*s--\r\n", (int)bl, b);
	for (const char *p = m; (p = find(p, len - (size_t)(p - m), delim)) != NULL; p++)
		parts++;
	for (const char *p = m; (p = find(p, len - (size_t)(p - m), close)) != NULL; p++)
		closes++;
	CHECK(parts == 3 && closes == 1);
	/* The boundary itself: in the Content-Type and the four delimiters only. */
	snprintf(delim, sizeof(delim), "%.*s", (int)bl, b);
	parts = 0;
	for (const char *p = m; (p = find(p, len - (size_t)(p - m), delim)) != NULL; p++)
		parts++;
	CHECK(parts == 5);
	return (int)parts;
}

static void save(const char *name, const char *m, size_t len)
{
	const char *dir = getenv("DSN_SAMPLES_DIR");
	char path[512];
	FILE *f;

	if (dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s.eml", dir, name);
	f = fopen(path, "wb");
	CHECK(f != NULL);
	if (f) {
		CHECK(fwrite(m, 1, len, f) == len);
		fclose(f);
	}
}

/* Builds, checks the structure, saves; the caller frees. */
static char *build(const char *name, const struct envelope *env, const char *body,
		   size_t bodylen, const struct dsn_item *items, size_t n, size_t *len_r)
{
	char *m = dsn_build(env, body, bodylen, items, n, &params, len_r);
	check_structure(m, *len_r);
	save(name, m, *len_r);
	return m;
}

#define HAS(m, len, s) CHECK(find((m), (len), (s)) != NULL)
#define HASNT(m, len, s) CHECK(find((m), (len), (s)) == NULL)

static void test_failed(void)
{
	struct envelope env;
	struct dsn_item it = { 0, DSN_FAILED };
	size_t len;
	char *m;

	make_env(&env, DSN_RET_FULL);
	env.envid = strdup("QQ314159");
	envelope_add_rcpt(&env, "bob@example.org", "rfc822;Bob@Example.org", 0, NULL);
	set_state(&env, "5.1.1", "550 5.1.1 <bob@example.org>: Recipient address rejected: "
		  "User unknown in virtual mailbox table", "mx.example.org", T_ATTEMPT);
	m = build("failed", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "From: \"Mail Delivery System\" <MAILER-DAEMON@mx.cursus.test>\r\n");
	HAS(m, len, "To: <alice@cursus.test>\r\n");
	HAS(m, len, "Subject: Undelivered Mail Returned to Sender\r\n");
	HAS(m, len, "Date: Wed, 15 Nov 2023 00:13:20 +0000\r\n");
	HAS(m, len, "Auto-Submitted: auto-replied\r\n");
	HAS(m, len, "MIME-Version: 1.0\r\n");
	HAS(m, len, "Content-Type: multipart/report; report-type=delivery-status;\r\n");
	HAS(m, len, "@mx.cursus.test>\r\n");
	HAS(m, len, "Your message to bob@example.org could not be delivered.\r\n");
	HAS(m, len, "The receiving server (mx.example.org) said:\r\n");
	HAS(m, len, "Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; mx.cursus.test\r\n"
		    "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n"
		    "Original-Recipient: rfc822; Bob@Example.org\r\n"
		    "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\n"
		    "Status: 5.1.1\r\nRemote-MTA: dns; mx.example.org\r\n"
		    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address\r\n"
		    " rejected: User unknown in virtual mailbox table\r\n"
		    "Last-Attempt-Date: Tue, 14 Nov 2023 23:13:20 +0000\r\n");
	HASNT(m, len, "Will-Retry-Until");
	HAS(m, len, "Content-Type: message/rfc822\r\n\r\n");
	HAS(m, len, plain_msg);
	HASNT(m, len, "Content-Transfer-Encoding");
	free(m);
	envelope_clear(&env);
}

/* RFC 8689 5: a REQUIRETLS message is returned as if RET=HDRS, RET=FULL disregarded. */
static void test_requiretls(void)
{
	struct envelope env;
	struct dsn_item it = { 0, DSN_FAILED };
	size_t len;
	char *m;

	make_env(&env, DSN_RET_FULL);
	env.tlsreq = TLSREQ_REQUIRETLS;
	envelope_add_rcpt(&env, "bob@example.org", NULL, 0, NULL);
	set_state(&env, "5.7.30", "REQUIRETLS support required", "mx.example.org", T_ATTEMPT);
	m = build("requiretls", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "Content-Type: text/rfc822-headers\r\n");
	HAS(m, len, "The header of your message is attached below.");
	HASNT(m, len, "message/rfc822");
	HAS(m, len, "Status: 5.7.30\r\n");
	HAS(m, len, "Subject: Lunch\r\n");
	HASNT(m, len, "Shall we meet at noon?");
	free(m);
	envelope_clear(&env);
}

static void test_kinds(void)
{
	struct envelope env;
	struct dsn_item it = { 0, DSN_DELAYED };
	size_t len;
	char *m;

	make_env(&env, DSN_RET_UNSET);
	envelope_add_rcpt(&env, "carol@example.net", NULL, 0, NULL);
	set_state(&env, "4.4.1", "connect to mx.example.net[192.0.2.7]:25: Connection timed out",
		  NULL, T_ATTEMPT);
	m = build("delayed", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "Subject: Delayed Mail (still being retried)\r\n");
	HAS(m, len, "We will keep trying until Sat, 18 Nov 2023 22:13:20 +0000.");
	HAS(m, len, "The reason given was:\r\n");
	HAS(m, len, "Action: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: X-Cursus; connect to");
	HAS(m, len, "Will-Retry-Until: Sat, 18 Nov 2023 22:13:20 +0000\r\n");
	HASNT(m, len, "Original-Recipient");
	HASNT(m, len, "Original-Envelope-Id");
	free(m);

	/* A leftover 4.x.x cannot stand beside "delivered". */
	it.kind = DSN_DELIVERED;
	set_state(&env, "4.4.1", NULL, NULL, T_ATTEMPT);
	env.rcpts[0].notify = DSN_NOTIFY_SUCCESS;
	m = build("delivered", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "Subject: Successful Mail Delivery Report\r\n");
	HAS(m, len, "Your message to carol@example.net was delivered.\r\n");
	HAS(m, len, "Action: delivered\r\nStatus: 2.0.0\r\nLast-Attempt-Date:");
	HASNT(m, len, "Diagnostic-Code");
	HASNT(m, len, "Will-Retry-Until");
	free(m);

	it.kind = DSN_RELAYED;
	set_state(&env, "2.0.0", "250 2.0.0 Ok: queued as 4SVx1", "relay.example.net", T_ATTEMPT);
	m = build("relayed", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "Subject: Mail relayed\r\n");
	HAS(m, len, "was passed on to relay.example.net.");
	HAS(m, len, "Action: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; relay.example.net\r\n"
		    "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4SVx1\r\n");
	free(m);
	envelope_clear(&env);
}

static void test_several(void)
{
	struct envelope env;
	struct dsn_item items[] = { { 0, DSN_FAILED }, { 2, DSN_DELAYED }, { 3, DSN_FAILED } };
	size_t len;
	const char *a, *b, *c;
	char *m;

	make_env(&env, DSN_RET_HDRS);
	envelope_add_rcpt(&env, "bob@example.org", NULL, 0, NULL);
	set_state(&env, "5.1.1", "550 5.1.1 unknown user", "mx.example.org", T_ATTEMPT);
	envelope_add_rcpt(&env, "not-reported@example.org", NULL, 0, NULL);
	envelope_add_rcpt(&env, "carol@example.net", NULL, 0, NULL);
	set_state(&env, "4.2.2", "452 4.2.2 mailbox full", "mx.example.net", T_ATTEMPT);
	envelope_add_rcpt(&env, "dave@cursus.test", NULL, 0, "cursus.test/dave");
	set_state(&env, "5.2.2", "mailbox over quota", NULL, T_ATTEMPT);
	m = build("several", &env, plain_msg, strlen(plain_msg), items, 3, &len);
	HAS(m, len, "Subject: Undelivered Mail Returned to Sender\r\n");
	HASNT(m, len, "not-reported");
	a = find(m, len, "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\n");
	b = find(m, len, "Final-Recipient: rfc822; carol@example.net\r\nAction: delayed\r\n");
	c = find(m, len, "Final-Recipient: rfc822; dave@cursus.test\r\nAction: failed\r\n"
			 "Status: 5.2.2\r\nDiagnostic-Code: X-Cursus; mailbox over quota\r\n");
	CHECK(a && b && c && a < b && b < c);
	CHECK(find(m, len, "Will-Retry-Until") > b);
	HAS(m, len, "We will keep trying until");
	HAS(m, len, "We have stopped trying");
	/* RET=HDRS: the header, without the body. */
	HAS(m, len, "Content-Type: text/rfc822-headers\r\n\r\nReceived: from client");
	HAS(m, len, "Message-ID: <lunch.1@cursus.test>\r\n\r\n--");
	HASNT(m, len, "Shall we meet");
	free(m);
	envelope_clear(&env);
}

static void test_8bit(void)
{
	static const char body8[] = "From: alice@cursus.test\r\nSubject: caf\xc3\xa9?\r\n"
				    "Content-Type: text/plain; charset=utf-8\r\n"
				    "Content-Transfer-Encoding: 8bit\r\n\r\nUn caf\xc3\xa9 \xc3\xa0 midi ?\r\n";
	static const char hdr8[] = "From: =?utf-8?q?Jos=C3=A9?= <jose@cursus.test>\r\n"
				   "Subject: \xc3\xa9t\xc3\xa9\r\n\r\nbody\r\n";
	static const char body_only8[] = "Subject: plain\r\n\r\nna\xc3\xafve\r\n";
	struct envelope env;
	struct dsn_item it = { 0, DSN_FAILED };
	size_t len;
	char *m;

	make_env(&env, DSN_RET_FULL);
	env.body = BODY_8BITMIME;
	envelope_add_rcpt(&env, "bob@example.org", NULL, 0, NULL);
	set_state(&env, "5.6.7", "553 5.6.7 cannot take 8-bit", "mx.example.org", T_ATTEMPT);
	m = build("eightbit", &env, body_only8, strlen(body_only8), &it, 1, &len);
	HAS(m, len, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		    "Subject: plain\r\n\r\nna\xc3\xafve\r\n\r\n--");
	free(m);
	envelope_clear(&env);

	/* SMTPUTF8: a UTF-8 header and a UTF-8 recipient. */
	make_env(&env, DSN_RET_FULL);
	env.body = BODY_8BITMIME;
	env.smtputf8 = 1;
	envelope_add_rcpt(&env, "jos\xc3\xa9+x=y@exampl\xc3\xa9.org", "utf-8;jos\\x{E9}@example.org", 0, NULL);
	set_state(&env, "5.1.1", "550 5.1.1 unknown", "mx.example.org", T_ATTEMPT);
	m = build("utf8", &env, body8, strlen(body8), &it, 1, &len);
	HAS(m, len, "Original-Recipient: utf-8; jos\\x{E9}@example.org\r\n");
	HAS(m, len, "Final-Recipient: utf-8; jos\\x{E9}\\x{2B}x\\x{3D}y@exampl\\x{E9}.org\r\n");
	HAS(m, len, "Content-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
	HAS(m, len, body8);
	HAS(m, len, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n");
	HAS(m, len, "Your message to jos\xc3\xa9+x=y@exampl\xc3\xa9.org could not be delivered.");
	free(m);

	env.ret = DSN_RET_HDRS;
	m = build("utf8hdrs", &env, hdr8, strlen(hdr8), &it, 1, &len);
	HAS(m, len, "Content-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		    "From: =?utf-8?q?Jos=C3=A9?= <jose@cursus.test>\r\nSubject: \xc3\xa9t\xc3\xa9\r\n\r\n--");
	free(m);
	envelope_clear(&env);
}

static void test_long_and_nasty(void)
{
	struct envelope env;
	struct dsn_item it = { 0, DSN_FAILED };
	char diag[4000], *m, *bare, *longline;
	size_t len, o = 0;

	/* Many words, then one 1500-octet word: folded at spaces, the word cut by a fold. */
	o += (size_t)snprintf(diag, sizeof(diag), "550 5.7.1");
	for (int i = 0; i < 200; i++)
		o += (size_t)snprintf(diag + o, sizeof(diag) - o, " word%d", i);
	diag[o++] = ' ';
	memset(diag + o, 'x', 1500);
	o += 1500;
	diag[o] = '\0';
	make_env(&env, DSN_RET_FULL);
	envelope_add_rcpt(&env, "bob@example.org", NULL, 0, NULL);
	set_state(&env, "5.7.1", diag, "mx.example.org", T_ATTEMPT);
	m = build("longdiag", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "Diagnostic-Code: smtp; 550 5.7.1 word0 word1");
	HAS(m, len, " word199\r\n xxxxx");
	free(m);
	envelope_clear(&env);

	/* What a broken or hostile server may send: line ends, controls, 8-bit bytes. */
	make_env(&env, DSN_RET_FULL);
	envelope_add_rcpt(&env, "bob@example.org", NULL, 0, NULL);
	set_state(&env, "5.0.0", "550-5.1.1 first line\r\n550 5.1.1 caf\xc3\xa9 \x1b[31mred\t\xff\r\n",
		  "mx.example.org\r\nX-Injected: yes", T_ATTEMPT);
	m = build("nasty", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "Diagnostic-Code: smtp; 550-5.1.1 first line 550 5.1.1 caf?? ?[31mred ?\r\n");
	HAS(m, len, "Remote-MTA: dns; mx.example.org X-Injected: yes\r\n");
	HASNT(m, len, "\nX-Injected");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)m[i] >= 0x80)
			CHECK(!"8-bit byte in an ASCII report");
	HASNT(m, len, "Content-Transfer-Encoding");
	free(m);

	/* Bare LF in the original becomes CRLF. */
	bare = strdup("Subject: lf\n\nline one\nline two\n");
	m = build("barelf", &env, bare, strlen(bare), &it, 1, &len);
	HAS(m, len, "Subject: lf\r\n\r\nline one\r\nline two\r\n\r\n--");
	free(m);
	free(bare);

	/* A body line over 998 octets cannot be returned: the header goes back instead. */
	longline = malloc(3000);
	o = (size_t)snprintf(longline, 3000, "Subject: long\r\n\r\n");
	memset(longline + o, 'y', 2000);
	strcpy(longline + o + 2000, "\r\n");
	m = build("longline", &env, longline, strlen(longline), &it, 1, &len);
	HAS(m, len, "Content-Type: text/rfc822-headers\r\n\r\nSubject: long\r\n\r\n--");
	HAS(m, len, "The header of your message is attached below.");
	free(m);
	free(longline);

	/* RET=HDRS with a header line over 998 octets: folded, the only change a header
	 * allows. */
	longline = malloc(3000);
	o = (size_t)snprintf(longline, 3000, "X-Long: ");
	memset(longline + o, 'z', 1990);
	strcpy(longline + o + 1990, "\r\nSubject: after\r\n\r\nbody\r\n");
	env.ret = DSN_RET_HDRS;
	m = build("longheader", &env, longline, strlen(longline), &it, 1, &len);
	HAS(m, len, "X-Long: zzzz");
	HAS(m, len, "zzzz\r\n zzzz");
	HAS(m, len, "zzzz\r\nSubject: after\r\n\r\n--");
	env.ret = DSN_RET_FULL;
	free(m);
	free(longline);

	/* BINARYMIME: the header only, too. */
	env.body = BODY_BINARYMIME;
	m = build("binary", &env, plain_msg, strlen(plain_msg), &it, 1, &len);
	HAS(m, len, "Content-Type: text/rfc822-headers\r\n");
	HASNT(m, len, "Shall we meet");
	free(m);

	/* An empty message. */
	env.body = BODY_7BIT;
	m = build("empty", &env, "", 0, &it, 1, &len);
	HAS(m, len, "Content-Type: message/rfc822\r\n\r\n\r\n--");
	free(m);
	envelope_clear(&env);
}

/* Two reports of the same message differ in Message-ID and boundary. */
static void test_unique(void)
{
	struct envelope env;
	struct dsn_item it = { 0, DSN_FAILED };
	size_t l1, l2;
	char *a, *b;

	make_env(&env, DSN_RET_FULL);
	envelope_add_rcpt(&env, "bob@example.org", NULL, 0, NULL);
	a = dsn_build(&env, plain_msg, strlen(plain_msg), &it, 1, &params, &l1);
	b = dsn_build(&env, plain_msg, strlen(plain_msg), &it, 1, &params, &l2);
	CHECK(strcmp(strstr(a, "Message-ID:"), strstr(b, "Message-ID:")) != 0);
	CHECK(strncmp(strstr(a, "boundary="), strstr(b, "boundary="), 45) != 0);
	/* No state recorded: defaults by action, no diagnostic, no attempt date. */
	HAS(a, l1, "Action: failed\r\nStatus: 5.0.0\r\n\r\n--");
	free(a);
	free(b);
	envelope_clear(&env);
}

/* Random bytes everywhere a remote server or a client had a say (a fixed seed, so
 * a failure repeats): the structure and line rules hold whatever they were. */
static unsigned long rnd_state = 12345;

static unsigned rnd(unsigned n)
{
	rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)((rnd_state >> 33) % n);
}

static char *rnd_str(size_t max)
{
	size_t n = rnd((unsigned)max);
	char *s = malloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		/* Mostly text and spaces, with line ends, controls and 8-bit bytes. */
		unsigned k = rnd(10);
		s[i] = k < 6 ? (char)(0x21 + rnd(94)) : k < 8 ? ' ' : k == 8 ? "\r\n"[rnd(2)]
			: (char)(1 + rnd(255));
	}
	s[n] = '\0';
	return s;
}

static void test_random(void)
{
	for (int round = 0; round < 300; round++) {
		struct envelope env;
		struct dsn_item items[3];
		char *body = rnd_str(4000), *strs[6];
		size_t len;
		char *m;

		make_env(&env, (enum dsn_ret)rnd(3));
		env.body = (enum body_type)rnd(3);
		for (int i = 0; i < 6; i++)
			strs[i] = rnd_str(i == 3 ? 3000 : 300);
		envelope_set_str(&env.envid, rnd(2) ? strs[0] : NULL);
		for (size_t i = 0; i < 3; i++) {
			envelope_add_rcpt(&env, strs[1], rnd(2) ? "rfc822;x@y" : NULL, rnd(16), NULL);
			set_state(&env, rnd(2) ? "5.1.1" : strs[2], rnd(4) ? strs[3] : NULL,
				  rnd(2) ? strs[4] : NULL, rnd(2) ? T_ATTEMPT : 0);
			items[i].rcpt = i;
			items[i].kind = (enum dsn_kind)rnd(4);
		}
		m = dsn_build(&env, body, strlen(body), items, 3, &params, &len);
		check_structure(m, len);
		free(m);
		for (int i = 0; i < 6; i++)
			free(strs[i]);
		free(body);
		envelope_clear(&env);
	}
}

void unit_main(void)
{
	/* Dates in the expected strings are UTC. */
	setenv("TZ", "UTC", 1);
	tzset();
	test_wanted();
	test_failed();
	test_requiretls();
	test_kinds();
	test_several();
	test_8bit();
	test_long_and_nasty();
	test_unique();
	test_random();
}
