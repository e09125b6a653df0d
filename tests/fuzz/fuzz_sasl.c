/* fuzz_sasl: the server side of SMTP AUTH (sasl.c over GNU SASL) against a real,
 * temporary SQLite credential store holding one user whose password is random, so no
 * exchange can ever succeed. Each input is a client's side of one AUTH: its lines are
 * the client's responses, sent either base64-encoded (so the mechanism's own parser
 * sees the raw bytes) or as they are (so the base64 decoder sees arbitrary text).
 * Checks: no crash, no sanitizer report, never SASL_OK, a challenge exactly with
 * SASL_MORE and always valid base64, a store that never fails, a step after the end
 * refused.
 * Input: byte 0 bits 0-3 pick the mechanism (PLAIN and LOGIN most often), bit 4 = no
 * initial response, bit 5 = send the lines as they are rather than base64-encoded;
 * the rest, split on LF, are the responses (6 at most).
 * PLAIN and LOGIN cost a yescrypt computation per checked password (~20 ms), so the
 * precheck lets only the first FUZZ_SASL_VERIFY_MAX checks of a process reach the
 * store and refuses the rest: decoding and the library's parsing run on every input
 * either way. Set CURSUS_FUZZ_SASL_VERIFY_MAX to change it. */
#include "fuzz.h"
#include "sasl/sasl.h"
#include "store/userdb.h"

#include <gsasl.h>
#include <sys/random.h>
#include <unistd.h>

#define FUZZ_SASL_VERIFY_MAX 64
#define FUZZ_SASL_STEPS_MAX 6

static struct sasl_server *fuzz_srv;
static struct userdb *fuzz_db;
static char fuzz_dir[64];
static unsigned long fuzz_verify_left;

static void fuzz_sasl_cleanup(void)
{
	char path[128];
	static const char *const files[] = { "users.db", "users.db-wal", "users.db-shm",
					     "users.db-journal" };

	sasl_server_destroy(&fuzz_srv);
	userdb_close(&fuzz_db);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", fuzz_dir, files[i]);
		unlink(path);
	}
	rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[128], *err = NULL, password[65];
	unsigned char rnd[32];
	const char *env = getenv("CURSUS_FUZZ_SASL_VERIFY_MAX");

	(void)argc;
	(void)argv;
	fuzz_verify_left = env ? strtoul(env, NULL, 10) : FUZZ_SASL_VERIFY_MAX;
	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/cursus-fuzz-sasl.XXXXXX");
	FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL);
	snprintf(path, sizeof(path), "%s/users.db", fuzz_dir);
	fuzz_db = userdb_open(path, 1, &err);
	if (fuzz_db == NULL) {
		fprintf(stderr, "fuzz_sasl: userdb_open: %s\n", err ? err : "?");
		abort();
	}
	atexit(fuzz_sasl_cleanup);
	/* A password nobody can send: the fuzzer never sees it, and it is not empty. */
	FUZZ_CHECK(getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(password + 2 * i, 3, "%02x", rnd[i]);
	if (userdb_user_add(fuzz_db, "alice@example.test", password, &err) != 0) {
		fprintf(stderr, "fuzz_sasl: userdb_user_add: %s\n", err ? err : "?");
		abort();
	}
	explicit_bzero(password, sizeof(password));
	fuzz_srv = sasl_server_create(fuzz_db);
	return 0;
}

static int fuzz_precheck(void *arg, const char *authid)
{
	(void)arg;
	FUZZ_CHECK(authid != NULL);
	if (fuzz_verify_left == 0)
		return 1;
	fuzz_verify_left--;
	return 0;
}

/* PLAIN and LOGIN most often: they are what "SASL decoding" means for most clients. */
static const char *const fuzz_mech_names[16] = {
	"PLAIN", "LOGIN", "PLAIN", "LOGIN", "PLAIN", "LOGIN", "PLAIN", "LOGIN",
	"SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", "CRAM-MD5",
	"DIGEST-MD5", "EXTERNAL", "PLAIN", "LOGIN",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct sasl_mech *mech;
	struct sasl_channel chan;
	struct sasl_exchange *x;
	enum sasl_status st = SASL_MORE;
	size_t start = 1;
	int steps = 0;

	if (size < 1)
		return 0;
	unsigned mode = data[0];
	int no_ir = (mode >> 4) & 1, as_is = (mode >> 5) & 1;
	const char *name = fuzz_mech_names[mode & 15];

	mech = sasl_mech_find(name, strlen(name));
	FUZZ_CHECK(mech != NULL);
	memset(&chan, 0, sizeof(chan));
	chan.tls_exporter_len = 32;
	memset(chan.tls_exporter, 0x5a, sizeof(chan.tls_exporter));
	x = sasl_exchange_start(fuzz_srv, mech, &chan, fuzz_precheck, NULL);
	FUZZ_CHECK(x != NULL);

	if (no_ir) {
		char *out = NULL;
		st = sasl_exchange_step(x, NULL, 0, &out);
		FUZZ_CHECK((st == SASL_MORE) == (out != NULL));
		free(out);
		steps++;
	}
	while (st == SASL_MORE && start <= size && steps < FUZZ_SASL_STEPS_MAX) {
		const uint8_t *lf = memchr(data + start, '\n', size - start);
		size_t end = lf ? (size_t)(lf - data) : size;
		char *in, *out = NULL, *raw = NULL;
		size_t inlen, rawlen = 0;

		if (as_is) {
			inlen = end - start;
			in = fuzz_copy(data + start, inlen);
		} else {
			char *b64 = NULL;
			FUZZ_CHECK(gsasl_base64_to((const char *)data + start, end - start, &b64, &inlen) == GSASL_OK);
			in = fuzz_copy((const uint8_t *)b64, inlen);
			free(b64);
		}
		st = sasl_exchange_step(x, in, inlen, &out);
		free(in);
		steps++;
		FUZZ_CHECK(st != SASL_OK);
		FUZZ_CHECK(st != SASL_TEMPFAIL);
		FUZZ_CHECK((st == SASL_MORE) == (out != NULL));
		if (out) {
			FUZZ_CHECK(gsasl_base64_from(out, strlen(out), &raw, &rawlen) == GSASL_OK);
			free(raw);
			free(out);
		}
		if (!as_is)
			FUZZ_CHECK(st != SASL_BAD_BASE64);
		if (!lf)
			break;
		start = end + 1;
	}
	FUZZ_CHECK(sasl_exchange_user(x) == NULL);
	(void)sasl_exchange_authid(x);
	(void)sasl_exchange_authzid(x);
	if (st != SASL_MORE) {
		char *out = NULL;
		FUZZ_CHECK(sasl_exchange_reason(x) != NULL || st == SASL_REFUSED);
		/* A step after the end is refused, with nothing to send. */
		FUZZ_CHECK(sasl_exchange_step(x, "", 0, &out) == SASL_FAIL && out == NULL);
	}
	sasl_exchange_end(&x);
	FUZZ_CHECK(x == NULL);
	return 0;
}
