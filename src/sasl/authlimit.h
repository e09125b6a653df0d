/* authlimit: brute-force accounting for SMTP AUTH. Failures are counted per client
 * address (IPv6 per /64) and per account in a sliding window. Successes are never
 * counted. Memory is bounded: the least recently used entries are dropped first.
 * Thread-safe (the session asks on the loop, the SASL precheck on a worker). */
#ifndef CURSUS_AUTHLIMIT_H
#define CURSUS_AUTHLIMIT_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

struct authlimit_conf {
	unsigned addr_budget;     /* failures per address in the window: 10 */
	unsigned account_budget;  /* failures per account from all addresses: 30 */
	unsigned window;          /* seconds: 900 */
	unsigned cooldown;        /* seconds a spent budget keeps refusing: 900 */
	unsigned delay_after;     /* failures from an address before replies slow: 3 */
	unsigned delay_base_ms;   /* first delay: 500, doubling */
	unsigned delay_max_ms;    /* cap: 8000 */
	size_t max_entries;       /* per table: 65536 */
};

struct authlimit;

struct authlimit *authlimit_create(const struct authlimit_conf *conf);
void authlimit_destroy(struct authlimit **al);
/* New budgets (a reload). When they differ, the failures counted so far are
 * forgotten, as at a restart. Returns whether they differed. */
int authlimit_configure(struct authlimit *al, const struct authlimit_conf *conf);

/* Seconds the address must still wait (its budget is spent), or 0. */
unsigned authlimit_addr_blocked(struct authlimit *al, const struct sockaddr *addr, time_t now);
/* Seconds the account is refused from this address, or 0. The account budget only
 * applies to addresses that have failures of their own, so an attack from many
 * addresses never locks the owner out of a clean one. */
unsigned authlimit_account_blocked(struct authlimit *al, const char *account,
				   const struct sockaddr *addr, time_t now);
/* Records a failed attempt (account may be NULL when none was claimed). Returns the
 * delay in milliseconds to wait before replying. */
unsigned authlimit_failure(struct authlimit *al, const struct sockaddr *addr, const char *account,
			   time_t now);

#endif
