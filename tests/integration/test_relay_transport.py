"""The SMTP transport (src/relay) against real next hops on 127.0.0.x: Postfix's
smtp-sink (PIPELINING, DSN, rejections, 421, hangups) and aiosmtpd sinks
(peers/relay_sink.py: records envelopes, parameters, AUTH attempts and TLS state).
Each test runs build/tests/relay-one, which delivers one message (or two with
--twice) and prints each recipient's result line and the session facts."""
import datetime
import json
import os
import socket
import subprocess
import sys
import time

import pytest

import cursus_testlib as lib
from relaypeers import PEERS, PY, SINK_PW, certs, sinks  # noqa: F401 (fixtures)

RELAY_ONE = os.path.join(lib.BUILD, "tests", "relay-one")
MSG = (b"Subject: relay test\r\nFrom: a@example.org\r\n\r\nhello\r\n"
       b".leading dot\r\n..two dots\r\n.\r\nend\r\n")


@pytest.fixture
def msgfile(tmp_path):
    p = tmp_path / "msg.eml"
    p.write_bytes(MSG)
    return str(p)


def relay(route, msgfile, *args, to=("x@dest.example",), password=None, timeout=30):
    cmd = [RELAY_ONE, "--route", route, "--timeout", "5"]
    for t in to:
        cmd += ["--to", t]
    cmd += list(args) + [msgfile]
    r = subprocess.run(cmd, input=(password + "\n").encode() if password else b"",
                       capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert SINK_PW not in out and SINK_PW not in r.stderr.decode()
    return out.splitlines()


def rcpts(lines, no=1):
    return [l.split(" ", 3)[3] for l in lines if l.startswith("%d rcpt " % no)]


def facts(lines, no=1):
    line = [l for l in lines if l.startswith("%d remote_host=" % no)][0]
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def tls_opts(certs, which):
    return ["--cert", certs[which][0], "--key", certs[which][1]]


# -- delivery --------------------------------------------------------------------------

def test_pipelined_delivery_with_smtp_sink(sinks, msgfile):
    port = sinks.smtp_sink("127.0.0.41")
    out = relay("relay 127.0.0.41 %d 1 -" % port, msgfile, "--tls", "none",
                "--notify", "6", "--ret", "hdrs", "--envid", "id+1",
                to=("a@dest.example", "b@dest.example"))
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 Ok", "delivered 2.0.0 250 2.0.0 Ok"]
    f = facts(out)
    assert (f["remote_addr"], f["tls"], f["dsn_passed"], f["dest_ok"]) == ("127.0.0.41", "-", "1", "1")


def test_dot_stuffing_envelope_and_per_rcpt_results(sinks, msgfile):
    port, events = sinks.aio("127.0.0.42", "--reject-rcpt", "bad@dest.example")
    out = relay("relay 127.0.0.42 %d 1 -" % port, msgfile, "--tls", "none",
                "--from", "s@example.org", to=("good@dest.example", "bad@dest.example"))
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 queued as 1",
                          "permfail 5.1.1 550 5.1.1 <bad@dest.example>: no such user"]
    ev = events()
    mail = [e for e in ev if e["ev"] == "mail"][0]
    assert mail["addr"] == "s@example.org"
    # No SIZE offered (no limit set): no SIZE= sent.
    assert [e["arg"] for e in ev if e["ev"] == "mail_raw"] == ["FROM:<s@example.org>"]
    data = [e for e in ev if e["ev"] == "data"][0]
    # aiosmtpd undoes the stuffing: the body arrives exactly as it was.
    assert data["content"] == MSG.decode()
    assert data["rcpts"] == ["good@dest.example"]


@pytest.mark.parametrize("opt,expect", [
    (("-r", "MAIL"), "tempfail 4.3.0 450 4.3.0 Error: command failed"),
    (("-f", "MAIL"), "permfail 5.3.0 500 5.3.0 Error: command failed"),
    (("-f", "RCPT"), "permfail 5.3.0 500 5.3.0 Error: command failed"),
    (("-r", "DATA"), "tempfail 4.3.0 450 4.3.0 Error: command failed"),
    (("-f", "."), "permfail 5.3.0 500 5.3.0 Error: command failed"),
    (("-r", "."), "tempfail 4.3.0 450 4.3.0 Error: command failed"),
])
def test_rejections_at_each_stage(sinks, msgfile, opt, expect):
    port = sinks.smtp_sink("127.0.0.43", *opt)
    out = relay("relay 127.0.0.43 %d 1 -" % port, msgfile, "--tls", "none",
                to=("a@dest.example", "b@dest.example"))
    assert rcpts(out) == [expect, expect]
    assert facts(out)["dest_ok"] == "1"


def test_refused_connection(sinks, msgfile):
    port = lib.free_port()
    out = relay("relay 127.0.0.44 %d 1 -" % port, msgfile, "--tls", "none")
    assert rcpts(out) == ["tempfail 4.4.1 127.0.0.44[127.0.0.44]: connect failed: "
                          "Connection refused"]
    assert facts(out)["dest_ok"] == "0"


def test_421_greeting(sinks, msgfile):
    port = sinks.smtp_sink("127.0.0.45", "-Q", "CONNECT")
    out = relay("relay 127.0.0.45 %d 1 -" % port, msgfile, "--tls", "none")
    [r] = rcpts(out)
    assert r.startswith("tempfail 4.0.0 127.0.0.45[127.0.0.45]: greeting: 421 ")
    assert facts(out)["dest_ok"] == "0"


def test_hangup_after_dot_defers(sinks, msgfile):
    port = sinks.smtp_sink("127.0.0.46", "-q", ".")
    out = relay("relay 127.0.0.46 %d 1 -" % port, msgfile, "--tls", "none")
    [r] = rcpts(out)
    assert r.startswith("tempfail 4.4.2 127.0.0.46[127.0.0.46]: connection lost during "
                        "the message")


def test_helo_fallback_and_8bit_refused(sinks, msgfile):
    port = sinks.smtp_sink("127.0.0.47", "-e")
    out = relay("relay 127.0.0.47 %d 1 -" % port, msgfile, "--tls", "none")
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 Ok"]
    out = relay("relay 127.0.0.47 %d 1 -" % port, msgfile, "--tls", "none", "--8bit")
    assert rcpts(out) == ["permfail 5.6.3 next hop cannot take 8-bit: 127.0.0.47[127.0.0.47] "
                          "does not offer 8BITMIME"]


def test_8bitmime_passed_when_offered_refused_when_not(sinks, msgfile):
    port, events = sinks.aio("127.0.0.48")
    out = relay("relay 127.0.0.48 %d 1 -" % port, msgfile, "--tls", "none", "--8bit")
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 queued as 1"]
    assert [e["arg"] for e in events() if e["ev"] == "mail_raw"] == [
        "FROM:<sender@example.org> BODY=8BITMIME"]
    port2, events2 = sinks.aio("127.0.0.49", "--no-8bit")
    out = relay("relay 127.0.0.49 %d 1 -" % port2, msgfile, "--tls", "none", "--8bit")
    assert rcpts(out) == ["permfail 5.6.3 next hop cannot take 8-bit: 127.0.0.49[127.0.0.49] "
                          "does not offer 8BITMIME"]
    assert [e for e in events2() if e["ev"] in ("mail", "mail_raw")] == []


def test_size_passed_when_offered(sinks, msgfile):
    port, events = sinks.aio("127.0.0.55", "--size", "100000")
    out = relay("relay 127.0.0.55 %d 1 -" % port, msgfile, "--tls", "none")
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 queued as 1"]
    assert [e["arg"] for e in events() if e["ev"] == "mail_raw"] == [
        "FROM:<sender@example.org> SIZE=%d" % len(MSG)]


def test_size_limit_bounces_without_sending(sinks, msgfile):
    port, events = sinks.aio("127.0.0.50", "--size", "20")
    out = relay("relay 127.0.0.50 %d 1 -" % port, msgfile, "--tls", "none")
    assert rcpts(out) == ["permfail 5.3.4 message size %d exceeds the limit of "
                          "127.0.0.50[127.0.0.50] (20)" % len(MSG)]
    assert [e for e in events() if e["ev"] in ("mail", "mail_raw")] == []


def test_too_many_received_headers(sinks, tmp_path):
    p = tmp_path / "loop.eml"
    p.write_bytes(b"Received: from a\r\nReceived: from b\r\nReceived: from c\r\n\r\nbody\r\n")
    port = lib.free_port()  # never connected to
    out = relay("relay 127.0.0.51 %d 1 -" % port, str(p), "--max-received", "2")
    assert rcpts(out) == ["permfail 5.4.6 too many hops (3 Received: header fields): a mail loop?"]


def test_connection_reuse(sinks, msgfile):
    port, events = sinks.aio("127.0.0.52")
    out = relay("relay 127.0.0.52 %d 1 -" % port, msgfile, "--tls", "none", "--twice")
    assert rcpts(out, 1) == ["delivered 2.0.0 250 2.0.0 queued as 1"]
    assert rcpts(out, 2) == ["delivered 2.0.0 250 2.0.0 queued as 1"]
    ev = events()
    assert [e["ev"] for e in ev].count("connect") == 1
    assert [e["ev"] for e in ev].count("data") == 2


# -- TLS -------------------------------------------------------------------------------

def test_starttls_may_unverified_and_verified(sinks, msgfile, certs):
    port, events = sinks.aio("127.0.0.61", *tls_opts(certs, "good"))
    out = relay("relay 127.0.0.61 %d 1 -" % port, msgfile, "--tls", "may")
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 queued as 1"]
    f = facts(out)
    assert f["tls"].startswith("TLSv1.") and f["verified"] == "0"
    out = relay("relay 127.0.0.61 %d 1 -" % port, msgfile, "--tls", "may", "--ca", certs["ca"])
    assert facts(out)["verified"] == "1"
    assert [e["tls"] for e in events() if e["ev"] == "mail"] == [True, True]


def test_encrypt_requires_starttls(sinks, msgfile):
    port, events = sinks.aio("127.0.0.53")
    out = relay("relay 127.0.0.53 %d 1 -" % port, msgfile, "--tls", "encrypt")
    assert rcpts(out) == ["tempfail 4.7.10 127.0.0.53[127.0.0.53]: TLS required but not offered"]
    assert facts(out)["dest_ok"] == "0"
    assert [e for e in events() if e["ev"] in ("mail", "mail_raw")] == []


def test_verify_good_certificate(sinks, msgfile, certs):
    port, _ = sinks.aio("127.0.0.62", *tls_opts(certs, "good"))
    out = relay("relay 127.0.0.62 %d 1 -" % port, msgfile, "--tls", "verify", "--ca", certs["ca"])
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 queued as 1"]
    assert facts(out)["verified"] == "1"


@pytest.mark.parametrize("cert,ca,reason", [
    ("othername", True, "hostname mismatch"),
    ("expired", True, "certificate has expired"),
    ("good", False, "unable to get local issuer certificate"),
])
def test_verify_bad_certificate(sinks, msgfile, certs, cert, ca, reason):
    host = "127.0.0.67" if cert == "expired" else "127.0.0.63"
    port, events = sinks.aio(host, *tls_opts(certs, cert))
    extra = ["--ca", certs["ca"]] if ca else []
    out = relay("relay %s %d 1 -" % (host, port), msgfile, "--tls", "verify", *extra)
    assert rcpts(out) == ["tempfail 4.7.5 %s[%s]: TLS certificate verification failed: %s"
                          % (host, host, reason)]
    assert facts(out)["dest_ok"] == "0"
    assert [e for e in events() if e["ev"] in ("mail", "mail_raw")] == []


# -- AUTH ------------------------------------------------------------------------------

def test_auth_offered_only_in_clear_password_never_sent(sinks, msgfile):
    port, events = sinks.aio("127.0.0.54", "--auth")
    out = relay("relay 127.0.0.54 %d 1 -" % port, msgfile, "--tls", "may",
                "--auth-user", "relayuser", password=SINK_PW)
    assert rcpts(out) == ["tempfail 4.7.10 127.0.0.54[127.0.0.54]: relay credentials not sent: "
                          "no TLS (STARTTLS not offered)"]
    assert facts(out)["dest_ok"] == "0"
    ev = events()
    assert [e for e in ev if e["ev"] in ("auth", "mail", "mail_raw")] == []


def test_auth_needs_verified_certificate(sinks, msgfile, certs):
    port, events = sinks.aio("127.0.0.64", "--auth", *tls_opts(certs, "othername"))
    out = relay("relay 127.0.0.64 %d 1 -" % port, msgfile, "--tls", "may", "--ca", certs["ca"],
                "--auth-user", "relayuser", password=SINK_PW)
    assert rcpts(out) == ["tempfail 4.7.5 127.0.0.64[127.0.0.64]: relay credentials not sent: "
                          "certificate not verified (hostname mismatch)"]
    assert [e for e in events() if e["ev"] in ("auth", "mail", "mail_raw")] == []


def test_auth_over_verified_tls(sinks, msgfile, certs):
    port, events = sinks.aio("127.0.0.65", "--auth", *tls_opts(certs, "good"))
    out = relay("relay 127.0.0.65 %d 1 -" % port, msgfile, "--tls", "verify", "--ca", certs["ca"],
                "--auth-user", "relayuser", password=SINK_PW)
    assert rcpts(out) == ["delivered 2.0.0 250 2.0.0 queued as 1"]
    ev = events()
    assert [(e["mech"], e["tls"], e["ok"]) for e in ev if e["ev"] == "auth"] == [
        ("PLAIN", True, True)]
    assert [e["arg"] for e in ev if e["ev"] == "mail_raw"] == [
        "FROM:<sender@example.org> AUTH=<>"]


def test_auth_535_defers(sinks, msgfile, certs):
    port, events = sinks.aio("127.0.0.66", "--auth", "--auth-fail", *tls_opts(certs, "good"))
    out = relay("relay 127.0.0.66 %d 1 -" % port, msgfile, "--tls", "verify", "--ca", certs["ca"],
                "--auth-user", "relayuser", password=SINK_PW)
    [r] = rcpts(out)
    assert r.startswith("tempfail 4.7.8 127.0.0.66[127.0.0.66]: authentication failed: 535 5.7.8")
    assert facts(out)["dest_ok"] == "0"
    assert [e for e in events() if e["ev"] in ("mail", "mail_raw")] == []


def test_may_handshake_failure_retries_in_clear(msgfile, certs):
    """A peer whose TLS stops at 1.1: the handshake fails (we need 1.2), and in may
    mode the same address is tried once more without STARTTLS."""
    sys.path.insert(0, PEERS)
    import broken_smtp
    peer = broken_smtp.Peer("330", certs["good"][0], certs["good"][1], old_tls=True)
    try:
        out = relay("relay 127.0.0.1 %d 1 -" % peer.port, msgfile, "--tls", "may")
        assert rcpts(out) == ["permfail 5.7.0 530 5.7.0 Authentication required"]
        assert facts(out)["tls"] == "-"
        verbs = [(l.split()[0].upper(), tls) for l, tls in peer.lines()]
        assert ("STARTTLS", False) in verbs
        assert [v for v in verbs if v[0] in ("STARTTLS", "MAIL")] == [
            ("STARTTLS", False), ("MAIL", False)]
        out = relay("relay 127.0.0.1 %d 1 -" % peer.port, msgfile, "--tls", "encrypt")
        [r] = rcpts(out)
        assert r.startswith("tempfail 4.7.5 127.0.0.1[127.0.0.1]: TLS handshake failed: ")
    finally:
        peer.stop()
