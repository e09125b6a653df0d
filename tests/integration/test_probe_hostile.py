"""`cursus probe` against hostile servers: it ends within its timeout and never loops
on a server's say-so. Each server here is a few lines of Python that misbehaves in one
way; none is a stand-in for a real SMTP server."""
import os
import socket
import subprocess
import threading
import time

import cursus_testlib as lib

PW = "hostile secret 7"


class Hostile:
    """Accepts connections on a loopback port and runs behave(conn, self) for each."""

    def __init__(self, behave):
        self.behave = behave
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        conn.settimeout(0.5)
        try:
            self.behave(conn, self)
        except OSError:
            pass
        finally:
            conn.close()

    def lines(self, conn):
        """Yields the client's lines until the connection or the test ends."""
        buf = b""
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.received.append(line.rstrip(b"\r"))
                yield line.rstrip(b"\r").decode("latin-1")

    def close(self):
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


def run_probe(port, *args, password=None, timeout=2):
    env = {k: v for k, v in os.environ.items() if k != "CURSUS_CONFIG"}
    argv = [lib.CURSUS, "probe", "127.0.0.1:%d" % port, "--plain", "--timeout", str(timeout),
            "--json"] + list(args)
    t0 = time.monotonic()
    r = subprocess.run(argv, input=(password + "\n") if password else "", capture_output=True,
                       text=True, timeout=60, env=env, cwd="/")
    return r, time.monotonic() - t0


def test_slow_drip_greeting_ends_within_timeout():
    def drip(conn, srv):
        for ch in b"220-" + b"x" * 1000:
            if srv.stop.is_set():
                return
            conn.sendall(bytes([ch]))
            time.sleep(0.2)
    srv = Hostile(drip)
    try:
        r, took = run_probe(srv.port)
        assert r.returncode in (1, 2), r
        assert took < 8, "probe took %.1f s with --timeout 2" % took
    finally:
        srv.close()


def test_endless_line_is_refused_at_once():
    def flood(conn, srv):
        conn.sendall(b"220 ")
        while not srv.stop.is_set():
            conn.sendall(b"x" * 65536)
    srv = Hostile(flood)
    try:
        r, took = run_probe(srv.port, timeout=10)
        assert r.returncode in (1, 2), r
        assert took < 8, "probe took %.1f s" % took
    finally:
        srv.close()


def plain_server(auth_line, on_auth):
    def behave(conn, srv):
        conn.sendall(b"220 hostile.test ESMTP\r\n")
        for line in srv.lines(conn):
            verb = line.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                conn.sendall(b"250-hostile.test\r\n250 " + auth_line + b"\r\n")
            elif verb == "AUTH" or (srv.in_auth if hasattr(srv, "in_auth") else False):
                on_auth(conn, srv, line)
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")
    return behave


def test_endless_challenges_are_cancelled():
    def challenge(conn, srv, line):
        srv.in_auth = line != "*"
        conn.sendall(b"334 \r\n" if line != "*" else b"501 cancelled\r\n")
    srv = Hostile(plain_server(b"AUTH PLAIN", challenge))
    try:
        r, took = run_probe(srv.port, "--user", "u@example.test", "--allow-cleartext",
                            password=PW, timeout=3)
        assert r.returncode == 1, r
        assert took < 10, "probe took %.1f s" % took
        # the greeting EHLO, AUTH, at most 8 answers, the cancel, QUIT: nothing endless
        assert len(srv.received) < 40, len(srv.received)
        assert b"*" in srv.received
    finally:
        srv.close()


def test_repeated_mechanisms_are_tried_once():
    def fail(conn, srv, line):
        conn.sendall(b"535 5.7.8 no\r\n")
    srv = Hostile(plain_server(b"AUTH " + b" ".join([b"PLAIN"] * 200), fail))
    try:
        r, took = run_probe(srv.port, "--user", "u@example.test", "--allow-cleartext",
                            password=PW, timeout=3)
        assert r.returncode == 1, r
        auths = [l for l in srv.received if l.upper().startswith(b"AUTH")]
        assert len(auths) == 1, auths
        assert srv.connections <= 3, srv.connections
    finally:
        srv.close()


def test_server_text_is_cleaned_for_terminal_and_json():
    import json

    def evil(conn, srv):
        conn.sendall(b"220 evil\x1b[2J\x1b]0;pwned\x07 \xff\xfe caf\xc3\xa9\r\n")
        for line in srv.lines(conn):
            if line.upper().startswith("EHLO"):
                conn.sendall(b"250-evil\x1b[31m\r\n250 HELP\r\n")
            elif line.upper().startswith("QUIT"):
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")
    srv = Hostile(evil)
    try:
        r, _ = run_probe(srv.port)
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout
        data = json.loads(r.stdout)          # valid JSON despite the invalid UTF-8
        assert "café" in data["banner"], data["banner"]
        env = {k: v for k, v in os.environ.items() if k != "CURSUS_CONFIG"}
        text = subprocess.run([lib.CURSUS, "probe", "127.0.0.1:%d" % srv.port, "--plain",
                               "--timeout", "2"], capture_output=True, timeout=60, env=env,
                              cwd="/").stdout
        assert b"\x1b" not in text and b"\x07" not in text and b"\xff" not in text
    finally:
        srv.close()
