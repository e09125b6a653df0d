#!/usr/bin/python3
"""The cursus benchmark: starts cursusd in a temporary directory and measures it.

    bench/run.py --build BUILD_DIR [--quick] [--keep] [--auth-churn] [--postgresql]

Scenarios (smtp-bench, one thread per session, 4 KiB messages to one local mailbox):
  plain      20 sessions x 50 messages over plain SMTP (port smtp)
  starttls   the same after STARTTLS
  per-conn   500 sessions of one message each (connect, EHLO, STARTTLS, EHLO, MAIL,
             RCPT, DATA, QUIT), 20 at a time: handshakes per second
  (d), (e)   submission: STARTTLS + AUTH PLAIN (d) or SCRAM-SHA-256 (e), 20 sessions x 50
  (f), (g)   submission per connection: STARTTLS + AUTH PLAIN (f) or SCRAM-SHA-256 (g) +
             one message + QUIT, 500 sessions, 20 at a time
--auth-churn runs only (f) and (g), the AUTH churn (W2: a new session and login per
message); --postgresql puts the user store in a temporary PostgreSQL 15 (as
tests/integration/pgfixture.py starts it; root) instead of SQLite, to compare the two.
Memory: the daemon's Pss at rest, then with 200 idle sessions that said EHLO, then with
200 more that said EHLO after STARTTLS, then with 200 more on submission that said EHLO,
STARTTLS, EHLO, AUTH PLAIN (per session: Pss and Anonymous deltas); and its peak RSS
(VmHWM) after each scenario.

Stdlib only. Every wait has a deadline and the daemon is always stopped at the end."""
import argparse
import base64
import datetime
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

USER = "alice@example.test"
PASSWORD = "bench password\n"   # fed to `cursus user add` on stdin, and in a 0600 file to
                                 # smtp-bench (--password-file): never on a command line


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_kib(pid, key):
    """A 'kB' field of /proc/PID/status (VmHWM, VmRSS), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    """User + system CPU seconds the process (all its threads) has used, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def rollup_kib(pid):
    """Pss and Anonymous from /proc/PID/smaps_rollup, in KiB ({} if unreadable).
    Pss counts shared library pages in proportion to the processes mapping them, so
    it moves when another process (this script's own libssl) touches them; Anonymous
    is the daemon's private memory only."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] in ("Pss:", "Anonymous:"):
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return out


def read_reply(sock):
    """Reads one whole SMTP reply (bounded by the socket timeout); returns the code."""
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed")
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        if len(line) >= 4 and line[3:4] == b"-":
            continue
        if buf:
            raise ConnectionError("unexpected data after the reply")
        return int(line[:3])


class Daemon:
    def __init__(self, build, root, extra=(), store=None):
        self.build = build
        self.root = root
        self.port = free_port()
        self.sub_port = free_port()
        while self.sub_port == self.port:
            self.sub_port = free_port()
        self.password_file = os.path.join(root, "password")
        self.conf = os.path.join(root, "cursus.conf")
        self.log_path = os.path.join(root, "cursusd.log")
        self.maildir = os.path.join(root, "mail", "example.test", "alice")
        self.proc = None
        lines = [
            "hostname bench.localhost",
            "local_domains example.test",
            "state_dir %s" % os.path.join(root, "var"),
            "queue_dir %s" % os.path.join(root, "queue"),
            "mail_dir %s" % os.path.join(root, "mail"),
            ('user_store "%s"' % store) if store else
            "user_db %s" % os.path.join(root, "users.db"),
            "tls_cert %s" % os.path.join(root, "tls", "cert.pem"),
            "tls_key %s" % os.path.join(root, "tls", "key.pem"),
            "tls_self_signed yes",
            "listener smtp {",
            "\taddress 127.0.0.1:%d" % self.port,
            "\ttls starttls",
            "}",
            "listener submission {",
            "\taddress 127.0.0.1:%d" % self.sub_port,
            "\ttls starttls",
            "}",
        ] + list(extra)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([os.path.join(build, "cursus"), "-c", self.conf, "user", "add", USER],
                           input=PASSWORD, capture_output=True, text=True, timeout=60, cwd=root)
        if r.returncode != 0:
            raise RuntimeError("cursus user add failed (rc=%d): %s%s"
                               % (r.returncode, r.stdout, r.stderr))
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(PASSWORD)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def log_warnings(self, n=15):
        """Log lines that look like trouble, for the report."""
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        keys = ("warn", "error", "fatal", "fail", "Sanitizer", "runtime error")
        bad = [l for l in lines if any(k in l for k in keys)]
        return bad[:n]

    def start(self, timeout=20.0):
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([os.path.join(self.build, "cursusd"), "-d", "-c", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         cwd=self.root)
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        waiting = [self.port, self.sub_port]
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError("cursusd exited at start (rc=%s):\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=5) as s:
                    s.settimeout(5)
                    if read_reply(s) == 220:
                        s.sendall(b"QUIT\r\n")
                        read_reply(s)
                        waiting.pop(0)
                        if not waiting:
                            return
                        continue
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("cursusd did not greet on port %d within %ss:\n%s"
                           % (waiting[0], timeout, self.log_tail()))

    def stop(self, timeout=15.0):
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return "killed after %ss" % timeout

    def delivered(self):
        n = 0
        for sub in ("new", "cur"):
            try:
                n += sum(1 for e in os.listdir(os.path.join(self.maildir, sub))
                         if not e.startswith("."))
            except FileNotFoundError:
                pass
        return n


def tls_client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def auth_plain_line():
    """AUTH PLAIN with its initial response (RFC 4616: authzid NUL authcid NUL passwd)."""
    resp = b"\0" + USER.encode() + b"\0" + PASSWORD.rstrip("\n").encode()
    return b"AUTH PLAIN " + base64.b64encode(resp) + b"\r\n"


def open_session(port, tls, ctx, auth=False):
    """A session that said EHLO (after STARTTLS when tls; then AUTH PLAIN when auth) and
    now stays idle."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.settimeout(10)
        if read_reply(s) != 220:
            raise ConnectionError("no 220 greeting")
        s.sendall(b"EHLO bench.example\r\n")
        if read_reply(s) != 250:
            raise ConnectionError("EHLO refused")
        if tls:
            s.sendall(b"STARTTLS\r\n")
            if read_reply(s) != 220:
                raise ConnectionError("STARTTLS refused")
            s = ctx.wrap_socket(s)
            s.sendall(b"EHLO bench.example\r\n")
            if read_reply(s) != 250:
                raise ConnectionError("EHLO after STARTTLS refused")
        if auth:
            s.sendall(auth_plain_line())
            code = read_reply(s)
            if code != 235:
                raise ConnectionError("AUTH PLAIN answered %d" % code)
        return s
    except BaseException:
        s.close()
        raise


IDLE_KINDS = (  # label, listener, TLS, AUTH PLAIN
    ("plain", "smtp", False, False),
    ("after STARTTLS", "smtp", True, False),
    ("authenticated TLS (submission, STARTTLS + AUTH PLAIN)", "submission", True, True),
)


def idle_memory(daemon, count, settle=1.0):
    """The daemon's memory at rest, with count idle plain sessions, then with count
    idle TLS sessions more, then with count authenticated TLS sessions more. The earlier
    ones stay open meanwhile, so later sessions cannot reuse memory they freed. Returns
    (steps, problems) with steps [(label, sessions added, rollup before, rollup after)]."""
    ctx = tls_client_context()
    problems = []
    ports = {"smtp": daemon.port, "submission": daemon.sub_port}
    # Warm-up: first-use allocations (OpenSSL's tables, libevent's, the first password
    # check) and this script's own libssl pages belong to the baseline, not to the
    # sessions. The warm-up AUTH also puts alice's verification in the daemon's cache,
    # so the idle sessions below measure memory, not yescrypt.
    for _, listener, tls, auth in IDLE_KINDS:
        try:
            s = open_session(ports[listener], tls, ctx, auth)
            s.sendall(b"QUIT\r\n")
            s.close()
        except (OSError, ValueError) as e:
            problems.append("warm-up session (%s, tls=%s, auth=%s): %s"
                            % (listener, tls, auth, e))
    time.sleep(settle)
    socks, steps = [], []
    try:
        for label, listener, tls, auth in IDLE_KINDS:
            before = rollup_kib(daemon.pid)
            n = 0
            for _ in range(count):
                try:
                    socks.append(open_session(ports[listener], tls, ctx, auth))
                    n += 1
                except (OSError, ValueError) as e:
                    problems.append("idle %s session %d: %s" % (label, n, e))
                    break
            time.sleep(settle)
            steps.append((label, n, before, rollup_kib(daemon.pid)))
    finally:
        # QUIT first, then read the 221s: a TLS session simply dropped would be logged
        # as a failed one ("unexpected eof") and bury real trouble in the report.
        for s in socks:
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
        for s in socks:
            try:
                read_reply(s)
            except (OSError, ValueError):
                pass
            try:
                s.close()
            except OSError:
                pass
    return steps, problems


def run_bench(bench, daemon, args, label, expect, timeout, port=None):
    """Runs smtp-bench; returns a dict of its RESULT line plus delivery timing."""
    cmd = [bench, "-H", "127.0.0.1", "-p", str(port or daemon.port), "--rcpt", USER] + args
    before = daemon.delivered()
    cpu0, ccpu0 = proc_cpu_s(daemon.pid), children_cpu_s()
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = "smtp-bench timed out after %ss" % timeout
        rc = "timeout"
    t_end = time.monotonic()
    ccpu1 = children_cpu_s()   # smtp-bench was waited for (also when killed on timeout)
    res = {"label": label, "cmd": " ".join(shlex.quote(c) for c in cmd), "rc": rc,
           "stdout": out, "stderr": err}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                res[k] = float(v)
    accepted = int(res.get("messages", 0))
    # Delivery is asynchronous (queue, then Maildir): wait, bounded, for all of them.
    deadline = t_end + max(30.0, accepted / 20.0)
    while daemon.delivered() - before < accepted and time.monotonic() < deadline \
            and daemon.running():
        time.sleep(0.02)
    t_dlv = time.monotonic()
    cpu1 = proc_cpu_s(daemon.pid)
    # CPU per accepted message: where the 2 cores went (the daemon's figure includes
    # the local delivery, which has finished by now).
    res["cpu_daemon_ms"] = (cpu1 - cpu0) * 1e3 / accepted if accepted and cpu0 is not None \
        and cpu1 is not None else None
    res["cpu_client_ms"] = (ccpu1 - ccpu0) * 1e3 / accepted if accepted else None
    res["delivered"] = daemon.delivered() - before
    res["maildir_s"] = t_dlv - t0
    res["lag_s"] = t_dlv - t_end
    res["expected"] = expect
    res["hwm_kib"] = proc_status_kib(daemon.pid, "VmHWM") if daemon.running() else None
    res["alive"] = daemon.running()
    return res


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def death_note(daemon):
    """Why the daemon is gone, from its exit status and the last lines of its log."""
    rc = daemon.proc.returncode
    if isinstance(rc, int) and rc < 0:
        why = "killed by signal %d" % -rc
    else:
        why = "exit status %s" % rc
    if "event=shutdown" in daemon.log_tail(5):
        why += " after a shutdown signal it did not get from run.py (someone else's kill?)"
    return "cursusd died (%s)" % why


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        return ""


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="directory with cursusd, cursus, smtp-bench")
    ap.add_argument("--quick", action="store_true", help="small numbers, for a smoke test")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--auth-churn", action="store_true",
                    help="only the per-connection AUTH scenarios (f) and (g)")
    ap.add_argument("--postgresql", action="store_true",
                    help="the user store in a temporary PostgreSQL 15, not SQLite")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    bench = os.path.join(build, "smtp-bench")
    for b in ("cursusd", "cursus", "smtp-bench"):
        if not os.access(os.path.join(build, b), os.X_OK):
            sys.exit("run.py: %s/%s is not built (make -j2)" % (build, b))

    if a.quick:
        conc, per, total_conn, idle = 5, 10, 50, 50
    else:
        conc, per, total_conn, idle = 20, 50, 500, 200
    size = 4096
    help_text = subprocess.run([bench, "--help"], capture_output=True, text=True,
                               timeout=10).stderr
    per_conn_ok = "--per-connection" in help_text
    auth_ok = "--auth" in help_text

    root = tempfile.mkdtemp(prefix="cursus-bench-")
    pg = None
    if a.postgresql:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tests", "integration"))
        import pgfixture
        why = pgfixture.available()
        if why:
            sys.exit("run.py: --postgresql: %s" % why)
        pg = pgfixture.PgServer()
        pg.start()
    try:
        daemon = Daemon(build, root, store=("postgresql:" + pg.conninfo()) if pg else None)
    except BaseException:
        if pg:
            pg.destroy()
        raise
    results, mem, problems = [], {}, []
    load_after = "?"
    started = datetime.datetime.now().astimezone()
    load_before = loadavg()
    try:
        daemon.start()
        mem["start"] = rollup_kib(daemon.pid)
        if not a.auth_churn:
            mem["idle"], p = idle_memory(daemon, idle)
            problems += p
        time.sleep(0.5)   # let the daemon reap the closed sessions

        scenarios = [
            ("plain", ["-c", str(conc), "-n", str(per), "-s", str(size)], conc * per),
            ("starttls", ["-c", str(conc), "-n", str(per), "-s", str(size), "--starttls"],
             conc * per),
        ]
        if per_conn_ok:
            scenarios.append(("per-conn starttls",
                              ["-c", str(conc), "-n", str(total_conn // conc), "-s", str(size),
                               "--starttls", "--per-connection"],
                              conc * (total_conn // conc)))
        if auth_ok:
            # Submission: MAIL FROM must be an address alice owns (SPEC, SMTP AUTH).
            sub = ["--starttls", "--from", USER, "--user", USER,
                   "--password-file", daemon.password_file]
            for tag, mech in (("d", "PLAIN"), ("e", "SCRAM-SHA-256")):
                scenarios.append(("(%s) submission AUTH %s" % (tag, mech),
                                  ["-c", str(conc), "-n", str(per), "-s", str(size),
                                   "--auth", mech] + sub, conc * per))
            for tag, mech in (("f", "PLAIN"), ("g", "SCRAM-SHA-256")):
                scenarios.append(("(%s) per-conn submission AUTH %s" % (tag, mech),
                                  ["-c", str(conc), "-n", str(total_conn // conc), "-s",
                                   str(size), "--per-connection", "--auth", mech] + sub,
                                  conc * (total_conn // conc)))
        if a.auth_churn:
            scenarios = [sc for sc in scenarios if sc[0].startswith(("(f)", "(g)"))]
        for label, args, expect in scenarios:
            if not daemon.running():
                problems.append("%s: not run: %s" % (label, death_note(daemon)))
                continue
            print("running %s ..." % label, file=sys.stderr, flush=True)
            r = run_bench(bench, daemon, args, label, expect, timeout=600,
                          port=daemon.sub_port if "submission" in label else None)
            results.append(r)
            if r["rc"] != 0 or int(r.get("errors", 0)) or int(r.get("auth_failures", 0)) \
                    or r["delivered"] < expect:
                problems.append("%s: rc=%s errors=%s auth failures=%s accepted=%s "
                                "delivered=%d of %d\n%s"
                                % (label, r["rc"], fmt(r.get("errors"), "%d"),
                                   fmt(r.get("auth_failures"), "%d"),
                                   fmt(r.get("messages"), "%d"), r["delivered"], expect,
                                   r["stderr"].strip()))
            if not r["alive"]:
                problems.append("%s: %s" % (label, death_note(daemon)))
        mem["hwm"] = proc_status_kib(daemon.pid, "VmHWM") if daemon.running() else None
        load_after = loadavg()
    finally:
        alive = daemon.running()
        rc = daemon.stop()
        if alive and rc not in (0, None):
            problems.append("cursusd exit status on SIGTERM: %s" % rc)
        if pg:
            pg.destroy()

    # -- report ------------------------------------------------------------------
    cpu = cpu_model()
    print("## cursus benchmark, %s" % started.strftime("%Y-%m-%d %H:%M %Z"))
    print()
    print("Machine: %d cores (%s), %s %s, Python %s"
          % (os.cpu_count(), cpu or "?", platform.system(), platform.release(),
             platform.python_version()))
    print("Load average (1, 5, 15 min) before: %s; after: %s" % (load_before, load_after))
    print("Command: `%s`" % " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv))
    print("User store: %s" % ("PostgreSQL 15 (temporary, 127.0.0.1)" if pg else "SQLite"))
    print()
    print("| scenario | sessions x msgs | accepted | errors | msgs/s | sessions/s | "
          "p50 ms | p99 ms | AUTH p50 / p99 ms | CPU ms/msg cursusd / smtp-bench | "
          "all in Maildir (s) | lag after last 250 (s) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        shape = "%d x %d" % (conc, per) if "per-conn" not in r["label"] \
            else "%d one-message sessions, %d at a time" % (total_conn // conc * conc, conc)
        dl = fmt(r["maildir_s"], "%.2f") if r["delivered"] >= r["expected"] \
            else "%d/%d after %.0f s" % (r["delivered"], r["expected"], r["maildir_s"])
        authcol = "-" if not r.get("auths") else "%s / %s" % (
            fmt(r.get("auth_p50_ms"), "%.2f"), fmt(r.get("auth_p99_ms"), "%.2f"))
        cpucol = "%s / %s" % (fmt(r.get("cpu_daemon_ms"), "%.2f"),
                              fmt(r.get("cpu_client_ms"), "%.2f"))
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["label"], shape, fmt(r.get("messages"), "%d"), fmt(r.get("errors"), "%d"),
            fmt(r.get("msgs_per_s")), fmt(r.get("sessions_per_s")) if "per-conn" in r["label"]
            else "-", fmt(r.get("p50_ms"), "%.2f"), fmt(r.get("p99_ms"), "%.2f"), authcol,
            cpucol, dl,
            fmt(r["lag_s"], "%.2f"),
            fmt(r["hwm_kib"] / 1024 if r["hwm_kib"] else None)))
    print()
    st = mem.get("start", {})
    print("| memory | value |")
    print("|---|---|")
    print("| after start | Pss %s MiB, Anonymous %s MiB |"
          % (fmt(st.get("Pss") and st["Pss"] / 1024),
             fmt(st.get("Anonymous") and st["Anonymous"] / 1024)))
    for label, n, before, after in mem.get("idle", []):
        def per(k):
            if n and k in before and k in after and after[k]:
                return (after[k] - before[k]) / n
            return None
        print("| per idle session, %s (%d opened) | Anonymous %s KiB; Pss %s KiB "
              "(Pss %s -> %s MiB) |"
              % (label, n, fmt(per("Anonymous"), "%+.1f"), fmt(per("Pss"), "%+.1f"),
                 fmt(before.get("Pss") and before["Pss"] / 1024),
                 fmt(after.get("Pss") and after["Pss"] / 1024)))
    print("| peak RSS (VmHWM) at the end | %s MiB |" % fmt(mem.get("hwm") and mem["hwm"] / 1024))
    print()
    print("smtp-bench commands:")
    for r in results:
        print("    %s" % r["cmd"])
    if per_conn_ok is False:
        print("\n(smtp-bench has no --per-connection: that scenario was skipped)")
    if auth_ok is False:
        print("\n(smtp-bench has no --auth: the submission scenarios were skipped)")
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("- " + p)
        warn = daemon.log_warnings()
        if warn:
            print("\ncursusd log, lines that look like trouble:")
            for l in warn:
                print("    " + l)
        print("\ncursusd log tail:\n" + daemon.log_tail(20))
    if a.keep or problems:
        print("\n(temporary directory kept: %s)" % root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
