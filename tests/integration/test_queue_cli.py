"""`cursus queue`: list and show read the queue; hold, release, delete, flush and bounce
reach the running daemon through its control socket, and hold, release and delete work
on the queue directly when the daemon is stopped.

A message to bob@example.test (local) and carol@remote.example stays queued: the DNS
resolver is a loopback port where nothing answers, so carol's MX lookup fails
temporarily and her recipient is deferred (retry_min is an hour: no retry during a
test)."""
import json
import os
import socket
import stat

import pytest

import cursus_testlib as lib

REMOTE = "carol@remote.example"


class QueueServer(lib.Server):
    """A Server with the outbound options the testlib does not write."""

    def __init__(self, root, **kw):
        self.extra = {
            "control_socket": os.path.join(str(root), "cursusd.sock"),
            "dns_resolver": "127.0.0.1@%d" % lib.free_port(),
            "dns_timeout": "1",
            "retry_min": "3600",
        }
        super().__init__(root, **kw)

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf, "a") as f:
            for k, v in self.extra.items():
                f.write("%s %s\n" % (k, v))

    @property
    def sock_path(self):
        return self.extra["control_socket"]

    def queue(self, *args, check=False):
        return self.admin("queue", *args, check=check)

    def listing(self):
        r = self.queue("list", "--json", check=True)
        return json.loads(r.stdout)


@pytest.fixture
def srv(tmp_path):
    s = QueueServer(tmp_path / "srv")
    s.start()
    yield s
    problems = lib.finish_servers([s])
    assert not problems, "\n\n".join(problems)


def submit(s, token, rcpts=("bob@example.test", REMOTE)):
    """Submits as alice; returns the queue id from the 250 reply."""
    c = lib.AuthSmtp(s.ports["submission"])
    try:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth_plain("alice@example.test", lib.PASSWORD)
        r = c.send_message("alice@example.test", list(rcpts),
                           lib.make_body(token, subject="queue test " + token))
        c.expect("QUIT", 221)
    finally:
        c.close()
    ids = [m for m in s.queue_files() if "." not in m]
    return [i for i in ids if i in r.text][0]


def rcpt(msg, address):
    return [r for r in msg["recipients"] if r["address"] == address][0]


def wait_deferred(s, qid, attempts=1, timeout=30):
    """The message's listing once carol has been tried `attempts` times."""
    def ready():
        for m in s.listing():
            if m["id"] == qid and rcpt(m, REMOTE)["attempts"] >= attempts \
                    and rcpt(m, "bob@example.test")["state"] == "delivered":
                return m
        return None
    m = lib.wait_until(ready, timeout)
    assert m, "carol not deferred in %ss; list: %s\nlog:\n%s" % (
        timeout, s.queue("list").stdout, s.log[-3000:])
    return m


def test_list(srv):
    qid = submit(srv, "tok-list")
    m = wait_deferred(srv, qid)
    assert m["sender"] == "alice@example.test"
    assert m["held"] is False
    assert m["size"] > 0
    assert [r["address"] for r in m["recipients"]] == ["bob@example.test", REMOTE]
    bob, carol = m["recipients"]
    assert bob["state"] == "delivered" and bob["next_attempt"] is None
    assert carol["state"] == "deferred"
    assert carol["attempts"] == 1
    assert carol["status"].startswith("4.")
    assert carol["next_attempt"] is not None
    assert carol["reply"]

    text = srv.queue("list", check=True).stdout.splitlines()
    assert text[0].startswith(qid + "  ")
    assert text[0].endswith("<alice@example.test>")
    assert text[1].split()[:3] == ["bob@example.test", "delivered", "attempts=1"]
    assert text[2].split()[:3] == [REMOTE, "deferred", "attempts=1"]
    assert "next=in 59m" in text[2] or "next=in 1h00m" in text[2]
    assert len(text) == 3


def test_show(srv):
    qid = submit(srv, "tok-show")
    wait_deferred(srv, qid)
    r = srv.queue("show", qid, check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "id            " + qid
    assert "sender        <alice@example.test>" in lines
    assert "auth          alice@example.test" in lines
    assert "    Subject: queue test tok-show" in lines
    assert "    Message-ID: <tok-show@test.example>" in lines
    rc = lines.index("recipients")
    assert lines[rc + 1].split()[:2] == ["bob@example.test", "delivered"]
    assert lines.index("header") > rc
    assert any(l.split()[:2] == [REMOTE, "deferred"] for l in lines[rc:])
    # The journal, event by event: both routed, bob delivered, the remote one deferred.
    hist = lines[lines.index("history") + 1:lines.index("header")]
    assert [l.split()[0] for l in hist[:2]] == ["routed", "routed"], hist
    ev = [l.split()[1:3] for l in hist if not l.startswith("   ")]
    assert ["delivered", "<bob@example.test>"] in ev, "\n".join(hist)
    assert ["deferred", "<%s>" % REMOTE] in ev, "\n".join(hist)
    assert any("2.0.0: maildir new/" in l for l in hist), "\n".join(hist)
    assert any("(next " in l for l in hist), "\n".join(hist)

    r = srv.queue("show", "0123456789abcdef")
    assert r.returncode == 1
    assert r.stderr == "cursus: 0123456789abcdef: no such message\n"


def test_hold_release_through_daemon(srv):
    qid = submit(srv, "tok-hold")
    wait_deferred(srv, qid)
    r = srv.queue("hold", qid)
    assert (r.returncode, r.stdout) == (0, "%s: held\n" % qid), r
    assert [m["held"] for m in srv.listing() if m["id"] == qid] == [True]
    assert srv.queue("list", check=True).stdout.splitlines()[0].endswith("  held")
    # The hold is in the journal: it survives a restart.
    srv.restart()
    assert [m["held"] for m in srv.listing() if m["id"] == qid] == [True]
    r = srv.queue("release", qid)
    assert (r.returncode, r.stdout) == (0, "%s: released\n" % qid), r
    assert [m["held"] for m in srv.listing() if m["id"] == qid] == [False]


def test_delete_through_daemon(srv):
    qid = submit(srv, "tok-del")
    wait_deferred(srv, qid)
    r = srv.queue("delete", qid)
    assert (r.returncode, r.stdout) == (0, "%s: deleted\n" % qid), r
    assert lib.wait_until(lambda: not [f for f in srv.queue_files() if f.startswith(qid)], 15), \
        srv.queue_files()
    assert srv.listing() == []
    r = srv.queue("delete", qid)
    assert (r.returncode, r.stderr) == (1, "cursus: %s: no such message\n" % qid)


def test_flush(srv):
    qid = submit(srv, "tok-flush")
    wait_deferred(srv, qid)
    r = srv.queue("flush", qid)
    assert (r.returncode, r.stdout) == (0, "%s: flushed 1 message\n" % qid), r
    # Attempted again now, not in an hour.
    wait_deferred(srv, qid, attempts=2)
    r = srv.queue("flush", "--domain", "remote.example")
    assert (r.returncode, r.stdout) == (0, "flushed 1 message\n"), r
    wait_deferred(srv, qid, attempts=3)
    r = srv.queue("flush")
    assert (r.returncode, r.stdout) == (0, "flushed 1 message\n"), r
    r = srv.queue("flush", "0123456789abcdef")
    assert (r.returncode, r.stderr) == (1, "cursus: 0123456789abcdef: no such message\n")


def test_bounce(srv):
    qid = submit(srv, "tok-bounce")
    wait_deferred(srv, qid)
    r = srv.queue("bounce", qid)
    assert (r.returncode, r.stdout) == (0, "%s: bounced\n" % qid), r
    # The report goes to alice (local), and the message leaves the queue.
    dsn = srv.wait_message("alice@example.test", REMOTE)
    assert b"multipart/report" in dsn
    assert lib.wait_until(lambda: not [m for m in srv.listing() if m["id"] == qid], 15)


def test_daemon_stopped(srv):
    qid = submit(srv, "tok-offline")
    wait_deferred(srv, qid)
    srv.stop()
    assert not os.path.exists(srv.sock_path)
    r = srv.queue("hold", qid)
    assert (r.returncode, r.stdout) == (0, "%s: held (the daemon is not running)\n" % qid), r
    assert [m["held"] for m in srv.listing()] == [True]
    r = srv.queue("release", qid)
    assert (r.returncode, r.stdout) == (0, "%s: released (the daemon is not running)\n" % qid)
    assert [m["held"] for m in srv.listing()] == [False]
    for verb in ("flush", "bounce"):
        r = srv.queue(verb, qid)
        assert r.returncode == 75, r
        assert r.stderr.startswith("cursus: the daemon is not running: %s needs it" % verb)
    r = srv.queue("flush")
    assert r.returncode == 75
    r = srv.queue("delete", qid)
    assert (r.returncode, r.stdout) == (0, "%s: deleted (the daemon is not running)\n" % qid)
    assert srv.queue_files() == []
    r = srv.queue("hold", qid)
    assert (r.returncode, r.stderr) == (1, "cursus: %s: no such message\n" % qid)
    srv.start()


def test_usage(srv):
    for args in (("hold",), ("hold", "XYZ"), ("hold", "0123", "0123"), ("frob",),
                 ("list", "--yaml"), ("show",), ("show", "../x"), ("flush", "--domain"),
                 ("flush", "--domain", "a/b"), ()):
        r = srv.queue(*args)
        assert r.returncode == 2, (args, r)
    r = srv.queue("list", check=True)
    assert r.stdout == "queue is empty\n"
    assert srv.listing() == []


def control(path, data, timeout=10):
    """Sends raw bytes to the control socket; returns everything it answers."""
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect(path)
        c.sendall(data)
        out = b""
        for _ in range(100):
            chunk = c.recv(4096)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        c.close()


def try_control(path, data):
    """control(), with a connection closed unanswered (reset or not) as b""."""
    try:
        return control(path, data)
    except (ConnectionResetError, BrokenPipeError):
        return b""


def test_control_socket(srv):
    path = srv.sock_path
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert control(path, b"flush\n") == b"ok flushed 0 messages\n"
    assert control(path, b"hold 0123456789abcdef\n") == b"error no such message\n"
    assert control(path, b"bogus\n") == \
        b"error unknown request (flush, hold, release, delete, bounce)\n"
    assert control(path, b"\n") == b"error empty request\n"
    assert control(path, b"hold ../etc/passwd\n") == b"error not a queue id\n"
    assert control(path, b"hold\x00 01\n") == b"error NUL in request\n"
    assert control(path, b"x" * 100000 + b"\n") == b"error request too long\n"
    # One request per connection: the second line is ignored.
    assert control(path, b"flush\nbogus\n") == b"ok flushed 0 messages\n"
    # A client that goes away before the answer costs nothing.
    for _ in range(10):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        c.sendall(b"flush\n")
        c.close()
    assert control(path, b"flush\n") == b"ok flushed 0 messages\n"
    # At most 16 connections at once: the 17th is closed unanswered, and once the
    # others are gone the socket serves again.
    idle = []
    try:
        for _ in range(16):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            idle.append(c)
        assert try_control(path, b"flush\n") == b""
    finally:
        for c in idle:
            c.close()
    assert lib.wait_until(lambda: try_control(path, b"flush\n") == b"ok flushed 0 messages\n", 10)
    assert srv.running()


def test_stale_socket_replaced(tmp_path):
    s = QueueServer(tmp_path / "srv")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(s.sock_path)
    stale.close()
    try:
        s.start()
        assert control(s.sock_path, b"flush\n") == b"ok flushed 0 messages\n"
    finally:
        problems = lib.finish_servers([s])
    assert not problems, "\n\n".join(problems)
    assert not os.path.exists(s.sock_path)
