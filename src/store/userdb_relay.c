/* Placeholder until the relay credential store lands: no credentials. */
#include "store/userdb.h"

int userdb_relay_auth_find(struct userdb *db, const char *nexthop, const char *sender,
			   char **user_r, char **password_r)
{
	*user_r = *password_r = NULL;
	return 0;
}
