"""Big messages are written to the queue file while they arrive: the daemon holds a few
64 KiB buffers per session, never the message; a message refused, given up or cut by a
crash leaves no file behind; 250 still only once file and directory are durable."""
import os
import re
import threading

from cursus_testlib import PASSWORD, AuthSmtp, make_body, wait_until

MIB = 1024 * 1024
LINE = b"x" * 998 + b"\r\n"


def body_of(token, size):
    """A message of about size octets (CRLF lines, no dot-stuffing needed)."""
    head = make_body(token, text="").encode()
    return head + LINE * ((size - len(head)) // len(LINE))


def tmp_files(srv):
    d = os.path.join(srv.queue_dir, "tmp")
    return [os.path.join(d, n) for n in os.listdir(d)] if os.path.isdir(d) else []


def tmp_bytes(srv):
    total = 0
    for p in tmp_files(srv):
        try:
            total += os.path.getsize(p)
        except FileNotFoundError:
            pass
    return total


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def start_transaction(srv, rcpts=("alice@example.test",)):
    c = srv.smtp(timeout=60)
    c.ehlo()
    c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    for r in rcpts:
        c.expect("RCPT TO:<%s>" % r, 250, "2.1.5")
    return c


def submission(srv, rcpts):
    """alice on 465 (implicit TLS, AUTH PLAIN), in a transaction to rcpts."""
    c = AuthSmtp(srv.ports["submissions"], tls=True, timeout=60)
    c.greeting()
    c.ehlo()
    c.auth_plain("alice@example.test", PASSWORD)
    c.expect("MAIL FROM:<alice@example.test>", 250, "2.1.0")
    for r in rcpts:
        c.expect("RCPT TO:<%s>" % r, 250, "2.1.5")
    return c


def dead_relay(srv, token):
    """Marks the smart host (a closed port) dead with one small message, so the big
    messages after it wait in the queue without a delivery attempt reading them."""
    with submission(srv, ["far@elsewhere.test"]) as c:
        c.expect("DATA", 354)
        c.send(make_body(token + "probe").encode() + b".\r\n")
        c.expect(None, 250, "2.0.0")
    wait_until(lambda: "deferred" in srv.log, 20, what="the first relay attempt deferred")


def test_parallel_big_messages_keep_memory_low(start_server, token):
    """10 sessions each send a 30 MiB message at once. Held whole, that was over 300 MiB
    of the daemon's memory; streamed, the peak stays near the idle figure."""
    srv = start_server(max_message_size="40M", relay_concurrency_init=1, relay_concurrency_max=1)
    dead_relay(srv, token)
    idle_kib = status_kib(srv.proc.pid, "VmHWM")
    body = body_of(token, 30 * MIB)
    replies, errors = [], []

    def client(i):
        try:
            with submission(srv, ["far@elsewhere.test"]) as c:
                c.expect("DATA", 354)
                c.send(body.replace(token.encode(), b"%s-%d" % (token.encode(), i), 1) + b".\r\n")
                replies.append(c.expect(None, 250, "2.0.0", timeout=120))
        except Exception as e:   # reported below, on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    assert len(replies) == 10
    peak_kib = status_kib(srv.proc.pid, "VmHWM")
    # Streamed, 10 sessions add a few MiB at most to the idle peak; the whole messages
    # would add 300 MiB and more.
    assert peak_kib < 60 * 1024, "VmHWM %d KiB (idle %d KiB)" % (peak_kib, idle_kib)
    assert peak_kib - idle_kib < 40 * 1024, "VmHWM %d KiB (idle %d KiB)" % (peak_kib, idle_kib)
    assert not tmp_files(srv)
    ids = [r.text.split()[-1] for r in replies]
    for qid in ids:
        path = os.path.join(srv.queue_dir, "msg", qid)
        size = os.path.getsize(path)
        assert len(body) < size < len(body) + 8192, (qid, size)
        with open(path, "rb") as f:
            f.seek(size - 64)
            tail = f.read()
        assert re.search(rb"\nend \d+ [0-9a-f]{8}\n\Z", tail), tail
    out = srv.admin("queue", "show", ids[0]).stdout
    assert ids[0] in out


def test_streamed_message_delivered_intact(start_server, token):
    srv = start_server(max_message_size="10M")
    body = body_of(token, 3 * MIB) + b"..dot-stuffed line\r\n"
    with start_transaction(srv) as c:
        c.expect("DATA", 354)
        c.send(body + b".\r\n")
        c.expect(None, 250, "2.0.0", timeout=60)
    got = srv.wait_message("alice@example.test", token, timeout=30)
    assert got.endswith(body.replace(b"\r\n..dot", b"\r\n.dot"))
    assert got.startswith(b"Return-Path:") or b"Received:" in got[:2000]


def test_bdat_streamed_with_rcpt_between_chunks(start_server, token):
    """A recipient added after a chunk went to disk: the file's head is made again."""
    srv = start_server(max_message_size="10M")
    body = body_of(token, 2 * MIB) + b"no final CRLF"
    half = len(body) // 2
    with start_transaction(srv) as c:
        c.send(b"BDAT %d\r\n" % half + body[:half])
        c.expect(None, 250, "2.0.0", timeout=30)
        wait_until(lambda: tmp_bytes(srv) > MIB // 2, 10, what="the first chunk on disk")
        c.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
        c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
        c.expect(None, 250, "2.0.0", timeout=30)
    for user in ("alice@example.test", "bob@example.test"):
        got = srv.wait_message(user, token, timeout=30)
        assert got.endswith(body + b"\r\n")
    assert not tmp_files(srv)


def refused(srv, send, code, enhanced):
    with start_transaction(srv) as c:
        send(c)
        c.expect(None, code, enhanced, timeout=60)
        # the session goes on, and nothing of the refused message is left
        c.expect("NOOP", 250, "2.0.0")
        wait_until(lambda: not tmp_files(srv), 10, what="tmp/ empty")
    assert not srv.queue_files()


def test_too_big_stops_writing_and_leaves_nothing(start_server, token):
    srv = start_server(max_message_size="2M")

    def send(c):
        c.expect("DATA", 354)
        c.send(body_of(token, 1 * MIB + 4096))
        # streaming started; then the size limit is crossed while data arrives
        wait_until(lambda: tmp_bytes(srv) > MIB // 2, 10, what="part of the message on disk")
        c.send(body_of(token, 2 * MIB) + b".\r\n")

    refused(srv, send, 552, "5.3.4")


def test_bare_lf_late_in_big_message_leaves_nothing(start_server, token):
    srv = start_server(max_message_size="10M")

    def send(c):
        c.expect("DATA", 354)
        c.send(body_of(token, 2 * MIB) + b"bare\nLF\r\n" + LINE * 100 + b".\r\n")

    refused(srv, send, 550, "5.6.0")


def test_rset_and_disconnect_mid_stream_leave_nothing(start_server, token):
    srv = start_server(max_message_size="10M")
    body = body_of(token, 2 * MIB)
    with start_transaction(srv) as c:
        c.send(b"BDAT %d\r\n" % len(body) + body)
        c.expect(None, 250, "2.0.0", timeout=30)
        wait_until(lambda: tmp_files(srv), 10, what="a file in tmp/")
        c.expect("RSET", 250, "2.0.0")
        wait_until(lambda: not tmp_files(srv), 10, what="tmp/ empty after RSET")
    c = start_transaction(srv)
    c.expect("DATA", 354)
    c.send(body)
    wait_until(lambda: tmp_bytes(srv) > MIB, 10, what="part of the message on disk")
    c.close()
    wait_until(lambda: not tmp_files(srv), 10, what="tmp/ empty after the client left")
    assert not srv.queue_files()


def test_data_timeout_mid_stream_leaves_nothing(start_server, token):
    srv = start_server(max_message_size="10M", data_timeout=1)
    with start_transaction(srv) as c:
        c.expect("DATA", 354)
        c.send(body_of(token, MIB))
        wait_until(lambda: tmp_files(srv), 10, what="a file in tmp/")
        c.expect(None, 421, "4.4.2", timeout=10)
        c.wait_closed(10)
    wait_until(lambda: not tmp_files(srv), 10, what="tmp/ empty after the timeout")
    assert not srv.queue_files()


def test_kill9_mid_stream_leaves_no_message(start_server, token):
    srv = start_server(max_message_size="40M")
    with srv.smtp() as c:
        c.ehlo()
        c.send_message("s@example.test", ["alice@example.test"], make_body(token + "kept"))
    srv.wait_message("alice@example.test", token + "kept")
    for verb in ("DATA", "BDAT"):
        body = body_of(token + verb, 8 * MIB)
        c = start_transaction(srv)
        if verb == "DATA":
            c.expect("DATA", 354)
        else:
            c.send(b"BDAT %d LAST\r\n" % (20 * MIB))
        c.send(body)
        wait_until(lambda: tmp_bytes(srv) > 2 * MIB, 20, what="part of the message on disk")
        srv.kill9()
        c.close()
        assert tmp_files(srv)            # the half-written file is there, in tmp/ only
        srv.start()
        assert not tmp_files(srv)
        assert "removed 1 unacknowledged files from tmp/" in srv.log.split("queue recover")[-2]
        for name in srv.queue_files():
            with open(os.path.join(srv.queue_dir, "msg", name), "rb") as f:
                assert (token + verb).encode() not in f.read()
        assert not srv.messages_with("alice@example.test", token + verb)
    assert len(srv.messages_with("alice@example.test", token + "kept")) == 1
