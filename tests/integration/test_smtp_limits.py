"""Every limit is configurable and answered with its code (RFC 5321 4.5.3, RFC 1870):
command and text line lengths, message size, recipients, errors, timeouts, sessions."""
import time

import pytest

import cursus_testlib as lib
from cursus_testlib import make_body


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One daemon with small limits for the tests that do not end their session badly."""
    srv = lib.Server(tmp_path_factory.mktemp("small"), max_message_size=2048, max_recipients=3,
                     max_text_line=1000, max_command_line=512)
    srv.start()
    yield srv
    problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def cs(small):
    c = small.smtp()
    c.ehlo()
    yield c
    c.close()
    assert small.running(), "cursusd died:\n" + small.log[-4000:]


# -- command line ------------------------------------------------------------------------

def test_command_line_over_limit(cs):
    # 512 octets with CRLF is the most allowed.
    cs.expect("NOOP " + "x" * (512 - 7), 250, "2.0.0")
    cs.expect("NOOP " + "x" * (512 - 6), 500, "5.5.2")
    cs.expect("NOOP", 250, "2.0.0")
    # A long line holding a command after the limit: the tail is skipped, not run.
    cs.send("NOOP " + "y" * 600 + "QUIT\r\nNOOP\r\n")
    cs.expect(None, 500, "5.5.2")
    cs.expect(None, 250, "2.0.0")
    assert cs.quiet(0.3)


def test_command_line_very_long_in_pieces(cs):
    for _ in range(20):
        cs.send("A" * 4096)
    cs.send("\r\nNOOP\r\n")
    cs.expect(None, 500, "5.5.2")
    cs.expect(None, 250, "2.0.0")


def test_mail_line_over_limit_does_not_start_transaction(cs):
    cs.expect("MAIL FROM:<alice@example.test> ENVID=" + "e" * 520, 500, "5.5.2")
    cs.expect("RCPT TO:<alice@example.test>", 503, "5.5.1")


def test_command_line_limit_configurable(start_server):
    srv = start_server(listener_opts={"smtp": {"max_command_line": 1024}})
    with srv.smtp() as c:
        c.ehlo()
        c.expect("NOOP " + "x" * (1024 - 7), 250, "2.0.0")
        c.expect("NOOP " + "x" * (1024 - 6), 500, "5.5.2")
    with srv.smtp("submission") as c:     # the other listener keeps the default
        c.ehlo()
        c.expect("NOOP " + "x" * (600), 500, "5.5.2")


# -- text line -------------------------------------------------------------------------

def test_text_line_over_limit(small, cs, token):
    cs.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    cs.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    cs.expect("DATA", 354)
    cs.send(make_body(token, text="y" * 999 + "\r\nafter\r\n") + ".\r\n")
    cs.expect(None, 550, "5.6.0")
    # In step: the session goes on, and the refused message never arrives.
    cs.expect("NOOP", 250, "2.0.0")
    ok = token + "-ok"
    cs.send_message("s@example.test", ["alice@example.test"], make_body(ok, text="y" * 998 + "\r\n"))
    m = small.wait_message("alice@example.test", ok)
    assert b"y" * 998 + b"\r\n" in m
    assert not small.messages_with("alice@example.test", token + "@")


def test_text_line_over_limit_holding_a_dot(cs):
    """An over-long line ending in CRLF "." CRLF must not end the data early."""
    cs.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    cs.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    cs.expect("DATA", 354)
    cs.send("z" * 1500 + "\r\n.\r\n")
    cs.expect(None, 550, "5.6.0")
    cs.expect("NOOP", 250, "2.0.0")


# -- message size ------------------------------------------------------------------------

def test_ehlo_advertises_size(small):
    with small.smtp() as c:
        r = c.ehlo()
        assert "SIZE 2048" in r.lines, r


def test_size_parameter_over_limit(cs):
    cs.expect("MAIL FROM:<s@example.test> SIZE=2049", 552, "5.3.4")
    cs.expect("MAIL FROM:<s@example.test> SIZE=99999999999999999999", 552, "5.3.4")
    cs.expect("MAIL FROM:<s@example.test> SIZE=2048", 250, "2.1.0")


def test_body_over_limit_data(small, cs, token):
    cs.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    cs.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
    cs.expect("DATA", 354)
    cs.send(make_body(token, text=("0123456789" * 9 + "\r\n") * 30) + ".\r\n")
    cs.expect(None, 552, "5.3.4")
    cs.expect("NOOP", 250, "2.0.0")
    cs.expect("RCPT TO:<bob@example.test>", 503, "5.5.1")   # transaction over
    assert not small.messages_with("bob@example.test", token)


def test_body_over_limit_bdat(small, cs, token):
    body = make_body(token, text="x" * 3000 + "\r\n").encode()
    cs.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    cs.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
    cs.send(b"BDAT %d\r\n" % len(body) + body)
    r = cs.reply()
    if r.code == 250:   # refusing at the end is allowed too
        cs.send(b"BDAT 0 LAST\r\n")
        r = cs.reply()
    assert (r.code, r.enhanced) == (552, "5.3.4"), r
    cs.expect("NOOP", 250, "2.0.0")


def test_body_at_limit_accepted(small, cs, token):
    head = make_body(token, text="")
    # The limit counts what the client sends, or what is stored: allow the margin of
    # a Received header by staying well under it.
    body = head + ("a" * 60 + "\r\n") * 20
    assert len(body) < 2048 - 300
    cs.send_message("s@example.test", ["bob@example.test"], body)
    small.wait_message("bob@example.test", token)


# -- recipients ---------------------------------------------------------------------------

def test_max_recipients(small, cs, token):
    cs.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    cs.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    cs.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")   # refusals do not count
    cs.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
    cs.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    cs.expect("RCPT TO:<bob@example.test>", 452, "4.5.3")
    cs.expect("RCPT TO:<bob@example.test>", 452, "4.5.3")
    cs.expect("DATA", 354)
    cs.send(make_body(token) + ".\r\n")
    cs.expect(None, 250, "2.0.0")
    small.wait_message("alice@example.test", token)
    small.wait_message("bob@example.test", token)
    # A new transaction has its own count.
    cs.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    for _ in range(3):
        cs.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
    cs.expect("RCPT TO:<bob@example.test>", 452, "4.5.3")


# -- errors ------------------------------------------------------------------------------

def test_max_errors(start_server):
    srv = start_server(max_errors=3)
    with srv.smtp() as c:
        c.expect("FOO", 500, "5.5.2")
        c.expect("MAIL FROM:<>", 503, "5.5.1")
        c.send("BAR\r\n")
        c.expect(None, 500, "5.5.2")
        c.expect(None, 421, "4.7.0")
        assert c.wait_closed(5), "not closed after 421"
        assert c.buf == b"", c.buf
    # Other sessions are not affected.
    with srv.smtp() as c:
        c.expect("NOOP", 250, "2.0.0")


def test_max_errors_pipelined_flood(start_server):
    """Errors pipelined far past the limit: 421 once, then nothing."""
    srv = start_server(max_errors=3)
    with srv.smtp() as c:
        c.send("FOO\r\n" * 50)
        for _ in range(3):
            c.expect(None, 500, "5.5.2")
        c.expect(None, 421, "4.7.0")
        assert c.wait_closed(5)
        assert c.buf == b"", "replies after 421: %r" % c.buf


# -- timeouts ---------------------------------------------------------------------------

def test_command_timeout(start_server):
    srv = start_server(command_timeout=2)
    with srv.smtp() as c:
        c.ehlo()
        t0 = time.monotonic()
        c.expect(None, 421, "4.4.2", timeout=15)
        assert time.monotonic() - t0 >= 1.5
        assert c.wait_closed(5)


def test_command_timeout_restarts_on_each_command(start_server):
    srv = start_server(command_timeout=2)
    with srv.smtp() as c:
        for _ in range(4):
            time.sleep(0.8)
            c.expect("NOOP", 250, "2.0.0")
        c.expect(None, 421, "4.4.2", timeout=15)


def test_data_timeout(start_server):
    srv = start_server(data_timeout=2)
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send("Subject: x\r\n")
        c.expect(None, 421, "4.4.2", timeout=15)
        assert c.wait_closed(5)


def test_session_timeout(start_server):
    srv = start_server(session_timeout=2)
    with srv.smtp() as c:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = c.cmd("NOOP")
            if r.code != 250:
                break
            time.sleep(0.3)
        assert (r.code, r.enhanced) == (421, "4.4.2"), r
        assert c.wait_closed(5)


# -- sessions ----------------------------------------------------------------------------

def test_max_sessions(start_server):
    srv = start_server(listener_opts={"smtp": {"max_sessions": 2}})
    a, b = srv.smtp(), srv.smtp()
    try:
        # Both in a transaction: a full listener only takes the slot of an idle session
        # (test_session_exhaustion.py), and these are not.
        for held in (a, b):
            held.ehlo()
            held.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
        with lib.Smtp(srv.ports["smtp"]) as c:
            c.expect(None, 421, "4.3.2")
            assert c.wait_closed(5)
        # Another listener has its own count.
        with srv.smtp("submission") as c:
            c.expect("NOOP", 250, "2.0.0")
        a.expect("NOOP", 250, "2.0.0")
        a.expect("QUIT", 221, "2.0.0")
        assert a.wait_closed(5)

        def third_gets_in():
            with lib.Smtp(srv.ports["smtp"]) as c:
                return c.reply().code == 220
        assert lib.wait_until(third_gets_in, 10, 0.1), "slot not freed after QUIT"
    finally:
        a.close()
        b.close()
