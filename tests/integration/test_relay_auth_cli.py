"""`cursus relay-auth add|del|list`: credentials for smart hosts, stored in the user
database, the password read from stdin and never shown nor taken from argv."""
import os
import sqlite3
import stat
import subprocess
import time

import pytest

import cursus_testlib as lib

SECRET = "Relay-Secret-7f3a"


@pytest.fixture
def srv(tmp_path):
    # The tool needs a configuration and a user database; no daemon.
    return lib.Server(tmp_path / "srv", users=())


def rows(s):
    """The stored entries, read from the database as the daemon would."""
    path = os.path.join(s.root, "users.db")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute("SELECT nexthop, sender, user, password FROM relay_auth "
                          "ORDER BY nexthop, sender").fetchall()
    finally:
        db.close()


def test_add_list_replace_del(srv):
    r = srv.admin("relay-auth", "add", "[Smart.Example]:587", "relay-user", stdin=SECRET + "\n")
    assert r.stdout == "relay credentials for [smart.example]:587 (sender default) set: user relay-user\n"
    assert SECRET not in r.stdout + r.stderr
    assert rows(srv) == [("[smart.example]:587", "", "relay-user", SECRET)]

    r = srv.admin("relay-auth", "list")
    assert r.stdout == "[smart.example]:587 default relay-user\n"
    assert SECRET not in r.stdout + r.stderr

    # Adding again replaces, user and password.
    srv.admin("relay-auth", "add", "[smart.example]:587", "other-user", stdin="New-Pass-91\n")
    assert rows(srv) == [("[smart.example]:587", "", "other-user", "New-Pass-91")]
    r = srv.admin("relay-auth", "list")
    assert r.stdout == "[smart.example]:587 default other-user\n"

    r = srv.admin("relay-auth", "del", "[SMART.example]:587")
    assert r.stdout == "relay credentials for [smart.example]:587 (sender default) deleted\n"
    assert rows(srv) == []
    r = srv.admin("relay-auth", "del", "[smart.example]:587", check=False)
    assert r.returncode == 1
    assert r.stderr == "cursus: no relay credentials for [smart.example]:587 (sender default)\n"
    r = srv.admin("relay-auth", "list")
    assert r.stdout == ""


def test_nexthop_forms(srv):
    # Without a port, relay_port (25 by default); brackets kept, as the route names it.
    for given, stored in (("smart.example", "smart.example:25"),
                          ("[smart.example]", "[smart.example]:25"),
                          ("Smart.Example:2525", "smart.example:2525"),
                          ("[127.0.0.5]:587", "[127.0.0.5]:587"),
                          # An address is literal even unbracketed, as in relay_host.
                          ("127.0.0.6:587", "[127.0.0.6]:587"),
                          ("[::1]:465", "[::1]:465")):
        srv.admin("relay-auth", "add", given, "u", stdin="pw\n")
        assert (stored, "", "u", "pw") in rows(srv), given
        r = srv.admin("relay-auth", "del", given)
        assert r.stdout == "relay credentials for %s (sender default) deleted\n" % stored
    for bad in ("", "host:0", "host:70000", "host:x", "[host", "[host]x", "bad host",
                "a/b:25", "::1"):
        r = srv.admin("relay-auth", "add", bad, "u", stdin="pw\n", check=False)
        assert r.returncode == 2, (bad, r)
    assert rows(srv) == []


def test_relay_port_default(srv):
    # Without a port, the configuration's relay_port.
    with open(srv.conf, "a") as f:
        f.write("relay_port 2525\n")
    srv.admin("relay-auth", "add", "smart.example", "u", stdin="pw\n")
    assert rows(srv) == [("smart.example:2525", "", "u", "pw")]


def test_per_sender(srv):
    srv.admin("relay-auth", "add", "[smart.example]:587", "shared", stdin="Shared-Pw\n")
    r = srv.admin("relay-auth", "add", "[smart.example]:587", "alice-there",
                  "--sender", "Alice@Example.Test", stdin="Alice-Pw\n")
    assert r.stdout == ("relay credentials for [smart.example]:587 (sender alice@example.test) "
                        "set: user alice-there\n")
    r = srv.admin("relay-auth", "list")
    assert r.stdout == ("[smart.example]:587 default shared\n"
                        "[smart.example]:587 alice@example.test alice-there\n")
    assert "Pw" not in r.stdout
    assert rows(srv) == [("[smart.example]:587", "", "shared", "Shared-Pw"),
                         ("[smart.example]:587", "alice@example.test", "alice-there", "Alice-Pw")]
    # Deleting the sender's entry leaves the default.
    srv.admin("relay-auth", "del", "[smart.example]:587", "--sender", "alice@example.test")
    assert rows(srv) == [("[smart.example]:587", "", "shared", "Shared-Pw")]
    r = srv.admin("relay-auth", "add", "[smart.example]:587", "u", "--sender", "nobody",
                  stdin="x\n", check=False)
    assert r.returncode == 2


def test_password_never_from_argv(srv):
    # A password given as an argument is a usage error, and nothing is stored.
    r = srv.admin("relay-auth", "add", "[smart.example]:587", "u", SECRET, stdin=SECRET + "\n",
                  check=False)
    assert r.returncode == 2
    assert SECRET not in r.stdout + r.stderr
    assert rows(srv) == []
    # An empty password is refused.
    r = srv.admin("relay-auth", "add", "[smart.example]:587", "u", stdin="\n", check=False)
    assert r.returncode == 1
    assert rows(srv) == []

    # While the tool waits for the password, its command line holds none: the password
    # is only ever in the pipe.
    p = subprocess.Popen([lib.CURSUS, "-c", srv.conf, "relay-auth", "add", "[smart.example]:587",
                          "u"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=srv.root)
    try:
        def cmdline():
            with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                argv = f.read().split(b"\0")
            return argv if argv[0] == lib.CURSUS.encode() else None
        argv = lib.wait_until(cmdline, 10)
        assert argv[-3:] == [b"[smart.example]:587", b"u", b""]
        out, err = p.communicate(SECRET.encode() + b"\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert p.returncode == 0
    assert SECRET.encode() not in out + err
    assert rows(srv) == [("[smart.example]:587", "", "u", SECRET)]
    # Only the daemon's user may read it.
    mode = stat.S_IMODE(os.stat(os.path.join(srv.root, "users.db")).st_mode)
    assert mode == 0o600


def test_usage(srv):
    for args in (("relay-auth",), ("relay-auth", "add", "h"), ("relay-auth", "del"),
                 ("relay-auth", "list", "x"), ("relay-auth", "list", "--sender", "a@b"),
                 ("relay-auth", "add", "h", "u", "--bogus"), ("relay-auth", "frob")):
        r = srv.admin(*args, check=False)
        assert r.returncode == 2, (args, r)
