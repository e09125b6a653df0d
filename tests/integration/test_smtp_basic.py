"""SMTP commands, sequence and syntax errors, relay refusal, local recipients and the
delivered message, over raw sockets against the shared daemon (RFC 5321, 1870, 2034,
3461, 6152, 6531)."""
import os
import re

import pytest

import cursus_testlib as lib
from cursus_testlib import make_body, received_header


@pytest.fixture
def c(server):
    conn = server.smtp()
    yield conn
    conn.close()


@pytest.fixture
def ce(c):
    """Connected and greeted with EHLO."""
    c.ehlo()
    return c


# -- session commands ------------------------------------------------------------

def test_greeting(server):
    with lib.Smtp(server.ports["smtp"]) as c:
        r = c.expect(None, 220)
        assert len(r.lines) == 1
        assert r.lines[0].startswith("localhost "), r


def test_ehlo_without_argument_is_501(c):
    c.expect("EHLO", 501, "5.5.4")
    c.expect("HELO", 501, "5.5.4")
    # Still usable afterwards, and still before EHLO.
    c.expect("MAIL FROM:<>", 503, "5.5.1")


def test_ehlo_capabilities(c):
    r = c.ehlo("client.test")
    assert r.lines[0].startswith("localhost"), r
    kw = {l.split()[0].upper(): l.split()[1:] for l in r.lines[1:]}
    for k in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING",
              "DSN", "STARTTLS", "HELP"):
        assert k in kw, "%s missing from EHLO: %r" % (k, r)
    assert kw["SIZE"] == [str(35 * 1024 * 1024)], r
    # RFC 4954 / SPEC: no mechanism is allowed in clear by default.
    assert "AUTH" not in kw, r
    # Every keyword once.
    assert len(kw) == len(r.lines) - 1, r


def test_ehlo_is_case_insensitive(c):
    c.expect("ehlo client.test", 250)
    c.expect("mail from:<alice@example.test>", 250, "2.1.0")
    c.expect("rcpt to:<alice@example.test>", 250, "2.1.5")
    c.expect("rset", 250, "2.0.0")


def test_helo(c):
    r = c.expect("HELO client.test", 250)
    assert len(r.lines) == 1 and r.lines[0].startswith("localhost"), r
    c.expect("MAIL FROM:<>", 250, "2.1.0")


def test_noop(c):
    c.expect("NOOP", 250, "2.0.0")
    c.expect("NOOP anything goes", 250, "2.0.0")   # RFC 5321 4.1.1.9: a string may follow


def test_rset(ce):
    ce.expect("RSET", 250, "2.0.0")
    ce.expect("RSET now", 501, "5.5.4")
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")
    ce.expect("RSET", 250, "2.0.0")
    # The transaction is gone.
    ce.expect("RCPT TO:<alice@example.test>", 503, "5.5.1")
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")


def test_help(c):
    r = c.expect("HELP", 214, "2.0.0")
    assert all(l.startswith("2.0.0") for l in r.lines), r


def test_vrfy_never_reveals(c):
    a = c.expect("VRFY alice@example.test", 252, "2.5.0")
    b = c.expect("VRFY nobody@example.test", 252, "2.5.0")
    assert a.lines == b.lines


def test_expn_not_available(c):
    c.expect("EXPN team@example.test", 502, "5.5.1")


@pytest.mark.parametrize("line", ["FOO", "MAILX FROM:<>", "", "   ", "EHLOclient", "\x01\x02"])
def test_unknown_command(c, line):
    c.expect(line, 500, "5.5.2")
    c.expect("NOOP", 250, "2.0.0")


def test_quit(c):
    c.expect("QUIT now", 501, "5.5.4")
    c.expect("QUIT", 221, "2.0.0")
    assert c.wait_closed(5), "connection not closed after QUIT"


# -- sequence -------------------------------------------------------------------------

def test_mail_before_ehlo(c):
    c.expect("MAIL FROM:<alice@example.test>", 503, "5.5.1")


def test_rcpt_before_mail(ce):
    ce.expect("RCPT TO:<alice@example.test>", 503, "5.5.1")


def test_data_before_mail_and_before_rcpt(ce):
    ce.expect("DATA", 503, "5.5.1")
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect("DATA", 503, "5.5.1")
    # A refused recipient does not open DATA either.
    ce.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")
    ce.expect("DATA", 503, "5.5.1")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.expect("DATA now", 501, "5.5.4")
    ce.expect("DATA", 354)
    ce.send(".\r\n")
    ce.expect(None, 250, "2.0.0")


def test_nested_mail(ce):
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")
    ce.expect("MAIL FROM:<bob@example.test>", 503, "5.5.1")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.expect("MAIL FROM:<bob@example.test>", 503, "5.5.1")


def test_ehlo_resets_transaction(ce):
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    ce.ehlo("again.test")
    ce.expect("DATA", 503, "5.5.1")
    ce.expect("RCPT TO:<alice@example.test>", 503, "5.5.1")


# -- syntax -------------------------------------------------------------------------

@pytest.mark.parametrize("line", ["MAIL", "MAIL alice@example.test", "MAIL TO:<alice@example.test>",
                                  "MAIL FROM", "MAIL FRM:<>"])
def test_mail_without_from(ce, line):
    ce.expect(line, 501, "5.5.4")


@pytest.mark.parametrize("addr", ["alice@example.test", "<alice@>", "<@example.test>",
                                  "<alice@example..test>", "<a b@example.test>", "<alice@example.test",
                                  "<alice@-example.test>", "<.alice@example.test>",
                                  "<alice.@example.test>", "<alice@@example.test>",
                                  "<" + "a" * 65 + "@example.test>",
                                  "<alice@" + "d" * 250 + ".test>"])
def test_mail_bad_address(ce, addr):
    ce.expect("MAIL FROM:" + addr, 501, "5.1.7")
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")


def test_mail_domain_label_over_63_octets(ce):
    # RFC 1035 2.3.4: "labels 63 octets or less"; such a domain cannot exist.
    ce.expect("MAIL FROM:<alice@" + "d" * 64 + ".test>", 501, "5.1.7")


@pytest.mark.parametrize("ctl", ["\x7f", "\x01", "\x1b"])
def test_mail_control_character_refused(ce, ctl):
    r = ce.cmd("MAIL FROM:<%salice@example.test>" % ctl)
    assert (r.code, r.enhanced) in ((501, "5.1.7"), (500, "5.5.2")), r
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")


def test_mail_null_sender_and_space_after_colon(ce):
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect("RSET", 250, "2.0.0")
    ce.expect("MAIL FROM: <alice@example.test>", 250, "2.1.0")


@pytest.mark.parametrize("line", ["RCPT", "RCPT alice@example.test", "RCPT FROM:<alice@example.test>"])
def test_rcpt_without_to(ce, line):
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect(line, 501, "5.5.4")


@pytest.mark.parametrize("addr", ["<>", "alice@example.test", "<alice>", "<alice@>",
                                  "<alice@example..test>", "<" + "a" * 65 + "@example.test>",
                                  "<alice@example.test"])
def test_rcpt_bad_address(ce, addr):
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect("RCPT TO:" + addr, 501, "5.1.3")
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")


@pytest.mark.parametrize("line,code,enh", [
    ("MAIL FROM:<> FOO=bar", 555, "5.5.4"),
    ("MAIL FROM:<> NOTIFY=NEVER", 555, "5.5.4"),       # a RCPT parameter on MAIL
    ("MAIL FROM:<> BODY=BINARYMIME", 555, "5.5.4"),    # BINARYMIME is not offered
    ("MAIL FROM:<> SIZE=1 SIZE=2", 501, "5.5.4"),
    ("MAIL FROM:<> SIZE=abc", 501, "5.5.4"),
    ("MAIL FROM:<> BODY=9BIT", 501, "5.5.4"),
    ("MAIL FROM:<> RET=ALL", 501, "5.5.4"),
    ("MAIL FROM:<> SMTPUTF8=yes", 501, "5.5.4"),
])
def test_mail_bad_parameters(ce, line, code, enh):
    ce.expect(line, code, enh)
    ce.expect("MAIL FROM:<>", 250, "2.1.0")


@pytest.mark.parametrize("param,code,enh", [
    ("XYZ=1", 555, "5.5.4"),
    ("SIZE=10", 555, "5.5.4"),                 # a MAIL parameter on RCPT
    ("NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),    # RFC 3461 4.1: NEVER stands alone
    ("NOTIFY=SOMETIMES", 501, "5.5.4"),
    ("NOTIFY=SUCCESS NOTIFY=FAILURE", 501, "5.5.4"),
])
def test_rcpt_bad_parameters(ce, param, code, enh):
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test> " + param, code, enh)
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")


# -- recipients: relay, unknown, aliases --------------------------------------------

@pytest.mark.parametrize("addr", [
    "someone@other.test",
    "alice@example.test.other.test",
    "alice@test",
    "bob%example.test@other.test",
    "example.test!bob@other.test",
    '"bob@example.test"@other.test',
    "@example.test:bob@other.test",            # source route ending outside
    "@example.test,@localhost:bob@other.test",
])
def test_relay_denied(ce, addr):
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<%s>" % addr, 554, "5.7.1")
    ce.expect("DATA", 503, "5.5.1")


@pytest.mark.parametrize("addr", [
    "bob%other.test@example.test",
    "other.test!bob@example.test",
    '"bob@other.test"@example.test',
    "bob%other.test@localhost",
])
def test_routing_tricks_in_local_domain_refused(ce, addr):
    """Without a catch-all nobody has these names: refused, never relayed."""
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")
    r = ce.cmd("RCPT TO:<%s>" % addr)
    assert (r.code, r.enhanced) in ((550, "5.1.1"), (554, "5.7.1")), r


def test_unknown_local_user(ce):
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")
    ce.expect("RCPT TO:<alice@localhost>", 550, "5.1.1")   # users are per domain
    ce.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")


def test_domain_is_case_insensitive(server, ce, token):
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect("RCPT TO:<bob@EXAMPLE.Test>", 250, "2.1.5")
    ce.expect("DATA", 354)
    ce.send(make_body(token) + ".\r\n")
    ce.expect(None, 250, "2.0.0")
    server.wait_message("bob@example.test", token)


def test_alias_delivery(server, ce, token):
    ce.send_message("bob@example.test", ["sales@example.test"], make_body(token))
    m = server.wait_message("alice@example.test", token)
    assert b"for <sales@example.test>" in lib.unfold(m.decode("utf-8", "replace")).encode()
    assert not server.messages_with("bob@example.test", token)


def test_alias_to_two_users(server, ce, token):
    ce.send_message("bob@example.test", ["team@example.test"], make_body(token))
    server.wait_message("alice@example.test", token)
    server.wait_message("bob@example.test", token)


def test_duplicate_mailbox_delivered_once(server, ce, token):
    ce.send_message("x@example.test", ["alice@example.test", "sales@example.test", "team@example.test"],
                    make_body(token))
    server.wait_message("alice@example.test", token)
    server.wait_message("bob@example.test", token)
    server.wait_queue_empty()
    assert len(server.messages_with("alice@example.test", token)) == 1


@pytest.mark.parametrize("path", ["<postmaster>", "<POSTMASTER>", "<Postmaster>"])
def test_postmaster_without_domain(server, ce, token, path):
    ce.expect("MAIL FROM:<>", 250, "2.1.0")
    ce.expect("RCPT TO:%s" % path, 250, "2.1.5")
    ce.expect("DATA", 354)
    ce.send(make_body(token) + ".\r\n")
    ce.expect(None, 250, "2.0.0")
    server.wait_message("alice@example.test", token)


def test_postmaster_without_alias_is_unknown(start_server):
    srv = start_server()
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.expect("RCPT TO:<postmaster>", 550, "5.1.1")


def test_catch_all(start_server, token):
    srv = start_server(aliases=[("@example.test", "alice@example.test")])
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.expect("RCPT TO:<anything.at.all@example.test>", 250, "2.1.5")
        c.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
        c.expect("RCPT TO:<anything@localhost>", 550, "5.1.1")   # other domain, no catch-all
        c.expect("RCPT TO:<anything@other.test>", 554, "5.7.1")
        c.expect("DATA", 354)
        c.send(make_body(token) + ".\r\n")
        c.expect(None, 250, "2.0.0")
    srv.wait_message("alice@example.test", token)
    # bob exists: he gets his own copy, the catch-all does not take it.
    srv.wait_message("bob@example.test", token)


# -- SMTPUTF8 -----------------------------------------------------------------------------

def test_non_ascii_sender_needs_smtputf8(ce):
    ce.expect("MAIL FROM:<j\u00f6rg@example.test>", 553, "5.6.7")
    ce.expect("MAIL FROM:<j\u00f6rg@example.test> SMTPUTF8", 250, "2.1.0")


def test_non_ascii_recipient_needs_smtputf8(ce):
    ce.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")
    ce.expect("RCPT TO:<j\u00f6rg@example.test>", 553, "5.6.7")
    ce.expect("RSET", 250, "2.0.0")
    ce.expect("MAIL FROM:<alice@example.test> SMTPUTF8", 250, "2.1.0")
    # Well-formed now, but nobody has that name.
    ce.expect("RCPT TO:<j\u00f6rg@example.test>", 550, "5.1.1")
    ce.expect("RCPT TO:<j\u00f6rg@\u00e9xample.test>", 554, "5.7.1")


@pytest.mark.parametrize("raw", [b"j\xffrg", b"j\xc3rg", b"j\xc0\xafrg", b"j\xed\xa0\x80rg"])
def test_malformed_utf8_address(ce, raw):
    ce.expect(b"MAIL FROM:<" + raw + b"@example.test> SMTPUTF8", 501, "5.1.7")
    ce.expect("MAIL FROM:<alice@example.test> SMTPUTF8", 250, "2.1.0")
    ce.expect(b"RCPT TO:<" + raw + b"@example.test>", 501, "5.1.3")


# -- submission ports without AUTH --------------------------------------------------------

def test_submission_requires_auth(server):
    with server.smtp("submission") as c:
        r = c.ehlo()
        assert any(l.split()[0] == "STARTTLS" for l in r.lines[1:]), r
        c.expect("MAIL FROM:<alice@example.test>", 530, "5.7.0")
        c.starttls()
        c.ehlo()
        c.expect("MAIL FROM:<alice@example.test>", 530, "5.7.0")
        c.expect("RCPT TO:<alice@example.test>", 503, "5.5.1")


# -- delivery -----------------------------------------------------------------------------

def _split_received(msg):
    """Received header lines (as bytes) and the rest of the message."""
    lines = msg.split(b"\r\n")
    assert lines[0].startswith(b"Received: "), msg[:300]
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[:i]) + b"\r\n", b"\r\n".join(lines[i:])


def test_delivered_message_esmtp(server, ce, token):
    body = make_body(token, text="Line one.\r\nLine two.\r\n")
    r = ce.send_message("sender@example.test", ["alice@example.test"], body)
    qid = re.search(r"queued as (\S+)", r.text)
    assert qid, r
    m = server.wait_message("alice@example.test", token)
    rec, rest = _split_received(m)
    assert rest == body.encode(), "body changed: %r" % rest
    rec = lib.unfold(rec.decode())
    assert re.search(r"^Received: from client\.test \(\[127\.0\.0\.1\]\)", rec), rec
    assert " by localhost " in rec, rec
    assert re.search(r" with ESMTP id %s\b" % re.escape(qid.group(1)), rec), rec
    assert "for <alice@example.test>" in rec, rec
    assert "ESMTPS" not in rec and "TLS" not in rec, rec
    # Delivered into new/ of the user's Maildir, and the queue emptied.
    assert any(os.path.basename(os.path.dirname(p)) == "new"
               for p in server.maildir_files("alice@example.test"))
    assert server.wait_queue_empty(), server.queue_files()


def test_delivered_message_helo_is_smtp(server, c, token):
    c.expect("HELO old.client.test", 250)
    c.send_message("sender@example.test", ["bob@example.test"], make_body(token))
    rec = received_header(server.wait_message("bob@example.test", token))
    assert re.search(r" with SMTP id ", rec), rec
    assert "from old.client.test " in rec, rec


def test_received_header_escapes_helo(server, c, token):
    c.expect("EHLO evil(x);y\\z", 250)
    c.send_message("sender@example.test", ["bob@example.test"], make_body(token))
    rec = received_header(server.wait_message("bob@example.test", token))
    from_clause = rec.split(" by ", 1)[0]
    assert from_clause.count("(") == 1 and from_clause.count(")") == 1, rec
    assert ";" not in from_clause and "\\" not in from_clause, rec


def test_dot_stuffing_undone(server, ce, token):
    sent = make_body(token, text="..\r\n...two dots\r\n.a\r\nx.\r\n. \r\n")
    want = make_body(token, text=".\r\n..two dots\r\na\r\nx.\r\n \r\n")
    ce.send_message("sender@example.test", ["alice@example.test"], sent)
    _, rest = _split_received(server.wait_message("alice@example.test", token))
    assert rest == want.encode(), rest


def test_8bit_body_kept(server, ce, token):
    text = bytes(b for b in range(0x20, 0x100) if b != 0x7f) + b"\r\n\xc3\xa9t\xc3\xa9\r\n\t\x00\x01\r\n"
    body = make_body(token, extra_headers="Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 8bit\r\n").encode() + text
    ce.send_message("sender@example.test", ["alice@example.test"], body, " BODY=8BITMIME")
    _, rest = _split_received(server.wait_message("alice@example.test", token))
    assert rest == body


def test_empty_body(server, ce, token):
    # The only distinguishing mark is the queue id in Received.
    r = ce.send_message("sender@example.test", ["bob@example.test"], b"")
    qid = re.search(r"queued as (\S+)", r.text).group(1)
    m = server.wait_message("bob@example.test", "id " + qid)
    rec, rest = _split_received(m)
    assert rest == b"", m


def test_dsn_parameters_accepted(server, ce, token):
    ce.expect("MAIL FROM:<sender@example.test> RET=HDRS ENVID=QQ+2B%s SIZE=500 BODY=7BIT" % token,
              250, "2.1.0")
    ce.expect("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;alice@example.test",
              250, "2.1.5")
    ce.expect("RCPT TO:<bob@example.test> NOTIFY=NEVER ORCPT=rfc822;Bob+2Bx@example.test", 250, "2.1.5")
    ce.expect("RCPT TO:<sales@example.test> NOTIFY=FAILURE", 250, "2.1.5")
    ce.expect("DATA", 354)
    ce.send(make_body(token) + ".\r\n")
    ce.expect(None, 250, "2.0.0")
    server.wait_message("alice@example.test", token)
    server.wait_message("bob@example.test", token)
    assert server.wait_queue_empty(), server.queue_files()


def test_dsn_parameters_kept_in_the_queue_file(start_server, token):
    """RET, ENVID, NOTIFY and ORCPT are stored as given (RFC 3461 needs them later, for
    the DSN and for the next hop): read back from the queue file of a message that waits
    (bob's mailbox is a plain file, so his delivery defers)."""
    srv = start_server(retry_min=3600, retry_max=3600)
    os.makedirs(os.path.join(srv.mail_dir, "example.test"), exist_ok=True)
    with open(srv.maildir("bob@example.test"), "w") as f:
        f.write("not a maildir\n")
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.test> RET=HDRS ENVID=QQ+2B%s" % token, 250, "2.1.0")
        c.expect("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@example.test",
                 250, "2.1.5")
        c.expect("RCPT TO:<alice@example.test> NOTIFY=NEVER", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(make_body(token) + ".\r\n")
        qid = re.search(r"queued as (\S+)", c.expect(None, 250, "2.0.0").text).group(1)
    srv.wait_message("alice@example.test", token)
    head = []
    with open(os.path.join(srv.queue_dir, "msg", qid), "rb") as f:
        for line in f:                              # the head ends at its "body" line
            line = line.decode().rstrip("\n")
            if line == "body" or line.startswith("body "):
                break
            head.append(line)
    assert "ret hdrs" in head, head
    assert "envid QQ+2B%s" % token in head, head   # xtext: "+" is "+2B"
    # rcpt <notify bits> <address> <orcpt> <mailbox>: SUCCESS|DELAY = 0x2|0x8, NEVER = 0x1
    assert "rcpt 10 bob@example.test rfc822;Bob+2Bx@example.test example.test/bob" in head, head
    assert "rcpt 1 alice@example.test - example.test/alice" in head, head


def test_ret_full_and_mail_params_case_insensitive(server, ce, token):
    ce.expect("MAIL FROM:<sender@example.test> ret=full envid=abc body=8bitmime", 250, "2.1.0")
    ce.expect("RCPT TO:<bob@example.test> notify=failure", 250, "2.1.5")
    ce.expect("DATA", 354)
    ce.send(make_body(token) + ".\r\n")
    ce.expect(None, 250, "2.0.0")
    server.wait_message("bob@example.test", token)


def test_pipelining(server, c, token):
    """RFC 2920: the whole envelope and the first body line in one write."""
    body = make_body(token)
    c.send("EHLO pipe.test\r\nMAIL FROM:<s@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
           "RCPT TO:<bob@example.test>\r\nDATA\r\n")
    c.expect(None, 250)
    c.expect(None, 250, "2.1.0")
    c.expect(None, 550, "5.1.1")
    c.expect(None, 250, "2.1.5")
    c.expect(None, 354)
    c.send(body + ".\r\nMAIL FROM:<s@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    c.expect(None, 250, "2.0.0")
    c.expect(None, 250, "2.1.0")
    c.expect(None, 250, "2.1.5")
    c.expect(None, 354)
    c.send(body + ".\r\nQUIT\r\n")
    c.expect(None, 250, "2.0.0")
    c.expect(None, 221, "2.0.0")
    server.wait_message("bob@example.test", token)
    server.wait_message("alice@example.test", token)


def test_several_messages_one_session(server, ce, token):
    for i in range(5):
        ce.send_message("s@example.test", ["alice@example.test"], make_body("%s-%d" % (token, i)))
    for i in range(5):
        server.wait_message("alice@example.test", "%s-%d@" % (token, i))
    assert server.wait_queue_empty(), server.queue_files()
