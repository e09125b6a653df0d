"""Delivery reads the message from its queue file a block at a time: many big messages
relayed and written to Maildirs at once keep cursusd's memory low; a queue file
corrupted after it was committed is moved to corrupt/ and never sent; a DSN returns the
whole message only up to bounce_size_limit, its header beyond (as Postfix does)."""
import email
import email.policy
import os
import threading

import cursus_testlib as lib
from cursus_testlib import PASSWORD, AuthSmtp, make_body, wait_until
from relaypeers import sinks  # noqa: F401 (fixture)

MIB = 1024 * 1024
LINE = b"x" * 998 + b"\r\n"
ALICE = "alice@example.test"


def body_of(token, size, tail=b""):
    head = make_body(token, text="").encode()
    return head + LINE * ((size - len(head) - len(tail)) // len(LINE)) + tail


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def submit(srv, rcpts, body):
    """alice on 465 (implicit TLS, AUTH PLAIN); returns the queue id."""
    with AuthSmtp(srv.ports["submissions"], tls=True, timeout=120) as c:
        c.greeting()
        c.ehlo()
        c.auth_plain(ALICE, PASSWORD)
        c.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
        for r in rcpts:
            c.expect("RCPT TO:<%s>" % r, 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(body + b".\r\n")
        return c.expect(None, 250, "2.0.0", timeout=120).text.split()[-1]


def delivered_lines(srv, rcpt):
    return [l for l in srv.log.splitlines()
            if 'rcpt="%s"' % rcpt in l and "result=delivered" in l]


def test_big_messages_relayed_and_stored_at_once_keep_memory_low(start_server, sinks, token):
    """10 messages of 30 MiB, each to a next hop and to a Maildir, all delivered at once
    (relay concurrency 10). Read whole per delivery, that was 300 MiB and more."""
    port = lib.free_port()
    # The first daemon only receives: nothing listens yet at its next hop and bob's
    # Maildir cannot be made (a file is in its place), so both deliveries are deferred.
    srv = start_server(max_message_size="40M", retry_min=1, retry_max=2,
                       relay_host="[127.0.0.91]:%d" % port,
                       relay_concurrency_init=10, relay_concurrency_max=10)
    os.makedirs(os.path.dirname(srv.maildir("bob@example.test")), exist_ok=True)
    with open(srv.maildir("bob@example.test"), "w") as f:
        f.write("not a Maildir\n")
    bodies = [body_of("%s-%d" % (token, i), 30 * MIB) for i in range(10)]
    errors = []

    def client(i):
        try:
            submit(srv, ["far@elsewhere.test", "bob@example.test"], bodies[i])
        except Exception as e:   # reported below, on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(srv.queue_files()) >= 10
    srv.stop()
    # The second daemon finds 10 big messages due and delivers them all at once: its
    # peak memory is delivery's.
    os.unlink(srv.maildir("bob@example.test"))
    sinks.smtp_sink("127.0.0.91", port=port)
    srv.start()
    assert srv.wait_queue_empty(240), srv.log[-3000:]
    assert len(delivered_lines(srv, "far@elsewhere.test")) == 10, srv.log[-3000:]
    assert len(delivered_lines(srv, "bob@example.test")) == 10
    peak_kib = status_kib(srv.proc.pid, "VmHWM")
    # Streamed, about the idle figure (15 MiB measured); read whole, 450 MiB. (Not
    # under ASan, whose quarantine holds freed memory.)
    assert lib.SANITIZED or peak_kib < 40 * 1024, "VmHWM %d KiB" % peak_kib
    for i in (0, 9):
        got = srv.wait_message("bob@example.test", "%s-%d" % (token, i))
        assert got.endswith(bodies[i])


def test_queue_file_corrupted_after_commit_is_never_sent(start_server, sinks, token):
    """One connection to the next hop: the first message holds it (the reply to its dot
    is late) while the second, loaded and waiting, has a byte of its body flipped on
    disk. Its delivery checks the file whole first: moved to corrupt/, never sent (it
    was deferred as unreadable before, and moved aside only at its next attempt)."""
    port, events = sinks.aio("127.0.0.92", "--dot-delay", "2")
    srv = start_server(relay_host="[127.0.0.92]:%d" % port, relay_concurrency_init=1,
                       relay_concurrency_max=1, retry_min=600, retry_max=600)
    submit(srv, ["far@elsewhere.test"], make_body(token + "-first").encode())
    wait_until(lambda: any(e["ev"] == "data" for e in events()), 20,
               what="the first message at the next hop")
    qid = submit(srv, ["far@elsewhere.test"], body_of(token + "-second", 64 * 1024))
    # Loaded and routed (the route is in its journal): its delivery waits for the
    # connection the first one holds.
    wait_until(lambda: os.path.exists(os.path.join(srv.queue_dir, "msg", qid + ".state")), 10,
               what="the second message routed")
    path = os.path.join(srv.queue_dir, "msg", qid)
    with open(path, "r+b") as f:
        data = f.read()
        pos = data.index(b"x" * 998) + 500
        f.seek(pos)
        f.write(b"y")
    corrupt = os.path.join(srv.queue_dir, "corrupt", qid)
    assert wait_until(lambda: os.path.exists(corrupt), 15), srv.log[-3000:]
    assert not os.path.exists(path)
    # The journal follows the message a moment later (a second rename).
    assert wait_until(lambda: os.path.exists(corrupt + ".state"), 5), srv.log[-3000:]
    assert "file=%s status=corrupt" % qid in srv.log
    assert srv.wait_queue_empty(10), srv.log[-3000:]
    datas = [e for e in events() if e["ev"] == "data"]
    assert len(datas) == 1 and token + "-first" in datas[0]["content"]
    assert not [l for l in srv.log.splitlines() if "delivery id=%s" % qid in l]


def returned_part(srv, token):
    def found():
        return [m for m in srv._read_all(ALICE) if b"multipart/report" in m and
                token.encode() in m]
    assert wait_until(found, 20), srv.log[-3000:]
    assert len(found()) == 1
    msg = email.message_from_bytes(found()[0], policy=email.policy.default)
    return msg.get_payload()[0].get_payload(), msg.get_payload()[2]


def test_dsn_returns_the_whole_message_up_to_bounce_size_limit(start_server, sinks, token):
    port, _ = sinks.aio("127.0.0.93", "--reject-rcpt", "nobody@elsewhere.test")
    srv = start_server(relay_host="[127.0.0.93]:%d" % port, bounce_size_limit=20000)
    small = body_of(token + "-small", 10000, tail=b"last line of the small one\r\n")
    big = body_of(token + "-big", 30000, tail=b"last line of the big one\r\n")
    submit(srv, ["nobody@elsewhere.test"], small)
    submit(srv, ["nobody@elsewhere.test"], big)

    text, part = returned_part(srv, token + "-small")
    assert part.get_content_type() == "message/rfc822"
    assert b"last line of the small one" in part.as_bytes()
    assert "too big" not in text

    text, part = returned_part(srv, token + "-big")
    # RFC 3462 text/rfc822-headers: the header of the message, nothing of its body.
    assert part.get_content_type() == "text/rfc822-headers"
    raw = part.as_bytes()
    assert ("Message-ID: <%s-big@test.example>" % token).encode() in raw
    assert b"Subject: test" in raw
    assert b"x" * 100 not in raw and b"last line of the big one" not in raw
    assert "too big to return whole" in " ".join(text.split())
    assert srv.wait_queue_empty(10)
