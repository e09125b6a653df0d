/* unit: a minimal test harness. Each test binary ends with "N passed, N failed" and
 * exits non-zero on any failure; tests/test_unit.py runs them under pytest. */
#ifndef CURSUS_UNIT_H
#define CURSUS_UNIT_H

#include <stdio.h>
#include <string.h>

extern int unit_passed, unit_failed;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (cond) {                                                      \
			unit_passed++;                                           \
		} else {                                                         \
			unit_failed++;                                           \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                \
		}                                                                \
	} while (0)

#define CHECK_STR(a, b)                                                          \
	do {                                                                     \
		const char *a_ = (a), *b_ = (b);                                 \
		if (a_ && b_ && strcmp(a_, b_) == 0) {                           \
			unit_passed++;                                           \
		} else {                                                         \
			unit_failed++;                                           \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__,   \
				__LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
		}                                                                \
	} while (0)

/* Each test file defines unit_main(); unit.c's main() runs it and prints the tally. */
void unit_main(void);

#endif
