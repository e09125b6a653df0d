/* check_tls: the server's certificate and key as clients will see them: present,
 * from a CA rather than self-signed, valid now and for a while yet, naming the
 * hostname, with a key and a signature of at least 112-bit strength, the key matching
 * and readable by its owner only. The protocol floor needs no check here: the parser
 * accepts no tls_min_version below TLSv1.2, and the cipher list is OpenSSL's default at
 * Debian's security level 2. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin/check.h"

/* Below this many bits of security a key or signature is weak (NIST SP 800-57). */
#define CHECK_TLS_MIN_BITS 112

static int check_tls_line(const struct check_report *r, const char *option)
{
	return config_option_line(r->cfg, option);
}

static int check_tls_used(const struct config *cfg)
{
	for (const struct listener_conf *l = cfg->listeners; l; l = l->next)
		if (l->tls != TLS_NONE)
			return 1;
	return 0;
}

static void check_tls_dates(struct check_report *r, X509 *x, int line)
{
	time_t now = time(NULL), soon = now + (time_t)r->cert_days * 86400;
	const char *path = r->cfg->tls_cert;
	int day, sec;

	if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0) {
		check_add(r, CHECK_ERROR, "tls-cert-not-yet-valid", line,
			  "check the system clock, or install a certificate valid now",
			  "the certificate %s is not valid yet", path);
	} else if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0) {
		check_add(r, CHECK_ERROR, "tls-cert-expired", line,
			  "renew the certificate and restart cursusd",
			  "the certificate %s has expired", path);
	} else if (X509_cmp_time(X509_get0_notAfter(x), &soon) < 0 &&
		   ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(x))) {
		check_add(r, CHECK_WARNING, "tls-cert-expiring", line,
			  "renew the certificate (and automate renewal) before it expires",
			  "the certificate %s expires in %d day%s", path, day, day == 1 ? "" : "s");
	}
}

static void check_tls_cert(struct check_report *r, X509 *x, int line)
{
	const struct config *cfg = r->cfg;
	EVP_PKEY *pub = X509_get0_pubkey(x);
	int secbits = 0, self = X509_check_issued(x, x) == X509_V_OK;

	if (self)
		check_add(r, CHECK_WARNING, "tls-cert-self-signed", line,
			  "install a certificate from a CA (e.g. Let's Encrypt) as tls_cert and "
			  "tls_key",
			  "the certificate %s is self-signed: clients cannot verify it",
			  cfg->tls_cert);
	check_tls_dates(r, x, line);
	if (X509_check_host(x, cfg->hostname, 0, 0, NULL) != 1)
		check_add(r, CHECK_WARNING, "tls-cert-name-mismatch", line,
			  "get a certificate that names the hostname, or set hostname to a name "
			  "the certificate covers",
			  "the certificate %s does not name the hostname %s", cfg->tls_cert,
			  cfg->hostname);
	if (pub && EVP_PKEY_get_security_bits(pub) < CHECK_TLS_MIN_BITS)
		check_add(r, CHECK_WARNING, "tls-cert-weak-key", line,
			  "make a new key: RSA of 2048 bits or more, or ECDSA P-256",
			  "the key of certificate %s has %d bits of security (below %d)",
			  cfg->tls_cert, EVP_PKEY_get_security_bits(pub), CHECK_TLS_MIN_BITS);
	/* A self-signed certificate's own signature proves nothing either way. */
	if (!self && X509_get_signature_info(x, NULL, NULL, &secbits, NULL) == 1 &&
	    secbits > 0 && secbits < CHECK_TLS_MIN_BITS)
		check_add(r, CHECK_WARNING, "tls-cert-weak-signature", line,
			  "get a certificate signed with SHA-256 or better",
			  "the certificate %s is signed with a weak digest (%d bits of security)",
			  cfg->tls_cert, secbits);
}

/* Opens path for reading; NULL when it cannot be: *missing_r says whether it does not
 * exist (the caller's finding), else a note says why it was not checked. */
static FILE *check_tls_open(struct check_report *r, const char *path, int line,
			    const char *not_checked_id, int *missing_r)
{
	FILE *f = fopen(path, "r");
	*missing_r = !f && errno == ENOENT;
	if (!f && !*missing_r)
		check_add(r, CHECK_INFO, not_checked_id, line,
			  "run cursus check as the user that starts cursusd (root)",
			  "%s could not be read here: %s", path, strerror(errno));
	return f;
}

static void check_tls_key(struct check_report *r, X509 *x)
{
	const struct config *cfg = r->cfg;
	int line = check_tls_line(r, "tls_key");
	EVP_PKEY *key;
	struct stat st;
	int missing;
	FILE *f;

	if (!(f = check_tls_open(r, cfg->tls_key, line, "tls-key-not-checked", &missing))) {
		if (missing)
			check_add(r, CHECK_ERROR, "tls-key-missing", line,
				  "install the certificate's private key at tls_key",
				  "the key %s does not exist: cursusd cannot start its TLS",
				  cfg->tls_key);
		return;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		check_add(r, CHECK_WARNING, "tls-key-permissions", line,
			  "chmod 600 the key file (cursusd reads it as root before it drops "
			  "privileges)",
			  "the key %s can be read by group or others (mode %03o)", cfg->tls_key,
			  (unsigned)(st.st_mode & 0777));
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!key)
		check_add(r, CHECK_ERROR, "tls-key-unreadable", line,
			  "install the private key in PEM form, without a passphrase",
			  "the key %s is not a PEM private key", cfg->tls_key);
	else if (x && X509_check_private_key(x, key) != 1)
		check_add(r, CHECK_ERROR, "tls-key-mismatch", line,
			  "install the key that belongs to the certificate",
			  "the key %s does not belong to the certificate %s", cfg->tls_key,
			  cfg->tls_cert);
	EVP_PKEY_free(key);
}

void check_tls(struct check_report *r)
{
	const struct config *cfg = r->cfg;
	int line = check_tls_line(r, "tls_cert"), self_line = check_tls_line(r, "tls_self_signed");
	X509 *x = NULL;
	int missing;
	FILE *f;

	if (!check_tls_used(cfg))
		return;
	if (!(f = check_tls_open(r, cfg->tls_cert, line, "tls-cert-not-checked", &missing))) {
		if (missing && cfg->tls_self_signed)
			check_add(r, CHECK_WARNING, "tls-cert-self-signed", self_line,
				  "install a certificate from a CA (e.g. Let's Encrypt) as tls_cert "
				  "and tls_key and set tls_self_signed no",
				  "%s does not exist: tls_self_signed makes a self-signed certificate "
				  "that clients cannot verify", cfg->tls_cert);
		else if (missing)
			check_add(r, CHECK_ERROR, "tls-cert-missing", line,
				  "install the server's certificate (with its chain) at tls_cert",
				  "the certificate %s does not exist: cursusd cannot start its TLS",
				  cfg->tls_cert);
		return;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		check_add(r, CHECK_ERROR, "tls-cert-unreadable", line,
			  "install the certificate in PEM form, the server's own first",
			  "%s holds no PEM certificate", cfg->tls_cert);
	else
		check_tls_cert(r, x, line);
	check_tls_key(r, x);
	X509_free(x);
}
