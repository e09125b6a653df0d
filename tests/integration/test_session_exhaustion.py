"""Sessions that cannot be held (issue 8): refused connections are closed at once on
every listener, a TLS handshake, a command line and the DATA phase have deadlines that
trickled bytes do not extend, stress mode shrinks timeouts near max_sessions, IPv6
clients are counted per prefix, and the in-flight budget is charged at the bytes held
and bounded per client.

Slow clients are raw sockets that send one byte at a time; every timeout is sub-second
so that each test takes a few seconds."""
import ctypes
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import cursus_testlib as lib
from cursus_testlib import AuthSmtp, make_body, wait_until


def client_hello():
    """The first flight of a TLS client, as bytes to trickle."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = lib.tls_client_context().wrap_bio(inc, out, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert len(data) > 100
    return data


def trickle(sock, data, interval, limit):
    """Sends data one byte every interval seconds until the server closes the
    connection or limit seconds pass. Returns (seconds until the close, or None if it
    stayed open; the bytes received)."""
    t0 = time.monotonic()
    got, i = b"", 0
    while time.monotonic() - t0 < limit:
        if i < len(data):
            try:
                sock.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0, got
            i += 1
        end = time.monotonic() + interval
        while time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = sock.recv(4096)
            except (socket.timeout, TimeoutError):
                break
            except ConnectionResetError:
                return time.monotonic() - t0, got
            if not chunk:
                return time.monotonic() - t0, got
            got += chunk
    return None, got


def closed_at_once(sock, within):
    """True when the server closes sock within `within` seconds without sending."""
    sock.settimeout(within)
    try:
        data = sock.recv(4096)
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True
    assert data == b"", "bytes from the server on a refused implicit-TLS connection: %r" % data
    return True


# -- refused connections ---------------------------------------------------------------

def test_refused_on_implicit_tls_closed_at_once_and_not_counted(start_server):
    srv = start_server(max_client_sessions=1, client_limit_exempt="none",
                       listener_opts={"submissions": {"max_sessions": 3}})
    port = srv.ports["submissions"]
    held = AuthSmtp(port, tls=True)
    refused = []
    try:
        held.expect(None, 220)
        # More refused connections than the listener has room for: each is closed
        # without a byte and without waiting for a handshake that never comes.
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            refused.append(s)
            assert closed_at_once(s, 2.0), "a refused implicit-TLS connection stays open"
        # and none of them holds a slot: another address is served
        with AuthSmtp(port, tls=True, source="127.0.0.2") as other:
            other.expect(None, 220)
            other.expect("NOOP", 250, "2.0.0")
        held.expect("NOOP", 250, "2.0.0")
    finally:
        held.close()
        for s in refused:
            s.close()
    assert srv.log.count("event=refused reason=client-sessions listener=submissions") == 4, \
        srv.log[-3000:]


def test_refused_in_clear_is_421_then_closed(start_server):
    srv = start_server(listener_opts={"smtp": {"max_sessions": 1}})
    with srv.smtp() as held:
        # In a transaction: not an idle session a newcomer could take the slot of.
        held.ehlo()
        held.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
        t0 = time.monotonic()
        with lib.Smtp(srv.ports["smtp"]) as c:
            c.expect(None, 421, "4.3.2", timeout=2)
            assert c.wait_closed(2)
        assert time.monotonic() - t0 < 2
        held.expect("NOOP", 250, "2.0.0")


# -- TLS handshake deadline ------------------------------------------------------------

def test_trickled_client_hello_cut_at_handshake_deadline(start_server):
    srv = start_server(tls_handshake_timeout=0.5)
    with socket.create_connection(("127.0.0.1", srv.ports["submissions"]), timeout=5) as s:
        # one byte every 0.2 s: never idle long enough for an idle timeout
        t, got = trickle(s, client_hello(), 0.2, 5)
    assert t is not None, "a ClientHello trickled byte by byte kept the connection open"
    assert 0.3 <= t <= 2.5, t
    assert "deadline=tls-handshake" in srv.log, srv.log[-2000:]


def test_trickled_starttls_handshake_cut_at_deadline(start_server):
    srv = start_server(tls_handshake_timeout=0.5)
    with srv.smtp() as c:
        c.ehlo()
        c.expect("STARTTLS", 220, "2.0.0")
        t, _ = trickle(c.sock, client_hello(), 0.2, 5)
    assert t is not None and t <= 2.5, t


def test_session_timeout_ends_a_session_stuck_in_handshake(start_server):
    srv = start_server(session_timeout=1)
    with socket.create_connection(("127.0.0.1", srv.ports["submissions"]), timeout=5) as s:
        t, got = trickle(s, client_hello(), 0.2, 5)
    assert t is not None, "session_timeout did not end a session inside its TLS handshake"
    assert 0.7 <= t <= 3, t
    assert got == b""


# -- command and DATA deadlines --------------------------------------------------------

def test_sub_second_command_timeout(start_server):
    srv = start_server(command_timeout=0.5)
    with srv.smtp() as c:
        c.ehlo()
        t0 = time.monotonic()
        c.expect(None, 421, "4.4.2", timeout=3)
        assert 0.3 <= time.monotonic() - t0 <= 2.5
        assert c.wait_closed(2)


def test_trickled_command_line_cut_at_its_deadline(start_server):
    srv = start_server(command_timeout=1)
    with srv.smtp() as c:
        c.ehlo()
        # one byte every 0.25 s: the idle timeout (1 s) never runs out, the command's
        # deadline from its first byte does
        t, got = trickle(c.sock, b"NOOP " + b"x" * 200, 0.25, 5)
    assert t is not None, "a trickled command line kept the session: %r" % got
    assert 0.8 <= t <= 3, t
    assert got.startswith(b"421 4.4.2 "), got
    assert "deadline=command" in srv.log, srv.log[-2000:]


def test_trickled_message_cut_at_data_phase_deadline(start_server, token):
    srv = start_server(data_phase_timeout=1, data_timeout=5)
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        t, got = trickle(c.sock, make_body(token).encode() * 20, 0.2, 5)
    assert t is not None, "a trickled message kept the session: %r" % got
    assert 0.8 <= t <= 3, t
    assert got.startswith(b"421 4.4.2 "), got
    assert "deadline=data-phase" in srv.log, srv.log[-2000:]
    assert not srv.messages_with("alice@example.test", token)


def test_data_phase_deadline_is_not_the_idle_timeout(start_server, token):
    # A message sent at a normal pace with pauses under data_timeout is accepted.
    srv = start_server(data_phase_timeout=3, data_timeout=1)
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        for line in make_body(token).splitlines(keepends=True):
            c.send(line)
            time.sleep(0.1)
        c.send(".\r\n")
        c.expect(None, 250, "2.0.0")
    srv.wait_message("alice@example.test", token)


# -- stress mode -------------------------------------------------------------------------

def test_stress_mode_shrinks_timeouts_of_waiting_sessions(start_server):
    srv = start_server(command_timeout=30, listener_opts={
        "smtp": {"max_sessions": 4, "stress_threshold": 50, "stress_timeout": 0.5}})
    a = srv.smtp()
    try:
        a.ehlo()
        assert a.quiet(0.8), "closed before stress"
        b = srv.smtp()
        try:
            # 2 of 4 sessions: stress; both idle sessions now have 0.5 s, not 30 s
            t0 = time.monotonic()
            a.expect(None, 421, "4.4.2", timeout=3)
            b.expect(None, 421, "4.4.2", timeout=3)
            assert time.monotonic() - t0 <= 2.5
        finally:
            b.close()
    finally:
        a.close()
    assert "event=stress-start listener=smtp sessions=2 max_sessions=4" in srv.log, srv.log[-2000:]
    assert wait_until(lambda: "event=stress-end listener=smtp" in srv.log, 5), srv.log[-2000:]


# -- IPv6 prefixes ------------------------------------------------------------------------

CLONE_NEWNET = 0x40000000


def run_in_new_netns(fn, addresses):
    """Runs fn() in a thread moved into a new network namespace (loopback up, the given
    IPv6 addresses on lo); processes it starts live there too. The namespace goes
    with its last process."""
    out = {}

    def body():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                out["skip"] = "unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno())
                return
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
            for a in addresses:
                subprocess.run(["ip", "-6", "addr", "add", a, "dev", "lo", "nodad"], check=True,
                               timeout=10)
            out["value"] = fn()
        except BaseException as e:   # handed to the test's thread
            out["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the namespaced part did not finish"
    if "skip" in out:
        pytest.skip(out["skip"])
    if "error" in out:
        raise out["error"]
    return out.get("value")


def test_ipv6_clients_counted_per_prefix(start_server):
    def check():
        port = lib.free_port()
        srv = start_server(client_limit_exempt="none", client_ipv6_prefix=64, extra_conf=(
            "listener smtp6 {\n\trole smtp\n\taddress [fd00::1]:%d\n\ttls none\n"
            "\tmax_client_sessions 1\n}" % port))

        def connect(src):
            c = lib.Smtp.__new__(lib.Smtp)
            c.timeout = 5
            c.buf = b""
            c.sock = socket.create_connection(("fd00::1", port), timeout=5,
                                              source_address=(src, 0))
            return c

        held = connect("fd00::2")
        try:
            held.expect(None, 220)
            # another address of the same /64 is the same client
            with connect("fd00::3") as c:
                c.expect(None, 421, "4.7.0", timeout=2)
            # another /64 is another client
            with connect("fd00:0:0:1::2") as c:
                c.expect(None, 220)
        finally:
            held.close()

    run_in_new_netns(check, ["fd00::1/64", "fd00::2/64", "fd00::3/64", "fd00:0:0:1::2/64"])


# -- in-flight budget ---------------------------------------------------------------------

def test_inflight_charged_at_bytes_held(start_server, token):
    # 1.2 MB under a 1.5 MB budget: accepted (a buffer doubled to 2 MiB was refused).
    srv = start_server(max_inflight_bytes="1500K", max_message_size="4M")
    with srv.smtp() as c:
        c.ehlo()
        c.send_message("s@example.test", ["alice@example.test"],
                       make_body(token, text=("x" * 998 + "\r\n") * 1200))
    srv.wait_message("alice@example.test", token)


def _bdat_start(c, size, last=False):
    c.ehlo()
    c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
    c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
    c.send(b"BDAT %d%s\r\n" % (size, b" LAST" if last else b""))


def test_inflight_bounded_per_client(start_server, token):
    """Each session holds at most one chunk in memory (the rest goes to disk); one
    address's sessions together hold at most max_client_inflight_bytes."""
    srv = start_server(max_client_inflight_bytes="1M", client_limit_exempt="none",
                       max_message_size="4M")
    port = srv.ports["smtp"]
    chunk = b"y" * 60000                         # under the chunk that goes to disk
    held = []
    try:
        for _ in range(17):                      # 1 020 000 of 1 048 576 octets
            h = AuthSmtp(port)
            held.append(h)
            h.expect(None, 220)
            _bdat_start(h, len(chunk))
            h.send(chunk)
            h.expect(None, 250, "2.0.0")         # held, unfinished
        # the same address cannot hold more than its share...
        with AuthSmtp(port) as second:
            second.expect(None, 220)
            _bdat_start(second, len(chunk), last=True)
            second.send(chunk)
            second.expect(None, 452, "4.3.1")
        # ...while another address still can
        with AuthSmtp(port, source="127.0.0.2") as other:
            other.expect(None, 220)
            _bdat_start(other, len(chunk), last=True)
            other.send(chunk)
            other.expect(None, 250, "2.0.0")
        for h in held:
            h.send(b"BDAT 0 LAST\r\n")
            h.expect(None, 250, "2.0.0")
    finally:
        for h in held:
            h.close()


# -- load: slow clients fill a listener, a well-behaved client still gets through ------

def _slow_clients(port, sources, per_source, stop, counts):
    """Until stop is set: per_source connections from each source address, each sending
    one byte of a never-ending EHLO every 0.5 s; a connection the server closes is
    opened again 0.3 s later. Bounded: a fixed number of sockets, each acting at most
    every 0.3 s."""
    import selectors
    sel = selectors.DefaultSelector()
    slots = [(src, i) for src in sources for i in range(per_source)]
    socks, due = {}, {slot: 0.0 for slot in slots}

    def drop(slot):
        s = socks.pop(slot)
        sel.unregister(s)
        s.close()
        due[slot] = time.monotonic() + 0.3
        counts["closed"] += 1

    try:
        while not stop.is_set():
            now = time.monotonic()
            for slot in slots:
                if due[slot] > now:
                    continue
                if slot not in socks:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.bind((slot[0], 0))
                    s.setblocking(False)
                    s.connect_ex(("127.0.0.1", port))
                    socks[slot] = s
                    sel.register(s, selectors.EVENT_READ, slot)
                    counts["connects"] += 1
                else:
                    try:
                        socks[slot].send(b"x")
                    except OSError:
                        drop(slot)
                        continue
                due[slot] = now + 0.5
            for key, _ in sel.select(timeout=0.05):
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    drop(key.data)
    finally:
        for s in socks.values():
            s.close()


def test_well_behaved_client_gets_through_slow_clients(start_server, token):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2000), hard))
    # 10 addresses x 50 slow clients: more than the listener's 400 sessions
    srv = start_server(client_limit_exempt="none", listener_opts={
        "submission": {"max_sessions": 400, "stress_timeout": 1}})
    port = srv.ports["submission"]
    stop, counts = threading.Event(), {"connects": 0, "closed": 0}
    attack = threading.Thread(target=_slow_clients, args=(
        port, ["127.0.0.%d" % i for i in range(2, 12)], 50, stop, counts))
    attack.start()
    try:
        # every slow client has connected once, and those past max_sessions were refused
        assert wait_until(lambda: counts["connects"] >= 500 and counts["closed"] >= 50, 10), \
            "the slow clients did not fill the listener: %r" % counts
        t0 = time.monotonic()
        done = None
        while done is None and time.monotonic() - t0 < 8:
            try:
                with AuthSmtp(port, timeout=5) as c:
                    if c.reply().code != 220:
                        raise lib.SmtpClosed("refused")
                    c.ehlo()
                    c.starttls()
                    c.ehlo()
                    c.auth_plain("alice@example.test", lib.PASSWORD)
                    c.send_message("alice@example.test", ["bob@example.test"], make_body(token))
                    done = time.monotonic() - t0
            except (lib.SmtpClosed, OSError, ssl.SSLError, TimeoutError):
                time.sleep(0.05)
        print("submitted after %.2f s; slow clients: %r" % (done or -1, counts))
        assert done is not None, "no authenticated submission in 8 s under %r" % counts
    finally:
        stop.set()
        attack.join(15)
    assert not attack.is_alive()
    assert "event=stress-start listener=submission" in srv.log
    srv.wait_message("bob@example.test", token)


def test_auth_budget_refusal_over_implicit_tls_waits_no_longer_than_a_handshake(start_server):
    # An address past its AUTH failure budget still reads its 421 over TLS, but a
    # connection that never finishes the handshake is closed at the deadline.
    srv = start_server(tls_handshake_timeout=0.5, auth_fail_addr_budget=1,
                       auth_fail_delay_after=10)
    with srv.smtp("submission") as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.expect("AUTH PLAIN " + lib.plain_response("alice@example.test", "wrong"), 535, "5.7.8")
    with AuthSmtp(srv.ports["submissions"], tls=True) as c:
        c.expect(None, 421, "4.7.0")
    with socket.create_connection(("127.0.0.1", srv.ports["submissions"]), timeout=5) as s:
        t, _ = trickle(s, client_hello(), 0.2, 5)
    assert t is not None and t <= 2.5, t


# -- a full listener makes room ---------------------------------------------------------

def test_full_listener_evicts_the_oldest_idle_session(start_server, token):
    """Slots held by clients that have done nothing (no AUTH, no transaction) go to a
    newcomer, oldest first; an authenticated session keeps its slot."""
    srv = start_server(listener_opts={"submission": {"max_sessions": "3"}})
    port = srv.ports["submission"]
    idle = []
    try:
        worker = AuthSmtp(port)
        worker.greeting()
        worker.ehlo()
        worker.starttls()
        worker.ehlo()
        worker.auth_plain(lib.USERS[0], lib.PASSWORD)
        for _ in range(2):
            c = AuthSmtp(port)
            c.greeting()
            idle.append(c)
        # Full: the next one gets in, and the oldest idle session is told why and closed.
        newcomer = AuthSmtp(port)
        newcomer.greeting()
        r = idle[0].reply()
        assert (r.code, r.enhanced) == (421, "4.3.2"), r
        assert r.text.endswith("Too many sessions, closing an idle connection"), r
        assert idle[0].wait_closed(5)
        idle[1].expect("NOOP", 250)
        newcomer.ehlo()
        newcomer.starttls()
        newcomer.ehlo()
        newcomer.auth_plain(lib.USERS[1], lib.PASSWORD)
        # Now idle[1] is the only one to make room with; then nobody is left to evict.
        third = AuthSmtp(port)
        third.greeting()
        assert idle[1].reply().code == 421
        third.ehlo()
        third.starttls()
        third.ehlo()
        third.auth_plain(lib.USERS[0], lib.PASSWORD)
        with AuthSmtp(port) as fourth:
            r = fourth.reply()                    # the three left are all busy
            assert (r.code, r.enhanced) == (421, "4.3.2"), r
            assert r.text.endswith("Too many sessions, try again later"), r
        third.close()
        # The authenticated sessions kept their slots throughout.
        worker.expect("NOOP", 250)
        newcomer.expect("NOOP", 250)
        worker.close()
        newcomer.close()
        assert "event=evicted reason=listener-full listener=submission" in srv.log
    finally:
        for c in idle:
            c.close()
