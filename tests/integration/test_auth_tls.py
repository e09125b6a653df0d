"""AUTH bound to TLS: EXTERNAL from a verified client certificate (a CA and certificates
made with the openssl CLI), and SCRAM-SHA-256-PLUS on TLS 1.2 (tls-unique) with a small
SCRAM client written here (TLS 1.3, tls-exporter, is covered by gsasl in
test_auth_clients.py)."""
import base64
import hashlib
import hmac
import os
import re
import ssl
import subprocess

import pytest

import cursus_testlib as lib
from cursus_testlib import AuthSmtp, b64, make_body, received_header

PW = lib.PASSWORD
ALICE, BOB = "alice@example.test", "bob@example.test"


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr)
    return r.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.pem; alice.pem/bob.pem/carol.pem signed by it; rogue.pem signed by another CA."""
    d = str(tmp_path_factory.mktemp("pki"))
    for ca in ("ca", "rogueca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", ca + ".key", "-out", ca + ".pem", "-subj", "/CN=Test %s" % ca,
                "-days", "2", cwd=d)
    for name, ca in (("alice", "ca"), ("bob", "ca"), ("carol", "ca"), ("rogue", "rogueca")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=%s@example.test" % name, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", cwd=d)
    return d


def fingerprint(pki, name):
    out = openssl("x509", "-in", name + ".pem", "-noout", "-fingerprint", "-sha256", cwd=pki)
    return out.strip().split("=", 1)[1]          # AB:CD:... form


def client_ctx(pki=None, name=None, maxver=None):
    ctx = lib.tls_client_context()
    if name:
        ctx.load_cert_chain(os.path.join(pki, name + ".pem"), os.path.join(pki, name + ".key"))
    if maxver:
        ctx.maximum_version = maxver
    return ctx


@pytest.fixture(scope="module")
def tsrv(tmp_path_factory, pki):
    for b in (lib.CURSUSD, lib.CURSUS):
        if not os.access(b, os.X_OK):
            pytest.fail("%s is not built" % b)
    srv = lib.Server(tmp_path_factory.mktemp("authtls"),
                     users=(ALICE, BOB, "carol@example.test"),
                     auth_client_ca=os.path.join(pki, "ca.pem"),
                     auth_mechanisms="SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS "
                                     "SCRAM-SHA-1 PLAIN LOGIN EXTERNAL",
                     **lib.AUTH_GENEROUS)
    # alice by fingerprint (colon form), bob by fingerprint (bare lower-case hex);
    # carol's certificate is not mapped.
    srv.admin("user", "cert", "add", ALICE, fingerprint(pki, "alice"))
    srv.admin("user", "cert", "add", BOB, fingerprint(pki, "bob").replace(":", "").lower())
    srv.start()
    yield srv
    problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def srv(tsrv):
    if not tsrv.running():
        tsrv.start()
    yield tsrv
    assert tsrv.running(), "cursusd died; log tail:\n%s" % tsrv.log[-4000:]


def connect(srv, ctx, role="submissions"):
    c = AuthSmtp(srv.ports[role], tls=(role == "submissions"), context=ctx)
    c.greeting()
    c.ehlo()
    if role != "submissions":
        c.starttls()
    return c


# -- EXTERNAL -----------------------------------------------------------------------------

def test_external_not_offered_without_certificate(srv):
    with connect(srv, client_ctx()) as c:
        mechs = lib.auth_mechanisms(c.ehlo())
        assert mechs and "EXTERNAL" not in mechs, mechs
        r = c.cmd("AUTH EXTERNAL =")
        assert (r.code, r.enhanced) == (504, "5.5.4"), r
        c.auth_plain(ALICE, PW)


@pytest.mark.parametrize("role", ["submissions", "submission"])
def test_external_mapped_by_fingerprint(srv, pki, role, token):
    with connect(srv, client_ctx(pki, "alice"), role) as c:
        mechs = lib.auth_mechanisms(c.ehlo())
        assert "EXTERNAL" in mechs, mechs
        c.expect("AUTH EXTERNAL =", 235, "2.7.0")
        c.expect("MAIL FROM:<%s>" % BOB, 553, "5.7.1")
        c.send_message(ALICE, [BOB], make_body(token))
    rec = received_header(srv.wait_message(BOB, token))
    assert " with ESMTPSA " in rec, rec
    assert re.search(r' auth session=\S+ .*mechanism=EXTERNAL authid="alice@example.test" .*'
                     r'result=ok', srv.log), srv.log[-2000:]


def test_external_bare_hex_mapping_and_no_initial_response(srv, pki):
    with connect(srv, client_ctx(pki, "bob")) as c:
        r = c.expect("AUTH EXTERNAL", 334)
        c.expect("", 235, "2.7.0")
        c.expect("MAIL FROM:<%s>" % BOB, 250)


def test_external_authzid(srv, pki):
    with connect(srv, client_ctx(pki, "alice")) as c:
        # alice's certificate may name alice herself, not bob.
        c.expect("AUTH EXTERNAL " + b64(BOB), 535, "5.7.8")
        c.expect("AUTH EXTERNAL " + b64(ALICE), 235, "2.7.0")


def test_external_unmapped_certificate(srv, pki):
    with connect(srv, client_ctx(pki, "carol")) as c:
        assert "EXTERNAL" in lib.auth_mechanisms(c.ehlo())
        c.expect("AUTH EXTERNAL =", 535, "5.7.8")
        # Still free to log in with a password.
        c.auth_plain("carol@example.test", PW)


def test_external_untrusted_ca(srv, pki):
    """A certificate from an unknown CA never authenticates: the handshake goes on (a
    client certificate is optional), EXTERNAL is not offered, and is refused as unknown."""
    with connect(srv, client_ctx(pki, "rogue")) as c:
        mechs = lib.auth_mechanisms(c.ehlo())
        assert mechs == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                         "SCRAM-SHA-1", "PLAIN", "LOGIN"], mechs
        c.expect("AUTH EXTERNAL =", 504, "5.5.4")
        assert "EXTERNAL" not in mechs, mechs


def test_external_without_client_ca_configured(start_server, pki):
    srv = start_server(auth_mechanisms="PLAIN EXTERNAL")
    with connect(srv, client_ctx(pki, "alice")) as c:
        mechs = lib.auth_mechanisms(c.ehlo())
        assert mechs == ["PLAIN"], mechs
        r = c.cmd("AUTH EXTERNAL =")
        assert (r.code, r.enhanced) == (504, "5.5.4"), r


# -- SCRAM with channel binding, written out -----------------------------------------------

def _hmac(key, msg, h):
    return hmac.new(key, msg, h).digest()


def scram(c, user, password, mech="SCRAM-SHA-256-PLUS", cb_name="tls-unique", cb_data=None,
          gs2_flag=None):
    """One SCRAM exchange (RFC 5802/7677) over the raw client c; returns the final reply.
    gs2_flag: "p" (binding, default for -PLUS), "n" or "y"."""
    h = hashlib.sha1 if mech.startswith("SCRAM-SHA-1") else hashlib.sha256
    hname = "sha1" if h is hashlib.sha1 else "sha256"
    flag = gs2_flag or ("p" if mech.endswith("-PLUS") else "n")
    gs2 = ("p=%s,," % cb_name) if flag == "p" else (flag + ",,")
    nonce = b64(os.urandom(18))
    first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
    r = c.cmd("AUTH %s %s" % (mech, b64(gs2 + first_bare)))
    if r.code != 334:
        return r
    server_first = base64.b64decode(r.lines[0]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert attrs["r"].startswith(nonce), server_first
    salted = hashlib.pbkdf2_hmac(hname, password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = _hmac(salted, b"Client Key", h)
    stored_key = h(client_key).digest()
    cbind = gs2.encode() + (cb_data if flag == "p" else b"")
    final_wo_proof = "c=%s,r=%s" % (b64(cbind), attrs["r"])
    auth_msg = ("%s,%s,%s" % (first_bare, server_first, final_wo_proof)).encode()
    sig = _hmac(stored_key, auth_msg, h)
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    r = c.cmd(b64(final_wo_proof + ",p=" + base64.b64encode(proof).decode()))
    if r.code == 334:
        server_final = base64.b64decode(r.lines[0]).decode()
        server_key = _hmac(salted, b"Server Key", h)
        want = base64.b64encode(_hmac(server_key, auth_msg, h)).decode()
        assert server_final == "v=" + want, "server signature wrong: %r" % server_final
        r = c.cmd("")
    return r


def tls12(srv, role="submissions"):
    c = connect(srv, client_ctx(maxver=ssl.TLSVersion.TLSv1_2), role)
    assert c.sock.version() == "TLSv1.2", c.sock.version()
    return c


@pytest.mark.parametrize("role", ["submissions", "submission"])
@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_scram_plus_tls12_tls_unique(srv, role, mech, token):
    with tls12(srv, role) as c:
        mechs = lib.auth_mechanisms(c.ehlo())
        assert mech in mechs, mechs
        cb = c.sock.get_channel_binding("tls-unique")
        assert cb
        r = scram(c, ALICE, PW, mech, "tls-unique", cb)
        assert r.code == 235 and r.enhanced == "2.7.0", r
        c.send_message(ALICE, [BOB], make_body(token))
    rec = received_header(srv.wait_message(BOB, token))
    assert " with ESMTPSA " in rec and "TLSv1.2" in rec, rec


def test_scram_plain_tls12(srv):
    with tls12(srv) as c:
        r = scram(c, ALICE, PW, "SCRAM-SHA-256")
        assert r.code == 235, r


def test_scram_plus_wrong_binding(srv):
    with tls12(srv) as c:
        cb = c.sock.get_channel_binding("tls-unique")
        bad = bytes([cb[0] ^ 1]) + cb[1:]
        r = scram(c, ALICE, PW, "SCRAM-SHA-256-PLUS", "tls-unique", bad)
        assert r.code == 535 and r.enhanced == "5.7.8", r
        # A binding type that does not exist on this connection.
        r = scram(c, ALICE, PW, "SCRAM-SHA-256-PLUS", "tls-exporter", cb)
        assert r.code == 535, r
        r = scram(c, ALICE, PW, "SCRAM-SHA-256-PLUS", "tls-unique", cb)
        assert r.code == 235, r


def test_scram_plus_tls13_needs_exporter(srv):
    """Python cannot compute tls-exporter; tls-unique is undefined on TLS 1.3 and must
    not be accepted there (gsasl covers the working tls-exporter case)."""
    with connect(srv, client_ctx()) as c:
        assert c.sock.version() == "TLSv1.3"
        r = scram(c, ALICE, PW, "SCRAM-SHA-256-PLUS", "tls-unique", b"\0" * 12)
        assert r.code == 535, r


def test_scram_downgrade_flag_y(srv):
    """RFC 5802 6: a client that could bind says "y" when it thinks the server cannot;
    the server offers -PLUS, so it MUST fail that exchange (a downgrade)."""
    with tls12(srv) as c:
        r = scram(c, ALICE, PW, "SCRAM-SHA-256", gs2_flag="y")
        assert r.code == 535, r
        r = scram(c, ALICE, PW, "SCRAM-SHA-256", gs2_flag="n")
        assert r.code == 235, r


def test_scram_wrong_password(srv):
    with tls12(srv) as c:
        cb = c.sock.get_channel_binding("tls-unique")
        r = scram(c, ALICE, "wrong wrong", "SCRAM-SHA-256-PLUS", "tls-unique", cb)
        assert r.code == 535 and r.enhanced == "5.7.8", r


def test_zz_no_secret_in_log(srv):
    log = srv.log
    for secret in (PW, b64(PW), "wrong wrong", lib.plain_response(ALICE, PW),
                   lib.plain_response("carol@example.test", PW)):
        assert secret not in log, "a secret or payload in the log: %r" % secret
    assert re.search(r' auth session=\S+ client=127\.0\.0\.1 listener=submissions '
                     r'mechanism=SCRAM-SHA-256-PLUS authid="alice@example.test" .*result=ok',
                     log), log[-3000:]


def test_external_mapped_by_subject(srv, pki):
    """The subject in RFC 2253 form ("CN=...,O=..."), as `cursus user cert add` documents."""
    carol = "carol@example.test"
    srv.admin("user", "cert", "add", carol, "CN=%s" % carol)
    try:
        with connect(srv, client_ctx(pki, "carol")) as c:
            c.expect("AUTH EXTERNAL =", 235, "2.7.0")
        # the old one-line form is not what is compared
        srv.admin("user", "cert", "del", carol, "CN=%s" % carol)
        srv.admin("user", "cert", "add", carol, "/CN=%s" % carol)
        with connect(srv, client_ctx(pki, "carol")) as c:
            c.expect("AUTH EXTERNAL =", 535, "5.7.8")
    finally:
        srv.admin("user", "cert", "del", carol, "/CN=%s" % carol, check=False)
        srv.admin("user", "cert", "del", carol, "CN=%s" % carol, check=False)
