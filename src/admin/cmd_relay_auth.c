/* cursus relay-auth add|del|list: the credentials cursus sends to a smart host, per
 * next hop and optionally per envelope sender. NEXTHOP is normalised to the name the
 * route gives it (route_nexthop(): "[host]:port" or "host:port", lower case, the
 * configuration's relay_port when no port is written), so what is stored here is what
 * the delivery looks up. The password comes from admin_password_read, never argv, and
 * is never printed. With --oauth the entry is an OAuth 2 credential
 * (docs/relay-oauth.md): its client secret and refresh token come from stdin or
 * prompts in the same way, never argv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "config/config.h"
#include "config/config_relay.h"
#include "store/username.h"
#include "util/xmalloc.h"

#define RELAY_AUTH_DEFAULT_PORT 25    /* relay_port's default */

/* NEXTHOP parsed as relay_host is (config_relay_nexthop: an IP address is literal
 * even without brackets), then named as route_nexthop() names the route the router
 * makes of it. NULL, after saying why, when it is not a next hop. */
static char *relay_auth_nexthop(const char *arg, unsigned default_port)
{
	struct nexthop_conf nh;
	const char *why = config_relay_nexthop(arg, &nh);
	char *out;

	if (why) {
		admin_error("\"%s\" is not a next hop: %s", arg, why);
		return NULL;
	}
	out = xasprintf("%s%s%s:%u", nh.literal ? "[" : "", nh.host, nh.literal ? "]" : "",
			nh.port ? nh.port : default_port);
	config_relay_nexthop_clear(&nh);
	return out;
}

/* The envelope sender an entry is for: local@domain, lower case. */
static char *relay_auth_sender(const char *arg)
{
	const char *at = strrchr(arg, '@');
	char *out;

	if (!at || at == arg || !at[1] || strlen(arg) > 320) {
		admin_error("\"%s\" is not a sender address (local@domain)", arg);
		return NULL;
	}
	out = xstrdup(arg);
	username_lower(out);
	return out;
}

static void relay_auth_print(void *arg, const char *nexthop, const char *sender, const char *user,
			     const char *oauth_mech)
{
	int *n = arg;
	printf("%s %s %s%s%s\n", nexthop, sender ? sender : "default", user,
	       oauth_mech ? " oauth " : "", oauth_mech ? oauth_mech : "");
	(*n)++;
}

/* What `relay-auth add --oauth URL ...` names on the command line; the secrets are
 * read apart. */
struct relay_auth_oauth_args {
	const char *url, *client_id, *scope, *mech, *grant;
};

/* The client secret (optional for a public client with a refresh token), then the
 * refresh token (refresh_token grant only): one line each on stdin, or prompts. */
static int relay_auth_add_oauth(struct userdb *db, const char *nexthop, const char *sender,
				const char *user, const struct relay_auth_oauth_args *a)
{
	struct userdb_relay_oauth o = {0};
	int refresh = strcmp(a->grant, "refresh_token") == 0, rc = -1;
	char *err = NULL;

	o.client_secret = admin_secret_read(refresh ? "Client secret (empty for none): "
						    : "Client secret: ", "client secret", refresh);
	if (!o.client_secret)
		return ADMIN_EXIT_FAIL;
	if (refresh && !(o.refresh_token = admin_secret_read("Refresh token: ", "refresh token", 0)))
		goto out;
	o.url = xstrdup(a->url);
	o.client_id = xstrdup(a->client_id);
	o.scope = a->scope ? xstrdup(a->scope) : NULL;
	o.mech = xstrdup(a->mech);
	o.grant = xstrdup(a->grant);
	if (!*o.client_secret) {
		free(o.client_secret);
		o.client_secret = NULL;
	}
	if ((rc = userdb_relay_oauth_set(db, nexthop, sender, user, &o, &err)) < 0) {
		admin_error("%s", err);
		free(err);
	} else {
		printf("relay credentials for %s (sender %s) set: user %s, OAuth %s, %s grant\n",
		       nexthop, sender ? sender : "default", user, a->mech, a->grant);
	}
out:
	userdb_relay_oauth_clear(&o);
	return rc < 0 ? ADMIN_EXIT_FAIL : ADMIN_EXIT_OK;
}

static int relay_auth_add(struct userdb *db, const char *nexthop, const char *sender,
			  const char *user)
{
	char *password, *err = NULL;
	int rc;

	if (!(password = admin_password_read(1)))
		return ADMIN_EXIT_FAIL;
	rc = userdb_relay_auth_set(db, nexthop, sender, user, password, &err);
	xfree_secret(password, strlen(password));
	if (rc < 0) {
		admin_error("%s", err);
		free(err);
		return ADMIN_EXIT_FAIL;
	}
	printf("relay credentials for %s (sender %s) set: user %s\n", nexthop,
	       sender ? sender : "default", user);
	return ADMIN_EXIT_OK;
}

static int relay_auth_del(struct userdb *db, const char *nexthop, const char *sender)
{
	char *err = NULL;
	int rc = userdb_relay_auth_del(db, nexthop, sender, &err);

	if (rc < 0) {
		admin_error("%s", err);
		free(err);
		return ADMIN_EXIT_FAIL;
	}
	if (rc == 0) {
		admin_error("no relay credentials for %s (sender %s)", nexthop,
			    sender ? sender : "default");
		return ADMIN_EXIT_FAIL;
	}
	printf("relay credentials for %s (sender %s) deleted\n", nexthop,
	       sender ? sender : "default");
	return ADMIN_EXIT_OK;
}

static int relay_auth_list(struct userdb *db)
{
	char *err = NULL;
	int n = 0;

	if (userdb_relay_auth_list(db, relay_auth_print, &n, &err) < 0) {
		admin_error("%s", err);
		free(err);
		return ADMIN_EXIT_FAIL;
	}
	if (n == 0)
		fprintf(stderr, "cursus: no relay credentials\n");
	return ADMIN_EXIT_OK;
}

int cmd_relay_auth(const char *config_path, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "", *sender_arg = NULL;
	struct relay_auth_oauth_args oa = { .mech = "XOAUTH2", .grant = "refresh_token" };
	int oauth_opts = 0;
	char *nexthop = NULL, *sender = NULL;
	struct config *cfg;
	struct userdb *db;
	unsigned port;
	int ret, nargs;

	/* --sender ADDRESS may come anywhere after the subcommand. */
	char *args[4];
	nargs = 0;
	for (int i = 2; i < argc; i++) {
		const char **opt = strcmp(argv[i], "--oauth") == 0 ? &oa.url
			: strcmp(argv[i], "--client-id") == 0 ? &oa.client_id
			: strcmp(argv[i], "--scope") == 0 ? &oa.scope
			: strcmp(argv[i], "--mechanism") == 0 ? &oa.mech
			: strcmp(argv[i], "--grant") == 0 ? &oa.grant : NULL;
		if (strcmp(argv[i], "--sender") == 0 && i + 1 < argc && !sender_arg)
			sender_arg = argv[++i];
		else if (opt && i + 1 < argc) {
			*opt = argv[++i];
			oauth_opts++;
		} else if (argv[i][0] == '-' && argv[i][1])
			return admin_usage_error();
		else if (nargs < 4)
			args[nargs++] = argv[i];
		else
			return admin_usage_error();
	}
	if (!((strcmp(sub, "add") == 0 && nargs == 2) || (strcmp(sub, "del") == 0 && nargs == 1) ||
	      (strcmp(sub, "list") == 0 && nargs == 0 && !sender_arg)))
		return admin_usage_error();
	/* The OAuth options belong to add, and need the endpoint and the client. */
	if (oauth_opts && (strcmp(sub, "add") != 0 || !oa.url || !oa.client_id))
		return admin_usage_error();
	if (oauth_opts && strcmp(oa.mech, "XOAUTH2") != 0 && strcmp(oa.mech, "OAUTHBEARER") != 0) {
		admin_error("--mechanism must be XOAUTH2 or OAUTHBEARER");
		return ADMIN_EXIT_USAGE;
	}
	if (oauth_opts && strcmp(oa.grant, "refresh_token") != 0 &&
	    strcmp(oa.grant, "client_credentials") != 0) {
		admin_error("--grant must be refresh_token or client_credentials");
		return ADMIN_EXIT_USAGE;
	}
	if (!(cfg = config_load(config_path, stderr)))
		return ADMIN_EXIT_FAIL;
	port = cfg->relay_port ? cfg->relay_port : RELAY_AUTH_DEFAULT_PORT;
	config_free(&cfg);
	if (nargs > 0 && !(nexthop = relay_auth_nexthop(args[0], port)))
		return ADMIN_EXIT_USAGE;
	if (sender_arg && !(sender = relay_auth_sender(sender_arg))) {
		free(nexthop);
		return ADMIN_EXIT_USAGE;
	}
	if (!(db = admin_userdb_open(config_path))) {
		ret = ADMIN_EXIT_FAIL;
	} else {
		if (strcmp(sub, "add") == 0 && oauth_opts)
			ret = relay_auth_add_oauth(db, nexthop, sender, args[1], &oa);
		else if (strcmp(sub, "add") == 0)
			ret = relay_auth_add(db, nexthop, sender, args[1]);
		else if (strcmp(sub, "del") == 0)
			ret = relay_auth_del(db, nexthop, sender);
		else
			ret = relay_auth_list(db);
		userdb_close(&db);
	}
	free(nexthop);
	free(sender);
	return ret;
}
