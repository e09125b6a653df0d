"""The brute-force limiter of SMTP AUTH, with small budgets: delayed replies after a few
failures, 454 4.7.0 (before any password is checked) and 421 4.7.0 at connect once an
address's budget is spent, an account attacked from many addresses still open to its
owner from a clean address, successes never counted. Several loopback addresses
(127.0.0.2, .3, ...) stand for several clients: on Linux all of 127/8 is loopback."""
import re
import time

import pytest

import cursus_testlib as lib
from cursus_testlib import AuthSmtp, make_body, plain_response

PW = lib.PASSWORD
ALICE, BOB = "alice@example.test", "bob@example.test"
SMALL = dict(auth_fail_addr_budget=4, auth_fail_account_budget=6, auth_fail_delay_after=2,
             auth_fail_delay_base=200, auth_fail_delay_max=400, auth_fail_cooldown=30)


def assert_no_secret(log):
    for secret in (PW, "wrong password", lib.b64(PW), plain_response(ALICE, PW),
                   plain_response(BOB, PW), plain_response(ALICE, "wrong password"),
                   plain_response("nobody@example.test", "wrong password")):
        assert secret not in log, "a secret or payload in the log: %r" % secret


def connect(srv, source="127.0.0.1", role="submissions"):
    c = AuthSmtp(srv.ports[role], tls=(role == "submissions"), source=source)
    c.greeting()
    c.ehlo()
    return c


def timed(c, line):
    t = time.monotonic()
    r = c.cmd(line)
    return r, time.monotonic() - t


def fail(c, user=ALICE):
    r, dt = timed(c, "AUTH PLAIN " + plain_response(user, "wrong password"))
    assert r.code == 535 and r.enhanced == "5.7.8", r
    return dt


def test_address_budget(start_server, token):
    srv = start_server(**SMALL)
    with connect(srv) as c:
        t1, t2 = fail(c), fail(c)
        t3, t4 = fail(c), fail(c)
        # After delay_after (2) failures, each reply waits (200 ms, then 400 ms).
        assert t3 >= 0.15 and t4 >= 0.15, (t1, t2, t3, t4)
        assert t3 > max(t1, t2) + 0.1, (t1, t2, t3, t4)
        # Budget (4) spent: refused before any password is checked, even the right one.
        r, dt = timed(c, "AUTH PLAIN " + plain_response(ALICE, PW))
        assert r.code == 454 and r.enhanced == "4.7.0", r
        r = c.cmd("AUTH PLAIN " + plain_response(BOB, PW))
        assert r.code == 454 and r.enhanced == "4.7.0", r
        r = c.cmd("AUTH LOGIN")
        assert r.code == 454, r
    # A new connection from that address: 421 at once.
    c = AuthSmtp(srv.ports["submissions"], tls=True)
    with c:
        c.expect(None, 421, "4.7.0")
    c = AuthSmtp(srv.ports["submission"])
    with c:
        c.expect(None, 421, "4.7.0")
    # Another address is not affected; the account budget (6) is not spent.
    with connect(srv, "127.0.0.2") as c:
        c.auth_plain(ALICE, PW)
        c.send_message(ALICE, [BOB], make_body(token))
    srv.wait_message(BOB, token)
    log = srv.log
    assert re.search(r" auth session=\S+ client=127\.0\.0\.1 .*result=refused reason=address-budget",
                     log), log[-3000:]
    assert "event=refused reason=auth-budget client=127.0.0.1" in log, log[-3000:]
    # One line per attempt: 4 failures, 3 refusals, 1 success; no secret.
    lines = [l for l in log.splitlines() if " auth session=" in l]
    assert len(lines) == 8, "\n".join(lines)
    assert [l.split("result=")[1].split()[0] for l in lines] == \
        ["fail"] * 4 + ["refused"] * 3 + ["ok"], "\n".join(lines)
    assert_no_secret(log)


def test_account_attacked_from_many_addresses(start_server, token):
    srv = start_server(**SMALL)
    # 3 failures from each of .3 and .4: each address below its budget (4), the account's
    # budget (6) spent. The same for an account that does not exist.
    for src in ("127.0.0.3", "127.0.0.4"):
        with connect(srv, src) as c:
            for _ in range(3):
                fail(c)
    for src in ("127.0.0.5", "127.0.0.6"):
        with connect(srv, src) as c:
            for _ in range(3):
                fail(c, "nobody@example.test")
    # From an address that failed for alice: refused, even with the right password.
    with connect(srv, "127.0.0.3") as c:
        c.expect("AUTH PLAIN " + plain_response(ALICE, PW), 454, "4.7.0")
        # Not the address: bob may log in from it.
        c.auth_plain(BOB, PW)
    with connect(srv, "127.0.0.4") as c:
        c.expect("AUTH LOGIN", 334)
        c.expect(lib.b64(ALICE), 334)
        c.expect(lib.b64(PW), 454, "4.7.0")
    # An unknown account is treated alike (existence is not revealed).
    with connect(srv, "127.0.0.5") as c:
        c.expect("AUTH PLAIN " + plain_response("nobody@example.test", PW), 454, "4.7.0")
    # The owner, from a clean address, logs in and sends.
    with connect(srv, "127.0.0.2") as c:
        c.auth_plain(ALICE, PW)
        c.send_message(ALICE, [BOB], make_body(token))
    srv.wait_message(BOB, token)
    assert re.search(r" auth session=\S+ client=127\.0\.0\.3 .*authid=\"alice@example\.test\""
                     r" .*result=refused reason=account-budget", srv.log), srv.log[-3000:]
    assert_no_secret(srv.log)


def test_successes_never_count(start_server):
    srv = start_server(**SMALL)
    times = []
    for i in range(12):
        with connect(srv) as c:
            r, dt = timed(c, "AUTH PLAIN " + plain_response(ALICE if i % 2 else BOB, PW))
            assert r.code == 235, (i, r)
            times.append(dt)
    with connect(srv) as c:
        fail(c)
        fail(c)
        fail(c)
        # 3 failures after 12 successes: below the budget of 4.
        c.auth_plain(ALICE, PW)
    # Successes are never slowed down: no 200 ms delay in any of them.
    assert sorted(times)[len(times) // 2] < 0.15, times


def test_cooldown_ends(start_server):
    srv = start_server(auth_fail_addr_budget=2, auth_fail_account_budget=100,
                       auth_fail_delay_after=100, auth_fail_cooldown=2, auth_fail_window=2)
    with connect(srv) as c:
        fail(c)
        fail(c)
        c.expect("AUTH PLAIN " + plain_response(ALICE, PW), 454, "4.7.0")
    ok = lib.wait_until(lambda: _try_login(srv), 6, interval=0.5)
    assert ok, srv.log[-2000:]


def _try_login(srv):
    try:
        with connect(srv) as c:
            return c.cmd("AUTH PLAIN " + plain_response(ALICE, PW)).code == 235
    except (AssertionError, lib.SmtpClosed, OSError):
        return False


def test_disconnect_during_delay(start_server):
    """A client that hangs up while its failure reply is held back: the daemon survives
    (teardown checks it, and the sanitizer build checks the memory)."""
    srv = start_server(**SMALL)
    c = connect(srv)
    fail(c)
    fail(c)
    c.send("AUTH PLAIN " + plain_response(ALICE, "wrong password") + "\r\n")
    time.sleep(0.05)
    c.close()
    time.sleep(0.6)
    with connect(srv, "127.0.0.2") as c:
        c.auth_plain(ALICE, PW)
