"""OAuth 2 peers for the relay tests, run in the test's own process (threads), so that
they share what is true: a token endpoint over HTTPS (http.server with ssl, a
certificate from testca) that issues short-lived bearer tokens for the
refresh_token and client_credentials grants and rotates refresh tokens; and an SMTP
next hop (STARTTLS, then AUTH XOAUTH2 and OAUTHBEARER) that takes only a token the
endpoint issued and that is still valid, and otherwise sends the RFC 7628 3.2.2 error
challenge, expects the client's answer (3.2.3: %x01 for OAUTHBEARER, an empty line
for XOAUTH2) and then says 535. Both record what they saw."""
import base64
import http.server
import json
import secrets
import socket
import socketserver
import ssl
import threading
import time
import urllib.parse


class TokenEndpoint:
    """POST /token. clients: {client_id: secret or None}. mode: "ok",
    "invalid_grant" (every request refused as RFC 6749 5.2 says), "slow" (the answer
    waits `delay` seconds)."""

    def __init__(self, host, cert, key, clients, lifetime=3600, rotate=True):
        self.host = host
        self.clients = dict(clients)
        self.lifetime = lifetime
        self.rotate = rotate
        self.mode = "ok"
        self.delay = 0.0
        self.refresh_tokens = {}      # valid refresh token -> client_id
        self.tokens = {}              # issued access token -> expiry (time.time())
        self.requests = []            # each request's form, as received
        self.lock = threading.Lock()
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                status, body = ep._answer(self.path, form,
                                          self.headers.get("Content-Type", ""))
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.httpd = Server((host, 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://%s:%d/token" % (host, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add_refresh_token(self, client_id):
        rt = "rt-" + secrets.token_urlsafe(12)
        with self.lock:
            self.refresh_tokens[rt] = client_id
        return rt

    def _issue(self, client_id, rotate_from=None):
        token = "at-" + secrets.token_urlsafe(24)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}
        self.tokens[token] = time.time() + self.lifetime
        if rotate_from and self.rotate:
            del self.refresh_tokens[rotate_from]
            new = "rt-" + secrets.token_urlsafe(12)
            self.refresh_tokens[new] = client_id
            body["refresh_token"] = new
        return body

    def _answer(self, path, form, ctype):
        if self.mode == "slow":
            time.sleep(self.delay)
        with self.lock:
            self.requests.append(dict(form, _ctype=ctype))
            if path != "/token":
                return 404, {"error": "not_found"}
            cid = form.get("client_id")
            if cid not in self.clients or self.clients[cid] != form.get("client_secret"):
                return 401, {"error": "invalid_client"}
            if self.mode == "invalid_grant":
                return 400, {"error": "invalid_grant",
                             "error_description": "AADSTS70008: the refresh token has expired"}
            grant = form.get("grant_type")
            if grant == "refresh_token":
                rt = form.get("refresh_token")
                if self.refresh_tokens.get(rt) != cid:
                    return 400, {"error": "invalid_grant",
                                 "error_description": "unknown refresh token"}
                return 200, self._issue(cid, rt)
            if grant == "client_credentials":
                return 200, self._issue(cid)
            return 400, {"error": "unsupported_grant_type"}

    def valid(self, token):
        with self.lock:
            return self.tokens.get(token, 0) > time.time()

    def revoke_all(self):
        """Every access token issued so far stops working at the next hop (as a
        token that expired early, or was revoked)."""
        with self.lock:
            for t in self.tokens:
                self.tokens[t] = 0

    def fetches(self):
        with self.lock:
            return len(self.requests)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class OAuthSink:
    """An SMTP next hop on host:port taking AUTH XOAUTH2 / OAUTHBEARER (after STARTTLS)
    with tokens the endpoint says are valid. events: dicts with "ev" in connect,
    auth (mech, user, ok, token, error_answer), data (content)."""

    def __init__(self, host, cert, key, endpoint, mechs=("XOAUTH2", "OAUTHBEARER")):
        self.endpoint = endpoint
        self.mechs = mechs
        self.events = []
        self.lock = threading.Lock()
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    sink._session(self.request)
                except (OSError, ssl.SSLError, ValueError):
                    pass

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def record(self, **ev):
        with self.lock:
            self.events.append(ev)

    def of(self, kind):
        with self.lock:
            return [e for e in self.events if e["ev"] == kind]

    def _session(self, sock):
        self.record(ev="connect")
        f = sock.makefile("rb")
        tls = False

        def send(line):
            sock.sendall(line.encode() + b"\r\n")

        def readline():
            line = f.readline(20000)
            if not line:
                raise ValueError("closed")
            return line.rstrip(b"\r\n").decode()

        send("220 oauth-sink.example ESMTP")
        mail = None
        while True:
            line = readline()
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                caps = ["PIPELINING", "8BITMIME"]
                caps += ["AUTH " + " ".join(self.mechs)] if tls else ["STARTTLS"]
                send("250-oauth-sink.example")
                for c in caps[:-1]:
                    send("250-" + c)
                send("250 " + caps[-1])
            elif verb == "STARTTLS" and not tls:
                send("220 2.0.0 go ahead")
                sock = self.ctx.wrap_socket(sock, server_side=True)
                f = sock.makefile("rb")
                tls = True
            elif verb == "AUTH" and tls:
                self._auth(line, send, readline)
            elif verb == "MAIL":
                mail = line
                send("250 2.1.0 ok")
            elif verb == "RCPT":
                send("250 2.1.5 ok")
            elif verb == "DATA":
                send("354 go on")
                lines = []
                while True:
                    l = readline()
                    if l == ".":
                        break
                    lines.append(l[1:] if l.startswith(".") else l)
                self.record(ev="data", mail=mail, content="\n".join(lines))
                send("250 2.0.0 queued")
            elif verb == "RSET" or verb == "NOOP":
                send("250 2.0.0 ok")
            elif verb == "QUIT":
                send("221 2.0.0 bye")
                return
            else:
                send("502 5.5.2 not here")

    def _auth(self, line, send, readline):
        words = line.split(" ")
        mech = words[1].upper() if len(words) > 1 else ""
        if mech not in self.mechs or len(words) != 3:
            send("504 5.5.4 unrecognised")
            return
        raw = base64.b64decode(words[2])
        user = token = host = port = None
        if mech == "XOAUTH2":
            # user=USER ^A auth=Bearer TOKEN ^A ^A
            parts = raw.split(b"\x01")
            if len(parts) == 4 and parts[2:] == [b"", b""] and parts[0].startswith(b"user=") \
                    and parts[1].startswith(b"auth=Bearer "):
                user, token = parts[0][5:].decode(), parts[1][12:].decode()
        else:
            # n,a=USER, ^A host=H ^A port=P ^A auth=Bearer TOKEN ^A ^A (RFC 7628 3.1)
            gs2, _, rest = raw.partition(b"\x01")
            if gs2.startswith(b"n,a=") and gs2.endswith(b",") and rest.endswith(b"\x01\x01"):
                user = gs2[4:-1].decode().replace("=2C", ",").replace("=3D", "=")
                kv = dict(p.split(b"=", 1) for p in rest[:-2].split(b"\x01") if b"=" in p)
                if kv.get(b"auth", b"").startswith(b"Bearer "):
                    token = kv[b"auth"][7:].decode()
                host = kv.get(b"host", b"").decode()
                port = kv.get(b"port", b"").decode()
        ok = token is not None and self.endpoint.valid(token)
        ev = dict(ev="auth", mech=mech, user=user, token=token, host=host, port=port, ok=ok)
        if ok:
            self.record(**ev)
            send("235 2.7.0 Authentication successful")
            return
        err = {"status": "invalid_token" if mech == "OAUTHBEARER" else "401",
               "schemes": "bearer", "scope": "https://mail.example/"}
        send("334 " + base64.b64encode(json.dumps(err).encode()).decode())
        ev["error_answer"] = readline()
        self.record(**ev)
        send("535 5.7.8 Authentication unsuccessful")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port(host):
    """A port on host where nothing listens (bound, never listened on, then freed)."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port
