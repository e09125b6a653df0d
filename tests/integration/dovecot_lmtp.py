"""A real Dovecot 2.3 (Debian's dovecot-core and dovecot-lmtpd) as cursus's LMTP server,
for the LMTP tests: its own configuration (peers/dovecot/lmtp.conf) in a temporary
directory, an LMTP listener on a UNIX socket and one on a loopback TCP port (127.0.0.1 or
another loopback address; with a certificate, STARTTLS is offered), users in a
passwd-file with per-user quota rules, mail read back with `doveadm fetch`.

Started as root in the foreground (`dovecot -F`) and stopped with SIGTERM, bounded;
the directory is 0755 under /tmp (Dovecot stores mail as the user nobody, who must
reach it). Every wait is a poll with a deadline."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import cursus_testlib as lib

TEMPLATE = os.path.join(os.path.dirname(__file__), "peers", "dovecot", "lmtp.conf")
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


class Dovecot:
    """users: {address: extra userdb fields}, e.g. {"bob@example.test":
    "userdb_quota_rule=*:storage=1"} (1 KiB: any message is over quota). address: the
    TCP listener's. tls: (certificate, key) PEM files for STARTTLS, or None (no TLS)."""

    def __init__(self, root, users, address="127.0.0.1", tls=None):
        self.root = root
        self.address = address
        self.conf = os.path.join(root, "dovecot.conf")
        self.log_path = os.path.join(root, "dovecot.log")
        self.socket = os.path.join(root, "run", "lmtp")
        self.port = lib.free_port()
        self.proc = None
        self.probes = 0
        for sub in ("mail", "home"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
            shutil.chown(os.path.join(root, sub), "nobody", "nogroup")
        with open(TEMPLATE) as f:
            text = f.read()
        ssl = "ssl = no"
        if tls:
            ssl = "ssl = yes\nssl_cert = <%s\nssl_key = <%s" % tls
        with open(self.conf, "w") as f:
            f.write(text.replace("@ROOT@", root).replace("@LMTP_PORT@", str(self.port))
                    .replace("@LMTP_ADDR@", address).replace("@SSL@", ssl))
        with open(os.path.join(root, "users"), "w") as f:
            for user, fields in users.items():
                # user:password:uid:gid:gecos:home:shell:extra fields
                f.write("%s:{PLAIN}unused::::::%s\n" % (user, fields))

    @property
    def unix_target(self):
        return "unix:" + self.socket

    @property
    def tcp_target(self):
        return "[%s]:%d" % (self.address, self.port)

    @property
    def log(self):
        return lib.read_log(self.log_path)

    def connects(self):
        """LMTP connections Dovecot accepted so far (its "Connect from" log lines), but
        for the fixture's own probes."""
        return len(re.findall(r"lmtp\(\d+\): Info: Connect from", self.log)) - self.probes

    def wait_saved(self, n, timeout=10.0):
        """How many "saved mail" lines Dovecot logged, once there are n (or the time is
        up): its log process writes them a moment after the mail is there."""
        def count():
            return len(re.findall(r"saved mail to INBOX", self.log))
        lib.wait_until(lambda: count() >= n, timeout)
        return count()

    def _answers(self):
        for fam, addr in ((socket.AF_UNIX, self.socket), (socket.AF_INET, (self.address, self.port))):
            try:
                with socket.socket(fam, socket.SOCK_STREAM) as s:
                    s.settimeout(2)
                    s.connect(addr)
                    self.probes += 1
            except OSError:
                return False
        return True

    def start(self, timeout=20.0):
        assert self.proc is None or self.proc.poll() is not None, "dovecot already running"
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ok = lib.wait_until(lambda: self.proc.poll() is not None or self._answers(), timeout)
        assert ok and self.proc.poll() is None, "dovecot did not start: %s\n%s" % (
            self.proc.stderr.read().decode() if self.proc.poll() is not None else "timeout",
            self.log[-3000:])

    def stop(self, timeout=15.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        lib.stop_process(self.proc, timeout)
        self.proc.stderr.close()
        # The listeners go with the master: nothing answers any more.
        lib.wait_until(lambda: not os.path.exists(os.path.join(self.root, "run", "master.pid")),
                       5)

    def fetch(self, user):
        """`doveadm fetch text` of every message in user's INBOX, as texts (LF line
        ends), in the JSON formatter so that messages are told apart."""
        r = subprocess.run([DOVEADM, "-c", self.conf, "-f", "json", "fetch", "-u", user, "text",
                            "mailbox", "INBOX", "all"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, "doveadm fetch -u %s: rc=%d %s" % (user, r.returncode, r.stderr)
        return [m["text"] for m in json.loads(r.stdout or "[]")]

    def wait_fetch(self, user, token, timeout=15.0):
        """The one message of user containing token, once it is there."""
        found = lib.wait_until(lambda: [m for m in self.fetch(user) if token in m], timeout,
                               interval=0.2)
        assert found, "no message with %r for %s in Dovecot; its log:\n%s" % (
            token, user, self.log[-3000:])
        assert len(found) == 1, "%d copies of %r for %s" % (len(found), token, user)
        return found[0]


@pytest.fixture
def dovecot_factory():
    """dovecot_factory(users) -> a started Dovecot; every one is stopped at the end."""
    if os.geteuid() != 0:
        pytest.skip("Dovecot is started as root")
    if not os.access(DOVECOT, os.X_OK) or not os.path.exists("/usr/lib/dovecot/lmtp"):
        pytest.fail("dovecot-core and dovecot-lmtpd are not installed (make deps)")
    made = []

    def factory(users, start=True, **kw):
        root = tempfile.mkdtemp(prefix="cursus-dovecot-", dir="/tmp")
        os.chmod(root, 0o755)
        d = Dovecot(root, users, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    try:
        yield factory
    finally:
        for d in made:
            d.stop()
            shutil.rmtree(d.root, ignore_errors=True)
