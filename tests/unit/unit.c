/* unit: main() for every unit test binary. */
#include "unit.h"

int unit_passed, unit_failed;

int main(void)
{
	unit_main();
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}
