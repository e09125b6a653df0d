/* cursus dkim keygen DOMAIN SELECTOR --out FILE [--rsa BITS]: makes a DKIM signing key
 * (Ed25519 unless --rsa), writes it to FILE (PEM, mode 0600, never over an existing
 * file) and prints the DNS TXT record that publishes its public half. Needs no
 * configuration; docs/dkim.md says what to do next. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin.h"
#include "config/config_lex.h"
#include "dkim/dkim_keys.h"

/* A TXT record's character-strings hold 255 octets at most (RFC 1035 3.3): a longer
 * text (an RSA key) is given as several, which verifiers join (RFC 6376 3.6.2.2). */
#define DKIM_TXT_STRING_MAX 255

static int dkim_write_key(const char *path, EVP_PKEY *pkey)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600), err = 0;
	FILE *f;
	if (fd < 0) {
		if (errno == EEXIST)
			admin_error("%s already exists: not overwritten (remove it, or choose another "
				    "file)", path);
		else
			admin_error("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	/* Owner only whatever the umask: the private key signs for the domain. */
	if (fchmod(fd, 0600) < 0 || !(f = fdopen(fd, "w"))) {
		admin_error("cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	if (PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) != 0 ||
	    fsync(fileno(f)) < 0)
		err = errno ? errno : EIO;
	if (fclose(f) != 0 && !err)
		err = errno;
	if (err) {
		admin_error("cannot write %s: %s", path, strerror(err));
		unlink(path);
		return -1;
	}
	return 0;
}

static void dkim_print_record(const char *domain, const char *selector, const char *txt)
{
	size_t len = strlen(txt);
	printf("%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t i = 0; i < len; i += DKIM_TXT_STRING_MAX) {
		size_t n = len - i < DKIM_TXT_STRING_MAX ? len - i : DKIM_TXT_STRING_MAX;
		printf(" \"%.*s\"", (int)n, txt + i);
	}
	putchar('\n');
}

static int dkim_keygen(int argc, char **argv)
{
	const char *domain, *selector, *out = NULL;
	unsigned long bits = 0;
	EVP_PKEY *pkey;
	char *txt, *end;

	if (argc < 4)
		return admin_usage_error();
	domain = argv[2];
	selector = argv[3];
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			out = argv[++i];
		} else if (strcmp(argv[i], "--rsa") == 0 && i + 1 < argc) {
			errno = 0;
			bits = strtoul(argv[++i], &end, 10);
			if (errno || *end || argv[i][0] < '0' || argv[i][0] > '9') {
				admin_error("--rsa: \"%s\" is not a number of bits", argv[i]);
				return ADMIN_EXIT_USAGE;
			}
		} else {
			return admin_usage_error();
		}
	}
	if (!out) {
		admin_error("dkim keygen: --out FILE is required (where the private key goes)");
		return ADMIN_EXIT_USAGE;
	}
	if (!config_lex_domain_ok(domain)) {
		admin_error("\"%s\" is not a domain", domain);
		return ADMIN_EXIT_USAGE;
	}
	if (strlen(selector) > 63 || !config_lex_domain_ok(selector)) {
		admin_error("\"%s\" is not a selector (letters, digits, '-' and '.')", selector);
		return ADMIN_EXIT_USAGE;
	}
	if (bits && bits < DKIM_RSA_MIN_BITS) {
		admin_error("--rsa %lu: RSA keys shorter than %d bits are refused (1024-bit RSA can be "
			    "broken; use --rsa 2048, or Ed25519 without --rsa)", bits, DKIM_RSA_MIN_BITS);
		return ADMIN_EXIT_USAGE;
	}
	if (bits > DKIM_RSA_MAX_BITS) {
		admin_error("--rsa %lu: more than %d bits is refused (verifiers need not handle "
			    "longer keys, RFC 8301)", bits, DKIM_RSA_MAX_BITS);
		return ADMIN_EXIT_USAGE;
	}
	pkey = bits ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)
		    : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkey) {
		admin_error("cannot make the key (OpenSSL)");
		return ADMIN_EXIT_FAIL;
	}
	if (!(txt = dkim_key_txt(pkey)) || dkim_write_key(out, pkey) < 0) {
		free(txt);
		EVP_PKEY_free(pkey);
		return ADMIN_EXIT_FAIL;
	}
	dkim_print_record(domain, selector, txt);
	free(txt);
	EVP_PKEY_free(pkey);
	return ADMIN_EXIT_OK;
}

int cmd_dkim(const char *config_path, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return dkim_keygen(argc, argv);
	return admin_usage_error();
}
