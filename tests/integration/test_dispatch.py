"""The command table's policy, applied by one dispatcher (issue 8, item 6): a command
refused for the same reason gets the same reply whatever the command, DATA and BDAT
alike (BDAT's chunk is read first, so the session stays in step), and each requirement
(EHLO, MAIL, RCPT, AUTH on submission, TLS, STARTTLS offered) has its one reply."""
import pytest

import cursus_testlib as lib
from cursus_testlib import AuthSmtp

PW = lib.PASSWORD
ALICE = "alice@example.test"


def bdat(c, data=b"NOOP\r\n"):
    """A chunk whose content is a command: it must be read as data, never run."""
    c.send(b"BDAT %d LAST\r\n" % len(data) + data)
    return c.reply()


def said(r):
    """The reply's text after its enhanced code."""
    return r.text.split(" ", 1)[1] if r.enhanced else r.text


def line(r):
    return (r.code, r.enhanced, said(r))


def refusals(c, before):
    """DATA's refusal and BDAT's, each followed by NOOP to show the session in step."""
    for cmd in before:
        c.cmd(cmd)
    d = c.cmd("DATA")
    c.expect("NOOP", 250, "2.0.0")
    b = bdat(c)
    c.expect("NOOP", 250, "2.0.0")
    return d, b


@pytest.mark.parametrize("before,code,enhanced,text", [
    ([], 503, "5.5.1", "Error: need MAIL command"),                       # before EHLO
    (["EHLO client.test"], 503, "5.5.1", "Error: need MAIL command"),     # before MAIL
    (["EHLO client.test", "MAIL FROM:<s@example.test>"], 503, "5.5.1", "Error: need RCPT command"),
])
def test_data_and_bdat_refused_alike(server, before, code, enhanced, text):
    with server.smtp() as c:
        d, b = refusals(c, before)
    assert line(d) == (code, enhanced, text), d
    assert line(b) == line(d), (b, d)


def test_data_and_bdat_before_auth_on_submission(server):
    with AuthSmtp(server.ports["submission"]) as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
        d, b = refusals(c, [])
        assert line(d) == (503, "5.5.1", "Error: need MAIL command"), d
        assert line(b) == line(d), (b, d)
        c.expect("RCPT TO:<%s>" % ALICE, 503, "5.5.1")


def test_submission_auth_required_before_mail_arguments(server):
    """RFC 4954 6: 530 "SHOULD be returned by any command other than AUTH, EHLO, HELO,
    NOOP, RSET, or QUIT when server policy requires authentication": the requirement
    comes before what MAIL carries, so a client learns to authenticate, not to fix its
    syntax."""
    with AuthSmtp(server.ports["submission"]) as c:
        c.greeting()
        c.ehlo()
        for arg in ("MAIL FROM:<%s>" % ALICE, "MAIL FROM:<bad", "MAIL TO:<%s>" % ALICE):
            r = c.expect(arg, 530, "5.7.0")
            assert said(r) == "Authentication required", r
        c.expect("MAIL", 530, "5.7.0")
    # Port 25 takes mail without AUTH: MAIL's own syntax is answered there.
    with server.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<bad", 501, "5.1.7")


def test_mail_needs_ehlo_first_everywhere(server):
    for role in ("smtp", "submission"):
        with AuthSmtp(server.ports[role]) as c:
            c.greeting()
            r = c.expect("MAIL FROM:<%s>" % ALICE, 503, "5.5.1")
            assert said(r) == "Error: send EHLO/HELO first", r


def test_auth_refusals(server):
    with AuthSmtp(server.ports["submission"]) as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        r = c.expect("AUTH PLAIN " + lib.plain_response(ALICE, PW), 503, "5.5.1")
        assert said(r) == "Error: send EHLO/HELO first", r
        c.ehlo()
        c.auth_plain(ALICE, PW)
        r = c.expect("AUTH PLAIN " + lib.plain_response(ALICE, PW), 503, "5.5.1")
        assert said(r) == "Error: already authenticated", r
        c.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
        r = c.expect("AUTH LOGIN", 503, "5.5.1")
        assert said(r) == "Error: nested MAIL command", r


def test_starttls_refusals(start_server):
    port = lib.free_port()
    srv = start_server(extra_conf="listener plain {\n\trole smtp\n\taddress 127.0.0.1:%d\n"
                                  "\ttls none\n}" % port)
    with AuthSmtp(port) as c:
        c.greeting()
        assert not any(l.split()[0] == "STARTTLS" for l in c.ehlo().lines[1:])
        r = c.expect("STARTTLS", 502, "5.5.1")
        assert said(r) == "Error: STARTTLS not offered here", r
    with AuthSmtp(srv.ports["submission"]) as c:
        c.greeting()
        c.starttls()
        r = c.expect("STARTTLS", 503, "5.5.1")
        assert said(r) == "Error: TLS already active", r
        c.expect("STARTTLS x", 501, "5.5.4")   # syntax first, as for every command
    with AuthSmtp(srv.ports["submissions"], tls=True) as c:
        c.greeting()
        assert not any(l.split()[0] == "STARTTLS" for l in c.ehlo().lines[1:])
        r = c.expect("STARTTLS", 503, "5.5.1")
        assert said(r) == "Error: TLS already active", r


def test_cleartext_password_mechanisms_named_at_start(start_server):
    """Which mechanisms send the password itself comes from the mechanism registry
    (SASLF_CLEARTEXT): allowed in clear, PLAIN is named; SCRAM, allowed in clear too,
    is not (the password never crosses the wire); a listener that allows nothing in
    clear, or whose cleartext mechanism is not enabled, is not named."""
    srv = start_server(listener_opts={
        "submission": {"auth_cleartext_mechanisms": "PLAIN SCRAM-SHA-256"},
        "smtp": {"auth_mechanisms": "SCRAM-SHA-256", "auth_cleartext_mechanisms": "LOGIN"}})
    warned = [l for l in srv.log.splitlines() if "event=cleartext-passwords" in l]
    assert len(warned) == 1, warned
    assert 'listen name=submission event=cleartext-passwords mechanisms="PLAIN" ' in warned[0], warned
    with AuthSmtp(srv.ports["submission"]) as c:
        c.greeting()
        assert lib.auth_mechanisms(c.ehlo()) == ["SCRAM-SHA-256", "PLAIN"]
