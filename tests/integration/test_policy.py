"""Policy holes of issue 8, against the real daemon: sender ownership and AUTH= on every
listener, a bare LF in a command line, TLS resumption with auth_client_ca, sessions whose
credentials are withdrawn, alias expansion against max_recipients, scram_iterations,
tls_self_signed, and STARTTLS before EHLO (raw and gsasl --smtp --starttls)."""
import base64
import os
import re
import shutil
import ssl
import subprocess

import pytest

import cursus_testlib as lib
from cursus_testlib import AuthSmtp, make_body
from test_auth_tls import scram

PW = lib.PASSWORD
ALICE, BOB = "alice@example.test", "bob@example.test"


def connect(srv, role="submission"):
    """Greeting, EHLO, STARTTLS, EHLO (port 465: TLS at once, EHLO)."""
    c = AuthSmtp(srv.ports[role], tls=(role == "submissions"))
    c.greeting()
    c.ehlo()
    if role != "submissions":
        c.starttls()
        c.ehlo()
    return c


def queue_record(path, key):
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if line.startswith(key.encode() + b" "):
                return line[len(key) + 1:].decode()
    return None


def xtext_decode(s):
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


# -- 1. sender ownership and AUTH= on every listener ----------------------------------------

@pytest.mark.parametrize("role", ["smtp", "submission"])
def test_authenticated_sender_must_be_owned_on_every_listener(server, role):
    with connect(server, role) as c:
        c.auth_plain(ALICE, PW)
        for other in (BOB, "ceo@example.test", "someone@other.test"):
            c.expect("MAIL FROM:<%s>" % other, 553, "5.7.1")
        # Read receipts go out with the null sender.
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.expect("RSET", 250, "2.0.0")
        c.expect("MAIL FROM:<sales@example.test>", 250, "2.1.0")   # alias of alice
        c.expect("RSET", 250, "2.0.0")
        c.expect("MAIL FROM:<Alice@Example.test>", 250, "2.1.0")
    # Unauthenticated mail on port 25 is not a user's: no ownership to check.
    with server.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % BOB, 250, "2.1.0")


def test_auth_param_forged_is_replaced(start_server, token):
    """RFC 4954 5: AUTH= is passed on only when trusted. A forged identity is replaced by
    the authenticated one (as Postfix, which ignores the client's value, never refused);
    an identity the user may act as, or <>, is kept."""
    srv = start_server(users=(ALICE, BOB, "carol@example.test"))
    srv.admin("user", "grant", ALICE, "--act-as", "carol@example.test")
    cases = [(" AUTH=bob+40example.test", ALICE), (" AUTH=ceo+40example.test", ALICE),
             (" AUTH=<>", "<>"), (" AUTH=carol+40example.test", "carol@example.test"),
             (" AUTH=ALICE+40example.test", None), ("", ALICE)]
    qids = []
    with connect(srv, "smtp") as c:
        c.auth_plain(ALICE, PW)
        for i, (param, _) in enumerate(cases):
            c.expect("MAIL FROM:<%s>%s" % (ALICE, param), 250, "2.1.0")
            c.expect("RCPT TO:<x@other.test>", 250, "2.1.5")
            c.expect("DATA", 354)
            c.send(make_body("%s-%d" % (token, i)) + ".\r\n")
            r = c.expect(None, 250, "2.0.0")
            qids.append(re.search(r"queued as (\S+)", r.text).group(1))
    got = [xtext_decode(queue_record(os.path.join(srv.queue_dir, "msg", q), "auth") or "")
           for q in qids]
    for (param, want), have in zip(cases, got):
        if want is None:
            assert have.lower() == ALICE, (param, have)
        else:
            assert have == want, (param, have, got)
    assert "event=auth-param-replaced" in srv.log


# -- 2. bare LF in a command line -------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"NOOP first\nRSET\r\n",
    b"MAIL FROM:<s@example.test>\nRCPT TO:<alice@example.test>\r\n",
    b"NOOP\n\r\n",
    b"NOOP " + b"x" * 600 + b"\nRSET\r\n",          # over-long, ended by a bare LF
], ids=["noop-rset", "mail-rcpt", "lf-crlf", "long-lf"])
def test_bare_lf_in_command_rejected_and_closed(server, data):
    with server.smtp() as c:
        c.ehlo()
        c.send(data)
        c.expect(None, 550, "5.5.2")
        assert c.wait_closed(5), "still open after a bare LF: %r" % c.buf
        assert c.buf == b"", "something after the bare LF was executed: %r" % c.buf


def test_bare_lf_during_auth_exchange_closes(server):
    with connect(server, "submission") as c:
        c.expect("AUTH LOGIN", 334)
        c.send(lib.b64(ALICE).encode() + b"\nNOOP\r\n")
        c.expect(None, 550, "5.5.2")
        assert c.wait_closed(5) and c.buf == b"", c.buf


def test_bare_cr_still_500_and_session_goes_on(server):
    with server.smtp() as c:
        c.send(b"NO\rOP\r\n")
        c.expect(None, 500, "5.5.2")
        c.expect("NOOP", 250, "2.0.0")


# -- 3. TLS session resumption with auth_client_ca --------------------------------------------

def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def client_ca(tmp_path):
    d = str(tmp_path / "pki")
    os.makedirs(d)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Test CA", "-days", "2", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "alice.key", "-out", "alice.csr", "-subj", "/CN=alice@example.test", cwd=d)
    _openssl("x509", "-req", "-in", "alice.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "alice.pem", "-days", "2", cwd=d)
    return d


def _tls_session(srv, ctx, session=None):
    """One session on port 465: handshake (resuming session if given), EHLO, QUIT.
    Returns (the TLS session to resume later, whether this one was resumed)."""
    c = AuthSmtp(srv.ports["submissions"])
    try:
        c.sock = ctx.wrap_socket(c.sock, session=session)
        c.greeting()
        c.ehlo()                   # TLS 1.3 tickets arrive after the handshake
        c.expect("QUIT", 221)
        return c.sock.session, c.sock.session_reused
    finally:
        c.close()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
@pytest.mark.parametrize("with_cert", [False, True], ids=["no-cert", "client-cert"])
def test_tls_resumption_with_client_ca(start_server, client_ca, version, with_cert):
    srv = start_server(auth_client_ca=os.path.join(client_ca, "ca.pem"))
    ctx = lib.tls_client_context()
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    if with_cert:
        ctx.load_cert_chain(os.path.join(client_ca, "alice.pem"),
                            os.path.join(client_ca, "alice.key"))
    sess, reused = _tls_session(srv, ctx)
    assert sess is not None and not reused
    try:
        _, reused = _tls_session(srv, ctx, sess)
    except (ssl.SSLError, OSError, lib.SmtpClosed) as e:
        pytest.fail("resuming handshake failed: %r; log:\n%s" % (e, srv.log[-1500:]))
    assert reused, "the session was not resumed"


def test_tls_resumption_openssl_cli(start_server, client_ca, tmp_path):
    """The same with openssl s_client -sess_out / -sess_in and a client certificate."""
    srv = start_server(auth_client_ca=os.path.join(client_ca, "ca.pem"))
    sess = str(tmp_path / "sess.pem")
    base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.ports["submissions"],
            "-cert", os.path.join(client_ca, "alice.pem"), "-key",
            os.path.join(client_ca, "alice.key"), "-tls1_2", "-ign_eof"]
    r1 = subprocess.run(base + ["-sess_out", sess], input="EHLO x\r\nQUIT\r\n",
                        capture_output=True, text=True, timeout=30)
    assert "221 " in r1.stdout and os.path.getsize(sess) > 0, r1.stdout[-2000:] + r1.stderr
    r2 = subprocess.run(base + ["-sess_in", sess], input="EHLO x\r\nQUIT\r\n",
                        capture_output=True, text=True, timeout=30)
    assert "Reused, TLSv1.2" in r2.stdout, r2.stdout[-2000:] + r2.stderr
    assert "221 " in r2.stdout, r2.stdout[-2000:]


# -- 4. credentials withdrawn under a session -------------------------------------------------

def _authed(srv, user=ALICE, password=PW):
    c = connect(srv, "submission")
    c.auth_plain(user, password)
    c.expect("MAIL FROM:<%s>" % user, 250, "2.1.0")
    c.expect("RSET", 250, "2.0.0")
    return c


def _withdrawn(c):
    c.expect("MAIL FROM:<%s>" % ALICE, 421, "4.7.0")
    assert c.wait_closed(5), c.buf


@pytest.mark.parametrize("how", ["passwd", "del", "del-add", "app-password-revoke"])
def test_session_ends_when_credentials_withdrawn(start_server, how):
    srv = start_server()
    app = None
    if how == "app-password-revoke":
        out = srv.admin("user", "app-password", "add", ALICE, "phone").stdout
        app = re.search(r"\b([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})\b", out).group(1)
    c = _authed(srv, password=app or PW)
    bob = _authed(srv, BOB)
    try:
        if how == "passwd":
            srv.admin("user", "passwd", ALICE, stdin="a new password 1\n")
        elif how == "del":
            srv.admin("user", "del", ALICE)
        elif how == "del-add":
            srv.admin("user", "del", ALICE)
            srv.admin("user", "add", ALICE, stdin=PW + "\n")   # same password, new user
        else:
            srv.admin("user", "app-password", "revoke", ALICE, "phone")
        _withdrawn(c)
        # Another user's session goes on.
        bob.expect("MAIL FROM:<%s>" % BOB, 250, "2.1.0")
    finally:
        c.close()
        bob.close()
    assert "event=credentials-withdrawn user=alice@example.test" in srv.log


def test_session_survives_unrelated_changes(start_server):
    srv = start_server()
    with _authed(srv) as c:
        srv.admin("user", "app-password", "add", ALICE, "tablet")
        srv.admin("user", "grant", ALICE, "--send-as", "news@example.test")
        c.expect("MAIL FROM:<news@example.test>", 250, "2.1.0")


def test_session_acting_as_ends_when_grant_revoked(start_server):
    srv = start_server()
    srv.admin("user", "grant", BOB, "--act-as", ALICE)
    with connect(srv, "submission") as c:
        c.auth_plain(BOB, PW, authzid=ALICE)
        c.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
        c.expect("RSET", 250)
        srv.admin("user", "revoke", BOB, "--act-as", ALICE)
        _withdrawn(c)


# -- 5. alias expansion counts against max_recipients ------------------------------------------

def test_alias_expansion_bounded_by_max_recipients(start_server, token):
    users = ["u%d@example.test" % i for i in range(6)]
    aliases = [("big@example.test", u) for u in users] + \
              [("three@example.test", u) for u in users[:3]] + \
              [("two@example.test", u) for u in users[3:5]]
    srv = start_server(users=users, aliases=aliases, max_recipients=5)
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@other.test>", 250, "2.1.0")
        c.expect("RCPT TO:<big@example.test>", 452, "4.5.3")       # 6 > 5
        c.expect("RCPT TO:<three@example.test>", 250, "2.1.5")     # 3
        c.expect("RCPT TO:<two@example.test>", 250, "2.1.5")       # 5
        c.expect("RCPT TO:<u5@example.test>", 452, "4.5.3")        # 6 > 5
        c.expect("DATA", 354)
        c.send(make_body(token) + ".\r\n")
        c.expect(None, 250, "2.0.0")
    for u in users[:5]:
        srv.wait_message(u, token)
    assert not srv.messages_with(users[5], token)


# -- 6. scram_iterations ----------------------------------------------------------------------

def _scram_iterations(srv, user):
    with connect(srv, "submission") as c:
        first = "n,,n=%s,r=abcdefghijklmnop" % user
        r = c.expect("AUTH SCRAM-SHA-256 " + lib.b64(first), 334)
        attrs = dict(kv.split("=", 1) for kv in base64.b64decode(r.lines[0]).decode().split(","))
        c.expect("*", 501)
        return int(attrs["i"])


def test_scram_iterations_configurable(start_server):
    srv = start_server()
    assert _scram_iterations(srv, ALICE) == 10000          # the new default
    with open(srv.conf, "a") as f:
        f.write("scram_iterations 12345\n")
    srv.admin("user", "passwd", BOB, stdin=PW + "\n")
    srv.admin("user", "add", "carol@example.test", stdin=PW + "\n")
    srv.restart()
    assert _scram_iterations(srv, BOB) == 12345
    assert _scram_iterations(srv, "carol@example.test") == 12345
    assert _scram_iterations(srv, "nobody@example.test") == 12345   # fake keys alike
    assert _scram_iterations(srv, ALICE) == 10000          # kept its keys
    for user in (ALICE, BOB):
        with connect(srv, "submission") as c:
            r = scram(c, user, PW, mech="SCRAM-SHA-256")
            assert (r.code, r.enhanced) == (235, "2.7.0"), r


# -- 7. tls_self_signed -----------------------------------------------------------------------

def _conf_without_self_signed(srv):
    with open(srv.conf) as f:
        text = f.read()
    with open(srv.conf, "w") as f:
        f.write(text.replace("tls_self_signed yes\n", ""))


def test_missing_certificate_refused_without_tls_self_signed(tmp_path):
    srv = lib.Server(tmp_path / "srv")
    _conf_without_self_signed(srv)
    proc = subprocess.Popen([lib.CURSUSD, "-d", "-c", srv.conf], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=srv.root)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        pytest.fail("cursusd started without a certificate and without tls_self_signed")
    out = out.decode("utf-8", "replace")
    assert proc.returncode != 0, out
    cert = os.path.join(srv.root, "tls", "cert.pem")
    assert cert in out and "tls_self_signed" in out, out
    assert not os.path.exists(cert), "a certificate was made anyway"


def test_tls_self_signed_warns_at_every_start(start_server):
    srv = start_server()
    assert srv.log.count("tls_self_signed is set") == 1, srv.log[-2000:]
    srv.restart()                                         # the pair exists now
    assert srv.log.count("tls_self_signed is set") == 2, srv.log[-2000:]
    # With the option off, the existing pair is used without a word.
    srv.stop()
    _conf_without_self_signed(srv)
    srv.start()
    assert srv.log.count("tls_self_signed is set") == 2
    with connect(srv, "submission") as c:
        c.auth_plain(ALICE, PW)


# -- 8. STARTTLS before EHLO ------------------------------------------------------------------

@pytest.mark.parametrize("role", ["smtp", "submission"])
def test_starttls_before_ehlo(server, role):
    c = AuthSmtp(server.ports[role])
    try:
        c.greeting()
        c.starttls()
        mechs = lib.auth_mechanisms(c.ehlo())
        assert mechs and "PLAIN" in mechs, mechs
        c.auth_plain(ALICE, PW)
    finally:
        c.close()


@pytest.mark.skipif(not shutil.which("gsasl"), reason="gsasl not installed")
def test_gsasl_smtp_starttls(server):
    cert = os.path.join(server.root, "tls", "cert.pem")
    r = subprocess.run(["gsasl", "--smtp", "--starttls", "--connect",
                        "127.0.0.1:%d" % server.ports["submission"], "--x509-ca-file", cert,
                        "-m", "PLAIN", "-a", ALICE, "-p", PW], input="", capture_output=True,
                       text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:] + "\nlog:\n" + server.log[-1500:]
    assert "235 2.7.0" in out, out[-3000:]
