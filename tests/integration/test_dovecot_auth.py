"""One user base for SMTP and IMAP (issue 9 item 2): a real Dovecot authenticates
cursus's users through `cursus checkpassword` over the users.db that `cursus user`
manages, while cursusd (as its mail user) serves the same users on submission.

The module's pair: cursusd running as nobody (so users.db is nobody's, as in production
it is the cursus user's) and Dovecot with its auth process as nobody too (configuration:
peers/dovecot-auth/dovecot.conf; docs/dovecot.md). Each test has its own users, so the
order does not matter. The first tests speak the checkpassword protocol directly and
need neither root nor Dovecot."""
import base64
import hashlib
import hmac
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

import cursus_testlib as lib
import dovecot_auth
from cursus_testlib import b64

PW = lib.PASSWORD
NEW_PW = "tr0ub4dor & 3"
AUTH_FAILED = b"[AUTHENTICATIONFAILED] Authentication failed."
SECRETS = [PW, NEW_PW]


# -- the checkpassword protocol, without Dovecot ------------------------------------------

@pytest.fixture(scope="module")
def plain_srv(tmp_path_factory):
    """A configuration and a users.db, no daemon: `cursus checkpassword` reads the
    database by itself."""
    return lib.Server(tmp_path_factory.mktemp("chkpw"), users=("alice@example.test",))


def checkpassword(srv, data, env=None, reply=("/usr/bin/env",), conf=None, as_user=None):
    """Runs `cursus checkpassword` with data on fd 3 (sh moves it there from stdin) and
    the reply program's output (here env(1), printing the environment it was given) on
    stdout; as_user (a pwd entry) runs it as that user, as Dovecot's auth process would."""
    e = {k: v for k, v in os.environ.items() if k.startswith(("ASAN_", "UBSAN_", "LSAN_"))}
    e.update(env or {})
    prog = lib.cursus_for_any_user() if as_user else lib.CURSUS
    cmd = [prog, "-c", conf or srv.conf, "checkpassword"] + list(reply)

    def drop():
        os.setgroups([])
        os.setgid(as_user.pw_gid)
        os.setuid(as_user.pw_uid)
    r = subprocess.run(["/bin/sh", "-c", 'exec "$@" 3<&0 0</dev/null', "sh"] + cmd,
                       input=data, capture_output=True, timeout=30, env=e,
                       preexec_fn=drop if as_user else None)
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    return r


def test_checkpassword_success_execs_reply_with_canonical_user(plain_srv):
    r = checkpassword(plain_srv, b"Alice@Example.TEST\0" + PW.encode() + b"\0\0")
    assert r.returncode == 0, r.stderr
    env = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    assert env["USER"] == "alice@example.test"
    assert "HOME" not in env and "AUTHORIZED" not in env
    assert PW not in r.stdout + r.stderr


@pytest.mark.parametrize("data", [
    b"alice@example.test\0wrong\0\0",
    b"nobody@example.test\0" + PW.encode() + b"\0\0",
    b"\0" + PW.encode() + b"\0\0",
    b"alice@example.test\0" + PW.encode(),          # no terminator: not the protocol
])
def test_checkpassword_failure_is_1(plain_srv, data):
    r = checkpassword(plain_srv, data)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")


def test_checkpassword_lookup(plain_srv):
    # Dovecot's static userdb asks whether a user exists: no password, AUTHORIZED=1,
    # a credentials lookup for no scheme.
    env = {"AUTHORIZED": "1", "CREDENTIALS_LOOKUP": "1", "SCHEME": ""}
    r = checkpassword(plain_srv, b"ALICE@example.test\0\0\0", env)
    assert r.returncode == 0, r.stderr
    assert {"USER=alice@example.test", "AUTHORIZED=2", "EXTRA=NOPASSWORD",
            "NOPASSWORD=y"} <= set(r.stdout.splitlines()), r.stdout
    r = checkpassword(plain_srv, b"ghost@example.test\0\0\0", env)
    assert (r.returncode, r.stdout) == (3, "")
    # A mechanism that wants a password-equivalent gets nothing: a temporary failure
    # with the reason in Dovecot's log, never a success.
    for scheme in ("CRAM-MD5", "DIGEST-MD5", "PLAIN"):
        r = checkpassword(plain_srv, b"alice@example.test\0\0\0", dict(env, SCHEME=scheme))
        assert (r.returncode, r.stdout) == (111, "")
        assert "no credentials for scheme %s" % scheme in r.stderr


def scram_field(stdout):
    env = dict(l.split("=", 1) for l in stdout.splitlines() if "=" in l)
    assert env["EXTRA"] == "PASSWORD" and env["AUTHORIZED"] == "2", stdout
    return env["USER"], env["PASSWORD"]


@pytest.mark.parametrize("scheme,hash_name", [("SCRAM-SHA-256", "sha256"),
                                              ("SCRAM-SHA-1", "sha1")])
def test_checkpassword_scram_lookup(plain_srv, scheme, hash_name):
    """A SCRAM mechanism's lookup gets the stored keys in Dovecot's format, which are
    RFC 5802's keys of the password; an unknown user gets fake ones, stable per name,
    so that the exchange fails like a wrong password."""
    env = {"AUTHORIZED": "1", "CREDENTIALS_LOOKUP": "1", "SCHEME": scheme}
    r = checkpassword(plain_srv, b"Alice@example.test\0\0\0", env)
    assert r.returncode == 0, r.stderr
    user, field = scram_field(r.stdout)
    assert user == "alice@example.test"
    m = re.fullmatch(r"\{%s\}(\d+),([A-Za-z0-9+/=]+),([A-Za-z0-9+/=]+),([A-Za-z0-9+/=]+)"
                     % scheme, field)
    assert m, field
    iters, salt, stored, server = int(m.group(1)), *(base64.b64decode(g) for g in m.groups()[1:])
    salted = hashlib.pbkdf2_hmac(hash_name, PW.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    assert hashlib.new(hash_name, client_key).digest() == stored
    assert hmac.new(salted, b"Server Key", hash_name).digest() == server
    fakes = [scram_field(checkpassword(plain_srv, b"ghost@example.test\0\0\0", env).stdout)
             for _ in range(2)]
    assert fakes[0] == fakes[1] and fakes[0][0] == "ghost@example.test"
    assert fakes[0][1].startswith("{%s}%d," % (scheme, iters))


def test_checkpassword_store_down_is_111_and_creates_nothing(plain_srv, tmp_path):
    conf = tmp_path / "cursus.conf"
    with open(plain_srv.conf) as f:
        text = f.read()
    missing = tmp_path / "db" / "users.db"
    conf.write_text(re.sub(r"(?m)^user_db .*$", "user_db %s" % missing, text))
    r = checkpassword(plain_srv, b"alice@example.test\0" + PW.encode() + b"\0\0", conf=str(conf))
    assert (r.returncode, r.stdout) == (111, "")
    assert "cannot open user database" in r.stderr and PW not in r.stderr
    assert not os.path.exists(missing) and not os.path.exists(missing.parent)


@lib.needs_root
def test_checkpassword_as_owner_while_root_administers(open_root):
    """No cursusd running: `cursus checkpassword` as the database's owner is then the
    only reader, so SQLite makes and removes the -wal and -shm files as that user; the
    admin tool, run as root in between, must leave none of root's behind (SQLite gives
    them to the database's owner) or the next login would fail."""
    nobody = pwd.getpwnam("nobody")
    db = os.path.join(open_root, "db", "users.db")
    srv = lib.Server(os.path.join(open_root, "srv"), users=("alice@example.test",), user_db=db)
    for p in (os.path.dirname(db), db):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    ok = b"alice@example.test\0" + PW.encode() + b"\0\0"
    r = checkpassword(srv, ok, as_user=nobody)
    assert r.returncode == 0, r.stderr
    srv.admin("user", "passwd", "alice@example.test", stdin=NEW_PW + "\n")
    srv.admin("user", "app-password", "add", "alice@example.test", "tablet")
    for name in os.listdir(os.path.dirname(db)):
        assert os.stat(os.path.join(os.path.dirname(db), name)).st_uid == nobody.pw_uid, name
    r = checkpassword(srv, ok, as_user=nobody)
    assert (r.returncode, r.stderr) == (1, "")
    r = checkpassword(srv, b"alice@example.test\0" + NEW_PW.encode() + b"\0\0", as_user=nobody)
    assert r.returncode == 0, r.stderr
    # Someone else (not the owner) cannot read it: a temporary failure, not a wrong password.
    r = checkpassword(srv, ok, as_user=pwd.getpwnam("daemon"))
    assert r.returncode == 111 and "cannot open user database" in r.stderr, r.stderr


def test_checkpassword_usage(plain_srv):
    r = checkpassword(plain_srv, b"alice@example.test\0x\0\0", reply=())
    assert r.returncode == 2 and "usage: cursus checkpassword" in r.stderr
    # Not run by an IMAP server: no fd 3.
    r = subprocess.run([lib.CURSUS, "-c", plain_srv.conf, "checkpassword", "/usr/bin/env"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "cannot read fd 3" in r.stderr
    # Longer than the protocol's 512 octets.
    r = checkpassword(plain_srv, b"a" * 600 + b"\0x\0\0")
    assert r.returncode == 2 and "longer than 512" in r.stderr


# -- Dovecot and cursusd on one users.db ---------------------------------------------------

needs_dovecot = pytest.mark.skipif(dovecot_auth.available() is not None,
                                   reason=str(dovecot_auth.available()))


@pytest.fixture(scope="module")
def pair():
    """(cursusd, Dovecot) on one users.db, cursusd running as nobody, Dovecot's auth as
    nobody: the database's owner, as in production the cursus user."""
    root = tempfile.mkdtemp(prefix="cursus-dovecot-auth-", dir="/tmp")
    os.chmod(root, 0o755)
    srv = lib.Server(os.path.join(root, "cursus"), user="nobody", group="nogroup",
                     user_db=os.path.join(root, "db", "users.db"), **lib.AUTH_GENEROUS)
    dc = None
    try:
        srv.start()
        dc = dovecot_auth.Dovecot(os.path.join(root, "dovecot"), srv.conf, "nobody", "nobody",
                                  "nogroup")
        dc.start()
        yield srv, dc
        problems = lib.finish_servers([srv])
        assert not problems, "\n\n".join(problems)
        assert dc.running(), "dovecot died:\n" + dc.log[-3000:]
        dc.check_log_clean()
    finally:
        if dc:
            dc.stop()
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)


def add_user(srv, name, password=PW):
    srv.admin("user", "add", name, stdin=password + "\n")


def smtp_auth(srv, user, password, code=235, enhanced="2.7.0"):
    """AUTH PLAIN on cursusd's submission listener, after STARTTLS."""
    with lib.AuthSmtp(srv.ports["submission"]) as c:
        c.greeting()
        c.expect("EHLO client.test", 250)
        c.starttls()
        c.expect("EHLO client.test", 250)
        c.auth_plain(user, password, code, enhanced)
        c.expect("QUIT", 221)


def add_app_password(srv, user, label):
    r = srv.admin("user", "app-password", "add", user, label)
    m = re.search(r'app password "%s" of \S+: (\S+)' % re.escape(label), r.stdout)
    assert m, r.stdout
    SECRETS.extend([m.group(1), b64(m.group(1))])
    return m.group(1)


@needs_dovecot
def test_doveadm_auth_test_follows_cursus_passwd(pair):
    srv, dc = pair
    user = "carol@example.test"
    add_user(srv, user)
    r = dc.auth_test(user, PW)
    assert r.returncode == 0, r.stdout + r.stderr + dc.log[-2000:]
    assert r.stdout.startswith("passdb: %s auth succeeded\n" % user), r.stdout
    assert "  user=%s\n" % user in r.stdout
    srv.admin("user", "passwd", user, stdin=NEW_PW + "\n")
    # The old password fails at once (no cache anywhere), the new one works.
    r = dc.auth_test(user, PW)
    assert r.returncode == 77, r.stdout + r.stderr
    assert r.stdout.startswith("passdb: %s auth failed\n" % user), r.stdout
    r = dc.auth_test("Carol@Example.Test", NEW_PW)
    assert r.returncode == 0, r.stdout + r.stderr
    # Dovecot takes cursus's canonical (lower-case) name for the rest of the login.
    assert "  user=%s\n" % user in r.stdout


@needs_dovecot
def test_imap_login_and_smtp_submission_share_the_password(pair):
    srv, dc = pair
    user = "dave@example.test"
    add_user(srv, user)
    assert dc.imap_login(user, PW) == ("OK", [b"Logged in"])
    smtp_auth(srv, user, PW)
    srv.admin("user", "passwd", user, stdin=NEW_PW + "\n")
    assert dc.imap_login(user, PW) == ("NO", AUTH_FAILED)
    smtp_auth(srv, user, PW, 535, "5.7.8")
    assert dc.imap_login(user, NEW_PW) == ("OK", [b"Logged in"])
    smtp_auth(srv, user, NEW_PW)
    # An unknown user gets the same answer as a wrong password.
    assert dc.imap_login("ghost@example.test", NEW_PW) == ("NO", AUTH_FAILED)
    # The mailbox Dovecot made is the static userdb's home, owned by the mail user.
    home = os.path.join(dc.mail_home, "example.test", "dave")
    assert os.path.isdir(os.path.join(home, "Maildir"))
    assert os.stat(home).st_uid == __import__("pwd").getpwnam("nobody").pw_uid


def gsasl_imap(dc, mech, user, password):
    """gsasl as an IMAP client (no TLS: loopback) with a SCRAM mechanism."""
    return subprocess.run(["gsasl", "--imap", "--connect", "127.0.0.1:%d" % dc.port,
                           "--no-starttls", "-m", mech, "-a", user, "-p", password],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


@needs_dovecot
@pytest.mark.skipif(not shutil.which("gsasl"), reason="gsasl not installed")
@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_imap_scram_on_cursus_keys(pair, mech):
    srv, dc = pair
    user = "hank-%s@example.test" % mech[-3:].strip("-").lower()
    add_user(srv, user)
    r = gsasl_imap(dc, mech, user, PW)
    assert r.returncode == 0 and ". OK Logged in\n" in r.stdout, r.stdout + r.stderr
    # Wrong password and unknown user: the same refusal (Dovecot logs both as a
    # password mismatch: fake keys for the unknown one).
    for u, p in ((user, NEW_PW), ("ghost@example.test", PW)):
        r = gsasl_imap(dc, mech, u, p)
        assert r.returncode != 0 and ". NO %s\n" % AUTH_FAILED.decode() in r.stdout, r.stdout
    lines = [l for l in dc.log.splitlines() if "%s(ghost@example.test," % mech.lower() in l]
    assert lines and all(l.endswith(": Password mismatch") for l in lines), lines
    # cursus user passwd changes the keys: the old password stops at once.
    srv.admin("user", "passwd", user, stdin=NEW_PW + "\n")
    assert gsasl_imap(dc, mech, user, PW).returncode != 0
    assert gsasl_imap(dc, mech, user, NEW_PW).returncode == 0


@needs_dovecot
def test_app_password_for_imap_until_revoked(pair):
    srv, dc = pair
    user = "erin@example.test"
    add_user(srv, user)
    app = add_app_password(srv, user, "phone")
    assert dc.imap_login(user, app) == ("OK", [b"Logged in"])
    # As users type it: upper case, spaces instead of dashes.
    assert dc.imap_login(user, app.upper().replace("-", " ")) == ("OK", [b"Logged in"])
    smtp_auth(srv, user, app)
    assert dc.auth_test(user, app).returncode == 0
    # Another user cannot use it.
    add_user(srv, "frank@example.test")
    assert dc.imap_login("frank@example.test", app) == ("NO", AUTH_FAILED)
    # The IMAP login counts as a use, as an SMTP one does.
    lst = srv.admin("user", "app-password", "list", user).stdout
    assert re.search(r"(?m)^phone\t.*last used \d{4}-\d\d-\d\dT", lst), lst
    srv.admin("user", "app-password", "revoke", user, "phone")
    assert dc.imap_login(user, app) == ("NO", AUTH_FAILED)
    assert dc.auth_test(user, app).returncode == 77
    smtp_auth(srv, user, app, 535, "5.7.8")
    # The account's own password is untouched.
    assert dc.imap_login(user, PW) == ("OK", [b"Logged in"])


@needs_dovecot
def test_deleted_user_fails_at_once(pair):
    srv, dc = pair
    user = "gina@example.test"
    add_user(srv, user)
    app = add_app_password(srv, user, "laptop")
    assert dc.imap_login(user, PW) == ("OK", [b"Logged in"])
    r = dc.doveadm("user", user)
    assert r.returncode == 0 and "home\t%s/example.test/gina\n" % dc.mail_home in r.stdout, \
        r.stdout + r.stderr
    srv.admin("user", "del", user)
    assert dc.imap_login(user, PW) == ("NO", AUTH_FAILED)
    assert dc.imap_login(user, app) == ("NO", AUTH_FAILED)
    smtp_auth(srv, user, PW, 535, "5.7.8")
    # Dovecot's userdb (static) asks cursus whether the user exists: LMTP and doveadm
    # see it gone too.
    r = dc.doveadm("user", user)
    assert r.returncode == 67, r.stdout + r.stderr
    assert "userdb lookup: user %s doesn't exist" % user in r.stdout + r.stderr


@needs_dovecot
def test_zz_no_secret_in_logs(pair):
    srv, dc = pair
    for log in (srv.log, dc.log, dc.output()):
        for s in SECRETS:
            assert s not in log, "a secret in a log"
    assert "checkpassword(" in dc.log and "Login failed (status=1)" in dc.log
