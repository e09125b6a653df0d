"""One process, thousands of sessions (issue 2, section 2): 2000 clients connected at once
are all greeted and all served, and a message sent while they wait is delivered."""
import resource
import selectors
import socket
import time

from cursus_testlib import make_body

N = 2000


def test_two_thousand_concurrent_sessions(start_server, token):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, N + 500), hard))
    # A machine whose hard limit is lower still gets as many as it allows.
    n = min(N, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 300)
    assert n >= 700, "descriptor limit too low for this test: %d" % hard
    srv = start_server(max_sessions=n + 100)
    port = srv.ports["smtp"]
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setblocking(False)
            socks.append(s)
        # Every session is greeted, then answers a pipelined EHLO+NOOP, all at once.
        sel = selectors.DefaultSelector()
        got = {}
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
            got[s] = b""
        for s in socks:
            s.sendall(b"EHLO many.test\r\nNOOP\r\n")
        deadline = time.monotonic() + 60
        pending = set(socks)
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                data = key.fileobj.recv(65536)
                got[key.fileobj] += data
                if b"250 2.0.0 Ok\r\n" in got[key.fileobj] or not data:
                    pending.discard(key.fileobj)
                    sel.unregister(key.fileobj)
        assert not pending, "%d of %d sessions not served in time" % (len(pending), n)
        for s in socks:
            assert got[s].startswith(b"220 "), got[s][:80]
            assert b"250 HELP\r\n" in got[s] and got[s].endswith(b"250 2.0.0 Ok\r\n"), got[s][-80:]
        # The daemon still works for a new client while all of them stay connected.
        with srv.smtp() as c:
            c.ehlo()
            c.send_message("x@example.test", ["alice@example.test"], make_body(token))
        srv.wait_message("alice@example.test", token)
    finally:
        for s in socks:
            s.close()
