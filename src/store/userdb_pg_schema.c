/* userdb_pg_schema: the PostgreSQL store's schema, its per-database secret and the
 * shared brute-force budgets.
 * Promises: the schema is versioned like the SQLite one: upg_migrations[v] takes a
 * database from cursus_schema.version v to v + 1, all steps in one transaction under
 * an advisory lock, so two nodes migrating at once serialise and a failure leaves the
 * old version whole; a database newer than this program is refused. The credential
 * generation comes from one sequence, bumped by triggers on every write that
 * withdraws a credential, whichever node or tool writes: it never repeats, so a user
 * deleted and added again never matches an old session. auth_failures is UNLOGGED (a
 * crash may forget failures, never accounts) and its rows expire. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/userdb_pg_impl.h"
#include "store/userdb_relay.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* Any constant: the key of the advisory lock migrations take. */
#define UPG_MIGRATE_LOCK 7201046215L

static const char upg_schema_v1_sql[] =
	"CREATE TABLE cursus_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);"
	"CREATE SEQUENCE cursus_cred_gen;"
	"CREATE TABLE users ("
	" name TEXT PRIMARY KEY,"
	" hash TEXT NOT NULL,"
	" scram1_salt TEXT, scram1_iter BIGINT, scram1_stored TEXT, scram1_server TEXT,"
	" scram256_salt TEXT, scram256_iter BIGINT, scram256_stored TEXT, scram256_server TEXT,"
	" created BIGINT NOT NULL,"
	" legacy_secret TEXT,"
	" cred_gen BIGINT NOT NULL DEFAULT 0);"
	"CREATE TABLE aliases ("
	" address TEXT NOT NULL, target TEXT NOT NULL, PRIMARY KEY (address, target));"
	"CREATE TABLE grants ("
	" \"user\" TEXT NOT NULL,"
	" kind TEXT NOT NULL CHECK (kind IN ('act-as', 'send-as')),"
	" value TEXT NOT NULL,"
	" PRIMARY KEY (\"user\", kind, value));"
	"CREATE INDEX grants_value ON grants (kind, value);"
	"CREATE TABLE app_passwords ("
	" \"user\" TEXT NOT NULL, label TEXT NOT NULL, hash TEXT NOT NULL,"
	" created BIGINT NOT NULL, last_used BIGINT, PRIMARY KEY (\"user\", label));"
	"CREATE TABLE certs (\"user\" TEXT NOT NULL, \"match\" TEXT PRIMARY KEY);"
	"CREATE INDEX certs_user ON certs (\"user\");"
	/* The credential generation (SQLite's version 4, with a sequence for random()). */
	"CREATE FUNCTION cursus_cred_new() RETURNS trigger LANGUAGE plpgsql AS $$"
	" BEGIN NEW.cred_gen := nextval('cursus_cred_gen'); RETURN NEW; END $$;"
	"CREATE TRIGGER users_cred_new BEFORE INSERT ON users"
	" FOR EACH ROW EXECUTE FUNCTION cursus_cred_new();"
	"CREATE TRIGGER users_cred_changed BEFORE UPDATE OF hash, legacy_secret ON users"
	" FOR EACH ROW EXECUTE FUNCTION cursus_cred_new();"
	"CREATE FUNCTION cursus_cred_gone() RETURNS trigger LANGUAGE plpgsql AS $$"
	" BEGIN UPDATE users SET cred_gen = nextval('cursus_cred_gen')"
	" WHERE name = OLD.\"user\"; RETURN NULL; END $$;"
	"CREATE TRIGGER app_password_gone AFTER DELETE ON app_passwords"
	" FOR EACH ROW EXECUTE FUNCTION cursus_cred_gone();"
	"CREATE TRIGGER cert_gone AFTER DELETE ON certs"
	" FOR EACH ROW EXECUTE FUNCTION cursus_cred_gone();"
	/* Shared brute-force budgets: one row per failure, scope 'addr' or 'account';
	 * blocked_until set on the failure that spent the budget. */
	"CREATE UNLOGGED TABLE auth_failures ("
	" scope TEXT NOT NULL, key TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,"
	" blocked_until TIMESTAMPTZ, expires TIMESTAMPTZ NOT NULL);"
	"CREATE INDEX auth_failures_key ON auth_failures (scope, key, at);"
	"CREATE INDEX auth_failures_expires ON auth_failures (expires);"
	"CREATE FUNCTION cursus_auth_fail1(p_scope TEXT, p_key TEXT, p_window FLOAT8,"
	" p_cooldown FLOAT8, p_budget INTEGER) RETURNS void LANGUAGE plpgsql AS $$"
	" DECLARE t TIMESTAMPTZ := clock_timestamp(); n BIGINT; BEGIN"
	" SELECT count(*) INTO n FROM auth_failures WHERE scope = p_scope AND key = p_key"
	"  AND at > t - make_interval(secs => p_window);"
	" INSERT INTO auth_failures VALUES (p_scope, p_key, t,"
	"  CASE WHEN n + 1 >= p_budget THEN t + make_interval(secs => p_cooldown) END,"
	"  t + make_interval(secs => greatest(p_window, p_cooldown)));"
	" END $$;"
	"CREATE FUNCTION cursus_auth_failure(p_addr TEXT, p_account TEXT, p_window FLOAT8,"
	" p_cooldown FLOAT8, p_addr_budget INTEGER, p_account_budget INTEGER)"
	" RETURNS void LANGUAGE plpgsql AS $$ BEGIN"
	" IF random() < 0.02 THEN DELETE FROM auth_failures WHERE expires < clock_timestamp();"
	" END IF;"
	" PERFORM cursus_auth_fail1('addr', p_addr, p_window, p_cooldown, p_addr_budget);"
	" IF p_account IS NOT NULL THEN"
	"  PERFORM cursus_auth_fail1('account', p_account, p_window, p_cooldown,"
	"   p_account_budget);"
	" END IF; END $$;";

static const char *const upg_migrations[UPG_SCHEMA_VERSION] = {
	upg_schema_v1_sql,
};

struct upg_int {
	long long v;
	int found;
};

static int upg_int_row(void *arg, const char *const *cols, size_t n)
{
	struct upg_int *r = arg;
	r->found = 1;
	r->v = n > 0 && cols[0] ? strtoll(cols[0], NULL, 10) : 0;
	return 1;
}

/* A one-integer query on c (inside a transaction handle). -1 failure. */
static int upg_int_query(struct upg *g, struct upg_conn *c, const char *sql, struct upg_int *r,
			 char **err)
{
	memset(r, 0, sizeof(*r));
	return upg_query(g, c, sql, NULL, 0, upg_int_row, r, NULL, err) < 0 ? -1 : 0;
}

int upg_schema_have(struct upg *g, struct upg_conn *c, char **err)
{
	struct upg_int r;
	/* Two statements: the second would not even parse without the table. */
	if (upg_int_query(g, c, "SELECT (to_regclass('cursus_schema') IS NOT NULL)::int", &r,
			  err) < 0)
		return -1;
	if (r.v == 0)
		return 0;
	if (upg_int_query(g, c, "SELECT max(version) FROM cursus_schema", &r, err) < 0)
		return -1;
	return (int)r.v;
}

int upg_migrate(struct upg *g, struct upg_conn *c, char **err)
{
	char sql[128];
	int have;

	if (upg_simple(g, c, "BEGIN", err) < 0)
		return -1;
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%ld)", UPG_MIGRATE_LOCK);
	if (upg_simple(g, c, sql, err) < 0 || (have = upg_schema_have(g, c, err)) < 0)
		goto fail;
	if (have > UPG_SCHEMA_VERSION) {
		*err = xasprintf("the database has schema version %d; this program knows up to %d",
				 have, UPG_SCHEMA_VERSION);
		goto fail;
	}
	if (have == 0 && (upg_simple(g, c, "CREATE TABLE cursus_schema (version INTEGER NOT NULL);"
				     "INSERT INTO cursus_schema VALUES (0)", err) < 0 ||
			  upg_simple(g, c, userdb_relay_pg_schema, err) < 0))
		goto fail;
	for (int v = have; v < UPG_SCHEMA_VERSION; v++) {
		if (upg_simple(g, c, upg_migrations[v], err) < 0)
			goto fail;
	}
	snprintf(sql, sizeof(sql), "UPDATE cursus_schema SET version = %d", UPG_SCHEMA_VERSION);
	if (upg_simple(g, c, sql, err) < 0 || upg_simple(g, c, "COMMIT", err) < 0)
		goto fail;
	if (have > 0 && have < UPG_SCHEMA_VERSION)
		log_info("userdb postgresql migrated from=%d to=%d", have, UPG_SCHEMA_VERSION);
	return 0;
fail:
	if (c->pg)
		upg_simple(g, c, "ROLLBACK", NULL);
	return -1;
}

int upg_version(void *impl, int *have_r, int *want_r, char **err)
{
	struct upg *g = impl;
	struct upg_conn *c = upg_acquire(g, err);

	*want_r = UPG_SCHEMA_VERSION;
	if (!c)
		return -1;
	*have_r = upg_schema_have(g, c, err);
	upg_release(g, c);
	return *have_r < 0 ? -1 : 0;
}

static int upg_hex_row(void *arg, const char *const *cols, size_t n)
{
	unsigned char *secret = arg;
	const char *h = n > 0 ? cols[0] : NULL;
	if (!h || strlen(h) != 2 * USERDB_SECRET_LEN)
		return 1;
	for (size_t i = 0; i < USERDB_SECRET_LEN; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return 1;
		secret[USERDB_SECRET_LEN + i] = (unsigned char)v;
	}
	secret[2 * USERDB_SECRET_LEN] = 1;
	return 1;
}

/* 1 read, 0 none, -1 failure. */
static int upg_secret_read(struct upg *g, void *tx, unsigned char secret[USERDB_SECRET_LEN])
{
	/* Decoded into the second half of buf, the last byte saying it was found. */
	unsigned char buf[2 * USERDB_SECRET_LEN + 1] = { 0 };
	int rc = upg_query(g, tx, "SELECT encode(value, 'hex') FROM cursus_meta "
				  "WHERE key = 'scram_fake_secret'", NULL, 0, upg_hex_row, buf, NULL,
			   NULL);
	if (rc < 0)
		return -1;
	if (!buf[2 * USERDB_SECRET_LEN])
		return 0;
	memcpy(secret, buf + USERDB_SECRET_LEN, USERDB_SECRET_LEN);
	explicit_bzero(buf, sizeof(buf));
	return 1;
}

static int upg_secret_write(struct upg *g, void *tx, const unsigned char secret[USERDB_SECRET_LEN],
			    int replace, char **err)
{
	char hex[2 * USERDB_SECRET_LEN + 1];
	for (size_t i = 0; i < USERDB_SECRET_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", secret[i]);
	struct userdb_param p[] = { UPT(hex) };
	int rc = upg_query(g, tx, replace ? "INSERT INTO cursus_meta (key, value) VALUES "
					    "('scram_fake_secret', decode($1, 'hex')) ON CONFLICT (key) "
					    "DO UPDATE SET value = excluded.value"
					  : "INSERT INTO cursus_meta (key, value) VALUES "
					    "('scram_fake_secret', decode($1, 'hex')) ON CONFLICT (key) "
					    "DO NOTHING", p, 1, NULL, NULL, NULL, err);
	explicit_bzero(hex, sizeof(hex));
	return rc < 0 ? -1 : 0;
}

int upg_secret_load(void *impl, unsigned char secret[USERDB_SECRET_LEN], int may_create)
{
	struct upg *g = impl;
	unsigned char fresh[USERDB_SECRET_LEN];
	int rc = upg_secret_read(g, NULL, secret);

	if (rc != 0 || !may_create)
		return rc == 1 ? 0 : -1;
	/* OpenSSL's generator; DO NOTHING, then read: a node that made one first wins. */
	if (RAND_bytes(fresh, sizeof(fresh)) != 1 || upg_secret_write(g, NULL, fresh, 0, NULL) < 0)
		rc = -1;
	else
		rc = upg_secret_read(g, NULL, secret);
	explicit_bzero(fresh, sizeof(fresh));
	return rc == 1 ? 0 : -1;
}

int upg_secret_store(void *impl, void *tx, const unsigned char secret[USERDB_SECRET_LEN],
		     char **err)
{
	return upg_secret_write(impl, tx, secret, 1, err);
}

struct upg_secs {
	double v;
	int found;
};

static int upg_secs_row(void *arg, const char *const *cols, size_t n)
{
	struct upg_secs *r = arg;
	r->found = 1;
	r->v = n > 0 && cols[0] ? strtod(cols[0], NULL) : 0;
	return 1;
}

long upg_budget_blocked(void *impl, const struct userdb_budget *b, const char *addr,
			const char *account)
{
	struct userdb_param p[] = { UPT(addr), UPT(account), UPI(b->window) };
	struct upg_secs r = { 0 };
	char *err = NULL;
	/* The account's block binds only addresses with failures of their own
	 * (authlimit.h): an attack from many addresses never locks the owner out. */
	int rc = upg_query(impl, NULL,
			   "SELECT EXTRACT(EPOCH FROM GREATEST("
			   " (SELECT max(blocked_until) FROM auth_failures WHERE scope = 'addr'"
			   "  AND key = $1 AND blocked_until > clock_timestamp()),"
			   " CASE WHEN EXISTS (SELECT 1 FROM auth_failures WHERE scope = 'addr'"
			   "  AND key = $1 AND at > clock_timestamp() - make_interval(secs => $3))"
			   " THEN (SELECT max(blocked_until) FROM auth_failures WHERE scope = 'account'"
			   "  AND key = $2 AND blocked_until > clock_timestamp()) END)"
			   " - clock_timestamp())", p, 3, upg_secs_row, &r, NULL, &err);
	if (rc < 0) {
		log_warnx("userdb budget_failed error=\"%s\"", err ? err : "?");
		free(err);
		return -1;
	}
	return r.v > 0 ? (long)r.v + 1 : 0;
}

int upg_budget_failure(void *impl, const struct userdb_budget *b, const char *addr,
		       const char *account)
{
	struct userdb_param p[] = { UPT(addr), UPT(account), UPI(b->window), UPI(b->cooldown),
				    UPI(b->addr_budget), UPI(b->account_budget) };
	char *err = NULL;
	int rc = upg_query(impl, NULL, "SELECT cursus_auth_failure($1, $2, $3, $4, $5::integer, "
				       "$6::integer)", p, 6, NULL, NULL, NULL, &err);
	if (rc < 0) {
		log_warnx("userdb budget_failed error=\"%s\"", err ? err : "?");
		free(err);
		return -1;
	}
	return 0;
}
