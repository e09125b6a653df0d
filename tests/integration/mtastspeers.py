"""MTA-STS peers for the tests (RFC 8461): an HTTPS policy server on 127.0.0.x:443 with
a certificate for mta-sts.<domain> from the test CA, whose answer a test can change
while it runs (policy, status, Content-Type, a redirect, a delay, padding), and which
counts the requests it gets. Port 443 because cursus, like every MTA-STS sender, asks
there and nowhere else: the tests run as root (as CI does) or are skipped.

    with PolicyServer("127.0.0.201", cert, key, policy_text("enforce", ["mx1.dest.example"])) as ps:
        ...; ps.policy = ...; ps.status = 301; ps.delay = 5; ps.requests
        ps.answers["mta-sts.other.example"] = {"status": 404}  # by Host, the rest as above
Every wait is bounded; the server stops at the end, a slow answer included."""
import http.server
import os
import ssl
import threading
import time

import pytest

HTTPS_PORT = 443
MAX_DELAY = 10.0


def policy_text(mode, mx, max_age=86400, extra=""):
    lines = ["version: STSv1", "mode: %s" % mode] + ["mx: %s" % m for m in mx]
    return "\r\n".join(lines + ["max_age: %d" % max_age]) + "\r\n" + extra


def need_root():
    if os.geteuid() != 0:
        pytest.skip("an MTA-STS policy server listens on port 443: needs root")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        ps = self.server.ps
        with ps.lock:
            ps.requests.append(self.path)
        # One server for several policy domains, each answering its own way.
        ans = ps.answers.get(self.headers.get("Host", "").split(":")[0].lower(), {})
        deadline = time.monotonic() + min(ps.delay, MAX_DELAY)
        while time.monotonic() < deadline and not ps.stopping:
            time.sleep(0.05)
        if ps.redirect:
            self.send_response(ps.status)
            self.send_header("Location", ps.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ans.get("policy", ps.policy).encode()
        self.send_response(ans.get("status", ps.status))
        ctype = ans.get("content_type", ps.content_type)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (a size limit, a timeout)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class PolicyServer:
    def __init__(self, host, cert, key, policy):
        self.host = host
        self.policy = policy
        self.status = 200
        self.content_type = "text/plain"
        self.redirect = None
        self.delay = 0.0
        self.answers = {}  # host name -> {"status", "content_type", "policy"}: its own
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = False
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx
        self.httpd = None
        self.thread = None

    def start(self):
        need_root()
        self.stopping = False
        self.httpd = _Server((self.host, HTTPS_PORT), _Handler)
        self.httpd.ps = self
        self.httpd.socket = self.ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def policy_requests(self):
        with self.lock:
            return [p for p in self.requests if p == "/.well-known/mta-sts.txt"]

    def stop(self):
        if not self.httpd:
            return
        self.stopping = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=MAX_DELAY + 5)
        self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
