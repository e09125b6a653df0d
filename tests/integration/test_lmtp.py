"""LMTP delivery (RFC 2033) to a real Dovecot (dovecot_lmtp.py): cursusd accepts mail
for its local domain, validates the recipients against its own users as always, and
hands the mailboxes to Dovecot's LMTP server over a UNIX socket or TCP; the messages are
read back with `doveadm fetch`. Dovecot's quota makes one recipient fail while the
others are delivered: each gets its own outcome (a DSN with Dovecot's reply verbatim,
or a deferral)."""
import email
import email.policy
import json
import re

import cursus_testlib as lib
from dovecot_lmtp import dovecot_factory  # noqa: F401 (the fixture)

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
USERS = (ALICE, BOB, CAROL)
# bob: 1 KiB, so the test's message of 3 KiB is over quota (552 5.2.2); carol too, but
# Dovecot answers her with a temporary failure (452 4.2.2).
OVER = "userdb_quota_rule=*:storage=1"
QUOTAS = {ALICE: "", BOB: OVER, CAROL: OVER + " userdb_quota_full_tempfail=yes"}


def submit(srv, rcpts, token, text="Hello.\r\n", mail_params="", subject="test"):
    """alice submits one message on 465 (implicit TLS, AUTH PLAIN)."""
    lib.submit_as(srv, ALICE, rcpts, lib.make_body(token, subject=subject, text=text),
                  mail_params)


def lmtp_server(start_server, target, per_domain=False, **opts):
    """cursusd whose local domain example.test goes to the LMTP server target: by the
    global option, or by a route block."""
    conf = dict(users=USERS, retry_min=1, retry_max=2, relay_idle_time=30)
    conf.update(opts)
    if per_domain:
        conf["extra_conf"] = "route example.test {\n\tlmtp %s\n}" % target
    else:
        conf["lmtp"] = target
    return start_server(**conf)


def attempts(srv, rcpt):
    return [l for l in srv.log.splitlines() if "delivery id=" in l and 'rcpt="%s"' % rcpt in l]


def wait_attempt(srv, rcpt, pattern, timeout=15):
    ok = lib.wait_until(lambda: [l for l in attempts(srv, rcpt) if re.search(pattern, l)],
                        timeout)
    assert ok, "no %r for %s in the log:\n%s" % (pattern, rcpt, srv.log[-3000:])
    return ok[0]


def test_unix_socket_two_users_one_transaction(start_server, dovecot_factory, token):
    dc = dovecot_factory({ALICE: "", BOB: ""})
    srv = lmtp_server(start_server, dc.unix_target)
    submit(srv, [ALICE, BOB], token, text="Body of %s.\r\n" % token)
    for user in (ALICE, BOB):
        msg = dc.wait_fetch(user, token)
        assert "Body of %s." % token in msg
        # cursus's own Received field, then the message as submitted.
        unfolded = re.sub(r"\n[ \t]+", " ", msg)
        assert re.search(r"^Received: from client\.test \(\[127\.0\.0\.1\]\) by localhost "
                         r"\(cursus\) with ESMTPSA id ", unfolded, re.M), msg
        # Dovecot's, above it: cursus said LHLO with its hostname.
        assert re.search(r"^Received: from localhost by \S+ with LMTP", unfolded, re.M), msg
        assert "Message-ID: <%s@test.example>" % token in msg
        line = wait_attempt(srv, user, r"result=delivered")
        assert 'route="lmtp unix:%s"' % dc.socket in line, line
        assert "status=2.0.0" in line and "Saved" in line, line
    # Both mailboxes in one transaction, over one connection.
    assert dc.connects() == 1, dc.log
    assert srv.wait_queue_empty(10)


def test_tcp_target_per_domain(start_server, dovecot_factory, token):
    dc = dovecot_factory({ALICE: "", BOB: ""})
    srv = lmtp_server(start_server, dc.tcp_target, per_domain=True)
    submit(srv, [BOB], token)
    assert token in dc.wait_fetch(BOB, token)
    line = wait_attempt(srv, BOB, r"result=delivered")
    # The route names the block whose lmtp options apply.
    assert 'route="lmtp [127.0.0.1]:%d route+20example.test"' % dc.port in line, line
    assert re.search(r"lmtp\(\d+\): Info: Connect from 127\.0\.0\.1", dc.log), dc.log
    # Nothing in cursus's own Maildirs.
    assert srv.maildir_files(BOB) == []


def test_alias_goes_to_the_final_mailbox_once(start_server, dovecot_factory, token):
    dc = dovecot_factory({ALICE: "", BOB: ""})
    srv = lmtp_server(start_server, dc.unix_target,
                      aliases=[("team@example.test", ALICE), ("team@example.test", BOB),
                               ("sales@example.test", ALICE)])
    submit(srv, ["team@example.test", "sales@example.test"], token)
    assert srv.wait_queue_empty(15), srv.log[-3000:]
    # One copy each, though two aliases lead to alice; all three entries delivered.
    assert len([m for m in dc.fetch(ALICE) if token in m]) == 1
    assert len([m for m in dc.fetch(BOB) if token in m]) == 1
    assert len(re.findall(r"result=delivered", srv.log)) == 3, srv.log[-3000:]
    assert dc.wait_saved(2) == 2, dc.log


def test_rcpt_refused_by_dovecot_bounces_alone(start_server, dovecot_factory, token):
    """carol is a cursus user Dovecot does not know: 550 at RCPT, bounced with that
    reply; alice in the same transaction is delivered."""
    dc = dovecot_factory({ALICE: "", BOB: ""})
    srv = lmtp_server(start_server, dc.unix_target)
    submit(srv, [CAROL, ALICE], token)
    line = wait_attempt(srv, CAROL, r"result=failed")
    assert "status=5.1.1" in line and "550 5.1.1 <carol@example.test> User doesn't exist" in line, line
    wait_attempt(srv, ALICE, r"result=delivered")
    msg, rcpts = dsn_of(dc, ALICE)
    assert [r["final-recipient"] for r in rcpts] == ["rfc822; carol@example.test"], rcpts
    assert rcpts[0]["status"] == "5.1.1", rcpts


def dsn_of(dc, user, timeout=15):
    found = lib.wait_until(lambda: [m for m in dc.fetch(user) if "multipart/report" in m],
                           timeout, interval=0.2)
    assert found and len(found) == 1, "DSNs for %s: %r\n%s" % (user, found, dc.log[-2000:])
    msg = email.message_from_string(found[0], policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    status = msg.get_payload()[1].get_payload()
    # The per-message group, then one per recipient.
    return msg, [{k.lower(): str(v) for k, v in b.items()} for b in status][1:]


def test_over_quota_per_recipient(start_server, dovecot_factory, token):
    """alice is under quota, bob over it (552: bounced with Dovecot's reply), carol
    over it with tempfail (452: deferred, retried); alice's delivery is not affected."""
    dc = dovecot_factory(QUOTAS)
    srv = lmtp_server(start_server, dc.unix_target, retry_min=3600, retry_max=3600)
    submit(srv, [ALICE, BOB, CAROL], token, text="x" * 70 + "\r\n" * 1 + ("y" * 70 + "\r\n") * 40)
    wait_attempt(srv, ALICE, r"result=delivered status=2\.0\.0")
    bob = wait_attempt(srv, BOB, r"result=failed")
    assert "status=5.2.2" in bob and "552 5.2.2 <bob@example.test> Quota exceeded" in bob, bob
    carol = wait_attempt(srv, CAROL, r"result=deferred")
    assert "status=4.2.2" in carol and "452 4.2.2 <carol@example.test> Quota exceeded" in carol, carol
    # The DSN to alice (through LMTP too) names bob only, with the reply verbatim.
    msg, rcpts = dsn_of(dc, ALICE)
    assert [r["final-recipient"] for r in rcpts] == ["rfc822; bob@example.test"], rcpts
    assert rcpts[0]["action"] == "failed" and rcpts[0]["status"] == "5.2.2", rcpts
    assert rcpts[0]["diagnostic-code"].startswith(
        "smtp; 552 5.2.2 <bob@example.test> Quota exceeded"), rcpts
    # alice has her copy beside the DSN (which quotes its header, token and all).
    mine = [m for m in dc.fetch(ALICE) if token in m and "multipart/report" not in m]
    assert len(mine) == 1 and mine[0].endswith("y" * 70 + "\n"), mine
    # carol waits in the queue, alone.
    q = json.loads(srv.admin("queue", "list", "--json").stdout)
    assert len(q) == 1, q
    states = {r["address"]: r["state"] for r in q[0]["recipients"]}
    assert states == {ALICE: "delivered", BOB: "failed", CAROL: "deferred"}, states


def test_smtputf8_message_is_delivered(start_server, dovecot_factory, token):
    """Dovecot 2.3 does not offer SMTPUTF8; the mailbox is the last stop, so the
    message goes all the same (a relay would have to refuse it)."""
    dc = dovecot_factory({ALICE: "", BOB: ""})
    srv = lmtp_server(start_server, dc.unix_target)
    submit(srv, [BOB], token, mail_params=" SMTPUTF8 BODY=8BITMIME", subject="Grüße",
           text="Schöne Grüße.\r\n")
    msg = dc.wait_fetch(BOB, token)
    assert "Subject: Grüße" in msg and "Schöne Grüße." in msg, msg


def test_connection_reused_for_the_next_message(start_server, dovecot_factory, token):
    dc = dovecot_factory({ALICE: "", BOB: ""})
    srv = lmtp_server(start_server, dc.unix_target)
    submit(srv, [ALICE], token + "-1")
    dc.wait_fetch(ALICE, token + "-1")
    submit(srv, [BOB], token + "-2")
    dc.wait_fetch(BOB, token + "-2")
    # Two transactions (RSET between them), one LMTP connection.
    assert dc.connects() == 1, dc.log
    assert dc.wait_saved(2) == 2, dc.log


def test_dovecot_down_defers_then_flush_delivers(start_server, dovecot_factory, token):
    dc = dovecot_factory({ALICE: "", BOB: ""}, start=False)
    srv = lmtp_server(start_server, dc.tcp_target, retry_min=3600, retry_max=3600)
    submit(srv, [ALICE, BOB], token)
    line = wait_attempt(srv, BOB, r"result=deferred")
    assert "status=4.4.1" in line and "Connection refused" in line, line
    assert len([f for f in srv.queue_files() if "." not in f]) == 1, srv.queue_files()
    dc.start()
    r = srv.admin("queue", "flush")
    assert r.stdout.strip() == "flushed 1 message", r.stdout
    for user in (ALICE, BOB):
        dc.wait_fetch(user, token)
    assert srv.wait_queue_empty(10)
