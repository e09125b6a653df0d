"""A PostgreSQL user store shared by two cursusd nodes (issue 11, docs/cluster.md): a real
PostgreSQL 15 (pgfixture.py) and nodes A and B on their own ports and queue directories,
both with user_store postgresql:CONNINFO. Accounts made through A work on B with every
mechanism, a change on A binds B at once, failures spread over both spend one budget, a
stopped database gives exactly 454 (AUTH) and 451 (RCPT) and service comes back by itself,
and `cursus store copy` moves everything to SQLite and back, OAuth relay credentials
included; delivery through a smart host with OAuth works from a PostgreSQL store, the
rotated refresh token stored there. The test that stops the database runs last of the
node tests (file order)."""
import os
import re
import subprocess

import pytest

import cursus_testlib as lib
import pgfixture
from cursus_testlib import AuthSmtp, make_body
from relaypeers import certs  # noqa: F401 (fixture)
from test_auth_tls import client_ctx, fingerprint, pki  # noqa: F401 (pki is a fixture)
from test_metrics import get, scrape
from test_relay_oauth import CLIENT_ID, CLIENT_SECRET, delivered_then_refreshed_once
from test_relay_oauth import endpoint, sink  # noqa: F401 (fixtures)
from test_relay_oauth import no_secret_in_logs
from test_relay_oauth import server as oauth_server

PW = lib.PASSWORD
CAROL, DAVE, ERIN = "carol@example.test", "dave@example.test", "erin@example.test"
MECHS = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 PLAIN LOGIN EXTERNAL"

why_not = pgfixture.available()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


@pytest.fixture(scope="module")
def pg():
    server = pgfixture.PgServer()
    server.start()
    yield server
    server.destroy()


def node(root, pg, pki_dir, **kw):
    opts = dict(lib.AUTH_GENEROUS, store_timeout="2")
    opts.update(kw)
    return lib.Server(root, users=(), user_store='"postgresql:%s"' % pg.conninfo(),
                      store_connections=2,
                      auth_client_ca=os.path.join(pki_dir, "ca.pem"), auth_mechanisms=MECHS,
                      **opts)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, pg, pki):
    # A budget of 4 failures per address, counted by both nodes together; the tests
    # fail from addresses of their own (127.0.0.5, .7), never from 127.0.0.1.
    a = node(tmp_path_factory.mktemp("node-a"), pg, pki, auth_fail_addr_budget=4)
    b = node(tmp_path_factory.mktemp("node-b"), pg, pki, auth_fail_addr_budget=4)
    r = a.admin("store", "init")
    assert "postgresql store: schema version 1" in r.stdout, r.stdout
    assert a.queue_dir != b.queue_dir and a.ports != b.ports
    a.start()
    b.start()
    yield a, b
    problems = lib.finish_servers([a, b])
    assert not problems, "\n\n".join(problems)


def smtp(srv, ctx=None, source=None):
    c = AuthSmtp(srv.ports["submissions"], tls=True, context=ctx, source=source)
    c.greeting()
    c.ehlo()
    return c


def gsasl(srv, mech, user, password):
    cert = os.path.join(srv.root, "tls", "cert.pem")
    cmd = ["gsasl", "--smtp", "--connect", "127.0.0.1:%d" % srv.ports["submission"],
           "--x509-ca-file", cert, "-m", mech, "-a", user, "-p", password]
    if not mech.endswith("-PLUS"):
        cmd.append("--no-cb")
    r = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_user_added_on_a_authenticates_on_b_with_every_mechanism(nodes, pki, token):
    a, b = nodes
    a.admin("user", "add", CAROL, stdin=PW + "\n")
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS",
                 "PLAIN", "LOGIN"):
        rc, out = gsasl(b, mech, CAROL, PW)
        assert rc == 0 and "235 2.7.0" in out, (mech, out[-2000:], b.log[-2000:])
    with smtp(b) as c:
        c.auth_plain(CAROL, PW)
        c.send_message(CAROL, [CAROL], make_body(token))
    b.wait_message(CAROL, token)
    # An app password made on A.
    out = a.admin("user", "app-password", "add", CAROL, "phone").stdout
    app = re.search(r"\b([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})\b", out).group(1)
    with smtp(b) as c:
        c.auth_plain(CAROL, app)
    # EXTERNAL: a certificate mapped on A (the test CA's "carol" certificate).
    a.admin("user", "cert", "add", CAROL, fingerprint(pki, "carol"))
    with smtp(b, client_ctx(pki, "carol")) as c:
        c.expect("AUTH EXTERNAL =", 235, "2.7.0")
        c.expect("MAIL FROM:<%s>" % CAROL, 250, "2.1.0")


def test_password_changed_on_a_is_refused_on_b_within_5s(nodes):
    a, b = nodes
    a.admin("user", "add", DAVE, stdin=PW + "\n")
    old = smtp(b)
    old.auth_plain(DAVE, PW)
    a.admin("user", "passwd", DAVE, stdin="a new password\n")

    def refused():
        with smtp(b, source="127.0.0.7") as c:
            r = c.cmd("AUTH PLAIN " + lib.plain_response(DAVE, PW))
            return (r.code, r.enhanced) == (535, "5.7.8")
    assert lib.wait_until(refused, 5, interval=0.2), b.log[-2000:]
    with smtp(b) as c:
        c.auth_plain(DAVE, "a new password")
    # The session that logged in with the old password ends at its next MAIL FROM.
    old.expect("MAIL FROM:<%s>" % DAVE, 421, "4.7.0")
    old.close()
    # An app password revoked on A stops on B too.
    out = a.admin("user", "app-password", "add", DAVE, "laptop").stdout
    app = re.search(r"\b([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})\b", out).group(1)
    with smtp(b) as c:
        c.auth_plain(DAVE, app)
    a.admin("user", "app-password", "revoke", DAVE, "laptop")
    with smtp(b, source="127.0.0.7") as c:
        c.auth_plain(DAVE, app, code=535, enhanced="5.7.8")


def test_failures_spread_over_a_and_b_spend_one_budget(nodes):
    """Budget 4 per address: two failures on A and two on B from 127.0.0.5, then the
    right password on A is refused (454) before it is checked. A alone has seen two."""
    a, b = nodes
    a.admin("user", "add", ERIN, stdin=PW + "\n")
    src = "127.0.0.5"
    for srv in (a, b, a, b):
        with smtp(srv, source=src) as c:
            c.auth_plain(ERIN, "wrong guess", code=535, enhanced="5.7.8")
    for srv in (a, b):
        with smtp(srv, source=src) as c:
            c.auth_plain(ERIN, PW, code=454, enhanced="4.7.0")
    assert re.search(r"client=127\.0\.0\.5 .*authid=\"erin@example\.test\".* result=refused",
                     a.log), a.log[-2000:]
    # Another address is not affected.
    with smtp(a, source="127.0.0.6") as c:
        c.auth_plain(ERIN, PW)


def test_cursus_auth_keeps_the_connection_string_out_of_argv_and_log(nodes):
    a, _ = nodes
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    seen = 0
    for p in pids:
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/environ" % p, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if b"--auth-server" in cmd and a.conf.encode() not in cmd:
            seen += 1
            assert pgfixture.DB_PASSWORD.encode() not in cmd
            assert pgfixture.DB_PASSWORD.encode() not in env
    assert seen >= 1
    assert pgfixture.DB_PASSWORD not in a.log


def test_store_latency_and_failures_are_metrics(tmp_path, pg, pki):
    port = lib.free_port()
    srv = node(tmp_path / "m", pg, pki, metrics_listen="127.0.0.1:%d" % port)
    srv.start()
    try:
        with smtp(srv) as c:
            c.auth_plain(CAROL, PW)
        import urllib.request
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
        text = body.decode()
        assert re.search(r'cursus_store_requests_total\{operation="sasl-step"\} [1-9]', text), text
        assert 'cursus_store_request_microseconds_total{operation="sasl-step"}' in text, text
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


def test_check_finds_an_unreachable_store_and_a_missing_schema(tmp_path, pg):
    pg.psql("CREATE DATABASE emptydb")
    for dbname, conninfo, finding in (
            ("closed", "host=127.0.0.1 port=%d user=x dbname=x" % lib.free_port(),
             "store-unreachable"),
            ("empty", pg.conninfo("emptydb"), "store-schema")):
        srv = lib.Server(tmp_path / dbname, users=(), user_store='"postgresql:%s"' % conninfo,
                         store_timeout="0.5")
        r = srv.admin("check", "--json", check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        assert '"id":"%s"' % finding in r.stdout, r.stdout
        assert pgfixture.DB_PASSWORD not in r.stdout + r.stderr


def listing(srv, users):
    out = [srv.admin("user", "list").stdout, srv.admin("alias", "list").stdout,
           srv.admin("relay-auth", "list").stdout]
    out += [srv.admin("user", "show", u).stdout for u in users]
    return out


def test_store_copy_both_ways_loses_nothing(tmp_path, pg, nodes, pki):
    a, _ = nodes
    a.admin("user", "add", "frank@example.test", "--legacy-mechanisms", stdin=PW + "\n")
    a.admin("user", "grant", "frank@example.test", "--act-as", CAROL)
    a.admin("user", "grant", "frank@example.test", "--send-as", "@example.test")
    a.admin("alias", "add", "postmaster@example.test", CAROL)
    a.admin("alias", "add", "@localhost", "frank@example.test")
    a.admin("relay-auth", "add", "[smarthost.example]:587", "relayuser",
            stdin="relay secret\n")
    out = a.admin("user", "app-password", "add", "frank@example.test", "tablet").stdout
    app = re.search(r"\b([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})\b", out).group(1)
    users = a.admin("user", "list").stdout.split()
    before = listing(a, users)

    lite = str(tmp_path / "copy.db")
    r = a.admin("store", "copy", "config", "sqlite:" + lite)
    assert re.search(r"^users %d$" % len(users), r.stdout, re.M), r.stdout
    assert re.search(r"^relay_auth 1$", r.stdout, re.M), r.stdout
    s = lib.Server(tmp_path / "lite", users=(), user_db=lite,
                   auth_client_ca=os.path.join(pki, "ca.pem"), auth_mechanisms=MECHS,
                   **lib.AUTH_GENEROUS)
    assert listing(s, users) == before
    # A target that holds data is refused, and left as it was.
    r = a.admin("store", "copy", "config", "sqlite:" + lite, check=False)
    assert r.returncode == 1 and "empty" in r.stderr, r.stderr
    # A password in a connection string on the command line is refused.
    r = a.admin("store", "copy", "sqlite:" + lite, "postgresql:" + pg.conninfo("x"), check=False)
    assert r.returncode == 1 and "PGPASSWORD" in r.stderr, r.stderr

    # Back into a new PostgreSQL database, then everything works from there.
    pg.psql("CREATE DATABASE copied")
    r = subprocess.run([lib.CURSUS, "-c", s.conf, "store", "copy", "sqlite:" + lite,
                        "postgresql:" + pg.conninfo("copied", password=False)],
                       capture_output=True, text=True, timeout=60, env=pg.env())
    assert r.returncode == 0, r.stderr
    back = node(tmp_path / "back", pg, pki)
    back.global_opts["user_store"] = '"postgresql:%s"' % pg.conninfo("copied")
    back._write_conf()
    assert listing(back, users) == before
    back.start()
    try:
        with smtp(back) as c:
            c.auth_plain("frank@example.test", app)  # the secret moved: the digest matches
        # The SCRAM keys (the legacy secret shows in the listings compared above).
        rc, out = gsasl(back, "SCRAM-SHA-256", "frank@example.test", PW)
        assert rc == 0 and "235 2.7.0" in out, out[-2000:]
        with smtp(back) as c:
            c.auth_plain("frank@example.test", PW, authzid=CAROL)  # the act-as grant
    finally:
        problems = lib.finish_servers([back])
    assert not problems, "\n\n".join(problems)


OAUTH_COLUMNS = ("nexthop", "sender", '"user"', "password", "oauth_url", "oauth_client_id",
                 "oauth_client_secret", "oauth_refresh_token", "oauth_scope", "oauth_mech",
                 "oauth_grant")


def relay_rows_pg(pg, dbname):
    """relay_auth as "a|b|...;" per row, NULL spelt so (psql prints it as '')."""
    cols = ", ".join("coalesce(%s, 'NULL')" % c for c in OAUTH_COLUMNS)
    return pg.psql("SELECT concat_ws('|', %s) FROM relay_auth ORDER BY nexthop, sender"
                   % cols, dbname).splitlines()


def relay_rows_sqlite(path):
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        rows = db.execute("SELECT %s FROM relay_auth ORDER BY nexthop, sender"
                          % ", ".join(OAUTH_COLUMNS)).fetchall()
    finally:
        db.close()
    return ["|".join("NULL" if v is None else v for v in r) for r in rows]


def test_oauth_relay_credentials_survive_store_copy_both_ways(tmp_path, pg):
    """A refresh_token entry (every field), a client_credentials one (no refresh token,
    no scope: NULLs) and a password entry, from PostgreSQL to SQLite and back: every
    column as it was, and the listing the same."""
    pg.psql("CREATE DATABASE oauthsrc")
    pg.psql("CREATE DATABASE oauthback")
    src = lib.Server(tmp_path / "src", users=(),
                     user_store='"postgresql:%s"' % pg.conninfo("oauthsrc"))
    src.admin("relay-auth", "add", "[smtp.example]:587", "me@example.test", "--oauth",
              "https://login.example/token", "--client-id", CLIENT_ID, "--scope",
              "https://mail.example/.default offline_access", "--mechanism", "XOAUTH2",
              "--grant", "refresh_token", stdin="%s\nrt-Copied-1\n" % CLIENT_SECRET)
    src.admin("relay-auth", "add", "[cc.example]:587", "svc@example.test", "--sender",
              "alice@example.test", "--oauth", "https://login.example/token", "--client-id",
              "svc-client", "--mechanism", "OAUTHBEARER", "--grant", "client_credentials",
              stdin="cc-Secret-2\n")
    src.admin("relay-auth", "add", "[pw.example]:25", "pw-user", stdin="pw secret\n")
    rows = relay_rows_pg(pg, "oauthsrc")
    assert len(rows) == 3 and "rt-Copied-1" in rows[2] and "|NULL|NULL|" in rows[0], rows
    listed = src.admin("relay-auth", "list").stdout
    assert "oauth XOAUTH2" in listed and "oauth OAUTHBEARER" in listed, listed

    lite = str(tmp_path / "oauth.db")
    r = src.admin("store", "copy", "config", "sqlite:" + lite)
    assert re.search(r"^relay_auth 3$", r.stdout, re.M), r.stdout
    assert relay_rows_sqlite(lite) == rows
    s = lib.Server(tmp_path / "lite", users=(), user_db=lite)
    assert s.admin("relay-auth", "list").stdout == listed

    r = subprocess.run([lib.CURSUS, "-c", s.conf, "store", "copy", "sqlite:" + lite,
                        "postgresql:" + pg.conninfo("oauthback", password=False)],
                       capture_output=True, text=True, timeout=60, env=pg.env())
    assert r.returncode == 0, r.stderr
    assert re.search(r"^relay_auth 3$", r.stdout, re.M), r.stdout
    assert relay_rows_pg(pg, "oauthback") == rows
    assert CLIENT_SECRET not in r.stdout + r.stderr


def test_relayauth_unit_tests_on_postgresql(pg):
    """tests/unit/test_relayauth.c's store tests (set, find, list, OAuth set, rotation
    as compare-and-set, a password replacing an OAuth entry) on a PostgreSQL store."""
    pg.psql("CREATE DATABASE relayunit")
    binary = os.path.join(lib.BUILD, "tests", "test_relayauth")
    env = dict(os.environ, CURSUS_TEST_PG="postgresql:" + pg.conninfo("relayunit"))
    r = subprocess.run([binary], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and " 0 failed" in r.stdout, r.stdout + r.stderr
    assert pg.psql("SELECT count(*) FROM relay_auth", "relayunit").strip() == "0"


def test_relay_delivery_with_oauth_from_a_postgresql_store(start_server, certs, endpoint, sink,
                                                          pg, token):
    """OAUTHBEARER with the refresh_token grant, the credential in PostgreSQL: delivered,
    the rotated refresh token stored there; the token then refused at the next hop is
    refreshed once with that stored token, which rotates again."""
    pg.psql("CREATE DATABASE oauthrelay")
    mport = lib.free_port()
    srv = oauth_server(start_server, certs, sink, relay_idle_time=0, store_timeout="2",
                       user_store='"postgresql:%s"' % pg.conninfo("oauthrelay"),
                       extra_conf="metrics_listen 127.0.0.1:%d" % mport)
    delivered_then_refreshed_once(srv, endpoint, sink, token, lambda: pg.psql(
        "SELECT oauth_refresh_token FROM relay_auth", "oauthrelay").strip())
    assert srv.wait_queue_empty(10)
    samples = scrape(mport)[0]
    assert get(samples, "cursus_relay_oauth_token_fetches_total", result="ok") == 2
    # The store metric times the one lookup that fetched nothing (the cached token).
    assert get(samples, "cursus_store_requests_total", operation="relay-auth") == 1, samples
    no_secret_in_logs(srv, endpoint, sink, extra=[pgfixture.DB_PASSWORD])


def rcpt_reply(srv):
    """The reply to RCPT TO a local user on port 25 (a recipient lookup, no AUTH)."""
    with lib.Smtp(srv.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        c.expect("MAIL FROM:<someone@elsewhere.example>", 250)
        return c.cmd("RCPT TO:<%s>" % CAROL, timeout=15)


def auth_reply(srv):
    with smtp(srv) as c:
        return c.cmd("AUTH PLAIN " + lib.plain_response(CAROL, PW), timeout=15)


def test_zy_database_that_hangs_gives_454_and_451_within_the_timeout(tmp_path, nodes, pg, pki):
    """store_timeout 0.5 (a node of its own): a statement, one reconnection, the answer."""
    import time
    h = node(tmp_path / "h", pg, pki, store_timeout="0.5")
    h.start()
    try:
        assert auth_reply(h).code == 235
        pg.freeze()
        try:
            t0 = time.monotonic()
            r = auth_reply(h)
            assert (r.code, r.enhanced) == (454, "4.7.0"), r
            r = rcpt_reply(h)
            assert (r.code, r.enhanced) == (451, "4.3.0"), r
            assert time.monotonic() - t0 < 6, time.monotonic() - t0
            assert h.running()
        finally:
            pg.freeze(stop=False)
        assert lib.wait_until(lambda: auth_reply(h).code == 235, 30, interval=0.3), \
            h.log[-3000:]
        assert "no answer within 500 ms" in h.log or "connection timed out" in h.log, \
            h.log[-3000:]
    finally:
        problems = lib.finish_servers([h])
    assert not problems, "\n\n".join(problems)


def test_zz_database_down_gives_454_and_451_then_recovers(nodes, pg):
    a, b = nodes
    with smtp(a) as c:
        c.auth_plain(CAROL, PW)
    pg.stop()
    try:
        for srv in (a, b):
            r = auth_reply(srv)
            assert (r.code, r.enhanced) == (454, "4.7.0"), r
            r = rcpt_reply(srv)
            assert (r.code, r.enhanced) == (451, "4.3.0"), r
            assert srv.running(), srv.log[-3000:]
    finally:
        pg.start()

    for srv in (a, b):
        assert lib.wait_until(lambda: auth_reply(srv).code == 235, 20, interval=0.3), \
            srv.log[-3000:]
        r = rcpt_reply(srv)
        assert (r.code, r.enhanced) == (250, "2.1.5"), r
        assert "userdb postgresql event=reconnected" in srv.log
