"""A scripted SMTP peer that reproduces one known-broken server behaviour, for the
`cursus probe` tests. It is not a stand-in for cursusd: it speaks just enough SMTP
for a client to reach AUTH, and records every line it receives (AUTH payloads
included) so a test can check what a client sent.

Behaviours (one per peer):
  "330"         AUTH LOGIN/PLAIN challenges are sent as 330 instead of 334
  "cram-fails"  advertises CRAM-MD5 and PLAIN; CRAM-MD5 always fails, PLAIN works
  "clear-auth"  no STARTTLS; AUTH PLAIN LOGIN offered in clear, PLAIN works

With a certificate the peer offers STARTTLS (except "clear-auth"); with
old_tls=True that TLS stops at TLS 1.1.

Run alone: python3 broken_smtp.py BEHAVIOUR [CERT KEY]  (prints the port)."""
import base64
import socketserver
import ssl
import sys
import threading

USER = "probe@example.test"
PASSWORD = "peer secret 42"


class _Handler(socketserver.StreamRequestHandler):
    timeout = 20

    def setup(self):
        super().setup()
        self.tls = False

    def _send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def _recv(self):
        raw = self.rfile.readline(4096)
        if not raw:
            return None
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        self.server.peer.record(line, self.tls)
        return line

    def _starttls(self):
        self._send("220 2.0.0 go ahead")
        self.wfile.flush()
        sock = self.server.peer.tls_context.wrap_socket(self.request, server_side=True)
        self.request = sock
        self.connection = sock
        self.rfile = sock.makefile("rb")
        self.wfile = sock.makefile("wb")
        self.tls = True

    def _ehlo(self):
        peer = self.server.peer
        lines = ["peer.test hello"]
        if peer.tls_context and not self.tls and peer.behaviour != "clear-auth":
            lines.append("STARTTLS")
        if self.tls or peer.behaviour == "clear-auth" or not peer.tls_context:
            lines.append("AUTH " + peer.mechanisms())
        for l in lines[:-1]:
            self._send("250-" + l)
        self._send("250 " + lines[-1])

    def _challenge(self, payload):
        code = "330" if self.server.peer.behaviour == "330" else "334"
        self._send("%s %s" % (code, base64.b64encode(payload).decode()))
        return self._recv()

    def _auth(self, words):
        mech = words[1].upper() if len(words) > 1 else ""
        if mech not in self.server.peer.mechanisms().split():
            self._send("504 5.5.4 mechanism not supported")
            return
        if mech == "CRAM-MD5":
            # The behaviour reproduced: advertised, and never works.
            self._challenge(b"<1896.697170952@peer.test>")
            self._send("535 5.7.8 Authentication credentials invalid")
            return
        if mech == "PLAIN":
            resp = words[2] if len(words) > 2 else self._challenge(b"")
            try:
                parts = base64.b64decode(resp).split(b"\0")
            except Exception:
                self._send("501 5.5.2 bad base64")
                return
            ok = len(parts) == 3 and parts[1].decode() == USER and parts[2].decode() == PASSWORD
        elif mech == "LOGIN":
            user = self._challenge(b"Username:")
            pw = self._challenge(b"Password:")
            try:
                ok = (base64.b64decode(user).decode() == USER and
                      base64.b64decode(pw).decode() == PASSWORD)
            except Exception:
                ok = False
        else:
            ok = False
        self._send("235 2.7.0 ok" if ok else "535 5.7.8 Authentication credentials invalid")

    def handle(self):
        self._send("220 peer.test ESMTP scripted peer (%s)" % self.server.peer.behaviour)
        while True:
            line = self._recv()
            if line is None:
                return
            words = line.split()
            verb = words[0].upper() if words else ""
            if verb in ("EHLO", "HELO"):
                self._ehlo()
            elif verb == "STARTTLS" and self.server.peer.tls_context and not self.tls:
                self._starttls()
            elif verb == "AUTH":
                self._auth(words)
            elif verb == "MAIL":
                self._send("530 5.7.0 Authentication required")
            elif verb in ("RSET", "NOOP"):
                self._send("250 2.0.0 ok")
            elif verb == "QUIT":
                self._send("221 2.0.0 bye")
                return
            else:
                self._send("502 5.5.2 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Peer:
    """A running peer on 127.0.0.1:port; lines() are what it received, as
    (line, over_tls) pairs."""

    def __init__(self, behaviour, cert=None, key=None, old_tls=False):
        assert behaviour in ("330", "cram-fails", "clear-auth"), behaviour
        self.behaviour = behaviour
        self.tls_context = None
        if cert:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(cert, key)
            if old_tls:
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.tls_context.set_ciphers("DEFAULT:@SECLEVEL=0")
                    self.tls_context.minimum_version = ssl.TLSVersion.TLSv1
                    self.tls_context.maximum_version = ssl.TLSVersion.TLSv1_1
        self._lines = []
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.peer = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def mechanisms(self):
        return {"330": "PLAIN LOGIN", "cram-fails": "CRAM-MD5 PLAIN",
                "clear-auth": "PLAIN LOGIN"}[self.behaviour]

    def record(self, line, tls):
        with self._lock:
            self._lines.append((line, tls))

    def lines(self):
        with self._lock:
            return list(self._lines)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


if __name__ == "__main__":
    p = Peer(sys.argv[1], *(sys.argv[2:4] if len(sys.argv) >= 4 else ()))
    print(p.port, flush=True)
    try:
        p.thread.join()
    except KeyboardInterrupt:
        p.stop()
