"""Crash safety (SPEC "Queue and delivery"): a message acknowledged with 250 is on disk;
SIGKILL at any moment loses only unacknowledged mail, and a restart delivers every
queued message. Duplicates are allowed (at least once) and reported."""
import os
import random
import threading
import time

import cursus_testlib as lib
from cursus_testlib import make_body

N_MESSAGES = 60
N_CLIENTS = 4
N_KILLS = 3


def send_one(srv, token, deadline):
    """Sends one message, retrying (new connection) until a 250 or the deadline.
    Returns True once acknowledged."""
    body = make_body(token, text=("crash test line %s\r\n" % token) * 40)
    while time.monotonic() < deadline:
        try:
            with lib.Smtp(srv.ports["smtp"], timeout=10) as c:
                c.greeting()
                c.ehlo("crash.test")
                c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
                c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
                c.expect("DATA", 354)
                c.send(body + ".\r\n")
                r = c.reply(timeout=20)
                if r.code == 250:
                    return True
                # 4xx from a daemon in trouble: retry; 5xx would be a bug.
                assert r.code < 500, "message refused: %r" % r
        except (OSError, lib.SmtpClosed, TimeoutError):
            pass
        except AssertionError as e:
            # A 421 greeting or a reset in the middle of a reply: retry.
            if "expected" not in str(e):
                raise
        time.sleep(0.05)
    return False


def test_sigkill_loses_no_acknowledged_message(start_server):
    srv = start_server()
    seed = int(os.environ.get("CURSUS_CRASH_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    tokens = ["crash%03d-%d" % (i, seed) for i in range(N_MESSAGES)]
    acked, failed, errors = [], [], []
    lock = threading.Lock()
    clients_done = threading.Event()
    deadline = time.monotonic() + 120

    def client(index, mine):
        try:
            crnd = random.Random(seed * 31 + index)
            for t in mine:
                # Paced, so the run outlasts a restart and every kill lands mid-run.
                time.sleep(crnd.uniform(0.01, 0.08))
                ok = send_one(srv, t, deadline)
                with lock:
                    (acked if ok else failed).append(t)
        except Exception as e:  # reported in the main thread
            errors.append(repr(e))

    kills = []

    def killer():
        # Kill at random points of the run (not of the clock: the run may be short),
        # with a little jitter so kills land at random places of a transaction.
        marks = [rnd.randrange(5, 15), rnd.randrange(22, 32), rnd.randrange(40, 50)][:N_KILLS]
        try:
            for mark in marks:
                while len(acked) < mark and not clients_done.is_set():
                    time.sleep(0.001)
                if clients_done.is_set():
                    break
                time.sleep(rnd.uniform(0.0, 0.02))
                srv.kill9()
                kills.append(len(acked))
                time.sleep(rnd.uniform(0.0, 0.2))
                srv.start()
        except Exception as e:
            errors.append("killer: %r" % e)

    threads = [threading.Thread(target=client, args=(i, tokens[i::N_CLIENTS]), daemon=True)
               for i in range(N_CLIENTS)]
    kt = threading.Thread(target=killer, daemon=True)
    for t in threads:
        t.start()
    kt.start()
    for t in threads:
        t.join(max(1, deadline - time.monotonic() + 30))
    clients_done.set()
    kt.join(60)
    assert not kt.is_alive() and not any(t.is_alive() for t in threads), "threads hung"
    assert not errors, errors
    if not srv.running():
        srv.start()

    # Everything acknowledged must arrive, once the queue is resumed.
    def missing():
        have = srv._read_all("alice@example.test")
        return [t for t in acked if not any(("<%s@" % t).encode() in m for m in have)]
    lib.wait_until(lambda: not missing(), 60, 0.2)
    lost = missing()
    have = srv._read_all("alice@example.test")
    dups = sum(max(0, sum(1 for m in have if ("<%s@" % t).encode() in m) - 1) for t in tokens)
    print("crash test: seed=%d kills=%d (acked before each: %s) acked=%d unacked=%d "
          "delivered=%d duplicates=%d lost=%d" % (seed, len(kills), kills, len(acked), len(failed),
                                                  len(have), dups, len(lost)))
    assert len(kills) >= 2, "the daemon was killed only %d times" % len(kills)
    assert not lost, "acknowledged but lost (seed %d): %s\nlog:\n%s" % (seed, lost, srv.log[-5000:])
    assert not failed, "never acknowledged within the deadline: %s" % failed
    # Every delivered message is whole: no torn copy of a queue file reaches a mailbox.
    for m in have:
        assert m.rstrip(b"\r\n").endswith(b"crash test line " + m.split(b"Message-ID: <")[1]
                                          .split(b"@")[0]), m[-200:]
    assert srv.wait_queue_empty(30), "queue not drained: %s" % srv.queue_files()


def test_sigkill_during_data_delivers_nothing(start_server, token):
    srv = start_server()
    c = srv.smtp()
    try:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(make_body(token, text="half a message\r\n"))
        time.sleep(0.2)
        srv.kill9()
    finally:
        c.close()
    srv.start()
    with srv.smtp() as c:
        c.ehlo()
        c.send_message("s@example.test", ["alice@example.test"], make_body(token + "-after"))
    srv.wait_message("alice@example.test", token + "-after")
    assert srv.wait_queue_empty(), srv.queue_files()
    assert not srv.messages_with("alice@example.test", "<%s@" % token)


def test_restart_keeps_serving(start_server, token):
    srv = start_server()
    for i in range(2):
        srv.restart()
        with srv.smtp() as c:
            c.ehlo()
            c.send_message("s@example.test", ["bob@example.test"], make_body("%s-%d" % (token, i)))
        srv.wait_message("bob@example.test", "%s-%d" % (token, i))
