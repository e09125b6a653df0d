"""Helpers of the integration suite: a running cursusd in a temporary directory (Server)
and a raw SMTP client that reads whole multi-line replies (Smtp).

Every wait here is a poll with a deadline; every process started is stopped."""
import atexit
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

BUILD = os.path.abspath(os.environ.get(
    "CURSUS_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build")))
CURSUSD = os.path.join(BUILD, "cursusd")
CURSUS = os.path.join(BUILD, "cursus")

_shared_copy = []


def cursus_for_any_user():
    """The cursus program at a path every user can execute. A tree cloned into a private
    home (root's /root is 0700) is out of reach of nobody or Dovecot's auth user, so tests
    that run cursus as them use a copy in a 0755 directory, made once, removed at exit."""
    if not _shared_copy:
        import tempfile
        d = tempfile.mkdtemp(prefix="cursus-bin-", dir="/tmp")
        os.chmod(d, 0o755)
        path = os.path.join(d, "cursus")
        shutil.copy2(CURSUS, path)
        os.chmod(path, 0o755)
        atexit.register(shutil.rmtree, d, True)
        _shared_copy.append(path)
    return _shared_copy[0]

USERS = ("alice@example.test", "bob@example.test")
PASSWORD = "correct horse battery"

# Options that live in struct limits: set globally, or per listener through
# listener_opts={"smtp": {...}}.
LIMITS = ("max_command_line", "max_auth_line", "max_text_line", "max_message_size",
          "max_recipients", "max_errors", "command_timeout", "data_timeout",
          "session_timeout", "max_sessions", "max_client_sessions")
# Deadlines and stress mode (issue 8), also in struct limits.
LIMITS += ("data_phase_timeout", "tls_handshake_timeout", "stress_threshold", "stress_timeout")
# SMTP AUTH options that also live in struct limits (global or per listener).
LIMITS += ("auth_mechanisms", "auth_cleartext_mechanisms", "auth_legacy_line",
           "received_hide_client", "received_show_user")
# SMTP AUTH options that are global only.
AUTH_GLOBAL_OPTS = ("auth_client_ca", "auth_fail_addr_budget", "auth_fail_account_budget",
                    "auth_fail_window", "auth_fail_cooldown", "auth_fail_delay_after",
                    "auth_fail_delay_base", "auth_fail_delay_max", "auth_fail_max_entries",
                    "client_limit_exempt", "max_inflight_bytes",
                    "max_client_inflight_bytes", "client_ipv6_prefix")


# Outbound delivery (the relay issue): global options a test may set.
DELIVERY_OPTS = ("relay_host", "relay_tls", "relay_ca", "relay_auth_unverified", "dns_resolver",
                 "dns_timeout", "relay_port", "relay_ip_family", "relay_max_addresses",
                 "relay_concurrency_init", "relay_concurrency_max", "relay_rcpts_per_transaction",
                 "relay_connect_timeout", "relay_greeting_timeout", "relay_command_timeout",
                 "relay_data_timeout", "relay_dot_timeout", "relay_idle_time", "relay_reuse_limit",
                 "max_received_headers", "delay_warning_time", "queue_lifetime", "control_socket",
                 "bounce_size_limit", "lmtp", "lmtp_tls", "lmtp_ca", "relay_oauth_timeout",
                 "relay_oauth_refresh_margin",
                 "dns_trust_anchor", "mta_sts_cache_dir", "mta_sts_fetch_timeout",
                 "mta_sts_max_size", "mta_sts_fetch_threads", "mta_sts_refresh_interval",
                 "mta_sts_fetch_retry", "tls_rpt", "tls_rpt_interval", "tls_rpt_dir",
                 "tls_rpt_submitter", "tls_rpt_from", "tls_rpt_org")


def _sanitized():
    """Whether cursusd is an AddressSanitizer build: its quarantine keeps freed memory,
    so memory figures mean nothing there (the plain build's run checks them)."""
    try:
        with open(CURSUSD, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _sanitized()


# Tests that switch users (user/group options, cursus-auth) need root.
needs_root = __import__("pytest").mark.skipif(os.geteuid() != 0, reason="switching users needs root")


_ports_given = set()


def free_port():
    """A loopback port free right now (bind to 0, read it, close), and never one this
    process was given before: the kernel may hand a just-closed port out again, and two
    listeners of one server got the same port that way."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no new free loopback port in 100 tries")


def tls_client_context():
    """Unverified: the server's certificate is self-signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_log(path):
    """A log file as text so far ("" before it exists; bad bytes replaced)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def stop_process(proc, timeout=15.0):
    """SIGTERM, bounded wait, SIGKILL fallback. Returns the exit status ("killed"
    after SIGKILL; None without a process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return "killed"
    return proc.returncode


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines            # text after "NNN-" / "NNN "

    @property
    def enhanced(self):
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})\b", self.lines[-1]) if self.lines else None
        return m.group(1) if m else None

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class SmtpClosed(Exception):
    pass


class Smtp:
    """A raw SMTP client: send() exact bytes, reply() reads one whole reply."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls=False):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = tls_client_context().wrap_socket(self.sock)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete reply line; have %r" % self.buf)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SmtpClosed("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout=None):
        """One reply, all its lines: "NNN-..." continue, "NNN ..." ends."""
        timeout = self.timeout if timeout is None else timeout
        lines, code = [], None
        for _ in range(1000):
            line = self._readline(timeout)
            m = re.match(rb"^(\d{3})([ -]|$)", line)
            assert m, "malformed reply line %r" % line
            c = int(m.group(1))
            assert code is None or c == code, "code changed inside a reply: %r" % line
            code = c
            lines.append(line[4:].decode("utf-8", "replace"))
            if m.group(2) != b"-":
                return Reply(code, lines)
        raise AssertionError("reply of more than 1000 lines")

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def expect(self, line, code, enhanced=None, timeout=None):
        """Sends line (or only reads when line is None); asserts code and enhanced."""
        r = self.reply(timeout) if line is None else self.cmd(line, timeout)
        assert r.code == code, "%r: expected %d %s, got %r" % (line, code, enhanced or "", r)
        if enhanced is not None:
            assert r.enhanced == enhanced, "%r: expected %d %s, got %r" % (line, code, enhanced, r)
        return r

    def greeting(self):
        return self.expect(None, 220)

    def ehlo(self, name="client.test"):
        return self.expect("EHLO " + name, 250)

    def starttls(self):
        self.expect("STARTTLS", 220, "2.0.0")
        assert self.buf == b"", "bytes after the 220 to STARTTLS: %r" % self.buf
        self.sock.settimeout(self.timeout)
        self.sock = tls_client_context().wrap_socket(self.sock)

    def quiet(self, wait=0.5):
        """True when the server sends nothing more within wait seconds."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return True
        except ssl.SSLWantReadError:
            return True
        if data:
            self.buf += data
            return False
        return True

    def wait_closed(self, timeout=10.0):
        """True when the server closes the connection within timeout (data read
        meanwhile is kept in buf)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            except ssl.SSLError:
                return True
            if not data:
                return True
            self.buf += data
        return False

    def send_message(self, sender, rcpts, body, mail_params="", data_code=250,
                     data_enhanced="2.0.0"):
        """MAIL, RCPT..., DATA, body (already CRLF and dot-stuffed, without the final
        ".\\r\\n"), end of data; returns the final reply."""
        self.expect("MAIL FROM:<%s>%s" % (sender, mail_params), 250, "2.1.0")
        for r in rcpts:
            self.expect("RCPT TO:<%s>" % r, 250, "2.1.5")
        self.expect("DATA", 354)
        if isinstance(body, str):
            body = body.encode()
        self.send(body + b".\r\n")
        return self.expect(None, data_code, data_enhanced)


def make_body(token, subject="test", extra_headers="", text="Hello.\r\n"):
    """A small RFC 5322 message, CRLF line ends, ending in CRLF."""
    return ("From: <sender@example.test>\r\nTo: <alice@example.test>\r\n"
            "Subject: %s\r\nMessage-ID: <%s@test.example>\r\n%s\r\n%s"
            % (subject, token, extra_headers, text))


class Server:
    """One cursusd in a temporary directory; see conftest.start_server."""

    def __init__(self, root, hostname="localhost", aliases=(), listener_opts=None,
                 users=USERS, extra_conf="", **global_opts):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.hostname = hostname
        self.conf = os.path.join(self.root, "cursus.conf")
        self.mail_dir = os.path.join(self.root, "mail")
        self.queue_dir = os.path.join(self.root, "queue")
        self.log_path = os.path.join(self.root, "cursusd.log")
        self.ports = {"smtp": free_port(), "submission": free_port(), "submissions": free_port()}
        self.proc = None
        self.starts = 0
        for k in global_opts:
            assert k in LIMITS or k in AUTH_GLOBAL_OPTS or k in DELIVERY_OPTS or k in (
                "worker_threads", "queue_threads", "delivery_threads", "retry_min", "retry_max",
                "log_debug", "user", "group", "user_db", "pid_file", "user_store",
                "store_timeout", "store_connections", "metrics_listen"), \
                "unknown option %s" % k
        self.global_opts = global_opts
        self.extra_conf = extra_conf  # blocks such as route DOMAIN { ... }, as written
        self.listener_opts = listener_opts or {}
        for name, opts in self.listener_opts.items():
            for k in opts:
                assert k in LIMITS, "not a listener option: %s" % k
        self._write_conf()
        for u in users:
            self.admin("user", "add", u, stdin=PASSWORD + "\n")
        for a, t in aliases:
            self.admin("alias", "add", a, t)

    def _write_conf(self):
        lines = [
            "hostname %s" % self.hostname,
            # Relative paths (control_socket, pid_file, trace_file) land in the test's own
            # directory, not in the production default /var/lib/cursus.
            "state_dir %s" % os.path.join(self.root, "var"),
            "local_domains example.test localhost",
            "queue_dir %s" % self.queue_dir,
            "mail_dir %s" % self.mail_dir,
        ]
        if "user_db" not in self.global_opts and "user_store" not in self.global_opts:
            lines.append("user_db %s" % os.path.join(self.root, "users.db"))
        lines += [
            "tls_cert %s" % os.path.join(self.root, "tls", "cert.pem"),
            "tls_key %s" % os.path.join(self.root, "tls", "key.pem"),
            "tls_self_signed yes",
        ]
        for k, v in self.global_opts.items():
            lines.append("%s %s" % (k, v))
        if not any(k in self.global_opts for k in ("relay_host", "dns_resolver", "relay_port")):
            # Tests that do not test delivery to other domains must not depend on DNS:
            # such mail goes to a closed loopback port and waits in the queue.
            lines.append("relay_host [127.0.0.1]:9")
        tls = {"smtp": "starttls", "submission": "starttls", "submissions": "implicit"}
        for name in ("smtp", "submission", "submissions"):
            lines.append("listener %s {" % name)
            lines.append("\taddress 127.0.0.1:%d" % self.ports[name])
            lines.append("\ttls %s" % tls[name])
            for k, v in self.listener_opts.get(name, {}).items():
                lines.append("\t%s %s" % (k, v))
            lines.append("}")
        if self.extra_conf:
            lines.append(self.extra_conf)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- the admin tool --------------------------------------------------------
    def admin(self, *args, stdin=None, check=True):
        r = subprocess.run([CURSUS, "-c", self.conf] + list(args), input=stdin,
                           capture_output=True, text=True, timeout=60, cwd=self.root)
        if check:
            assert r.returncode == 0, "cursus %s: rc=%d %s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr)
        return r

    # -- the daemon --------------------------------------------------------------
    @property
    def log(self):
        return read_log(self.log_path)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=20.0):
        assert not self.running(), "start: already running"
        for attempt in range(3):
            try:
                return self._start(timeout)
            except AssertionError:
                # Another process took a port between free_port() and the bind: on the
                # first start only, take new ports and try again.
                if self.starts > 1 or "cannot listen" not in self.log or self.running():
                    raise
                self.starts = 0
                self.ports = {k: free_port() for k in self.ports}
                self._write_conf()
        raise AssertionError("cursusd could not bind its ports:\n" + self.log[-3000:])

    def _start(self, timeout):
        self.starts += 1
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([CURSUSD, "-d", "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, cwd=self.root)
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        pending = dict(self.ports)
        while pending:
            assert self.proc.poll() is None, "cursusd exited (rc=%s) at start:\n%s" % (
                self.proc.returncode, self.log[-4000:])
            assert time.monotonic() < deadline, "cursusd not ready in %ss:\n%s" % (
                timeout, self.log[-4000:])
            for name, port in list(pending.items()):
                if self._probe(name, port):
                    del pending[name]
            if pending:
                time.sleep(0.05)

    def _probe(self, name, port):
        """True once the listener answers with a greeting; the probe says QUIT and
        waits for the close, so it holds no session slot afterwards."""
        try:
            with Smtp(port, timeout=5, tls=(name == "submissions")) as c:
                c.greeting()
                c.expect("QUIT", 221)
                c.wait_closed(5)
            return True
        except (OSError, SmtpClosed, TimeoutError, ssl.SSLError):
            return False

    def stop(self, timeout=15.0):
        """SIGTERM, bounded wait, SIGKILL fallback. Returns the exit status."""
        return stop_process(self.proc, timeout)

    def kill9(self):
        assert self.running(), "kill9: not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self):
        if self.running():
            self.stop()
        self.start()

    # -- mailboxes and queue ---------------------------------------------------
    def maildir(self, user):
        local, domain = user.split("@", 1)
        return os.path.join(self.mail_dir, domain, local)

    def maildir_files(self, user):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(user), sub)
            try:
                names = sorted(os.listdir(d))
            except FileNotFoundError:
                continue
            out += [os.path.join(d, n) for n in names if not n.startswith(".")]
        return out

    def _read_all(self, user):
        msgs = []
        for p in self.maildir_files(user):
            try:
                with open(p, "rb") as f:
                    msgs.append(f.read())
            except FileNotFoundError:   # moved new/ -> cur/ meanwhile
                pass
        return msgs

    def maildir_messages(self, user, count=1, timeout=15.0):
        """The messages (bytes) in user's new/ and cur/, after waiting (bounded) until
        there are at least count of them; count=0 reads without waiting."""
        wait_until(lambda: len(self.maildir_files(user)) >= count, timeout)
        return self._read_all(user)

    def wait_message(self, user, token, timeout=15.0):
        """The one message of user whose bytes contain token; asserts it arrives."""
        if isinstance(token, str):
            token = token.encode()
        found = wait_until(lambda: [m for m in self._read_all(user) if token in m], timeout)
        assert found, "no message with %r for %s in %ss; log:\n%s" % (
            token, user, timeout, self.log[-3000:])
        assert len(found) == 1, "%d copies of %r for %s" % (len(found), token, user)
        return found[0]

    def messages_with(self, user, token):
        if isinstance(token, str):
            token = token.encode()
        return [m for m in self._read_all(user) if token in m]

    def queue_files(self):
        d = os.path.join(self.queue_dir, "msg")
        try:
            return sorted(os.listdir(d))
        except FileNotFoundError:
            return []

    def wait_queue_empty(self, timeout=15.0):
        return wait_until(lambda: not self.queue_files(), timeout) or not self.queue_files()

    def smtp(self, role="smtp", timeout=10.0):
        """A connected raw client, greeting read."""
        c = Smtp(self.ports[role], timeout=timeout, tls=(role == "submissions"))
        c.greeting()
        return c


def check_log_clean(log):
    """Sanitizer reports in the daemon's log fail the test even if it survived."""
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer"):
        assert marker not in log, "sanitizer report in the daemon log:\n%s" % log[-6000:]

def finish_servers(servers):
    """Stops every server; returns the problems found (empty when all is well)."""
    problems = []
    for s in servers:
        if s.proc is None:
            continue
        if not s.running():
            problems.append("cursusd died during the test (status %s); log tail:\n%s"
                            % (s.proc.returncode, s.log[-4000:]))
        rc = s.stop()
        if rc not in (0, None) and not problems:
            problems.append("cursusd exited with status %r on SIGTERM; log tail:\n%s"
                            % (rc, s.log[-4000:]))
        try:
            check_log_clean(s.log)
        except AssertionError as e:
            problems.append(str(e))
    return problems


def unfold(header_block):
    return re.sub(r"\r\n[ \t]+", " ", header_block)


def received_header(msg):
    """The first Received: header, unfolded, as text."""
    text = msg.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0]
    m = re.search(r"^Received:.*?(?=\r\n[^ \t]|\Z)", head, re.S | re.M)
    assert m, "no Received header in %r" % text[:500]
    return unfold(m.group(0))


# -- SMTP AUTH helpers -------------------------------------------------------------------

# Budgets so high that a module's deliberate failures never trip the brute-force limiter.
AUTH_GENEROUS = dict(auth_fail_addr_budget=1024, auth_fail_account_budget=1024,
                     auth_fail_delay_after=1000)


def b64(data):
    import base64
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_response(authid, password, authzid=""):
    """The base64 PLAIN response (RFC 4616): authzid NUL authcid NUL passwd."""
    return b64("%s\0%s\0%s" % (authzid, authid, password))


class AuthSmtp(Smtp):
    """Smtp with a chosen source address (e.g. 127.0.0.2) and/or TLS context (client
    certificates, TLS version caps); tls=True wraps at once (port 465)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls=False, source=None,
                 context=None):
        self.timeout = timeout
        self.context = context or tls_client_context()
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        if tls:
            self.sock = self.context.wrap_socket(self.sock)
        self.buf = b""

    def starttls(self):
        self.expect("STARTTLS", 220, "2.0.0")
        assert self.buf == b"", "bytes after the 220 to STARTTLS: %r" % self.buf
        self.sock.settimeout(self.timeout)
        self.sock = self.context.wrap_socket(self.sock)

    def auth_plain(self, user, password, code=235, enhanced="2.7.0", authzid=""):
        return self.expect("AUTH PLAIN " + plain_response(user, password, authzid), code,
                           enhanced)


def auth_mechanisms(ehlo_reply):
    """The mechanisms of the "AUTH ..." line of an EHLO reply (None without one)."""
    for line in ehlo_reply.lines:
        if line.upper().startswith("AUTH "):
            return line[5:].split()
    return None


def delivery_line(srv, rcpt, result):
    """The last delivery log line of rcpt with that result (relayed, deferred, ...)."""
    lines = [l for l in srv.log.splitlines()
             if (l.startswith("delivery ") or " delivery id=" in l)
             and 'rcpt="%s"' % rcpt in l and "result=%s" % result in l]
    return lines[-1] if lines else None


def wait_delivery(srv, rcpt, result, timeout=20):
    """Waits for delivery_line(srv, rcpt, result) and returns it; fails with the log."""
    assert wait_until(lambda: delivery_line(srv, rcpt, result), timeout), srv.log[-4000:]
    return delivery_line(srv, rcpt, result)


def submit_as(srv, user, rcpts, body, mail_params="", rcpt_params=""):
    """user submits one message (body: text, CRLF line ends) on 465 with implicit TLS
    and AUTH PLAIN; every step must succeed."""
    c = AuthSmtp(srv.ports["submissions"], tls=True)
    try:
        c.greeting()
        c.ehlo()
        c.auth_plain(user, PASSWORD)
        c.expect("MAIL FROM:<%s>%s" % (user, mail_params), 250, "2.1.0")
        for r in rcpts:
            c.expect("RCPT TO:<%s>%s" % (r, rcpt_params), 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(body.encode() + b".\r\n")
        c.expect(None, 250, "2.0.0")
    finally:
        c.close()
