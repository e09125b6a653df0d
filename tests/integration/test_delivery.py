"""The delivery scheduler with local mailboxes (SPEC "Queue and delivery"): partial
progress is kept, temporary failures are retried, expiry and permanent failures bounce
with an RFC 3464 DSN to the sender (never to the null sender), NOTIFY is honoured, a delay
warning goes out once, and the next attempt survives a restart.

A mailbox is made to fail temporarily by putting a regular file where its Maildir
directory would be (ENOTDIR); removing the file lets the next attempt in."""
import email
import email.policy
import os
import re
import time

import cursus_testlib as lib


def block(srv, user):
    path = srv.maildir(user)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("not a maildir\n")
    return path


def send(srv, sender, rcpts, token, rcpt_params=""):
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        for r in rcpts:
            c.expect("RCPT TO:<%s>%s" % (r, rcpt_params), 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(lib.make_body(token).encode() + b".\r\n")
        return c.expect(None, 250, "2.0.0")


def dsn_parts(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    groups = []
    for block_ in parts[1].get_payload():
        groups.append({k.lower(): str(v) for k, v in block_.items()})
    return msg, parts, groups


def dsns_for(srv, user):
    return [m for m in srv._read_all(user) if b"multipart/report" in m]


def test_partial_progress_then_retry(start_server, token):
    srv = start_server(retry_min=1, retry_max=1)
    blocked = block(srv, "bob@example.test")
    send(srv, "carol@remote.example", ["alice@example.test", "bob@example.test"], token)
    srv.wait_message("alice@example.test", token)
    lib.wait_until(lambda: 'rcpt="bob@example.test"' in srv.log and "result=deferred" in srv.log,
                   10)
    assert re.search(r'rcpt="bob@example.test" .*result=deferred status=4\.2\.0 .*'
                     r'reply="maildir: Not a directory"', srv.log), srv.log[-3000:]
    assert len(srv.queue_files()) == 2  # the message and its journal
    os.unlink(blocked)
    srv.wait_message("bob@example.test", token)
    assert srv.wait_queue_empty(10), srv.queue_files()
    # alice's copy was recorded: the retry did not deliver it again.
    assert len(srv.messages_with("alice@example.test", token)) == 1


def test_expiry_bounces_to_the_sender(start_server, token):
    srv = start_server(retry_min=1, retry_max=1, queue_lifetime=1)
    block(srv, "bob@example.test")
    send(srv, "alice@example.test", ["bob@example.test"], token,
         rcpt_params=" ORCPT=rfc822;bob@example.test")
    assert lib.wait_until(lambda: dsns_for(srv, "alice@example.test"), 15), srv.log[-3000:]
    raw = dsns_for(srv, "alice@example.test")[0]
    msg, parts, groups = dsn_parts(raw)
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@localhost"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert groups[0]["reporting-mta"] == "dns; localhost"
    rcpt = groups[1]
    assert rcpt["final-recipient"] == "rfc822; bob@example.test"
    assert rcpt["original-recipient"] == "rfc822; bob@example.test"
    assert rcpt["action"] == "failed"
    assert rcpt["status"] == "5.4.7"
    assert "Not a directory" in rcpt["diagnostic-code"]
    assert token.encode() in raw  # the original message comes back (RET unset: full)
    assert srv.wait_queue_empty(10), srv.queue_files()
    assert len(dsns_for(srv, "alice@example.test")) == 1


def test_delay_warning_once_then_delivered(start_server, token):
    srv = start_server(retry_min=1, retry_max=1, delay_warning_time=1)
    blocked = block(srv, "bob@example.test")
    send(srv, "alice@example.test", ["bob@example.test"], token)
    assert lib.wait_until(lambda: dsns_for(srv, "alice@example.test"), 15), srv.log[-3000:]
    # Two more attempts after the warning: still one warning.
    n = srv.log.count('rcpt="bob@example.test"')
    lib.wait_until(lambda: srv.log.count('rcpt="bob@example.test"') >= n + 2, 10)
    warnings = dsns_for(srv, "alice@example.test")
    assert len(warnings) == 1
    msg, parts, groups = dsn_parts(warnings[0])
    assert groups[1]["action"] == "delayed"
    assert groups[1]["status"] == "4.2.0"
    assert "will-retry-until" in groups[1]
    os.unlink(blocked)
    srv.wait_message("bob@example.test", token)
    assert srv.wait_queue_empty(10)
    assert len(dsns_for(srv, "alice@example.test")) == 1  # no report of the success


def test_notify_success_reports_delivery(start_server, token):
    srv = start_server()
    send(srv, "alice@example.test", ["bob@example.test"], token, rcpt_params=" NOTIFY=SUCCESS")
    srv.wait_message("bob@example.test", token)
    assert lib.wait_until(lambda: dsns_for(srv, "alice@example.test"), 15), srv.log[-3000:]
    msg, parts, groups = dsn_parts(dsns_for(srv, "alice@example.test")[0])
    assert groups[1]["action"] == "delivered"
    assert groups[1]["status"] == "2.0.0"
    assert srv.wait_queue_empty(10)


def test_notify_never_and_null_sender_get_no_dsn(start_server, token):
    srv = start_server(retry_min=1, retry_max=1, queue_lifetime=1)
    block(srv, "bob@example.test")
    send(srv, "alice@example.test", ["bob@example.test"], token + "-never",
         rcpt_params=" NOTIFY=NEVER")
    send(srv, "", ["bob@example.test"], token + "-null")
    assert lib.wait_until(lambda: srv.log.count("status=removed") >= 2, 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    assert "dsn id=" not in srv.log
    assert dsns_for(srv, "alice@example.test") == []
    assert len(re.findall(r'rcpt="bob@example.test" .*result=expired status=5\.4\.7', srv.log)) == 2


def test_next_attempt_survives_restart(start_server, token):
    srv = start_server(retry_min=3600, retry_max=3600)
    blocked = block(srv, "bob@example.test")
    send(srv, "carol@remote.example", ["bob@example.test"], token)
    assert lib.wait_until(lambda: "retry_in=3600s" in srv.log, 10), srv.log[-3000:]
    srv.stop()
    os.unlink(blocked)
    srv.start()
    # Recovered, but not due for an hour: no attempt is made at start.
    assert lib.wait_until(lambda: srv.log.count("queue recover:") >= 2, 10)
    time.sleep(1.5)
    assert srv.messages_with("bob@example.test", token) == []
    assert srv.log.count('rcpt="bob@example.test"') == 1
    assert len(srv.queue_files()) == 2
