"""SMTP AUTH with real clients over STARTTLS (587) and implicit TLS (465): swaks, curl,
msmtp, gsasl --smtp and Python's smtplib, every mechanism each supports. After each
successful authentication a message is delivered (Maildir) or queued (other domains).
Secrets go to the clients through the environment, stdin or a file where the client
allows it; only gsasl (-p) takes it on its command line."""
import os
import re
import shutil
import smtplib
import subprocess

import pytest

import cursus_testlib as lib
from cursus_testlib import b64, make_body, received_header

PW = lib.PASSWORD
ALICE, BOB = "alice@example.test", "bob@example.test"
ALL_MECHS = ("SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 PLAIN LOGIN "
             "CRAM-MD5 DIGEST-MD5")


def needs(tool):
    return pytest.mark.skipif(not shutil.which(tool), reason="%s not installed" % tool)


@pytest.fixture(scope="module")
def csrv(tmp_path_factory):
    for b in (lib.CURSUSD, lib.CURSUS):
        if not os.access(b, os.X_OK):
            pytest.fail("%s is not built" % b)
    srv = lib.Server(tmp_path_factory.mktemp("authclients"), auth_mechanisms=ALL_MECHS,
                     **lib.AUTH_GENEROUS)
    # CRAM-MD5 and DIGEST-MD5 need the password-equivalent secret: only for alice.
    srv.admin("user", "passwd", ALICE, "--legacy-mechanisms", stdin=PW + "\n")
    srv.start()
    yield srv
    problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def srv(csrv):
    if not csrv.running():
        csrv.start()
    yield csrv
    assert csrv.running(), "cursusd died; log tail:\n%s" % csrv.log[-4000:]


def run(cmd, timeout=30, stdin=None, env=None, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin,
                          env=e, cwd=cwd)


def auth_ok_logged(srv, mech, user=ALICE, count=1):
    pat = re.compile(r' auth session=\S+ .*mechanism=%s authid="%s" .*result=ok' %
                     (re.escape(mech), re.escape(user)))
    return len(pat.findall(srv.log)) >= count


def ok_count(srv, mech):
    return len(re.findall(r' auth session=\S+ .*mechanism=%s authid=\S+ .*result=ok' %
                          re.escape(mech), srv.log))


def check_delivered(srv, token, mech):
    m = srv.wait_message(BOB, token)
    rec = received_header(m)
    assert " with ESMTPSA " in rec, rec
    assert auth_ok_logged(srv, mech), srv.log[-2000:]


TLS_MODES = [("submission", True), ("submissions", False)]   # (listener, starttls)


# -- smtplib ------------------------------------------------------------------------------

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
@pytest.mark.parametrize("role,starttls", TLS_MODES)
def test_smtplib(srv, mech, role, starttls, token):
    port = srv.ports[role]
    if starttls:
        s = smtplib.SMTP("127.0.0.1", port, "client.test", timeout=10)
        s.starttls(context=lib.tls_client_context())
    else:
        s = smtplib.SMTP_SSL("127.0.0.1", port, "client.test", timeout=10,
                             context=lib.tls_client_context())
    with s:
        s.ehlo()
        assert mech in s.esmtp_features["auth"].split(), s.esmtp_features
        s.user, s.password = ALICE, PW
        fn = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
        code, text = s.auth(mech, fn, initial_response_ok=(mech != "LOGIN"))
        assert code == 235 and text.startswith(b"2.7.0"), (code, text)
        assert s.sendmail(ALICE, [BOB], make_body(token)) == {}
    check_delivered(srv, token, mech)


def test_smtplib_login_picks_strongest_it_knows(srv, token):
    with smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10) as s:
        s.starttls(context=lib.tls_client_context())
        code, _ = s.login(ALICE, PW)
        assert code == 235
        s.sendmail(ALICE, [BOB], make_body(token))
    srv.wait_message(BOB, token)


def test_smtplib_wrong_password(srv):
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], timeout=10,
                          context=lib.tls_client_context()) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "not the password")
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")


def test_smtplib_cram_md5_user_without_legacy_secret(srv):
    """bob was added without --legacy-mechanisms: CRAM-MD5 cannot work for him."""
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], timeout=10,
                          context=lib.tls_client_context()) as s:
        s.ehlo()
        s.user, s.password = BOB, PW
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth("CRAM-MD5", s.auth_cram_md5)
        assert e.value.smtp_code == 535


# -- swaks ---------------------------------------------------------------------------------

@needs("swaks")
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
@pytest.mark.parametrize("role,starttls", TLS_MODES)
def test_swaks(srv, mech, role, starttls, token):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(srv.ports[role]),
           "--tls" if starttls else "--tls-on-connect", "--helo", "client.test",
           "--auth", mech, "--auth-user", ALICE, "--from", ALICE, "--to", BOB,
           "--header", "Subject: %s" % token, "--body", "swaks body %s" % token,
           "--timeout", "20"]
    # The password through the environment, not argv.
    r = run(cmd, env={"SWAKS_OPT_auth_password": PW})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert re.search(r"<~\s+235 2\.7\.0", r.stdout), r.stdout[-3000:]
    check_delivered(srv, token, mech)


# -- curl -----------------------------------------------------------------------------------

def curl(srv, role, starttls, mech, token, tmp_path, rcpt=BOB, password=PW):
    msg = tmp_path / ("msg-%s.eml" % mech)
    msg.write_bytes(make_body(token).encode())
    scheme = "smtp" if starttls else "smtps"
    url = "%s://127.0.0.1:%d/client.test" % (scheme, srv.ports[role])
    cmd = ["curl", "-sS", "-v", "--max-time", "20", url, "-k", "--mail-from", ALICE,
           "--mail-rcpt", rcpt, "--upload-file", str(msg), "--login-options", "AUTH=" + mech,
           "-K", "-"]
    if starttls:
        cmd.append("--ssl-reqd")
    # The credentials as a config file on stdin, not argv.
    return run(cmd, stdin='user = "%s:%s"\n' % (ALICE, password))


@needs("curl")
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"])
@pytest.mark.parametrize("role,starttls", TLS_MODES)
def test_curl(srv, mech, role, starttls, token, tmp_path):
    r = curl(srv, role, starttls, mech, token, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"< 235 2\.7\.0", r.stderr), r.stderr[-3000:]
    check_delivered(srv, token, mech)


@needs("curl")
def test_curl_relay_queued(srv, token, tmp_path):
    """An authenticated user relays to another domain: the message waits in the queue."""
    before = set(srv.queue_files())
    r = curl(srv, "submissions", False, "PLAIN", token, tmp_path, rcpt="someone@other.test")
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"queued as (\S+)", r.stderr)
    assert m, r.stderr[-2000:]
    qid = m.group(1)
    assert qid in set(srv.queue_files()) - before, (qid, srv.queue_files())
    with open(os.path.join(srv.queue_dir, "msg", qid), "rb") as f:
        assert token.encode() in f.read()


@needs("curl")
def test_curl_wrong_password(srv, token, tmp_path):
    r = curl(srv, "submissions", False, "PLAIN", token, tmp_path, password="nope nope")
    assert r.returncode != 0
    assert re.search(r"< 535 5\.7\.8", r.stderr), r.stderr[-3000:]


# -- msmtp ----------------------------------------------------------------------------------

@needs("msmtp")
@pytest.mark.parametrize("mech", ["plain", "login", "scram-sha-256", "scram-sha-1", "cram-md5"])
@pytest.mark.parametrize("role,starttls", TLS_MODES)
def test_msmtp(srv, mech, role, starttls, token, tmp_path):
    rc = tmp_path / "msmtprc"
    rc.write_text("\n".join([
        "account default",
        "host 127.0.0.1",
        "port %d" % srv.ports[role],
        "domain client.test",
        "from %s" % ALICE,
        "tls on",
        "tls_starttls %s" % ("on" if starttls else "off"),
        "tls_certcheck off",
        "auth %s" % mech,
        "user %s" % ALICE,
        "passwordeval \"echo '%s'\"" % PW,
        "timeout 20",
        "",
    ]))
    os.chmod(rc, 0o600)
    r = run(["msmtp", "-C", str(rc), "-a", "default", "-v", BOB], stdin=make_body(token))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    check_delivered(srv, token, mech.upper())


# -- gsasl --smtp ---------------------------------------------------------------------------

def gsasl(srv, mech, password=PW, extra=()):
    cert = os.path.join(srv.root, "tls", "cert.pem")
    cmd = ["gsasl", "--smtp", "--connect", "127.0.0.1:%d" % srv.ports["submission"],
           "--x509-ca-file", cert, "-m", mech, "-a", ALICE, "-p", password] + list(extra)
    if mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        # gsasl's client refuses plain SCRAM when it could bind to the channel.
        cmd.append("--no-cb")
    if mech == "DIGEST-MD5":
        cmd += ["--service", "smtp", "--hostname", "localhost", "--realm", "example.test",
                "--quality-of-protection", "qop-auth"]
    return run(cmd, stdin="")


@needs("gsasl")
@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                                  "SCRAM-SHA-1", "DIGEST-MD5", "CRAM-MD5", "PLAIN", "LOGIN"])
def test_gsasl(srv, mech):
    """gsasl only authenticates (it cannot send a message): 235 and the log line."""
    before = ok_count(srv, mech)
    r = gsasl(srv, mech)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:] + "\nlog:\n" + srv.log[-1500:]
    assert "235 2.7.0" in out, out[-3000:]
    assert lib.wait_until(lambda: ok_count(srv, mech) > before, 5), srv.log[-2000:]
    if mech.endswith("-PLUS"):
        # The binding checked is tls-exporter: gsasl (GnuTLS) speaks TLS 1.3.
        sess = re.findall(r' auth session=(\S+) .*mechanism=%s .*result=ok' % re.escape(mech),
                          srv.log)[-1]
        assert "smtp session=%s event=tls version=TLSv1.3" % sess in srv.log, srv.log[-2000:]


@needs("gsasl")
@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"])
def test_gsasl_wrong_password(srv, mech):
    r = gsasl(srv, mech, password="definitely wrong")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "535 5.7.8" in out, out[-3000:]


# -- the log ---------------------------------------------------------------------------------

def test_zz_no_secret_in_log(srv):
    log = srv.log
    for s in (PW, b64(PW), b64("\0%s\0%s" % (ALICE, PW)), "definitely wrong", "nope nope",
              "not the password", b64("definitely wrong"), b64("nope nope")):
        assert s not in log, "a secret or payload in the log: %r" % s
