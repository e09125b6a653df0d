"""CHUNKING (RFC 3030): BDAT chunks, BDAT 0 LAST, chunks read in every state so the
session stays in step, DATA and BDAT never mixed."""
import pytest

from cursus_testlib import make_body, received_header


@pytest.fixture
def ce(server):
    conn = server.smtp()
    conn.ehlo()
    yield conn
    conn.close()


def bdat(c, data, last=False):
    if isinstance(data, str):
        data = data.encode()
    c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    return c.reply()


def test_bdat_before_ehlo_reads_chunk_then_503(server):
    with server.smtp() as c:
        r = bdat(c, "NOOP\r\n")
        assert (r.code, r.enhanced) == (503, "5.5.1"), r
        c.expect("QUIT", 221, "2.0.0")


def test_bdat_before_mail_and_rcpt_stays_in_step(ce):
    """The chunk holds a command: it must be swallowed as data, never executed."""
    r = bdat(ce, "NOOP\r\n")
    assert (r.code, r.enhanced) == (503, "5.5.1"), r
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    r = bdat(ce, "RSET\r\nMAIL FROM:<x@example.test>\r\n", last=True)
    assert (r.code, r.enhanced) == (503, "5.5.1"), r
    # Still in the MAIL state: had the chunk run, MAIL would be refused as nested or
    # the transaction would be gone.
    ce.expect("MAIL FROM:<s@example.test>", 503, "5.5.1")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    assert ce.quiet(0.3)


@pytest.mark.parametrize("arg", ["", "x", "-1", "10 NOTLAST", "10 LAST x", " 10", "1e3",
                                 "99999999999999999999999"])
def test_bdat_bad_syntax(ce, arg):
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.expect(("BDAT " + arg).rstrip() if arg else "BDAT", 501, "5.5.4")
    ce.expect("NOOP", 250, "2.0.0")


def test_bdat_chunks_delivered(server, ce, token):
    body = make_body(token, text="chunked\r\n").encode()
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    parts = [body[:10], body[10:11], body[11:]]
    for p in parts:
        r = bdat(ce, p)
        assert (r.code, r.enhanced) == (250, "2.0.0"), r
    r = bdat(ce, b"", last=True)
    assert (r.code, r.enhanced) == (250, "2.0.0"), r
    assert "queued as" in r.text, r
    m = server.wait_message("alice@example.test", token)
    assert m.endswith(body), m
    assert " with ESMTP " in received_header(m)


def test_bdat_single_last_chunk_and_pipelined(server, ce, token):
    body = make_body(token, text="one chunk\r\n").encode()
    ce.send(b"MAIL FROM:<s@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"BDAT %d LAST\r\n" % len(body) + body + b"NOOP\r\n")
    ce.expect(None, 250, "2.1.0")
    ce.expect(None, 250, "2.1.5")
    ce.expect(None, 250, "2.0.0")
    ce.expect(None, 250, "2.0.0")   # NOOP
    assert server.wait_message("bob@example.test", token).endswith(body)


def test_bdat_body_with_dot_lines_kept_verbatim(server, ce, token):
    """No dot-stuffing in BDAT: "." lines are data, not an end."""
    body = make_body(token, text=".\r\n..\r\nend\r\n").encode()
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
    r = bdat(ce, body, last=True)
    assert (r.code, r.enhanced) == (250, "2.0.0"), r
    assert server.wait_message("bob@example.test", token).endswith(body)


def test_data_after_bdat_refused(ce):
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    r = bdat(ce, "Subject: x\r\n")
    assert (r.code, r.enhanced) == (250, "2.0.0"), r
    ce.expect("DATA", 503, "5.5.1")
    # The transaction goes on with BDAT.
    r = bdat(ce, "\r\nbody\r\n", last=True)
    assert (r.code, r.enhanced) == (250, "2.0.0"), r


def test_bdat_after_rset_starts_over(ce, server, token):
    ce.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    r = bdat(ce, "garbage that must not be delivered " + token + "\r\n")
    assert r.code == 250, r
    ce.expect("RSET", 250, "2.0.0")
    r = bdat(ce, "x\r\n", last=True)
    assert (r.code, r.enhanced) == (503, "5.5.1"), r
    # DATA is allowed again in a new transaction.
    ce.send_message("s@example.test", ["alice@example.test"], make_body(token + "-2"))
    m = server.wait_message("alice@example.test", token + "-2")
    assert b"garbage" not in m
