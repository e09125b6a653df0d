/* mtasts_policy: the texts of MTA-STS (RFC 8461), parsed strictly: the _mta-sts TXT
 * record (3.1), the policy file (3.2) and its HTTP framing (3.3), and the MX host
 * patterns (4.1). Pure: no I/O, no logging; every rule is tested by feeding strings. */
#ifndef CURSUS_MTASTS_POLICY_H
#define CURSUS_MTASTS_POLICY_H

#include <stddef.h>

enum mtasts_mode { MTASTS_NONE, MTASTS_TESTING, MTASTS_ENFORCE };

/* RFC 8461 3.2: "maximum value of 31557600" (a year); larger values are capped. */
#define MTASTS_MAX_AGE_MAX 31557600UL
/* The id of the TXT record: 1 to 32 letters and digits. */
#define MTASTS_ID_MAX 32
/* mx patterns kept of one policy: more is a mistake or an attack. */
#define MTASTS_MX_MAX 64

struct mtasts_policy {
	enum mtasts_mode mode;
	unsigned long max_age;     /* seconds, capped at MTASTS_MAX_AGE_MAX */
	char **mx;                 /* lower case, no trailing dot; "*.example.org" allowed */
	size_t n_mx;
};

const char *mtasts_mode_name(enum mtasts_mode m);

/* The records of _mta-sts.DOMAIN. Returns 1 with the id of the one record that begins
 * with "v=STSv1" (id[MTASTS_ID_MAX + 1]); 0 when there is none, or several, or it is
 * invalid (*why says which): RFC 8461 3.1, "the recipient domain does not have an
 * available MTA-STS Policy". */
int mtasts_txt_select(char *const *txt, size_t n, char *id, const char **why);

/* The policy file (text, len octets; it need not be NUL-terminated). Returns 0 and
 * fills p (mtasts_policy_clear frees), or -1 with a static reason in *why. */
int mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *p,
			const char **why);
void mtasts_policy_clear(struct mtasts_policy *p);
/* A deep copy. */
void mtasts_policy_copy(struct mtasts_policy *dst, const struct mtasts_policy *src);

/* The HTTP answer: status 200 and a text/plain body (RFC 8461 3.2: "media type
 * text/plain"; parameters such as charset allowed). NULL when good, else why. */
const char *mtasts_http_check(int status, const char *content_type);

/* Does host (an MX host name, any case, a trailing dot allowed) match one of the
 * policy's patterns? RFC 8461 4.1: "*.example.com" matches "mx.example.com" but
 * neither "example.com" nor "a.mx.example.com". */
int mtasts_mx_match(const struct mtasts_policy *p, const char *host);

#endif
