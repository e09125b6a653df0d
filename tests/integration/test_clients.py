"""Real clients against the daemon: Python's smtplib, swaks, curl."""
import email
import re
import shutil
import smtplib
import subprocess

import pytest

import cursus_testlib as lib
from cursus_testlib import make_body, received_header


def run(cmd, timeout=60, stdin=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin)


needs_swaks = pytest.mark.skipif(not shutil.which("swaks"), reason="swaks not installed")
needs_curl = pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")


# -- smtplib ----------------------------------------------------------------------------------

def test_smtplib_plain(server, token):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], "client.test", timeout=10) as s:
        refused = s.sendmail("s@example.test", ["alice@example.test", "bob@example.test"],
                             make_body(token))
        assert refused == {}
    m = server.wait_message("alice@example.test", token)
    server.wait_message("bob@example.test", token)
    assert " with ESMTP " in received_header(m)


def test_smtplib_partial_refusal(server, token):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        refused = s.sendmail("s@example.test", ["alice@example.test", "nobody@example.test",
                                                "x@other.test"], make_body(token))
        assert refused["nobody@example.test"][0] == 550
        assert refused["nobody@example.test"][1].startswith(b"5.1.1")
        assert refused["x@other.test"][0] == 554
        assert refused["x@other.test"][1].startswith(b"5.7.1")
    server.wait_message("alice@example.test", token)


def test_smtplib_all_refused(server, token):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("s@example.test", ["nobody@example.test"], make_body(token))
        assert s.noop()[0] == 250


def test_smtplib_starttls(server, token):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        s.starttls(context=lib.tls_client_context())
        s.sendmail("s@example.test", ["alice@example.test"], make_body(token))
        version, cipher = s.sock.version(), s.sock.cipher()[0]
    rec = received_header(server.wait_message("alice@example.test", token))
    assert " with ESMTPS " in rec and version in rec and cipher in rec, rec


def test_smtplib_send_message_smtputf8(server, token):
    msg = email.message.EmailMessage()
    msg["From"] = "j\u00f6rg@example.test"
    msg["To"] = "alice@example.test"
    msg["Subject"] = "gr\u00fc\u00dfe " + token
    msg["Message-ID"] = "<%s@test.example>" % token
    msg.set_content("\u00e9t\u00e9 \u2014 caf\u00e9\n")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        s.send_message(msg, "j\u00f6rg@example.test", ["alice@example.test"])
    m = server.wait_message("alice@example.test", token)
    assert "j\u00f6rg@example.test".encode() in m


def test_smtplib_submission_needs_auth(server, token):
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as s:
        s.starttls(context=lib.tls_client_context())
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("alice@example.test", ["bob@example.test"], make_body(token))
        assert e.value.smtp_code == 530
        assert e.value.smtp_error.startswith(b"5.7.0")


def test_smtplib_big_message(server, token):
    """A message of a few MB through the default limits, byte-exact."""
    line = "%s " % token + "0123456789abcdef" * 6 + "\r\n"
    body = make_body(token, text=line * 30000)
    assert len(body) > 3 * 1024 * 1024
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=60) as s:
        s.sendmail("s@example.test", ["bob@example.test"], body)
    m = server.wait_message("bob@example.test", token + "@", timeout=30)
    assert m.endswith(body.encode())


# -- swaks ----------------------------------------------------------------------------------

def swaks(server, *args, port="smtp"):
    return run(["swaks", "--server", "127.0.0.1:%d" % server.ports[port], "--helo", "swaks.test",
                "--timeout", "20"] + list(args))


@needs_swaks
def test_swaks_plain(server, token):
    r = swaks(server, "--to", "alice@example.test", "--from", "s@example.test",
              "--header", "Message-ID: <%s@test.example>" % token)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as", r.stdout), r.stdout
    rec = received_header(server.wait_message("alice@example.test", token))
    assert " with ESMTP " in rec and "from swaks.test " in rec, rec


@needs_swaks
def test_swaks_starttls(server, token):
    r = swaks(server, "--tls", "--to", "bob@example.test", "--from", "s@example.test",
              "--header", "Message-ID: <%s@test.example>" % token)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout, r.stdout
    rec = received_header(server.wait_message("bob@example.test", token))
    assert " with ESMTPS " in rec and "TLSv1." in rec, rec


@needs_swaks
def test_swaks_pipelining(server, token):
    r = swaks(server, "--pipeline", "--to", "alice@example.test", "--from", "s@example.test",
              "--header", "Message-ID: <%s@test.example>" % token)
    assert r.returncode == 0, r.stdout + r.stderr
    server.wait_message("alice@example.test", token)


@needs_swaks
def test_swaks_unknown_and_relay(server, token):
    r = swaks(server, "--to", "nobody@example.test", "--from", "s@example.test")
    assert r.returncode != 0
    assert re.search(r"<\*\* 550 5\.1\.1", r.stdout), r.stdout
    r = swaks(server, "--to", "someone@other.test", "--from", "s@example.test")
    assert r.returncode != 0
    assert re.search(r"<\*\* 554 5\.7\.1", r.stdout), r.stdout


@needs_swaks
def test_swaks_implicit_tls_submissions(server, token):
    r = swaks(server, "--tlsc", "--to", "bob@example.test", "--from", "alice@example.test",
              port="submissions")
    assert "TLS started" in r.stdout, r.stdout + r.stderr
    assert re.search(r"<(\*\*|~\*) 530 5\.7\.0", r.stdout), r.stdout
    assert r.returncode != 0


@needs_swaks
def test_swaks_submission_starttls_needs_auth(server):
    r = swaks(server, "--tls", "--to", "bob@example.test", "--from", "alice@example.test",
              port="submission")
    assert re.search(r"<(\*\*|~\*) 530 5\.7\.0", r.stdout), r.stdout
    assert r.returncode != 0


# -- curl -----------------------------------------------------------------------------------

def curl(server, url, token, rcpts, *extra, tmp_path):
    f = tmp_path / "msg.eml"
    f.write_bytes(make_body(token).encode())
    return run(["curl", "-sS", "-v", "--max-time", "30", url, "--mail-from", "s@example.test"]
               + sum([["--mail-rcpt", r] for r in rcpts], []) + ["-T", str(f)] + list(extra))


@needs_curl
def test_curl_plain(server, token, tmp_path):
    r = curl(server, "smtp://127.0.0.1:%d" % server.ports["smtp"], token, ["alice@example.test"],
             tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = received_header(server.wait_message("alice@example.test", token))
    assert " with ESMTP " in rec, rec


@needs_curl
def test_curl_starttls_required(server, token, tmp_path):
    r = curl(server, "smtp://127.0.0.1:%d" % server.ports["smtp"], token,
             ["alice@example.test", "bob@example.test"], "--ssl-reqd", "-k", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = received_header(server.wait_message("alice@example.test", token))
    assert " with ESMTPS " in rec, rec
    server.wait_message("bob@example.test", token)


@needs_curl
def test_curl_smtps_submissions_needs_auth(server, token, tmp_path):
    r = curl(server, "smtps://127.0.0.1:%d" % server.ports["submissions"], token,
             ["alice@example.test"], "-k", tmp_path=tmp_path)
    assert r.returncode != 0
    assert "530 5.7.0" in r.stderr, r.stderr


@needs_curl
def test_curl_relay_refused(server, token, tmp_path):
    r = curl(server, "smtp://127.0.0.1:%d" % server.ports["smtp"], token, ["x@other.test"],
             tmp_path=tmp_path)
    assert r.returncode != 0
    assert "554 5.7.1" in r.stderr, r.stderr
