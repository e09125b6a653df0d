/* cursus check: loads the configuration the way the daemon does; config_load
 * prints each error as "file:line: message". Exit 0 and "configuration OK" only
 * when there is none. */
#include <stdio.h>

#include "admin/admin.h"
#include "config/config.h"

int cmd_check(const char *config_path, int argc, char **argv)
{
	struct config *cfg;

	(void)argv;
	if (argc != 1)
		return admin_usage_error();
	if (!(cfg = config_load(config_path, stderr)))
		return ADMIN_EXIT_FAIL;
	config_free(&cfg);
	printf("configuration OK\n");
	return ADMIN_EXIT_OK;
}
