"""A real Dovecot 2.3 (IMAP only) whose users are cursus's: its passdb runs
`cursus checkpassword` over the users.db that `cursus user` manages. The fixture of
test_dovecot_auth.py (the LMTP tests have their own, dovecot.py).

Dovecot's master runs as root (it binds and changes to its service users), so this needs
root. Everything lives under one directory: the configuration made from
peers/dovecot-auth/dovecot.conf, base_dir (sockets), state_dir, the log, the mail homes.
Every wait is a poll with a deadline; stop() ends the master and waits for it."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import cursus_testlib as lib

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "peers", "dovecot-auth", "dovecot.conf")
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
CHECKPASSWORD_REPLY = "/usr/lib/dovecot/checkpassword-reply"

# What Dovecot's log must never hold (sanitizer reports come from cursus checkpassword,
# whose stderr Dovecot logs as "auth: Error:").
LOG_ALARMS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Fatal:", "Panic:")


def _text(path):
    """A file's text, "" while it does not exist."""
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def available():
    """None when Dovecot can run here, else why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return "Dovecot's master needs root"
    for p in (DOVECOT, DOVEADM, CHECKPASSWORD_REPLY):
        if not os.access(p, os.X_OK):
            return "%s missing (dovecot-core, dovecot-imapd)" % p
    return None


class Dovecot:
    """One Dovecot instance. auth_user must be the owner of the cursus users.db (the
    checkpassword program runs as Dovecot's auth process); mail_user the owner of the
    mail homes under root/mail."""

    def __init__(self, root, cursus_conf, auth_user, mail_user, mail_group):
        self.root = str(root)
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.mail_home = os.path.join(self.root, "mail")
        self.port = lib.free_port()
        self.proc = None
        self.subst = {
            "BASE_DIR": os.path.join(self.root, "base"),
            "STATE_DIR": os.path.join(self.root, "state"),
            "LOG": self.log_path,
            "CURSUS": lib.cursus_for_any_user(),
            "CURSUS_CONF": cursus_conf,
            "AUTH_USER": auth_user,
            "MAIL_USER": mail_user,
            "MAIL_GROUP": mail_group,
            "MAIL_HOME": self.mail_home,
        }
        for d in ("base", "state", "mail"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        shutil.chown(self.mail_home, mail_user, mail_group)

    def _write_conf(self):
        with open(TEMPLATE) as f:
            text = f.read()
        subst = dict(self.subst, PORT=str(self.port))
        for k, v in subst.items():
            text = text.replace("@%s@" % k, v)
        left = re.findall(r"@[A-Z_]+@", text)
        assert not left, "unreplaced placeholders %s in %s" % (left, TEMPLATE)
        with open(self.conf, "w") as f:
            f.write(text)

    @property
    def log(self):
        return _text(self.log_path)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _greets(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                return s.recv(512).startswith(b"* OK ")
        except OSError:
            return False

    def start(self, timeout=20.0):
        for attempt in range(3):
            self._write_conf()
            out = open(os.path.join(self.root, "dovecot.out"), "ab")
            try:
                self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            finally:
                out.close()
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                if self._greets():
                    return
                time.sleep(0.05)
            # The port taken meanwhile by someone else: a new one, at most twice.
            bind_failed = "Address already in use" in self.log + self.output()
            self.stop()
            if not bind_failed:
                break
            self.port = lib.free_port()
        raise AssertionError("dovecot did not start:\n%s\n%s" % (self.output(), self.log[-3000:]))

    def output(self):
        """What the master wrote before its log was open (configuration errors)."""
        return _text(os.path.join(self.root, "dovecot.out"))

    def stop(self, timeout=15.0):
        """SIGTERM to the master (it stops its children), bounded wait, SIGKILL fallback."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    # -- clients -------------------------------------------------------------------
    def doveadm(self, *args, stdin=None):
        """doveadm against this instance. A new session: no controlling terminal, so
        doveadm's password prompt reads stdin (the password never goes in argv)."""
        return subprocess.run([DOVEADM, "-c", self.conf] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=30,
                              start_new_session=True)

    def auth_test(self, user, password):
        return self.doveadm("auth", "test", "-x", "service=imap", user, stdin=password + "\n")

    def imap_login(self, user, password):
        """An imaplib LOGIN: ("OK", data) with the connection logged out after a SELECT
        of INBOX, or ("NO", the error's text)."""
        import imaplib
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=15)
        try:
            try:
                typ, data = m.login(user, password)
            except imaplib.IMAP4.error as e:
                return "NO", e.args[0]
            sel = m.select("INBOX")
            assert sel[0] == "OK", sel
            m.logout()
            return typ, data
        finally:
            try:
                m.shutdown()
            except OSError:
                pass

    def check_log_clean(self):
        log = self.log
        for alarm in LOG_ALARMS:
            assert alarm not in log, "%r in Dovecot's log:\n%s" % (alarm, log[-4000:])
