"""A scripted LMTP peer (RFC 2033) on a UNIX socket, for what a real Dovecot will not
do on demand: it records every command line it receives, and after the final dot it
answers the recipients it took one by one, as its behaviour says:

  "ok"        250 for each recipient
  "hangup"    250 for the first recipient, then closes the connection
  "421"       250 for the first recipient, 421 for the next, then closes

Run alone: python3 broken_lmtp.py BEHAVIOUR SOCKET_PATH."""
import os
import socketserver
import sys
import threading


class _Handler(socketserver.StreamRequestHandler):
    timeout = 20

    def _send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def _recv(self):
        raw = self.rfile.readline(4096)
        if not raw:
            return None
        return raw.rstrip(b"\r\n").decode("utf-8", "replace")

    def _body(self):
        """The message up to the final dot; False if the client went away."""
        while True:
            line = self._recv()
            if line is None:
                return False
            if line == ".":
                return True

    def _dot_replies(self, rcpts):
        behaviour = self.server.peer.behaviour
        for i, r in enumerate(rcpts):
            if i == 1 and behaviour == "hangup":
                return False
            if i == 1 and behaviour == "421":
                self._send("421 4.3.2 <%s> shutting down" % r)
                return False
            self._send("250 2.0.0 <%s> saved" % r)
        return True

    def handle(self):
        peer = self.server.peer
        with peer.lock:
            peer.connections += 1
        self._send("220 lmtp.test LMTP ready")
        rcpts = []
        while True:
            line = self._recv()
            if line is None:
                return
            peer.record(line)
            verb = line.split(" ", 1)[0].upper()
            if verb == "LHLO":
                self._send("250-lmtp.test\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
                           "250 PIPELINING")
            elif verb == "MAIL":
                rcpts = []
                self._send("250 2.1.0 OK")
            elif verb == "RCPT":
                rcpts.append(line[line.index("<") + 1:line.rindex(">")])
                self._send("250 2.1.5 OK")
            elif verb == "DATA":
                self._send("354 OK")
                if not self._body() or not self._dot_replies(rcpts):
                    return
            elif verb == "RSET":
                self._send("250 2.0.0 OK")
            elif verb == "QUIT":
                self._send("221 2.0.0 bye")
                return
            else:
                self._send("500 5.5.1 unknown command")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Peer:
    def __init__(self, behaviour, path):
        self.behaviour = behaviour
        self.path = path
        self.lock = threading.Lock()
        self.lines = []
        self.connections = 0
        self.server = _Server(path, _Handler)
        self.server.peer = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def record(self, line):
        with self.lock:
            self.lines.append(line)

    def commands(self):
        with self.lock:
            return list(self.lines)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    p = Peer(sys.argv[1], sys.argv[2])
    print(p.path, flush=True)
    p.thread.join()
