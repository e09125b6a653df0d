"""The relay benchmark's other processes: Postfix's smtp-sink as the next hop, with a clock
on its arrivals, and a throw-away Postfix instance to compare cursusd with.

Both run as root here and drop to the `postfix` user (Debian's package made it). Every
start has a deadline, and every stop ends with SIGKILL if SIGTERM was not enough."""
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time

MSGID = re.compile(rb"^Message-ID: <bench\.\d+\.\d+\.(\d+\.\d+\.\d+)@", re.M | re.I)
DUMPED = re.compile(rb"^X-Client-Addr: ", re.M)


def free_port(addr):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def wait_greeting(addr, port, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited at start (rc=%s)" % (what, proc.returncode))
        try:
            with socket.create_connection((addr, port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("%s did not greet on %s:%d within %ss" % (what, addr, port, timeout))


def postfix_ids():
    import pwd
    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


class Sink:
    """smtp-sink on addr, dumping every message into a FIFO (-D). smtp-sink writes a whole
    message to the dump in one burst right before its 250 (it spools to a temporary file
    first), so the moment this process reads the message's Message-ID from the FIFO is the
    arrival time, late by this reader's wake-up only. File timestamps would not do: the
    kernel stamps them from a 4 ms tick here (CONFIG_HZ=250)."""

    def __init__(self, root, addr):
        self.addr = addr
        self.port = free_port(addr)
        self.dir = os.path.join(root, "sink")
        os.mkdir(self.dir)
        uid, gid = postfix_ids()
        os.chown(self.dir, uid, gid)
        self.fifo = os.path.join(self.dir, "dump")
        os.mkfifo(self.fifo, 0o600)
        os.chown(self.fifo, uid, gid)
        self.arrivals = {}          # Message-ID key -> time.time() of the read
        self.dumped = 0             # messages dumped, with or without such a Message-ID
        self.proc = None
        self._fd = None
        self._stop = False
        self._thread = None
        self.cmd = ["smtp-sink", "-u", "postfix", "-h", "sink.localhost", "-D", self.fifo,
                    "%s:%d" % (addr, self.port), "256"]

    def start(self):
        # O_RDWR: the FIFO never reports end of file when smtp-sink closes it after a
        # message, and smtp-sink's open never blocks waiting for a reader.
        self._fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.dir)
        wait_greeting(self.addr, self.port, self.proc, 10, "smtp-sink")

    def _read(self):
        buf = b""
        while not self._stop:
            r, _, _ = select.select([self._fd], [], [], 0.2)
            if not r:
                continue
            now = time.time()
            try:
                chunk = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                continue
            buf += chunk
            # Messages start with smtp-sink's X-Client-Addr line; keep an incomplete last
            # line for the next read.
            cut = buf.rfind(b"\n") + 1
            done, buf = buf[:cut], buf[cut:]
            for m in MSGID.finditer(done):
                self.arrivals.setdefault(m.group(1).decode(), now)
            self.dumped += len(DUMPED.findall(done))

    def count(self):
        return len(self.arrivals)

    def cpu_s(self):
        return proc_tree_cpu_s(self.proc.pid) if self.proc else None

    def stop(self):
        stop_proc(self.proc)
        self._stop = True
        if self._thread:
            self._thread.join(5)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def stop_proc(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def proc_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if int(rest[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def proc_tree_cpu_s(pid):
    """CPU seconds of pid and of its children now alive (a child that exited is lost)."""
    total = proc_cpu_s(pid)
    if total is None:
        return None
    return total + sum(proc_cpu_s(c) or 0 for c in children_of(pid))


class Postfix:
    """Postfix 3.7 in root/postfix: its own config_directory, queue_directory and
    data_directory, smtpd on addr:port, everything else at its defaults but the relay host.
    Clients on 127.0.0.0/8 may relay (mynetworks): the benchmark does not authenticate to
    Postfix, which has no SASL backend configured here."""

    def __init__(self, root, addr, relayhost, cert, key):
        self.addr = addr
        self.port = free_port(addr)
        self.dir = os.path.join(root, "postfix")
        self.conf = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.log = os.path.join(self.dir, "maillog")
        for d in (self.conf, self.queue, os.path.join(self.dir, "data")):
            os.makedirs(d)
        uid, gid = postfix_ids()
        os.chown(os.path.join(self.dir, "data"), uid, gid)
        self.settings = [
            "compatibility_level = 3.6",
            "queue_directory = %s" % self.queue,
            "data_directory = %s" % os.path.join(self.dir, "data"),
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = postfix-bench.localhost",
            # Postfix accepts only an address configured on an interface here, and lo
            # carries 127.0.0.1 only; the listener below binds addr all the same.
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mydestination =",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "relayhost = %s" % relayhost,
            "smtp_tls_security_level = none",
            "smtpd_tls_security_level = may",
            "smtpd_tls_cert_file = %s" % cert,
            "smtpd_tls_key_file = %s" % key,
            "maillog_file_prefixes = %s" % self.dir,
            "maillog_file = %s" % self.log,
        ]
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("\n".join(self.settings) + "\n")
        # The stock master.cf's services, none chrooted (the queue directory holds no copy
        # of /etc), smtpd on our address and port instead of *:25.
        self.listener = "%s:%d inet n - n - - smtpd" % (addr, self.port)
        master = [self.listener] + [
            "%-10s unix %s" % (name, rest) for name, rest in (
                ("pickup", "n - n 60 1 pickup"), ("cleanup", "n - n - 0 cleanup"),
                ("qmgr", "n - n 300 1 qmgr"), ("tlsmgr", "- - n 1000? 1 tlsmgr"),
                ("rewrite", "- - n - - trivial-rewrite"), ("bounce", "- - n - 0 bounce"),
                ("defer", "- - n - 0 bounce"), ("trace", "- - n - 0 bounce"),
                ("verify", "- - n - 1 verify"), ("flush", "n - n 1000? 0 flush"),
                ("proxymap", "- - n - - proxymap"), ("proxywrite", "- - n - 1 proxymap"),
                ("smtp", "- - n - - smtp"), ("relay", "- - n - - smtp"),
                ("showq", "n - n - - showq"), ("error", "- - n - - error"),
                ("retry", "- - n - - error"), ("discard", "- - n - - discard"),
                ("local", "- n n - - local"), ("virtual", "- n n - - virtual"),
                ("lmtp", "- - n - - lmtp"), ("anvil", "- - n - 1 anvil"),
                ("scache", "- - n - 1 scache"))] + [
            "postlog    unix-dgram n - n - 1 postlogd"]
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(master) + "\n")

    def postfix(self, *args, timeout=60):
        # postfix(1) prints its fatal errors only to a terminal; else they go to syslog,
        # which this machine has not: script(1) gives it one, so a failure says why.
        cmd = " ".join(shlex.quote(x) for x in ["postfix", "-c", self.conf] + list(args))
        return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def start(self):
        r = self.postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start failed (rc=%d): %s%s\n%s"
                               % (r.returncode, r.stdout, r.stderr, self.log_tail()))
        wait_greeting(self.addr, self.port, None, 20, "postfix")

    def queue_empty(self):
        """No message in incoming, active or deferred (the queues a relayed message sits in)."""
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.queue, q)):
                if files:
                    return False
        return True

    def log_tail(self, n=20):
        try:
            with open(self.log, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        """postfix stop, then SIGKILL whatever of this instance is still there."""
        pid = self.master_pid()
        if pid is None:
            return
        self.postfix("stop", timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.master_pid():
            time.sleep(0.1)
        pid = self.master_pid()
        if pid:
            for c in children_of(pid):
                try:
                    os.kill(c, signal.SIGKILL)
                except OSError:
                    pass
            os.kill(pid, signal.SIGKILL)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
