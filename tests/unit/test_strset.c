/* Tests of strset: membership, duplicates, growth past many resizes, reuse. */
#include "unit.h"
#include "util/strset.h"

#include <stdio.h>

void unit_main(void)
{
	struct strset set = {0};
	char buf[32];
	int all_new = 1, all_dup = 1, all_in = 1;

	CHECK(!strset_has(&set, "a"));
	CHECK(strset_add(&set, "a") == 1);
	CHECK(strset_add(&set, "a") == 0);
	CHECK(strset_has(&set, "a") && !strset_has(&set, "b"));
	CHECK(strset_add(&set, "") == 1 && strset_has(&set, ""));
	for (int i = 0; i < 20000; i++) {
		snprintf(buf, sizeof(buf), "example.test/u%d", i);
		all_new &= strset_add(&set, buf) == 1;
	}
	for (int i = 0; i < 20000; i++) {
		snprintf(buf, sizeof(buf), "example.test/u%d", i);
		all_dup &= strset_add(&set, buf) == 0;
		all_in &= strset_has(&set, buf);
	}
	CHECK(all_new && all_dup && all_in);
	CHECK(set.n == 20002 && set.cap >= 2 * set.n);
	CHECK(!strset_has(&set, "example.test/u20000"));
	strset_clear(&set);
	CHECK(set.n == 0 && !strset_has(&set, "a"));
	CHECK(strset_add(&set, "a") == 1);
	strset_clear(&set);
}
