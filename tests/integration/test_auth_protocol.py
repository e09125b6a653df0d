"""SMTP AUTH (RFC 4954) on the wire, raw: every reply code, the negative cases first,
the authorization identity, sender ownership on submission, relay after AUTH, AUTH=,
Received: and the submission fields, app passwords, and the log line."""
import os
import re
import time

import pytest

import cursus_testlib as lib
from cursus_testlib import AuthSmtp, b64, make_body, plain_response, received_header

PW = lib.PASSWORD
ALICE, BOB = "alice@example.test", "bob@example.test"
WRONG = "wrong horse battery"
# Every secret and payload sent by this module: none may reach the log.
SECRETS = [PW, WRONG, b64(PW), b64(WRONG), plain_response(ALICE, PW), plain_response(ALICE, WRONG)]


@pytest.fixture(scope="module")
def asrv(tmp_path_factory):
    for b in (lib.CURSUSD, lib.CURSUS):
        if not os.access(b, os.X_OK):
            pytest.fail("%s is not built" % b)
    srv = lib.Server(tmp_path_factory.mktemp("auth"), aliases=[("sales@example.test", ALICE)],
                     **lib.AUTH_GENEROUS)
    for u in ("carol@example.test", "dave@example.test"):
        srv.admin("user", "add", u, stdin=PW + "\n")
    srv.start()
    yield srv
    problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def srv(asrv):
    if not asrv.running():
        asrv.start()
    yield asrv
    assert asrv.running(), "cursusd died; log tail:\n%s" % asrv.log[-4000:]


def connect(srv, role="submission", tls=True, ehlo=True, source=None):
    """A session on role: greeting, EHLO, STARTTLS and EHLO again when tls (587/25)."""
    c = AuthSmtp(srv.ports[role], tls=(role == "submissions"), source=source)
    c.greeting()
    if ehlo:
        c.ehlo()
        if tls and role != "submissions":
            c.starttls()
            c.ehlo()
    return c


def send(c, sender, rcpts, token):
    return c.send_message(sender, rcpts, make_body(token))


# -- encryption first ------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["submission", "smtp"])
def test_no_auth_in_clear(srv, role):
    with connect(srv, role, tls=False) as c:
        r = c.ehlo()
        assert lib.auth_mechanisms(r) is None, r
        assert not any(l.upper().startswith("AUTH") for l in r.lines), r
        c.expect("AUTH PLAIN " + plain_response(ALICE, PW), 538, "5.7.11")
        c.expect("AUTH LOGIN", 538, "5.7.11")
        c.expect("AUTH SCRAM-SHA-256", 538, "5.7.11")
        # The -PLUS ones need the channel; never offered or started in clear.
        r = c.cmd("AUTH SCRAM-SHA-256-PLUS")
        assert (r.code, r.enhanced) == (538, "5.7.11"), r
        c.expect("NOOP", 250)
        # After TLS, offered.
        c.starttls()
        mechs = lib.auth_mechanisms(c.ehlo())
        assert mechs and "PLAIN" in mechs and "SCRAM-SHA-256" in mechs, mechs
        assert "CRAM-MD5" not in mechs and "DIGEST-MD5" not in mechs and "EXTERNAL" not in mechs
        c.auth_plain(ALICE, PW)


def test_cleartext_plain_allowed_on_listener(start_server, token):
    srv = start_server(listener_opts={"submission": {"auth_cleartext_mechanisms": "PLAIN"}})
    with connect(srv, "submission", tls=False) as c:
        r = c.ehlo()
        assert lib.auth_mechanisms(r) == ["PLAIN"], r
        c.expect("AUTH LOGIN", 538, "5.7.11")
        c.auth_plain(ALICE, PW)
        send(c, ALICE, [BOB], token)
    m = srv.wait_message(BOB, token)
    assert " with ESMTPA " in received_header(m), received_header(m)
    # The other listeners keep the default (nothing in clear).
    with connect(srv, "smtp", tls=False) as c:
        assert lib.auth_mechanisms(c.ehlo()) is None
        c.expect("AUTH PLAIN " + plain_response(ALICE, PW), 538, "5.7.11")


def test_legacy_auth_line(start_server):
    srv = start_server(listener_opts={"submission": {"auth_legacy_line": "yes"}})
    with connect(srv, "submission", tls=False) as c:
        r = c.ehlo()
        # Never before TLS: it names plaintext mechanisms.
        assert not any(l.upper().startswith("AUTH") for l in r.lines), r
        c.starttls()
        r = c.ehlo()
        # SPEC: exactly "AUTH=LOGIN PLAIN", the draft form old Outlook understands.
        legacy = [l for l in r.lines if l.upper().startswith("AUTH=")]
        assert legacy == ["AUTH=LOGIN PLAIN"], r
        assert lib.auth_mechanisms(r), r
        c.auth_plain(ALICE, PW)
    with connect(srv, "submissions") as c:
        assert not any(l.upper().startswith("AUTH=") for l in c.ehlo().lines)


# -- failures ----------------------------------------------------------------------------------

def test_wrong_password_and_unknown_user_look_alike(srv):
    with connect(srv) as c:
        wrong = c.expect("AUTH PLAIN " + plain_response(ALICE, WRONG), 535, "5.7.8")
        unknown = c.expect("AUTH PLAIN " + plain_response("nobody@example.test", PW), 535, "5.7.8")
        assert wrong.lines == unknown.lines, (wrong, unknown)
        # LOGIN, step by step, the same
        c.expect("AUTH LOGIN", 334)
        c.expect(b64("nobody@example.test"), 334)
        unknown2 = c.expect(b64(PW), 535, "5.7.8")
        assert unknown2.lines == wrong.lines
        # Still usable: the right password now works.
        c.expect("AUTH LOGIN " + b64(ALICE), 334)
        c.expect(b64(PW), 235, "2.7.0")


def test_unknown_user_not_faster(srv):
    """The time taken does not tell an unknown user from a wrong password (loosely:
    an unknown user is not answered in a fraction of the time)."""
    def median_time(user):
        ts = []
        for i in range(5):
            with connect(srv) as c:
                t = time.monotonic()
                c.expect("AUTH PLAIN " + plain_response(user, WRONG + str(i)), 535, "5.7.8")
                ts.append(time.monotonic() - t)
        return sorted(ts)[2]
    known, unknown = median_time(BOB), median_time("nobody%d@example.test" % os.getpid())
    assert unknown >= 0.4 * known, (known, unknown)


def test_unknown_mechanism(srv):
    with connect(srv) as c:
        c.expect("AUTH FOO-BAR", 504, "5.5.4")
        c.expect("AUTH GSSAPI", 504, "5.5.4")
        c.expect("AUTH PLAIN" + "X" * 100, 504, "5.5.4")
        c.auth_plain(ALICE, PW)


@pytest.mark.parametrize("mech", ["CRAM-MD5", "DIGEST-MD5"])
def test_legacy_mechanism_not_enabled(srv, mech):
    with connect(srv) as c:
        c.expect("AUTH " + mech, 534, "5.7.9")
        c.auth_plain(ALICE, PW)


def test_abort(srv):
    with connect(srv) as c:
        c.expect("AUTH LOGIN", 334)
        c.expect("*", 501, "5.0.0")
        c.expect("AUTH PLAIN", 334)
        c.expect("*", 501, "5.0.0")
        c.expect("AUTH LOGIN " + b64(ALICE), 334)
        c.expect("*", 501, "5.0.0")
        c.expect("NOOP", 250)
        c.auth_plain(ALICE, PW)


def test_invalid_base64(srv):
    with connect(srv) as c:
        c.expect("AUTH PLAIN !!!notbase64", 501, "5.5.2")
        c.expect("AUTH PLAIN", 334)
        c.expect("a=b=c", 501, "5.5.2")
        c.expect("AUTH LOGIN", 334)
        c.expect("###", 501, "5.5.2")
        c.auth_plain(ALICE, PW)


def test_empty_initial_response(srv):
    """RFC 4954 4: "=" is an initial response of zero length, which is not a valid PLAIN
    (or SCRAM client-first) message: the exchange fails; it does not start over."""
    with connect(srv) as c:
        c.expect("AUTH LOGIN =", 535, "5.7.8")
        c.expect("AUTH PLAIN =", 535, "5.7.8")
        c.auth_plain(ALICE, PW)


def test_empty_response_line_fails(srv):
    """An empty line after 334 is an empty response: PLAIN fails with it rather than
    asking again (a client must not keep an exchange open with empty lines)."""
    with connect(srv) as c:
        c.expect("AUTH PLAIN", 334)
        r = c.cmd("")
        assert r.code == 535, r
        c.auth_plain(ALICE, PW)


def test_auth_before_ehlo(srv):
    with connect(srv, "submissions", ehlo=False) as c:
        c.expect("AUTH PLAIN " + plain_response(ALICE, PW), 503, "5.5.1")
        c.ehlo()
        c.auth_plain(ALICE, PW)


def test_auth_twice_and_no_auth_in_new_ehlo(srv):
    with connect(srv, "submissions") as c:
        c.auth_plain(ALICE, PW)
        c.expect("AUTH PLAIN " + plain_response(ALICE, PW), 503, "5.5.1")
        c.expect("AUTH LOGIN", 503, "5.5.1")
        r = c.ehlo()
        assert lib.auth_mechanisms(r) is None, r
        c.expect("AUTH PLAIN " + plain_response(BOB, PW), 503, "5.5.1")


def test_auth_inside_transaction(srv):
    with connect(srv, "smtp") as c:
        c.expect("MAIL FROM:<someone@other.test>", 250, "2.1.0")
        c.expect("AUTH PLAIN " + plain_response(ALICE, PW), 503, "5.5.1")
        c.expect("RSET", 250)
        c.auth_plain(ALICE, PW)


def test_auth_line_length(srv):
    with connect(srv) as c:
        # 12288 octets, CRLF included: a line (its payload is not a valid response).
        line = "AUTH PLAIN " + "A" * (12288 - 2 - len("AUTH PLAIN "))
        r = c.cmd(line)
        assert (r.code, r.enhanced) == (501, "5.5.2"), r
        # 12289: too long.
        c.expect(line + "A", 500, "5.5.2")
        c.expect("NOOP", 250)
        # The same for a response line inside an exchange.
        c.expect("AUTH PLAIN", 334)
        r = c.cmd("A" * (12288 - 2))
        assert (r.code, r.enhanced) == (501, "5.5.2"), r
        c.expect("AUTH PLAIN", 334)
        # RFC 4954 6: 500 5.5.6, and the exchange is over: what follows is a command.
        c.expect("A" * (12289 - 2), 500, "5.5.6")
        c.expect("NOOP", 250)
        c.auth_plain(ALICE, PW)


def test_other_commands_stay_at_512(srv):
    with connect(srv) as c:
        c.expect("NOOP " + "x" * 600, 500, "5.5.2")
        c.expect("NOOP", 250)


def test_hostile_identities(srv):
    """Huge, control-character and NUL-laden identities fail cleanly, and cannot forge a
    log line (the log escapes them)."""
    with connect(srv) as c:
        c.expect("AUTH PLAIN " + plain_response("a" * 8000 + "@example.test", PW), 535, "5.7.8")
        forged = "evil@example.test\n2026-01-01T00:00:00.000Z auth session=forged result=ok"
        c.expect("AUTH PLAIN " + plain_response(forged, PW), 535, "5.7.8")
        c.expect("AUTH PLAIN " + b64("\0\0"), 535, "5.7.8")
        c.expect("AUTH PLAIN " + b64("x\0y\0z\0w"), 535, "5.7.8")
        c.expect("AUTH PLAIN " + b64(b"\0\xff\xfe@example.test\0" + PW.encode()), 535, "5.7.8")
        c.expect("AUTH LOGIN " + b64("alice@example.test\r\nMAIL FROM:<x>"), 334)
        c.expect(b64(PW), 535, "5.7.8")
        c.auth_plain(ALICE, PW)
    lib.wait_until(lambda: "session=forged" in srv.log, 1)
    for line in srv.log.splitlines():
        assert not line.startswith("2026-01-01T00:00:00.000Z auth session=forged"), line


def test_mechanism_name_case_and_rset_keeps_auth(srv, token):
    with connect(srv) as c:
        c.expect("auth plain " + plain_response(ALICE, PW), 235, "2.7.0")
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RSET", 250)
        send(c, ALICE, [BOB], token)
    srv.wait_message(BOB, token)


def test_disconnect_mid_exchange(srv):
    """Clients that vanish while their step runs on a worker, or between steps."""
    for line in ("AUTH PLAIN " + plain_response(ALICE, PW),
                 "AUTH PLAIN " + plain_response(ALICE, WRONG), "AUTH LOGIN", "AUTH SCRAM-SHA-256"):
        c = connect(srv)
        c.send(line + "\r\n")
        c.close()
    c = connect(srv)
    c.expect("AUTH LOGIN", 334)
    c.send(b64(ALICE) + "\r\n" + b64(PW) + "\r\n")
    c.close()
    time.sleep(0.3)
    with connect(srv) as c:
        c.auth_plain(ALICE, PW)


def test_parallel_logins(srv):
    import concurrent.futures

    def one(i):
        with connect(srv, "submissions") as c:
            user = ALICE if i % 2 else BOB
            pw = PW if i % 3 else WRONG
            r = c.cmd("AUTH PLAIN " + plain_response(user, pw))
            return (pw == PW and r.code == 235) or (pw == WRONG and r.code == 535), (i, r)

    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, range(36)))
    bad = [r for ok, r in results if not ok]
    assert not bad, bad


# -- success, authorization identity, senders ------------------------------------------

@pytest.mark.parametrize("role", ["submission", "submissions"])
def test_plain_and_login_deliver(srv, role, token):
    with connect(srv, role) as c:
        mechs = lib.auth_mechanisms(c.ehlo())
        assert mechs == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1",
                         "PLAIN", "LOGIN"], mechs
        c.expect("AUTH LOGIN", 334, None)
        c.expect(b64(ALICE), 334)
        c.expect(b64(PW), 235, "2.7.0")
        send(c, ALICE, [BOB], token)
    rec = received_header(srv.wait_message(BOB, token))
    assert " with ESMTPSA " in rec, rec


def test_login_prompts(srv):
    import base64
    with connect(srv) as c:
        r = c.expect("AUTH LOGIN", 334)
        assert base64.b64decode(r.lines[0]).lower().replace(b" ", b"").startswith(b"username"), r
        r = c.expect(b64(ALICE), 334)
        assert base64.b64decode(r.lines[0]).lower().startswith(b"password"), r
        c.expect(b64(PW), 235, "2.7.0")


def test_submission_needs_auth(srv):
    for role in ("submission", "submissions"):
        with connect(srv, role) as c:
            c.expect("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
            c.expect("MAIL FROM:<>", 530, "5.7.0")


def test_authzid(srv, token):
    carol, dave = "carol@example.test", "dave@example.test"
    with connect(srv) as c:
        # carol may not act as dave (yet).
        c.expect("AUTH PLAIN " + plain_response(carol, PW, authzid=dave), 535, "5.7.8")
    srv.admin("user", "grant", carol, "--act-as", dave)
    with connect(srv) as c:
        c.expect("AUTH PLAIN " + plain_response(carol, PW, authzid=dave), 235, "2.7.0")
        c.expect("MAIL FROM:<%s>" % dave, 250, "2.1.0")
        c.expect("RCPT TO:<%s>" % ALICE, 250)
        c.expect("DATA", 354)
        c.send(make_body(token) + ".\r\n")
        c.expect(None, 250, "2.0.0")
    srv.wait_message(ALICE, token)
    # dave may not act as carol: grants are one-way.
    with connect(srv) as c:
        c.expect("AUTH PLAIN " + plain_response(dave, PW, authzid=carol), 535, "5.7.8")
    # Acting as oneself needs no grant.
    with connect(srv) as c:
        c.expect("AUTH PLAIN " + plain_response(dave, PW, authzid=dave), 235, "2.7.0")


def test_sender_ownership(srv, token):
    srv.admin("user", "grant", ALICE, "--send-as", "news@example.test")
    srv.admin("user", "grant", ALICE, "--send-as", "@alice-domain.test")
    for role in ("submission", "submissions"):
        with connect(srv, role) as c:
            c.auth_plain(ALICE, PW)
            for bad in (BOB, "other@example.test", "alice@other.test", "x@alice-domain.test.evil",
                        "news@example.testx", "x@sub.alice-domain.test"):
                c.expect("MAIL FROM:<%s>" % bad, 553, "5.7.1")
            for good in (ALICE, "ALICE@Example.Test", "sales@example.test", "news@example.test",
                         "anyone@alice-domain.test", ""):
                c.expect("MAIL FROM:<%s>" % good, 250, "2.1.0")
                c.expect("RSET", 250)
            send(c, "anyone@alice-domain.test", [BOB], token + role)
        srv.wait_message(BOB, token + role)


def test_port25_relay_needs_auth(srv, token):
    with connect(srv, "smtp") as c:
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<x@other.test>", 554, "5.7.1")
        c.expect("RSET", 250)
        c.auth_plain(ALICE, PW)
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<x@other.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(make_body(token) + ".\r\n")
        r = c.expect(None, 250, "2.0.0")
    qid = re.search(r"queued as (\S+)", r.text).group(1)
    path = os.path.join(srv.queue_dir, "msg", qid)
    assert os.path.exists(path), (r, srv.queue_files())
    with open(path, "rb") as f:
        assert token.encode() in f.read()


# Each trick and the one answer it gets: a local part that hides another domain is no
# local user (550 5.1.1), a malformed one is a syntax error (501 5.1.3), and a domain that
# is not ours is relaying (554 5.7.1).
RELAY_TRICKS = [
    ("x%other.test@example.test", 550, "5.1.1"), ("x%other.test@localhost", 550, "5.1.1"),
    ("other.test!x@example.test", 550, "5.1.1"), ('"x@other.test"@example.test', 550, "5.1.1"),
    ('"x@other.test"', 501, "5.1.3"), ("@example.test:x@other.test", 554, "5.7.1"),
    ("@other.test:x@example.test", 550, "5.1.1"), ("x@other.test@example.test", 501, "5.1.3"),
    ("x%other.test", 501, "5.1.3"), ("other.test!x", 501, "5.1.3"),
    ("x@other.test.", 501, "5.1.3"), ("x@OTHER.test", 554, "5.7.1"),
    ("x@[192.0.2.1]", 554, "5.7.1"), ("x@example.test.other.test", 554, "5.7.1"),
]


@pytest.mark.parametrize("tls", [False, True])
def test_relay_tricks_refused(srv, tls):
    got = []
    for rcpt, _, _ in RELAY_TRICKS:
        # One session each: refusals count as errors (max_errors).
        with connect(srv, "smtp", tls=tls) as c:
            c.expect("MAIL FROM:<s@other.test>", 250)
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            got.append((rcpt, r.code, r.enhanced))
    assert got == RELAY_TRICKS


def test_relay_tricks_do_not_add_errors_that_matter(srv):
    """The tricks above count as errors; a fresh session per batch keeps under
    max_errors. Here: a local address with a quoted @ still reaches its user."""
    with connect(srv, "smtp", tls=False) as c:
        c.expect("MAIL FROM:<s@other.test>", 250)
        c.expect('RCPT TO:<"alice"@example.test>', 250)


def _queue_record(path, key):
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if line.startswith(key.encode() + b" "):
                return line[len(key) + 1:].decode()
    return None


def test_mail_auth_param(srv, token):
    # Unauthenticated: accepted, but taken as AUTH=<>.
    with connect(srv, "smtp", tls=False) as c:
        c.expect("MAIL FROM:<s@other.test> AUTH=alice+40example.test", 250, "2.1.0")
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<s@other.test> AUTH=<>", 250, "2.1.0")
        c.expect("RCPT TO:<%s>" % ALICE, 250)
        c.expect("DATA", 354)
        c.send(make_body(token + "u") + ".\r\n")
        c.expect(None, 250)
    srv.wait_message(ALICE, token + "u")
    # Authenticated: only the user's own identity is kept; without one, the user
    # stands for it.
    qids = []
    with connect(srv, "smtp") as c:
        c.auth_plain(ALICE, PW)
        for param, tok in ((" AUTH=alice+2Bx+40example.test", "a1"), ("", "a2")):
            c.expect("MAIL FROM:<%s>%s" % (ALICE, param), 250, "2.1.0")
            c.expect("RCPT TO:<x@other.test>", 250)
            c.expect("DATA", 354)
            c.send(make_body(token + tok) + ".\r\n")
            r = c.expect(None, 250)
            qids.append(re.search(r"queued as (\S+)", r.text).group(1))
    recs = [_queue_record(os.path.join(srv.queue_dir, "msg", q), "auth") for q in qids]
    # alice+x is not alice: a forged identity is replaced by the authenticated one
    # (test_policy.py covers the identities that are kept).
    assert recs == [ALICE, ALICE], recs


def test_mail_auth_param_unauthenticated_stored_as_null(start_server, token):
    """A message from an unauthenticated client that stays queued (its mailbox cannot be
    made): its auth record must be <>, whatever the client claimed."""
    srv = start_server(retry_min=3600, retry_max=3600)
    # A plain file where the Maildir directory would go: local delivery defers.
    os.makedirs(os.path.join(srv.mail_dir, "example.test"), exist_ok=True)
    with open(srv.maildir(BOB), "w") as f:
        f.write("not a directory\n")
    with connect(srv, "smtp", tls=False) as c:
        c.expect("MAIL FROM:<s@other.test> AUTH=alice+40example.test", 250, "2.1.0")
        c.expect("RCPT TO:<%s>" % BOB, 250)
        c.expect("DATA", 354)
        c.send(make_body(token) + ".\r\n")
        r = c.expect(None, 250)
    qid = re.search(r"queued as (\S+)", r.text).group(1)
    path = os.path.join(srv.queue_dir, "msg", qid)
    lib.wait_until(lambda: "id=%s" % qid in srv.log and "deferred" in srv.log, 5)
    if not os.path.exists(path):
        pytest.skip("the message left the queue (delivery did not defer): %s" % srv.log[-1500:])
    rec = _queue_record(path, "auth")
    assert rec == "<>", rec  # xtext leaves "<" and ">" as they are


# -- Received:, submission fields -----------------------------------------------------------

def test_received_privacy_and_submission_fields(start_server, token):
    srv = start_server(listener_opts={
        "submission": {"received_hide_client": "yes", "received_show_user": "yes"}})
    # 587 with both options; 465 without.
    with connect(srv, "submission") as c:
        c.auth_plain(ALICE, PW)
        body = "From: <alice@example.test>\r\nTo: <bob@example.test>\r\nSubject: %s\r\n\r\nhi\r\n" % token
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<%s>" % BOB, 250)
        c.expect("DATA", 354)
        c.send(body + ".\r\n")
        c.expect(None, 250)
    m = srv.wait_message(BOB, token)
    rec = received_header(m)
    assert " with ESMTPSA " in rec, rec
    assert ALICE in rec, rec
    assert "127.0.0.1" not in rec and "client.test" not in rec, rec
    head = m.split(b"\r\n\r\n", 1)[0]
    assert len(re.findall(rb"(?mi)^Date:", head)) == 1, head
    assert len(re.findall(rb"(?mi)^Message-ID:", head)) == 1, head

    with connect(srv, "submissions") as c:
        c.auth_plain(ALICE, PW)
        body = ("From: <alice@example.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                "Message-ID: <%s@client.example>\r\nSubject: s2\r\n\r\nhi\r\n" % token)
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<%s>" % BOB, 250)
        c.expect("DATA", 354)
        c.send(body + ".\r\n")
        c.expect(None, 250)
    m = srv.wait_message(BOB, token + "@client.example")
    rec = received_header(m)
    assert " with ESMTPSA " in rec and "127.0.0.1" in rec, rec
    assert "authenticated" not in rec and ALICE not in rec, rec
    head = m.split(b"\r\n\r\n", 1)[0]
    assert re.findall(rb"(?mi)^Date:[^\r\n]*", head) == [b"Date: Mon, 1 Jan 2024 00:00:00 +0000"], head
    assert len(re.findall(rb"(?mi)^Message-ID:", head)) == 1, head

    # Port 25, unauthenticated: no fields added (not a submission).
    with connect(srv, "smtp", tls=False) as c:
        c.expect("MAIL FROM:<s@other.test>", 250)
        c.expect("RCPT TO:<%s>" % BOB, 250)
        c.expect("DATA", 354)
        c.send("Subject: %s-25\r\n\r\nhi\r\n.\r\n" % token)
        c.expect(None, 250)
    m = srv.wait_message(BOB, token + "-25")
    rec = received_header(m)
    assert " with ESMTP " in rec and "127.0.0.1" in rec, rec


# -- app passwords ------------------------------------------------------------------------

def test_app_passwords(srv, token):
    r = srv.admin("user", "app-password", "add", ALICE, "phone")
    m = re.search(r'app password "phone" of \S+: (\S+)', r.stdout)
    assert m, r.stdout
    app = m.group(1)
    SECRETS.extend([app, b64(app), plain_response(ALICE, app)])
    lst = srv.admin("user", "app-password", "list", ALICE).stdout
    assert re.search(r"(?m)^phone\t.*last used never", lst), lst
    assert app not in lst and app not in srv.admin("user", "show", ALICE).stdout
    with connect(srv) as c:
        c.auth_plain(ALICE, app)
        send(c, ALICE, [BOB], token)
    srv.wait_message(BOB, token)
    # The main password still works; another user cannot use alice's app password.
    with connect(srv) as c:
        c.auth_plain(ALICE, PW)
    with connect(srv) as c:
        c.auth_plain(BOB, app, 535, "5.7.8")
    lst = srv.admin("user", "app-password", "list", ALICE).stdout
    m = re.search(r"(?m)^phone\t.*last used (\S+)", lst)
    assert m and m.group(1) != "never" and re.match(r"\d{4}-\d\d-\d\dT", m.group(1)), lst
    srv.admin("user", "app-password", "revoke", ALICE, "phone")
    with connect(srv) as c:
        c.auth_plain(ALICE, app, 535, "5.7.8")
        c.auth_plain(ALICE, PW)


# -- the log: last, it covers the whole module ---------------------------------------------

def test_zz_log_lines_and_no_secrets(srv):
    log = srv.log
    lines = [l for l in log.splitlines() if " auth session=" in l]
    assert lines, log[-3000:]
    pat = re.compile(r' auth session=\S+ client=\S+ listener=\S+ mechanism=\S+ authid="[^"]*"'
                     r' .*result=(ok|fail|aborted|refused|tempfail|bad-base64)\b')
    for l in lines:
        assert pat.search(l), l
    assert any('authid="nobody@example.test"' in l and "result=fail" in l for l in lines)
    assert any('authid="alice@example.test"' in l and "result=ok" in l for l in lines)
    assert any("result=aborted" in l for l in lines)
    for s in SECRETS:
        assert s not in log, "a secret or payload in the log: %r" % s
