/* Tests of the queue file format: round trips of every field, every truncation and
 * every flipped byte rejected, and the "done" sidecar. */
#include "unit.h"
#include "queue/envelope.h"
#include "queue/qfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void make_env(struct envelope *env, size_t nrcpts)
{
	memset(env, 0, sizeof(*env));
	strcpy(env->id, "0123456789abcdef");
	env->received = 1700000123;
	env->helo = strdup("odd helo + = - \t\r\n\x01\xff end 0");
	env->client_addr = strdup("2001:db8::1");
	env->mail_from = strdup("");
	env->auth = strdup("user+tag=x@example.test");
	env->ret = DSN_RET_HDRS;
	env->envid = strdup("QQ314159 -");
	env->body = BODY_BINARYMIME;
	env->smtputf8 = 1;
	for (size_t i = 0; i < nrcpts; i++) {
		char addr[64], box[64];
		snprintf(addr, sizeof(addr), i == 1 ? "-" : "r%zu+x=y@exämple.test", i);
		snprintf(box, sizeof(box), "example.test/r%zu", i);
		envelope_add_rcpt(env, addr, i % 3 == 0 ? "rfc822;r@x y" : i % 3 == 1 ? "-" : NULL,
				  (unsigned)(i % 16), i % 2 ? NULL : box);
	}
}

static void check_same(const struct envelope *a, const struct envelope *b)
{
	CHECK_STR(a->id, b->id);
	CHECK(a->received == b->received);
	CHECK(streq(a->helo, b->helo));
	CHECK(streq(a->client_addr, b->client_addr));
	CHECK(streq(a->mail_from, b->mail_from));
	CHECK(streq(a->auth, b->auth));
	CHECK(a->ret == b->ret);
	CHECK(streq(a->envid, b->envid));
	CHECK(a->body == b->body);
	CHECK(a->smtputf8 == b->smtputf8);
	CHECK(a->tlsreq == b->tlsreq);
	CHECK(a->n_rcpts == b->n_rcpts);
	for (size_t i = 0; i < a->n_rcpts && i < b->n_rcpts; i++) {
		const struct env_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
		if (!streq(x->address, y->address) || !streq(x->orcpt, y->orcpt) ||
		    x->notify != y->notify || !streq(x->mailbox, y->mailbox) || y->done) {
			CHECK(!"recipient differs");
			fprintf(stderr, "  recipient %zu\n", i);
			return;
		}
	}
}

static void test_round_trip(void)
{
	static const char body[] = "Received: x\r\n\r\nbin\0ary\nend 00000000\nbody 3\n";
	struct envelope env, out;
	const char *b;
	size_t len, blen;
	char *file;

	make_env(&env, 1000);
	file = qfile_encode(&env, body, sizeof(body) - 1, &len);
	CHECK(memcmp(file, QFILE_MAGIC "\n", strlen(QFILE_MAGIC) + 1) == 0);
	CHECK(qfile_decode(file, len, &out, &b, &blen) == 0);
	check_same(&env, &out);
	CHECK(blen == sizeof(body) - 1 && memcmp(b, body, blen) == 0);
	envelope_clear(&out);
	free(file);
	envelope_clear(&env);

	/* NULL and unset fields, empty body, no recipient. */
	memset(&env, 0, sizeof(env));
	strcpy(env.id, "ffffffffffffffff");
	env.mail_from = strdup("a@b");
	file = qfile_encode(&env, "", 0, &len);
	CHECK(qfile_decode(file, len, &out, &b, &blen) == 0);
	check_same(&env, &out);
	CHECK(blen == 0 && out.helo == NULL && out.auth == NULL && out.ret == DSN_RET_UNSET);
	envelope_clear(&out);
	free(file);
	envelope_clear(&env);

	/* Every body type and ret value. */
	for (int t = 0; t < 3; t++) {
		make_env(&env, 2);
		env.body = (enum body_type)t;
		env.ret = (enum dsn_ret)t;
		env.smtputf8 = t & 1;
		env.tlsreq = (enum env_tlsreq)t; /* RFC 8689: none, REQUIRETLS, TLS-Required: No */
		file = qfile_encode(&env, "x", 1, &len);
		CHECK((memmem(file, len, "\ntlsreq ", 8) != NULL) == (t != 0));
		CHECK(qfile_decode(file, len, &out, &b, &blen) == 0);
		check_same(&env, &out);
		envelope_clear(&out);
		envelope_clear(&env);
		free(file);
	}
}

static void test_damage(void)
{
	static const char body[] = "Subject: hi\r\n\r\nbody\r\n";
	struct envelope env, out;
	const char *b;
	size_t len, blen, bad = 0;
	char *file, *copy;

	make_env(&env, 3);
	file = qfile_encode(&env, body, sizeof(body) - 1, &len);
	copy = malloc(len + 1);
	/* Every prefix, as a crash at any moment of the write would leave it. */
	for (size_t n = 0; n < len; n++) {
		memcpy(copy, file, n);
		if (qfile_decode(copy, n, &out, &b, &blen) == 0) {
			bad++;
			envelope_clear(&out);
		}
	}
	CHECK(bad == 0);
	/* Every byte flipped, in two ways. */
	for (size_t i = 0; i < len; i++) {
		for (int m = 0; m < 2; m++) {
			memcpy(copy, file, len);
			copy[i] ^= m ? 0x80 : 0x01;
			if (qfile_decode(copy, len, &out, &b, &blen) == 0) {
				bad++;
				envelope_clear(&out);
			}
		}
	}
	CHECK(bad == 0);
	/* Trailing bytes. */
	memcpy(copy, file, len);
	copy[len] = '\n';
	CHECK(qfile_decode(copy, len + 1, &out, &b, &blen) == -1);
	CHECK(out.n_rcpts == 0 && out.rcpts == NULL);
	free(copy);
	free(file);
	envelope_clear(&env);
}

/* A file with a correct CRC but a malformed header is still refused. */
static void test_malformed(void)
{
	static const char *const heads[] = {
		"CURSUS-QUEUE 2\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789ABCDEF\nreceived 1\nbodytype 7bit\nsmtputf8 0\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 01\nbodytype 7bit\nsmtputf8 0\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"helo a b\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"helo +00\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"helo +4\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"from a\nfrom b\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"rcpt 0 a - - x\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"rcpt 16 a - -\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"unknown x\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"body 1\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"tlsreq yes\nbody 0\n",
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"tlsreq no\ntlsreq requiretls\nbody 0\n",
	};
	static const char good[] =
		"CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\nbodytype 7bit\nsmtputf8 0\n"
		"rcpt 0 a - -\nbody 0\n";
	for (size_t i = 0; i <= sizeof(heads) / sizeof(heads[0]); i++) {
		const char *h = i < sizeof(heads) / sizeof(heads[0]) ? heads[i] : good;
		size_t hl = strlen(h);
		char file[512], tail[QFILE_TAIL_LEN + 1];
		struct envelope out;
		const char *b;
		size_t blen;
		int rc;
		qfile_encode_tail(qfile_crc32(0, h, hl), tail);
		memcpy(file, h, hl);
		memcpy(file + hl, tail, QFILE_TAIL_LEN);
		rc = qfile_decode(file, hl + QFILE_TAIL_LEN, &out, &b, &blen);
		if (rc != (h == good ? 0 : -1))
			fprintf(stderr, "case %zu\n", i);
		CHECK(rc == (h == good ? 0 : -1));
		envelope_clear(&out);
	}
}

static void test_done(void)
{
	char dir[] = "/tmp/cursus-qfile-XXXXXX", path[128];
	struct envelope env;
	int dfd, fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/0123456789abcdef.done", dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	make_env(&env, 20);
	CHECK(qfile_done_load(path, &env) == 0); /* missing: no progress */
	for (size_t i = 0; i < env.n_rcpts; i++)
		CHECK(env.rcpts[i].done == 0);
	CHECK(qfile_done_append(path, dfd, 0) == 0);
	CHECK(qfile_done_append(path, dfd, 12) == 0);
	/* A torn line, as a crash during an append leaves it: "1" of "13 done". */
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(write(fd, "1", 1) == 1);
	close(fd);
	CHECK(qfile_done_append(path, dfd, 3) == 0);
	CHECK(qfile_done_append(path, dfd, 99) == 0); /* out of range: ignored */
	CHECK(qfile_done_load(path, &env) == 0);
	for (size_t i = 0; i < env.n_rcpts; i++)
		CHECK(env.rcpts[i].done == (i == 0 || i == 12 || i == 3));
	envelope_clear(&env);

	make_env(&env, 20);
	CHECK(qfile_done_apply("1 done\n2 don\nx done\n3done\n04 done\n5 done", 40, &env) == 1);
	CHECK(env.rcpts[1].done && !env.rcpts[2].done && !env.rcpts[4].done && !env.rcpts[5].done);
	envelope_clear(&env);
	close(dfd);
	unlink(path);
	rmdir(dir);
}

/* Version 1 files, as older queues hold them, are still read. */
static void test_version1(void)
{
	static const char head[] = "CURSUS-QUEUE 1\nid 0123456789abcdef\nreceived 1\n"
				   "from a@b\nbodytype 7bit\nsmtputf8 0\nrcpt 0 a@b - -\nbody 4\n";
	char file[256], tail[QFILE_TAIL_LEN + 1];
	size_t hl = sizeof(head) - 1, len, blen;
	struct envelope out;
	const char *b;
	memcpy(file, head, hl);
	memcpy(file + hl, "hi\r\n", 4);
	qfile_encode_tail(qfile_crc32(0, file, hl + 4), tail);
	memcpy(file + hl + 4, tail, QFILE_TAIL_LEN);
	len = hl + 4 + QFILE_TAIL_LEN;
	CHECK(qfile_decode(file, len, &out, &b, &blen) == 0);
	CHECK(blen == 4 && memcmp(b, "hi\r\n", 4) == 0 && out.n_rcpts == 1);
	CHECK_STR(out.mail_from, "a@b");
	envelope_clear(&out);
	/* Version 2's "body" line or end line in a version 1 file is refused. */
	file[13] = '2';
	CHECK(qfile_decode(file, len, &out, &b, &blen) == -1);
}

/* Version 3's trailer: the fields to send first come back whole, from memory and from
 * a file; a damaged trailer, or one in a version 2 file, is refused; version 2 files
 * without one are still read. */
static void test_trailer(void)
{
	static const char body[] = "Subject: x\r\n\r\nbody\r\n";
	static const char fields[] = "DKIM-Signature: v=1; a=ed25519-sha256;\r\n\tb=a+b/c=\r\n"
				     "DKIM-Signature: v=1; a=rsa-sha256; b=xyz\r\n";
	char dir[] = "/tmp/cursus-qfile-XXXXXX", path[128], *file, *head, end[QFILE_END_MAX + 1];
	struct envelope env, out;
	const char *b;
	size_t len, blen, hl, bl = sizeof(body) - 1, el, bad = 0;
	uint64_t off;
	int dfd, fd;

	make_env(&env, 3);
	env.prepend = strdup(fields);
	file = qfile_encode(&env, body, bl, &len);
	CHECK(qfile_decode(file, len, &out, &b, &blen) == 0);
	CHECK_STR(out.prepend, fields);
	CHECK(blen == bl && memcmp(b, body, bl) == 0);
	check_same(&env, &out);
	envelope_clear(&out);
	for (size_t i = len - 200; i < len; i++) {
		file[i] ^= 0x20;
		bad += qfile_decode(file, len, &out, &b, &blen) != -1;
		envelope_clear(&out);
		file[i] ^= 0x20;
	}
	CHECK(bad == 0);
	CHECK(mkdtemp(dir) != NULL);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "%s/0123456789abcdef", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(write(fd, file, len) == (ssize_t)len);
	close(fd);
	CHECK(qfile_open_at(dfd, "0123456789abcdef", &out, &fd, &off, &blen) == 0);
	CHECK(out.prepend && strcmp(out.prepend, fields) == 0 && blen == bl);
	close(fd);
	envelope_clear(&out);
	unlink(path);
	close(dfd);
	rmdir(dir);
	free(file);

	/* A version 2 file: no trailer allowed, none needed. */
	head = qfile_encode_head(&env, &hl);
	memcpy(head, QFILE_MAGIC_V2, strlen(QFILE_MAGIC_V2));
	file = malloc(hl + bl + QFILE_END_MAX + 200);
	memcpy(file, head, hl);
	memcpy(file + hl, body, bl);
	el = qfile_encode_end(qfile_crc32(0, file, hl + bl), bl, end);
	memcpy(file + hl + bl, end, el);
	CHECK(qfile_decode(file, hl + bl + el, &out, &b, &blen) == 0);
	CHECK(out.prepend == NULL && blen == bl);
	envelope_clear(&out);
	memcpy(file + hl + bl, "\nprepend X", 10);
	el = qfile_encode_end(qfile_crc32(0, file, hl + bl + 10), bl, end);
	memcpy(file + hl + bl + 10, end, el);
	CHECK(qfile_decode(file, hl + bl + 10 + el, &out, &b, &blen) == -1);
	free(file);
	free(head);
	envelope_clear(&env);
}

/* qfile_load_env_at reads in blocks: the same verdicts as qfile_decode on the whole,
 * on a body of several blocks. */
static void test_load_env_at(void)
{
	char dir[] = "/tmp/cursus-qfile-XXXXXX", path[128];
	size_t bodylen = 300000, len, blen;
	char *body = malloc(bodylen), *file;
	struct envelope env, out;
	int dfd, fd;
	size_t cuts[] = { 0, 10, 200, 65536, 150000, 0, 1, 2, 14, 20 }; /* from the end after 5 */

	for (size_t i = 0; i < bodylen; i++)
		body[i] = (char)(i * 7 + 3);
	CHECK(mkdtemp(dir) != NULL);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	make_env(&env, 50);
	file = qfile_encode(&env, body, bodylen, &len);
	snprintf(path, sizeof(path), "%s/0123456789abcdef", dir);
	for (int round = 0; round < 13; round++) {
		size_t n = len;
		fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
		if (round >= 1 && round <= 10)
			n = round <= 5 ? cuts[round - 1] : len - 1 - cuts[round - 1];
		CHECK(write(fd, file, n) == (ssize_t)n);
		if (round == 11)
			CHECK(write(fd, "\n", 1) == 1);          /* appended */
		close(fd);
		if (round == 12) {
			fd = open(path, O_WRONLY);
			CHECK(pwrite(fd, "Z", 1, (off_t)(len - 100000)) == 1); /* deep in the body */
			close(fd);
		}
		int rc = qfile_load_env_at(dfd, "0123456789abcdef", &out, &blen);
		if (round == 0) {
			CHECK(rc == 0 && blen == bodylen);
			check_same(&env, &out);
		} else {
			if (rc != EBADMSG)
				fprintf(stderr, "round %d: %d\n", round, rc);
			CHECK(rc == EBADMSG && out.n_rcpts == 0);
		}
		envelope_clear(&out);
	}
	CHECK(qfile_load_env_at(dfd, "missing", &out, &blen) == ENOENT);
	unlink(path);
	close(dfd);
	rmdir(dir);
	envelope_clear(&env);
	free(file);
	free(body);
}

void unit_main(void)
{
	CHECK(qfile_crc32(0, "123456789", 9) == 0xCBF43926u);
	test_round_trip();
	test_damage();
	test_malformed();
	test_done();
	test_version1();
	test_trailer();
	test_load_env_at();
}
