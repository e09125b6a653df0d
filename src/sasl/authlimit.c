/* authlimit: brute-force accounting for SMTP AUTH.
 *
 * Two tables, one for client addresses and one for accounts, each bounded to
 * max_entries. An entry keeps the times of its last failures in a small ring, so a
 * count "within the window" is exact: a failure stops counting exactly `window`
 * seconds after it happened. When the count reaches the budget, the entry is refused
 * for `cooldown` seconds from that failure. Addresses are keyed on IPv4 bytes or on
 * the IPv6 /64 prefix (one subscriber usually holds a whole /64); an IPv4-mapped IPv6
 * address is its IPv4 address. Accounts are keyed lower-cased (ASCII).
 *
 * The tables are keyed by attacker-chosen input, so the hash is SipHash-2-4 with a
 * random key: an attacker cannot aim many names at one chain. When a table is full
 * the least recently used entry is dropped; entries with nothing left to remember are
 * dropped as soon as a lookup meets them. A budget of 0 disables that limit.
 *
 * Time is passed in by the caller and never read here, so the behaviour is
 * deterministic under test. One mutex guards everything; every operation is
 * O(ring size) plus a hash lookup.
 */
#include "sasl/authlimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/ascii.h"
#include "util/addrcount.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* A ring larger than this would cost too much memory per entry (max_entries of
 * them); budgets above it are clamped, which only makes the limit stricter. */
#define AUTHLIMIT_RING_MAX 1024
/* Longest account name used as a key: local-part (64) + "@" + domain (255). Longer
 * names share the counter of their prefix, which can only count more, never less. */
#define AUTHLIMIT_ACCOUNT_MAX 320
/* Chains stay short up to this many buckets; more would only waste memory. */
#define AUTHLIMIT_BUCKETS_MAX ((size_t)1 << 20)

struct authlimit_entry {
	struct authlimit_entry *hnext;         /* hash chain */
	struct authlimit_entry *newer, *older; /* LRU list */
	uint64_t hash;
	time_t block_until;                    /* refused while now < block_until */
	unsigned head, used;                   /* ring: index of the oldest, how many */
	size_t keylen;
	time_t ring[];                         /* then keylen key bytes */
};

struct authlimit_table {
	const char *name;
	struct authlimit_entry **buckets;
	size_t mask;
	struct authlimit_entry *newest, *oldest;
	size_t count, max;
	unsigned cap;      /* ring size of every entry */
	unsigned budget;   /* failures in the window that spend it; 0: never */
	bool warned_full;
};

struct authlimit {
	pthread_mutex_t mu;
	struct authlimit_conf conf;
	uint64_t k0, k1;   /* SipHash key */
	struct authlimit_table addrs, accounts;
};

/* ---- SipHash-2-4 (Aumasson, Bernstein) ---- */

#define AUTHLIMIT_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void authlimit_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = AUTHLIMIT_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = AUTHLIMIT_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = AUTHLIMIT_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = AUTHLIMIT_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = AUTHLIMIT_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = AUTHLIMIT_ROTL(v[2], 32);
}

static uint64_t authlimit_siphash(uint64_t k0, uint64_t k1, const unsigned char *p, size_t len)
{
	uint64_t v[4] = {
		k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
		k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL,
	};
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, end = len - len % 8;

	for (i = 0; i < end; i += 8) {
		m = 0;
		for (int j = 7; j >= 0; j--)
			m = (m << 8) | p[i + (size_t)j];
		v[3] ^= m;
		authlimit_sipround(v);
		authlimit_sipround(v);
		v[0] ^= m;
	}
	for (size_t j = 0; j < len % 8; j++)
		b |= (uint64_t)p[end + j] << (8 * j);
	v[3] ^= b;
	authlimit_sipround(v);
	authlimit_sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		authlimit_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- one bounded table ---- */

static unsigned char *authlimit_entry_key(const struct authlimit_table *t,
					  struct authlimit_entry *e)
{
	return (unsigned char *)(e->ring + t->cap);
}

static void authlimit_table_init(struct authlimit_table *t, const char *name, size_t max,
				 unsigned budget, unsigned min_ring)
{
	size_t nb = 16;

	memset(t, 0, sizeof(*t));
	t->name = name;
	t->max = max ? max : 1;
	if (budget > AUTHLIMIT_RING_MAX) {
		log_warnx("authlimit: %s budget %u clamped to %u", name, budget,
			  AUTHLIMIT_RING_MAX);
		budget = AUTHLIMIT_RING_MAX;
	}
	t->budget = budget;
	t->cap = budget > min_ring ? budget : min_ring;
	if (t->cap == 0)
		t->cap = 1;
	while (nb < t->max && nb < AUTHLIMIT_BUCKETS_MAX)
		nb <<= 1;
	t->buckets = xcalloc(nb, sizeof(*t->buckets));
	t->mask = nb - 1;
}

static void authlimit_table_free(struct authlimit_table *t)
{
	struct authlimit_entry *e = t->newest, *next;

	for (; e; e = next) {
		next = e->older;
		free(e);
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

static void authlimit_lru_unlink(struct authlimit_table *t, struct authlimit_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void authlimit_lru_push(struct authlimit_table *t, struct authlimit_entry *e)
{
	e->newer = NULL;
	e->older = t->newest;
	if (t->newest)
		t->newest->newer = e;
	else
		t->oldest = e;
	t->newest = e;
}

static void authlimit_table_remove(struct authlimit_table *t, struct authlimit_entry *e)
{
	struct authlimit_entry **pp = &t->buckets[e->hash & t->mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	authlimit_lru_unlink(t, e);
	t->count--;
	free(e);
}

static struct authlimit_entry *authlimit_table_find(struct authlimit_table *t, uint64_t hash,
						    const unsigned char *key, size_t keylen)
{
	struct authlimit_entry *e;

	for (e = t->buckets[hash & t->mask]; e; e = e->hnext)
		if (e->hash == hash && e->keylen == keylen &&
		    memcmp(authlimit_entry_key(t, e), key, keylen) == 0)
			return e;
	return NULL;
}

static struct authlimit_entry *authlimit_table_insert(struct authlimit_table *t, uint64_t hash,
						      const unsigned char *key, size_t keylen)
{
	struct authlimit_entry *e;

	if (t->count >= t->max) {
		/* Dropping the least recently used entry forgets the client that has been
		 * quiet the longest; an attacker can still spread over more addresses than
		 * we remember, which is the price of bounded memory, so say it once. */
		if (!t->warned_full) {
			log_warnx("authlimit: %s table full (%zu entries), forgetting the least "
				  "recently used", t->name, t->max);
			t->warned_full = true;
		}
		authlimit_table_remove(t, t->oldest);
	}
	e = xcalloc(1, sizeof(*e) + (size_t)t->cap * sizeof(time_t) + keylen);
	e->hash = hash;
	e->keylen = keylen;
	memcpy(authlimit_entry_key(t, e), key, keylen);
	e->hnext = t->buckets[hash & t->mask];
	t->buckets[hash & t->mask] = e;
	authlimit_lru_push(t, e);
	t->count++;
	return e;
}

static void authlimit_touch(struct authlimit_table *t, struct authlimit_entry *e)
{
	if (t->newest != e) {
		authlimit_lru_unlink(t, e);
		authlimit_lru_push(t, e);
	}
}

/* Failures of e that happened less than `window` seconds before now. */
static unsigned authlimit_ring_count(const struct authlimit_table *t,
				     const struct authlimit_entry *e, unsigned window, time_t now)
{
	unsigned n = 0;

	for (unsigned i = 0; i < e->used; i++) {
		time_t ts = e->ring[(e->head + i) % t->cap];
		if ((long long)now - (long long)ts < (long long)window)
			n++;
	}
	return n;
}

static void authlimit_ring_push(const struct authlimit_table *t, struct authlimit_entry *e,
				time_t now)
{
	if (e->used < t->cap) {
		e->ring[(e->head + e->used) % t->cap] = now;
		e->used++;
	} else {
		/* the oldest failure is overwritten: with the ring as large as the
		 * budget, a full ring of recent failures has already spent it */
		e->ring[e->head] = now;
		e->head = (e->head + 1) % t->cap;
	}
}

/* Finds the entry for key; one that neither counts failures nor refuses any more is
 * dropped on the spot, so idle clients free their memory without a sweep. */
static struct authlimit_entry *authlimit_lookup(struct authlimit *al, struct authlimit_table *t,
						const unsigned char *key, size_t keylen,
						time_t now)
{
	uint64_t hash = authlimit_siphash(al->k0, al->k1, key, keylen);
	struct authlimit_entry *e = authlimit_table_find(t, hash, key, keylen);

	if (!e)
		return NULL;
	if (e->block_until <= now && authlimit_ring_count(t, e, al->conf.window, now) == 0) {
		authlimit_table_remove(t, e);
		return NULL;
	}
	authlimit_touch(t, e);
	return e;
}

static struct authlimit_entry *authlimit_lookup_add(struct authlimit *al,
						    struct authlimit_table *t,
						    const unsigned char *key, size_t keylen)
{
	uint64_t hash = authlimit_siphash(al->k0, al->k1, key, keylen);
	struct authlimit_entry *e = authlimit_table_find(t, hash, key, keylen);

	if (e)
		authlimit_touch(t, e);
	else
		e = authlimit_table_insert(t, hash, key, keylen);
	return e;
}

/* Records one failure; returns how many failures now count in the window. */
static unsigned authlimit_record(struct authlimit *al, struct authlimit_table *t,
				 struct authlimit_entry *e, time_t now)
{
	unsigned n;

	authlimit_ring_push(t, e, now);
	n = authlimit_ring_count(t, e, al->conf.window, now);
	if (t->budget && n >= t->budget) {
		/* the cooldown runs from the failure that spent the budget */
		time_t until = now + (time_t)al->conf.cooldown;
		if (until > e->block_until)
			e->block_until = until;
	}
	return n;
}

static unsigned authlimit_remaining(const struct authlimit_entry *e, time_t now)
{
	if (!e || e->block_until <= now)
		return 0;
	return (unsigned)(e->block_until - now);
}

/* ---- keys ---- */

#define AUTHLIMIT_ADDRKEY_MAX ADDR_CLIENT_KEY_MAX

/* IPv4 addresses, IPv6 /64 prefixes (addrcount_client_key). Anything else (a local
 * socket, no address) shares one key, so local attempts are still counted. */
static size_t authlimit_addr_key(const struct sockaddr *sa, unsigned char key[AUTHLIMIT_ADDRKEY_MAX])
{
	return addrcount_client_key(sa, 64, key);
}

static size_t authlimit_account_key(const char *account, unsigned char key[AUTHLIMIT_ACCOUNT_MAX])
{
	size_t n;

	/* ASCII only: the locale must not change which counter a name hits */
	for (n = 0; n < AUTHLIMIT_ACCOUNT_MAX && account[n]; n++)
		key[n] = (unsigned char)ascii_lower(account[n]);
	return n;
}

/* ---- the API ---- */

/* Steps of doubling from delay_base_ms until delay_max_ms is reached. */
static unsigned authlimit_delay_steps(const struct authlimit_conf *c)
{
	unsigned long long d = c->delay_base_ms;
	unsigned s = 0;

	while (d && d < c->delay_max_ms && s < 32) {
		d *= 2;
		s++;
	}
	return s;
}

static void authlimit_tables_init(struct authlimit *al)
{
	const struct authlimit_conf *conf = &al->conf;
	/* An address's ring must also hold enough failures to walk the delay up to
	 * its cap, even if the budget is smaller or disabled. */
	unsigned delay_ring = conf->delay_after + 1 + authlimit_delay_steps(conf);
	if (delay_ring > AUTHLIMIT_RING_MAX)
		delay_ring = AUTHLIMIT_RING_MAX;
	authlimit_table_init(&al->addrs, "address", conf->max_entries, conf->addr_budget,
			     delay_ring);
	authlimit_table_init(&al->accounts, "account", conf->max_entries,
			     conf->account_budget, 1);
}

struct authlimit *authlimit_create(const struct authlimit_conf *conf)
{
	struct authlimit *al = xcalloc(1, sizeof(*al));
	unsigned char seed[16];

	al->conf = *conf;
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		/* still correct, only less resistant to chosen collisions */
		log_warn("authlimit: getrandom");
		uint64_t fallback = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
				    (uint64_t)(uintptr_t)al;
		memcpy(seed, &fallback, 8);
		fallback = ~fallback * 0x9e3779b97f4a7c15ULL;
		memcpy(seed + 8, &fallback, 8);
	}
	memcpy(&al->k0, seed, 8);
	memcpy(&al->k1, seed + 8, 8);
	explicit_bzero(seed, sizeof(seed));

	authlimit_tables_init(al);
	if (pthread_mutex_init(&al->mu, NULL) != 0)
		fatalx("authlimit: pthread_mutex_init failed");
	return al;
}

int authlimit_configure(struct authlimit *al, const struct authlimit_conf *conf)
{
	int changed;
	pthread_mutex_lock(&al->mu);
	const struct authlimit_conf *o = &al->conf;
	changed = o->addr_budget != conf->addr_budget || o->account_budget != conf->account_budget ||
		  o->window != conf->window || o->cooldown != conf->cooldown ||
		  o->delay_after != conf->delay_after || o->delay_base_ms != conf->delay_base_ms ||
		  o->delay_max_ms != conf->delay_max_ms || o->max_entries != conf->max_entries;
	if (changed) {
		/* Ring sizes follow the budgets: the tables are made anew. */
		authlimit_table_free(&al->addrs);
		authlimit_table_free(&al->accounts);
		al->conf = *conf;
		authlimit_tables_init(al);
	}
	pthread_mutex_unlock(&al->mu);
	return changed;
}

void authlimit_destroy(struct authlimit **alp)
{
	struct authlimit *al = *alp;

	if (!al)
		return;
	authlimit_table_free(&al->addrs);
	authlimit_table_free(&al->accounts);
	pthread_mutex_destroy(&al->mu);
	free(al);
	*alp = NULL;
}

unsigned authlimit_addr_blocked(struct authlimit *al, const struct sockaddr *addr, time_t now)
{
	unsigned char key[AUTHLIMIT_ADDRKEY_MAX];
	size_t klen = authlimit_addr_key(addr, key);
	unsigned left;

	pthread_mutex_lock(&al->mu);
	left = authlimit_remaining(authlimit_lookup(al, &al->addrs, key, klen, now), now);
	pthread_mutex_unlock(&al->mu);
	return left;
}

unsigned authlimit_account_blocked(struct authlimit *al, const char *account,
				   const struct sockaddr *addr, time_t now)
{
	unsigned char akey[AUTHLIMIT_ACCOUNT_MAX], ckey[AUTHLIMIT_ADDRKEY_MAX];
	size_t alen, clen;
	struct authlimit_entry *acct, *client;
	unsigned left = 0;

	if (!account)
		return 0;
	alen = authlimit_account_key(account, akey);
	clen = authlimit_addr_key(addr, ckey);
	pthread_mutex_lock(&al->mu);
	acct = authlimit_lookup(al, &al->accounts, akey, alen, now);
	if (authlimit_remaining(acct, now)) {
		/* A spent account budget refuses only clients that have failed
		 * themselves: the owner on a clean address still gets in. */
		client = authlimit_lookup(al, &al->addrs, ckey, clen, now);
		if (client && authlimit_ring_count(&al->addrs, client, al->conf.window, now) > 0)
			left = authlimit_remaining(acct, now);
	}
	pthread_mutex_unlock(&al->mu);
	return left;
}

unsigned authlimit_failure(struct authlimit *al, const struct sockaddr *addr, const char *account,
			   time_t now)
{
	unsigned char ckey[AUTHLIMIT_ADDRKEY_MAX], akey[AUTHLIMIT_ACCOUNT_MAX];
	size_t clen = authlimit_addr_key(addr, ckey), alen = 0;
	unsigned long long delay = 0;
	unsigned n;

	if (account)
		alen = authlimit_account_key(account, akey);
	pthread_mutex_lock(&al->mu);
	n = authlimit_record(al, &al->addrs, authlimit_lookup_add(al, &al->addrs, ckey, clen), now);
	if (account)
		authlimit_record(al, &al->accounts,
				 authlimit_lookup_add(al, &al->accounts, akey, alen), now);
	pthread_mutex_unlock(&al->mu);

	if (n > al->conf.delay_after) {
		unsigned steps = n - al->conf.delay_after - 1;
		delay = al->conf.delay_base_ms;
		while (steps-- && delay && delay < al->conf.delay_max_ms)
			delay *= 2;
		if (delay > al->conf.delay_max_ms)
			delay = al->conf.delay_max_ms;
	}
	return (unsigned)delay;
}

/* For the unit test only (no prototype in the header): entries held per table. */
void authlimit_size(struct authlimit *al, size_t *addrs_r, size_t *accounts_r)
{
	pthread_mutex_lock(&al->mu);
	*addrs_r = al->addrs.count;
	*accounts_r = al->accounts.count;
	pthread_mutex_unlock(&al->mu);
}
