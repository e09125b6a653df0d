"""SMTP smuggling (December 2023): a fake end of data made of bare LF or bare CR must
never end the message. The whole message is refused with 550 5.6.0 at the real end,
nothing after the fake terminator runs as a command, and no second message appears.
Bare CR/LF in command lines is refused too (RFC 5321 2.3.8)."""
import pytest

from cursus_testlib import make_body

FAKE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r.\n", b"\r.\r", b"\n.\r"]


@pytest.fixture
def ce(server):
    c = server.smtp()
    c.ehlo("smuggler.test")
    yield c
    c.close()


def marker(server, c, token):
    """Sends a clean message to alice and bob and waits for it: everything the
    refused message could have produced would have been queued before it."""
    mark = token + "-marker"
    c.send_message("s@example.test", ["alice@example.test", "bob@example.test"], make_body(mark))
    server.wait_message("alice@example.test", mark)
    server.wait_message("bob@example.test", mark)
    assert server.wait_queue_empty(), server.queue_files()


@pytest.mark.parametrize("fake", FAKE_ENDS, ids=[repr(f)[2:-1] for f in FAKE_ENDS])
def test_smuggled_message_not_split(server, ce, token, fake):
    smug = token + "-smuggled"
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.expect("DATA", 354)
    payload = (make_body(token).encode().rstrip(b"\r\n") + fake +
               b"MAIL FROM:<admin@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n" + make_body(smug).encode() +
               b".\r\n")       # the real end of data, preceded by the CRLF of the body
    ce.send(payload)
    r = ce.reply()
    assert (r.code, r.enhanced) == (550, "5.6.0"), "reply to the message: %r" % r
    # Nothing else: no reply to a smuggled MAIL/RCPT/DATA or to a second message.
    assert ce.quiet(0.5), "extra replies: %r" % ce.buf
    ce.expect("RCPT TO:<bob@example.test>", 503, "5.5.1")   # no transaction left open
    marker(server, ce, token)
    assert not server.messages_with("alice@example.test", token + "@")
    assert not server.messages_with("bob@example.test", smug)
    assert not server.messages_with("alice@example.test", smug)
    # bob got the marker and nothing else carrying this test's token.
    assert len(server.messages_with("bob@example.test", token)) == 1


@pytest.mark.parametrize("bad", [b"bare LF\nline\r\n", b"bare CR\rline\r\n", b"ends in CR\r\r\n",
                                 b"\n", b"\r\r\n", b"x\n\r\n"],
                         ids=["lf", "cr", "cr-crlf", "lone-lf", "lone-cr", "lf-crlf"])
def test_bare_cr_lf_in_body_refused(server, ce, token, bad):
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.expect("DATA", 354)
    ce.send(make_body(token).encode() + bad + b"more\r\n.\r\n")
    ce.expect(None, 550, "5.6.0")
    assert ce.quiet(0.3), ce.buf
    marker(server, ce, token)
    assert not server.messages_with("alice@example.test", token + "@")


def test_bare_lf_dot_alone_then_real_end(server, ce, token):
    """The smallest attack: LF "." LF then more data: a single refusal at CRLF.CRLF."""
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.expect("DATA", 354)
    ce.send(b"Subject: " + token.encode() + b"\r\n\r\nx\n.\nNOOP\r\n")
    assert ce.quiet(0.5), "the fake end was taken: %r" % ce.buf
    ce.send(b".\r\n")
    ce.expect(None, 550, "5.6.0")
    assert ce.quiet(0.3), ce.buf


def test_bdat_bare_lf_refused(server, ce, token):
    body = make_body(token).encode() + b"x\n.\nMAIL FROM:<a@example.test>\r\n"
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.send(b"BDAT %d LAST\r\n" % len(body) + body)
    ce.expect(None, 550, "5.6.0")
    assert ce.quiet(0.3), ce.buf
    marker(server, ce, token)
    assert not server.messages_with("alice@example.test", token + "@")


@pytest.mark.parametrize("line", [b"NOOP\n", b"NOOP\n\r\n"], ids=["lf", "lf-crlf"])
def test_bare_lf_in_command_closes(server, line):
    """As Postfix's smtpd_forbid_bare_newline=reject: 550 5.5.2, then the connection
    is closed, so nothing after the bare LF can run as a command."""
    with server.smtp() as c:
        c.send(line + b"RSET\r\n")
        c.expect(None, 550, "5.5.2")
        assert c.wait_closed(5) and c.buf == b"", c.buf


@pytest.mark.parametrize("line", [b"NOOP\r", b"NO\rOP\r\n"], ids=["cr", "inner-cr"])
def test_bare_cr_in_command_refused(server, line):
    with server.smtp() as c:
        c.send(line)
        if not line.endswith(b"\n"):
            c.send(b"\r\n")      # let a lone CR line end somewhere
        r = c.reply()
        assert (r.code, r.enhanced) == (500, "5.5.2"), r
        # In step afterwards.
        c.send(b"RSET\r\n")
        for _ in range(3):
            r = c.reply()
            if (r.code, r.enhanced) == (250, "2.0.0"):
                break
            assert (r.code, r.enhanced) == (500, "5.5.2"), r
        else:
            pytest.fail("no reply to RSET")


def test_bare_lf_does_not_split_commands(server):
    """ "MAIL FROM:<a>\\nRCPT..." is never two commands: 550 and the end."""
    with server.smtp() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<s@example.test>\nRCPT TO:<alice@example.test>\r\n")
        c.expect(None, 550, "5.5.2")
        assert c.wait_closed(5) and c.buf == b"", "part of a bare-LF line was executed: %r" % c.buf
