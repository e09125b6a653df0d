"""`cursus probe`: the client-side check, run against cursusd in several
configurations, against aiosmtpd (which accepts MAIL without AUTH) and against
scripted broken peers (tests/integration/peers). Each test asserts the finding
identifiers of --json and the exit status (0 nothing wrong, 1 problems, 2 could
not connect or usage), and that the password never shows in the output."""
import base64
import json
import os
import subprocess
import sys

import pytest

import cursus_testlib as lib
import testca
from testca import TestCA

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "peers"))
import broken_smtp  # noqa: E402

PW = lib.PASSWORD
ALICE = "alice@example.test"


# -- certificates ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A test CA, and leaf certificates it signed: good (localhost, 127.0.0.1),
    expired, and for another name."""
    ca = TestCA(tmp_path_factory.mktemp("certs"), "cursus probe test CA")
    t = testca.now()
    return {"ca": ca.ca,
            "good": ca.leaf("good", ["localhost"], ["127.0.0.1"]),
            "expired": ca.leaf("expired", ["localhost"], ["127.0.0.1"],
                               t - 30 * testca.DAY, t - 2 * testca.DAY),
            "othername": ca.leaf("othername", ["mail.example.test"])}


# -- daemons and the probe -------------------------------------------------------------

@pytest.fixture
def cursusd(tmp_path):
    """Like start_server, with cert=(crt, key) to install before the first start (else
    cursusd makes its self-signed one) and legacy_users=[...] added with
    --legacy-mechanisms."""
    if not (os.access(lib.CURSUSD, os.X_OK) and os.access(lib.CURSUS, os.X_OK)):
        pytest.fail("cursusd/cursus not built (CURSUS_BUILD=%s)" % lib.BUILD)
    servers = []

    def factory(cert=None, legacy_users=(), plain_users=(), **overrides):
        opts = dict(lib.AUTH_GENEROUS)
        opts.update(overrides)
        srv = lib.Server(tmp_path / ("srv%d" % len(servers)), **opts)
        servers.append(srv)
        if cert:
            os.makedirs(os.path.join(srv.root, "tls"), exist_ok=True)
            for src, dst in zip(cert, ("cert.pem", "key.pem")):
                with open(src, "rb") as f, open(os.path.join(srv.root, "tls", dst), "wb") as g:
                    g.write(f.read())
        for u in legacy_users:
            srv.admin("user", "add", u, "--legacy-mechanisms", stdin=PW + "\n")
        for u in plain_users:
            srv.admin("user", "add", u, stdin=PW + "\n")
        srv.start()
        return srv

    yield factory
    problems = lib.finish_servers(servers)
    assert not problems, "\n\n".join(problems)


class Probe:
    def __init__(self, r):
        self.rc = r.returncode
        self.stdout, self.stderr = r.stdout, r.stderr
        self.data = json.loads(r.stdout) if r.stdout.startswith("{") else None

    @property
    def ids(self):
        return {f["id"] for f in self.data["findings"]}

    @property
    def auth(self):
        return {a["mechanism"]: a["result"] for a in self.data["auth"]}

    def __repr__(self):
        return "rc=%d stdout=%s stderr=%s" % (self.rc, self.stdout[-6000:], self.stderr[-2000:])


def probe(target, *args, password=None, json_out=True, cwd=None, timeout=60):
    """Runs `cursus probe` with no configuration around: a fresh cwd, no
    CURSUS_CONFIG. The password goes on stdin, never argv."""
    env = {k: v for k, v in os.environ.items() if k != "CURSUS_CONFIG"}
    argv = [lib.CURSUS, "probe", target, "--timeout", "10"] + list(args)
    if json_out:
        argv.append("--json")
    r = subprocess.run(argv, input=(password + "\n") if password is not None else "",
                       capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=cwd or "/")
    p = Probe(r)
    if password is not None:
        secrets = [password, base64.b64encode(password.encode()).decode()]
        for u in (ALICE, broken_smtp.USER, "carol@example.test", "dave@example.test"):
            secrets.append(base64.b64encode(("\0%s\0%s" % (u, password)).encode()).decode())
        for s in secrets:
            assert s not in r.stdout and s not in r.stderr, "secret in the output: %r" % p
    return p


def sent_auth(lines):
    return [l for l, tls in lines if l.upper().startswith("AUTH")]


# -- cursusd ---------------------------------------------------------------------------

def test_default_starttls_self_signed(cursusd):
    """The default set-up: STARTTLS on submission, AUTH only after it, cursusd's own
    self-signed certificate."""
    srv = cursusd()
    p = probe("127.0.0.1:%d" % srv.ports["submission"])
    assert p.rc == 1, p
    assert {"cert-self-signed", "auth-after-starttls-only", "legacy-auth-line-absent"} <= p.ids, p
    assert not p.ids & {"auth-plaintext-in-clear", "no-starttls", "starttls-failed",
                        "mail-without-auth", "cert-expired", "cert-name-mismatch"}, p
    d = p.data
    assert d["banner"].startswith("220 "), p
    assert d["capabilities_before_tls"]["starttls"] and d["capabilities_before_tls"]["auth"] is None
    assert "PLAIN" in d["capabilities_after_tls"]["auth"]
    assert d["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and d["tls"]["name_match"]
    assert not d["tls"]["chain_verified"]
    assert d["mail_without_auth"]["accepted"] is False
    # The conversation is there, client and server lines.
    dirs = {(t["dir"], t["line"].split()[0]) for t in d["transcript"] if t["line"]}
    assert ("C", "STARTTLS") in dirs and ("S", "220") in dirs
    # With --user but an unverifiable certificate, no credential is sent.
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--user", ALICE, password=PW)
    assert p.rc == 1, p
    assert set(p.auth.values()) == {"skipped"}, p
    assert not [t for t in p.data["transcript"] if t["line"].startswith("AUTH")], p


def test_verified_certificate_all_mechanisms_work(cursusd, certs):
    srv = cursusd(cert=certs["good"])
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"], "--user", ALICE,
              password=PW)
    assert p.rc == 0, p
    assert p.data["tls"]["chain_verified"] and p.data["tls"]["name_match"], p
    assert not [f for f in p.data["findings"] if f["severity"] == "problem"], p
    assert p.auth and set(p.auth.values()) == {"works"}, p
    assert {"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"} <= set(p.auth), p
    # AUTH payloads are hidden in the transcript, in both directions.
    auth_lines = [t["line"] for t in p.data["transcript"] if t["line"].startswith("AUTH PLAIN")]
    assert auth_lines == ["AUTH PLAIN <hidden>"], p
    assert all(t["line"] in ("334 <hidden>", "<hidden>") for t in p.data["transcript"]
               if t["line"].startswith("334") or t["dir"] == "C" and t["line"].startswith("<")), p
    # The text report says the same, without a secret.
    t = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"], "--user", ALICE,
              "--mech", "PLAIN", password=PW, json_out=False)
    assert t.rc == 0, t
    assert "PLAIN" in t.stdout and "works" in t.stdout and "C: AUTH PLAIN <hidden>" in t.stdout, t
    assert "LOGIN " not in t.stdout.split("authentication as")[1], t


def test_wrong_password_fails(cursusd, certs):
    srv = cursusd(cert=certs["good"])
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"], "--user", ALICE,
              "--mech", "PLAIN", password="not the password")
    assert p.rc == 1, p
    assert p.auth == {"PLAIN": "fails"} and "auth-failed" in p.ids, p


def test_plaintext_auth_in_clear(cursusd, certs):
    srv = cursusd(cert=certs["good"],
                  listener_opts={"submission": {"auth_cleartext_mechanisms": "PLAIN"}})
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"])
    assert p.rc == 1, p
    assert "auth-plaintext-in-clear" in p.ids and "auth-after-starttls-only" not in p.ids, p
    assert p.data["capabilities_before_tls"]["auth"] == ["PLAIN"], p


def test_legacy_auth_line(cursusd, certs):
    srv = cursusd(cert=certs["good"], auth_legacy_line="yes")
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"])
    assert p.rc == 0, p
    assert "legacy-auth-line-present" in p.ids and "legacy-auth-line-absent" not in p.ids, p
    assert p.data["capabilities_after_tls"]["auth_legacy"], p


def test_implicit_tls(cursusd, certs):
    srv = cursusd(cert=certs["good"])
    p = probe("127.0.0.1:%d" % srv.ports["submissions"], "--tls", "--ca", certs["ca"],
              "--user", ALICE, "--mech", "SCRAM-SHA-256-PLUS", password=PW)
    assert p.rc == 0, p
    assert p.data["mode"] == "tls" and p.data["capabilities_before_tls"] is None, p
    assert p.data["tls"]["chain_verified"], p
    assert p.auth == {"SCRAM-SHA-256-PLUS": "works"}, p


def test_cram_md5_without_legacy_secret(cursusd, certs):
    """CRAM-MD5 offered, but carol has no password-equivalent secret: it fails while
    the others work (the Outlook story); dave has one and everything works."""
    mechs = "SCRAM-SHA-256 PLAIN LOGIN CRAM-MD5"
    srv = cursusd(cert=certs["good"], auth_mechanisms=mechs,
                  plain_users=["carol@example.test"], legacy_users=["dave@example.test"])
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"],
              "--user", "carol@example.test", password=PW)
    assert p.rc == 1, p
    assert p.auth["CRAM-MD5"] == "fails" and p.auth["PLAIN"] == "works", p
    assert "mechanism-fails-others-work" in p.ids, p
    f = [f for f in p.data["findings"] if f["id"] == "mechanism-fails-others-work"][0]
    assert "CRAM-MD5" in f["text"] and f["severity"] == "problem", p
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"],
              "--user", "dave@example.test", password=PW)
    assert p.rc == 0, p
    assert set(p.auth) == set(mechs.split()) and set(p.auth.values()) == {"works"}, p
    assert "mechanism-fails-others-work" not in p.ids, p


def test_expired_certificate(cursusd, certs):
    srv = cursusd(cert=certs["expired"])
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"], "--user", ALICE,
              "--mech", "PLAIN", password=PW)
    assert p.rc == 1, p
    assert "cert-expired" in p.ids and "cert-self-signed" not in p.ids, p
    assert p.auth == {"PLAIN": "skipped"}, p
    # --insecure goes on, and says so.
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"], "--user", ALICE,
              "--mech", "PLAIN", "--insecure", password=PW)
    assert p.rc == 1 and p.auth == {"PLAIN": "works"}, p
    f = [f for f in p.data["findings"] if f["id"] == "cert-expired"][0]
    assert "--insecure" in f["text"], p


def test_certificate_name_mismatch_and_untrusted(cursusd, certs):
    srv = cursusd(cert=certs["othername"])
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--ca", certs["ca"])
    assert p.rc == 1, p
    assert "cert-name-mismatch" in p.ids and "cert-untrusted" not in p.ids, p
    assert p.data["tls"]["chain_verified"] and not p.data["tls"]["name_match"], p
    # Without the CA the chain does not verify: untrusted (not self-signed).
    p = probe("127.0.0.1:%d" % srv.ports["submission"])
    assert p.rc == 1 and "cert-untrusted" in p.ids and "cert-self-signed" not in p.ids, p


def test_plain_mode_and_no_starttls(cursusd, certs):
    srv = cursusd(cert=certs["good"])
    p = probe("127.0.0.1:%d" % srv.ports["submission"], "--plain")
    assert p.data["mode"] == "plain" and p.data["tls"] is None, p
    assert "auth-not-offered" in p.ids, p


# -- other servers ---------------------------------------------------------------------

def test_mail_without_auth_aiosmtpd(certs):
    """aiosmtpd accepts MAIL without AUTH (cursusd never does on submission)."""
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    import ssl
    from aiosmtpd.smtp import AuthResult

    class Handler:
        received = []

        async def handle_DATA(self, server, session, envelope):
            self.received.append(envelope)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs["good"])
    handler = Handler()
    port = lib.free_port()
    ctl = aiosmtpd.Controller(handler, hostname="127.0.0.1", port=port, tls_context=ctx,
                              require_starttls=False, auth_require_tls=False,
                              authenticator=authenticator)
    ctl.start()
    try:
        p = probe("127.0.0.1:%d" % port, "--ca", certs["ca"])
    finally:
        ctl.stop()
    assert p.rc == 1, p
    assert "mail-without-auth" in p.ids and "auth-plaintext-in-clear" in p.ids, p
    assert p.data["mail_without_auth"]["accepted"], p
    sent = [t["line"] for t in p.data["transcript"] if t["dir"] == "C"]
    assert "RSET" in sent and "DATA" not in sent, p
    assert handler.received == []


@pytest.fixture
def peer(certs):
    peers = []

    def factory(behaviour, tls=True, old_tls=False):
        pr = broken_smtp.Peer(behaviour, *(certs["good"] if tls else ()), old_tls=old_tls)
        peers.append(pr)
        return pr

    yield factory
    for pr in peers:
        pr.stop()


def test_peer_330_instead_of_334(peer, certs):
    pr = peer("330")
    p = probe("127.0.0.1:%d" % pr.port, "--ca", certs["ca"], "--user", broken_smtp.USER,
              password=broken_smtp.PASSWORD)
    assert p.rc == 1, p
    assert "auth-330-not-334" in p.ids, p
    assert p.auth == {"PLAIN": "works", "LOGIN": "works"}, p
    assert sent_auth(pr.lines()) and all(tls for l, tls in pr.lines() if l.startswith("AUTH"))


def test_peer_cram_md5_fails_plain_works(peer, certs):
    pr = peer("cram-fails")
    p = probe("127.0.0.1:%d" % pr.port, "--ca", certs["ca"], "--user", broken_smtp.USER,
              password=broken_smtp.PASSWORD)
    assert p.rc == 1, p
    assert p.auth == {"CRAM-MD5": "fails", "PLAIN": "works"}, p
    assert "mechanism-fails-others-work" in p.ids, p
    # Each mechanism on a fresh connection: one EHLO before and one after TLS each,
    # plus the discovery connection.
    assert sum(1 for l, tls in pr.lines() if l.startswith("EHLO") and tls) == 3, pr.lines()


def test_peer_old_tls(peer, certs):
    """TLS 1.1: reported, and no password sent over it without --insecure."""
    pr = peer("cram-fails", old_tls=True)
    p = probe("127.0.0.1:%d" % pr.port, "--ca", certs["ca"], "--user", broken_smtp.USER,
              "--mech", "PLAIN", password=broken_smtp.PASSWORD)
    assert p.rc == 1, p
    assert "tls-old" in p.ids and p.data["tls"]["version"] in ("TLSv1", "TLSv1.1"), p
    assert p.auth == {"PLAIN": "skipped"} and sent_auth(pr.lines()) == [], p


def test_peer_no_credentials_in_clear(peer):
    """A server without STARTTLS offering AUTH in clear: the probe must not send the
    password without --allow-cleartext."""
    pr = peer("clear-auth", tls=False)
    p = probe("127.0.0.1:%d" % pr.port, "--user", broken_smtp.USER,
              password=broken_smtp.PASSWORD)
    assert p.rc == 1, p
    assert {"no-starttls", "auth-plaintext-in-clear", "auth-not-tried-cleartext"} <= p.ids, p
    assert set(p.auth.values()) == {"skipped"}, p
    assert sent_auth(pr.lines()) == [], pr.lines()
    assert not any(broken_smtp.PASSWORD in l for l, _ in pr.lines())
    # With --allow-cleartext it is sent (to this host only), and works.
    p = probe("127.0.0.1:%d" % pr.port, "--user", broken_smtp.USER, "--allow-cleartext",
              password=broken_smtp.PASSWORD)
    assert p.auth == {"PLAIN": "works", "LOGIN": "works"}, p
    assert len(sent_auth(pr.lines())) == 2, pr.lines()


# -- usage and connection failures -----------------------------------------------------

def test_could_not_connect():
    port = lib.free_port()
    p = probe("127.0.0.1:%d" % port)
    assert p.rc == 2, p
    assert p.data["connected"] is False and p.data["findings"] == [], p
    p = probe("no-such-host.invalid:587")
    assert p.rc == 2, p
    # Accepts the connection, never greets: the timeout ends it, as "could not connect".
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        r = subprocess.run([lib.CURSUS, "probe", "127.0.0.1:%d" % s.getsockname()[1],
                            "--timeout", "1", "--json"], capture_output=True, text=True,
                           timeout=30, cwd="/")
    assert r.returncode == 2 and "no greeting" in json.loads(r.stdout)["connect_error"], r


@pytest.mark.parametrize("args", [[], ["a:b:c:d", "x"], ["host:0"], ["host:99999"],
                                  ["host", "--tls", "--plain"], ["host", "--mech", "PLAIN"],
                                  ["host", "--timeout", "0"], ["host", "--bogus"]])
def test_usage_errors(args):
    r = subprocess.run([lib.CURSUS, "probe"] + args, capture_output=True, text=True,
                       timeout=30, cwd="/", input="")
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "usage" in r.stderr


def test_password_never_from_argv():
    """There is no option that takes the password: --password is not one."""
    r = subprocess.run([lib.CURSUS, "probe", "127.0.0.1:1", "--user", "x", "--password", "s"],
                       capture_output=True, text=True, timeout=30, cwd="/", input="")
    assert r.returncode == 2
