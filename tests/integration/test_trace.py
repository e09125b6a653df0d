"""Protocol trace in cursusd (issue 4, section 2): sessions of chosen clients or users are
logged command by command, AUTH payloads as <hidden>; `cursus trace` changes the rules at
runtime through SIGHUP."""
import re

from cursus_testlib import PASSWORD, AuthSmtp, b64, make_body, plain_response, wait_until

ALICE = "alice@example.test"


def trace_lines(srv, session=None):
    lines = [l for l in srv.log.splitlines() if " trace session=" in l]
    if session:
        lines = [l for l in lines if " trace session=%s " % session in l]
    return lines


def session_of(lines, text):
    for l in lines:
        if text in l:
            return re.search(r"trace session=(\S+)", l).group(1)
    raise AssertionError("no trace line with %r in:\n%s" % (text, "\n".join(lines)))


def reloaded(srv, count):
    return lambda: srv.log.count("reload event=done") >= count


def submit_with_auth(srv, token, source=None):
    c = AuthSmtp(srv.ports["submission"], source=source)
    with c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth_plain(ALICE, PASSWORD)
        c.send_message(ALICE, [ALICE], make_body(token))
        c.expect("QUIT", 221, "2.0.0")


def test_untraced_session_leaves_no_trace(start_server, token):
    srv = start_server()
    submit_with_auth(srv, token)
    srv.wait_message(ALICE, token)
    assert trace_lines(srv) == []


def test_traced_client_session_is_in_the_log_without_secrets(start_server, token):
    srv = start_server()
    r = srv.admin("trace", "add", "client", "127.0.0.0/8")
    assert "reloads the trace rules" in r.stdout
    wait_until(reloaded(srv, 1), 10, what="SIGHUP reload")
    submit_with_auth(srv, token)
    srv.wait_message(ALICE, token)
    lines = trace_lines(srv)
    sid = session_of(lines, "start client=127.0.0.1 listener=submission")
    mine = "\n".join(trace_lines(srv, sid))
    # every command and every reply, in order, TLS included
    for want in ("S: 220 localhost ESMTP cursus", "C: EHLO client.test", "S: 250-STARTTLS",
                 "C: STARTTLS", "S: 220 2.0.0 Ready to start TLS", "tls=established version=TLSv1.",
                 "S: 250-AUTH ", "C: AUTH PLAIN <hidden>", "S: 235 2.7.0",
                 "C: MAIL FROM:<%s>" % ALICE, "S: 250 2.1.0 Ok", "C: RCPT TO:<%s>" % ALICE,
                 "C: DATA", "S: 354 ", "C: <message, ", "S: 250 2.0.0 Ok: queued as ",
                 "C: QUIT", "S: 221 2.0.0 Bye"):
        assert want in mine, "%r missing from the trace:\n%s" % (want, mine)
    order = [mine.index(w) for w in ("C: EHLO", "C: STARTTLS", "C: AUTH PLAIN", "C: MAIL", "C: QUIT")]
    assert order == sorted(order)
    log = srv.log
    assert PASSWORD not in log
    assert plain_response(ALICE, PASSWORD) not in log
    assert b64(PASSWORD) not in log


def test_sasl_exchange_payloads_hidden_both_ways(start_server):
    srv = start_server()
    srv.admin("trace", "add", "client", "127.0.0.1")
    wait_until(reloaded(srv, 1), 10, what="SIGHUP reload")
    c = AuthSmtp(srv.ports["submissions"], tls=True)
    with c:
        c.greeting()
        c.ehlo()
        c.expect("AUTH LOGIN", 334)
        c.expect(b64(ALICE), 334)
        c.expect(b64(PASSWORD), 235, "2.7.0")
    wait_until(lambda: "C: <hidden>" in srv.log, 10, what="trace of the exchange")
    mine = "\n".join(trace_lines(srv))
    assert "C: AUTH LOGIN" in mine
    assert mine.count("S: 334 <hidden>") == 2
    assert mine.count("C: <hidden>") == 2
    assert b64(ALICE) not in srv.log and b64(PASSWORD) not in srv.log and PASSWORD not in srv.log


def test_trace_by_user_starts_at_auth(start_server, token):
    srv = start_server()
    srv.admin("trace", "add", "user", ALICE)
    wait_until(reloaded(srv, 1), 10, what="SIGHUP reload")
    submit_with_auth(srv, token)
    srv.wait_message(ALICE, token)
    lines = trace_lines(srv)
    sid = session_of(lines, "start user=%s" % ALICE)
    mine = "\n".join(trace_lines(srv, sid))
    assert "C: MAIL FROM:<%s>" % ALICE in mine and "S: 221 2.0.0 Bye" in mine
    assert "C: STARTTLS" not in mine  # before AUTH the user was not known
    assert PASSWORD not in srv.log


def test_other_client_not_traced_and_rules_removed_at_runtime(start_server, token):
    srv = start_server()
    srv.admin("trace", "add", "client", "127.0.0.2")
    wait_until(reloaded(srv, 1), 10, what="SIGHUP reload")
    submit_with_auth(srv, token + "a", source="127.0.0.3")
    assert trace_lines(srv) == []
    submit_with_auth(srv, token + "b", source="127.0.0.2")
    assert any("start client=127.0.0.2" in l for l in trace_lines(srv))
    assert "client 127.0.0.2" in srv.admin("trace", "list").stdout
    srv.admin("trace", "del", "client", "127.0.0.2")
    wait_until(reloaded(srv, 2), 10, what="second SIGHUP reload")
    before = len(trace_lines(srv))
    submit_with_auth(srv, token + "c", source="127.0.0.2")
    assert len(trace_lines(srv)) == before
    assert srv.admin("trace", "list").stdout.strip() == ""


def test_bad_trace_rule_refused(start_server):
    srv = start_server()
    r = srv.admin("trace", "add", "client", "not-an-address", check=False)
    assert r.returncode == 1 and "not an address" in r.stderr
    r = srv.admin("trace", "add", "host", "127.0.0.1", check=False)
    assert r.returncode == 2
    r = srv.admin("trace", "del", "client", "10.0.0.1", check=False)
    assert r.returncode == 1 and "no trace rule" in r.stderr


def test_trace_user_rule_is_one_valid_name(start_server):
    srv = start_server()
    r = srv.admin("trace", "add", "user", "x@example.test\nclient 0.0.0.0/0", check=False)
    assert r.returncode == 1 and "invalid user name" in r.stderr
    r = srv.admin("trace", "add", "user", "", check=False)
    assert r.returncode == 1
    srv.admin("trace", "add", "user", "Alice@Example.Test")
    assert srv.admin("trace", "list").stdout.strip() == "user alice@example.test"
