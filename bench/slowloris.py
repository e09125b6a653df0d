#!/usr/bin/python3
"""Slow clients against cursusd (and Postfix 3.7): does a well-behaved client still get in?

    bench/slowloris.py --build BUILD_DIR [--duration 60] [--addresses 200]
                       [--max-sessions N] [--no-postfix] [--quick] [--keep]

Issue 8's load test. 2,000 slow clients (200 source addresses 127.0.0.2 .. 127.0.0.201, 10
connections each) hold connections for the whole run, each sending one byte a second:
  cmd   5 per address on submission (587-like, STARTTLS): a command line trickled, over and
        over ("EHLO slowloris.example\\r\\n"); 1000 in all, the listener's max_sessions
  tls   4 per address on submissions (465-like, implicit TLS): a TLS ClientHello trickled
  data  1 per address on smtp (25-like): EHLO, MAIL, RCPT, DATA at once, then the message
        body trickled
A slow client the server closes reconnects 1 s later, so the pressure stays. Meanwhile a
well-behaved client from 127.0.0.254 completes, every 2 s on each port, STARTTLS (587) or
implicit TLS (465) + AUTH PLAIN + one message + QUIT; each one's total time is recorded.
Before the attack the same client runs alone for 10 s: the baseline.

Runs as root for Postfix (its master starts as root); cursusd alone runs as any user.
Stdlib only. Every socket and process it opens is closed or stopped in finally blocks."""
import argparse
import datetime
import errno
import heapq
import os
import platform
import resource
import selectors
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from relaypeers import Postfix, children_of, free_port, rmtree  # noqa: E402

GOOD_ADDR = "127.0.0.254"
POSTFIX_ADDR = "127.0.0.62"
INTERVAL = 1.0          # seconds between two bytes of a slow client
RECONNECT = 1.0         # seconds a slow client waits before reconnecting once closed
GOOD_EVERY = 2.0        # seconds between two well-behaved submissions on one port
GOOD_TIMEOUT = 30.0     # socket timeout of the well-behaved client
BASELINE_S = 10.0
CMD_LINE = b"EHLO slowloris.example\r\n"
BODY = b"Subject: slow\r\n\r\n" + b"x" * 70 + b"\r\n"


def client_hello():
    """The first flight of a TLS client (about 500 bytes), to trickle."""
    ctx = run.tls_client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class Slot:
    """One slow client: a connection that it reopens whenever the server closes it."""
    __slots__ = ("kind", "src", "dst", "sock", "state", "rbuf", "pos", "gen", "since",
                 "setup")

    def __init__(self, kind, src, dst):
        self.kind, self.src, self.dst = kind, src, dst
        self.sock, self.state, self.rbuf, self.pos, self.gen = None, "idle", b"", 0, 0
        self.since, self.setup = 0.0, []


class Attack:
    """All slow clients, driven by one thread with epoll and a timer heap."""

    def __init__(self, targets, rcpt, addresses, mix):
        self.hello = client_hello()
        self.rcpt = rcpt
        self.slots = []
        for i in range(addresses):
            src = "127.0.0.%d" % (2 + i)
            for kind, n in mix:
                self.slots += [Slot(kind, src, targets[kind]) for _ in range(n)]
        self.sel = selectors.DefaultSelector()
        self.timers = []          # (due, seq, slot, gen, action)
        self.seq = 0
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.stats = {k: {"connects": 0, "cut": 0, "refused": 0, "failed": 0, "held_s": []}
                      for k, _ in mix}
        self.thread = threading.Thread(target=self._loop, name="slowloris", daemon=True)

    def start(self):
        # Ramp up: 100 connections every 50 ms, so the listen queues are not the story.
        now = time.monotonic()
        for i, s in enumerate(self.slots):
            self._at(now + (i // 100) * 0.05, s, "connect")
        self.thread.start()

    def stop(self):
        self.stop_ev.set()
        self.thread.join(30)
        for s in self.slots:
            self._close(s)
        self.sel.close()

    def _at(self, due, slot, action):
        self.seq += 1
        heapq.heappush(self.timers, (due, self.seq, slot, slot.gen, action))

    def counts(self):
        """Slow connections by kind: open (connected, not closed by the server), and of
        those the ones the server serves (greeted, or for tls: open for 2 s or more)."""
        out = {}
        now = time.monotonic()
        with self.lock:
            for s in self.slots:
                c = out.setdefault(s.kind, {"open": 0, "served": 0, "pending": 0})
                if s.state == "connecting":
                    c["pending"] += 1
                elif s.state not in ("idle",):
                    c["open"] += 1
                    if s.state != "greeting" and (s.kind != "tls" or now - s.since >= 2):
                        c["served"] += 1
        return out

    def _close(self, s):
        if s.sock is not None:
            try:
                self.sel.unregister(s.sock)
            except (KeyError, ValueError):
                pass
            s.sock.close()
            s.sock = None

    def _closed_by_server(self, s, why):
        st = self.stats[s.kind]
        now = time.monotonic()
        with self.lock:
            if why == "refused":
                st["refused"] += 1
            elif why == "failed":
                st["failed"] += 1
            else:
                st["cut"] += 1
                st["held_s"].append(now - s.since)
            self._close(s)
            s.state, s.gen = "idle", s.gen + 1
        self._at(now + RECONNECT, s, "connect")

    def _connect(self, s):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind((s.src, 0))
            rc = sock.connect_ex(s.dst)
        except OSError:
            sock.close()
            self.stats[s.kind]["failed"] += 1
            self._at(time.monotonic() + RECONNECT, s, "connect")
            return
        if rc not in (0, errno.EINPROGRESS):
            sock.close()
            self.stats[s.kind]["failed"] += 1
            self._at(time.monotonic() + RECONNECT, s, "connect")
            return
        with self.lock:
            s.sock, s.state, s.rbuf, s.pos = sock, "connecting", b"", 0
        self.sel.register(sock, selectors.EVENT_WRITE, s)

    def _connected(self, s):
        err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._closed_by_server(s, "failed")
            return
        self.stats[s.kind]["connects"] += 1
        self.sel.modify(s.sock, selectors.EVENT_READ, s)
        with self.lock:
            s.since = time.monotonic()
            if s.kind == "tls":
                s.state = "trickle"
            else:
                s.state = "greeting"
                s.setup = [] if s.kind == "cmd" else [
                    (b"EHLO slowloris.example\r\n", 250), (b"MAIL FROM:<>\r\n", 250),
                    (b"RCPT TO:<%s>\r\n" % self.rcpt.encode(), 250), (b"DATA\r\n", 354)]
        if s.kind == "tls":
            self._send(s)

    def _payload(self, s):
        return self.hello if s.kind == "tls" else CMD_LINE if s.kind == "cmd" else BODY

    def _send(self, s):
        if s.sock is None or s.state != "trickle":
            return
        data = self._payload(s)
        if s.kind == "tls" and s.pos >= len(data):
            return      # the whole ClientHello is out (not within a 60 s run at 1 B/s)
        try:
            s.sock.send(data[s.pos % len(data):s.pos % len(data) + 1])
        except BlockingIOError:
            pass
        except OSError:
            self._closed_by_server(s, "cut")
            return
        s.pos += 1
        self._at(time.monotonic() + INTERVAL, s, "send")

    def _readable(self, s):
        try:
            data = s.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # closed before the greeting (or a tls slot closed within 0.5 s without a
            # byte): a refusal; later: cut by a deadline
            refused = s.state == "greeting" or (s.kind == "tls" and
                                                time.monotonic() - s.since < 0.5)
            self._closed_by_server(s, "refused" if refused else "cut")
            return
        if s.kind == "tls":
            return
        s.rbuf += data
        while b"\n" in s.rbuf:
            line, s.rbuf = s.rbuf.split(b"\n", 1)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            code = int(line[:3]) if line[:3].isdigit() else 0
            if s.state == "greeting":
                if code != 220:
                    continue    # a 421: the close follows
                if s.setup:
                    s.sock.send(s.setup[0][0])
                    with self.lock:
                        s.state = "setup"
                else:
                    with self.lock:
                        s.state = "trickle"
                    self._send(s)
            elif s.state == "setup":
                want = s.setup.pop(0)[1]
                if code != want:
                    continue    # refused; the slot waits for the close (or the run's end)
                if s.setup:
                    s.sock.send(s.setup[0][0])
                else:
                    with self.lock:
                        s.state = "trickle"
                    self._send(s)

    def _loop(self):
        while not self.stop_ev.is_set():
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, s, gen, action = heapq.heappop(self.timers)
                if gen != s.gen:
                    continue
                if action == "connect" and s.state == "idle":
                    self._connect(s)
                elif action == "send":
                    self._send(s)
            wait = 0.05
            if self.timers:
                wait = max(0.0, min(wait, self.timers[0][0] - time.monotonic()))
            for key, ev in self.sel.select(timeout=wait):
                s = key.data
                if s.sock is None:
                    continue
                if s.state == "connecting":
                    self._connected(s)
                else:
                    self._readable(s)


class GoodClient:
    """Every GOOD_EVERY seconds: connect, TLS, (AUTH PLAIN), one message, QUIT."""

    def __init__(self, name, port, implicit, auth, sender, rcpt, addr):
        self.name, self.port, self.implicit, self.auth = name, port, implicit, auth
        self.sender, self.rcpt, self.addr = sender, rcpt, addr
        self.results = []     # (phase, start monotonic, seconds or None, error)
        self.phase = "baseline"
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.n = 0

    def once(self):
        self.n += 1
        t0 = time.monotonic()
        c = None
        try:
            if self.implicit:
                c = smtplib.SMTP_SSL(self.addr, self.port, timeout=GOOD_TIMEOUT,
                                     source_address=(GOOD_ADDR, 0),
                                     context=run.tls_client_context())
                c.ehlo("good.example")
            else:
                c = smtplib.SMTP(self.addr, self.port, timeout=GOOD_TIMEOUT,
                                 source_address=(GOOD_ADDR, 0))
                c.ehlo("good.example")
                c.starttls(context=run.tls_client_context())
                c.ehlo("good.example")
            if self.auth:
                c.login(run.USER, run.PASSWORD.rstrip("\n"))
            msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: good %s %d\r\nMessage-ID: "
                   "<good.%s.%d@bench>\r\n\r\nhello\r\n"
                   % (self.sender, self.rcpt, self.name, self.n, self.name, self.n))
            c.sendmail(self.sender, [self.rcpt], msg)
            c.quit()
            c = None
            return time.monotonic() - t0, None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
            return None, "%s after %.1f s" % (str(e).replace("\n", " ")[:120] or
                                               type(e).__name__, time.monotonic() - t0)
        finally:
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass

    def _loop(self):
        nxt = time.monotonic()
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            phase = self.phase
            secs, err = self.once()
            self.results.append((phase, t0, secs, err))
            nxt += GOOD_EVERY
            self.stop_ev.wait(max(0.0, nxt - time.monotonic()))
            nxt = max(nxt, time.monotonic())


def pct(vals, p):
    if not vals:
        return None
    v = sorted(vals)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def summary(results, phase):
    r = [x for x in results if x[0] == phase]
    ok = [x[2] for x in r if x[2] is not None]
    errs = [x[3] for x in r if x[2] is None]
    return {"n": len(r), "ok": len(ok), "fail": len(errs), "errors": errs[:3],
            "p50": statistics.median(ok) if ok else None, "p99": pct(ok, 99),
            "max": max(ok) if ok else None}


def pss_kib(pid):
    return run.rollup_kib(pid).get("Pss")


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


class CursusTarget:
    name = "cursusd"
    stress_key = "event=stress-start"

    def __init__(self, build, root, max_sessions=None):
        self.smtps_port = run.free_port()
        # Defaults everywhere (max_sessions 1000, max_client_sessions 50, stress at 80%
        # with 10 s timeouts, command_timeout/data_timeout 300, data_phase_timeout 600,
        # tls_handshake_timeout 30, session_timeout 3600), except client_limit_exempt:
        # its default exempts loopback, where the slow clients stand for remote addresses.
        self.extra = ["client_limit_exempt none",
                      "listener submissions {",
                      "\taddress 127.0.0.1:%d" % self.smtps_port,
                      "\ttls implicit",
                      "}"]
        if max_sessions:
            self.extra.insert(0, "max_sessions %d" % max_sessions)
        self.d = run.Daemon(build, root, extra=self.extra)
        self.addr = "127.0.0.1"
        self.ports = {"data": self.d.port, "cmd": self.d.sub_port, "tls": self.smtps_port}
        self.rcpt = run.USER
        self.auth = True
        self.base_fds = None

    def start(self):
        self.d.start()
        self.mark()

    def mark(self):
        """The descriptors of the daemon with no slow client: the zero of "held"."""
        self.base_fds = fd_count(self.d.pid)

    def alive(self):
        return self.d.running()

    def sample(self):
        """(connections the server holds, RSS KiB, Pss KiB, processes)"""
        pid = self.d.pid
        fds = fd_count(pid)
        return ((fds - self.base_fds) if fds is not None else None,
                run.proc_status_kib(pid, "VmRSS"), pss_kib(pid), 1)

    def peak_kib(self):
        return run.proc_status_kib(self.d.pid, "VmHWM") if self.d.running() else None

    def stop(self):
        return self.d.stop()

    def log_lines(self, key):
        try:
            with open(self.d.log_path, "rb") as f:
                return sum(1 for l in f if key.encode() in l)
        except OSError:
            return 0


class PostfixTarget:
    name = "postfix"
    stress_key = "has reached its process limit"   # master's warning as stress begins

    def __init__(self, root):
        cert, key = os.path.join(root, "pf-cert.pem"), os.path.join(root, "pf-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=postfix-bench.localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=30)
        # relaypeers' instance; what it relays goes to the discard transport (no sink).
        self.pf = Postfix(root, POSTFIX_ADDR, "[127.0.0.1]:9", cert, key)
        with open(os.path.join(self.pf.conf, "main.cf"), "a") as f:
            f.write("default_transport = discard\n")
        self.addr = POSTFIX_ADDR
        sub, smtps = free_port(POSTFIX_ADDR), free_port(POSTFIX_ADDR)
        self.ports = {"data": self.pf.port, "cmd": sub, "tls": smtps}
        # Defaults everywhere (default_process_limit 100 smtpd per service, stress mode,
        # smtpd_timeout 300s/10s under stress), one smtpd service per port as Debian's
        # master.cf has them (submission: TLS required; smtps: wrapper mode).
        path = os.path.join(self.pf.conf, "master.cf")
        with open(path) as f:
            master = f.read()
        master = master.replace(self.pf.listener, "\n".join([
            self.pf.listener,
            "%s:%d inet n - n - - smtpd -o smtpd_tls_security_level=encrypt" % (POSTFIX_ADDR, sub),
            "%s:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes" % (POSTFIX_ADDR, smtps)]))
        with open(path, "w") as f:
            f.write(master)
        self.rcpt = "bob@relay.example"
        self.auth = False

    def start(self):
        self.pf.start()

    def mark(self):
        pass

    def alive(self):
        return self.pf.master_pid() is not None

    def _tree(self):
        pid = self.pf.master_pid()
        return [] if pid is None else [pid] + children_of(pid)

    def sample(self):
        pids = self._tree()
        smtpd = 0
        rss = pss = 0
        for p in pids:
            try:
                with open("/proc/%d/comm" % p) as f:
                    if f.read().strip() == "smtpd":
                        smtpd += 1
            except OSError:
                pass
            rss += run.proc_status_kib(p, "VmRSS") or 0
            pss += pss_kib(p) or 0
        # Each smtpd serves one connection at a time: the busy ones are what it holds.
        return smtpd, rss, pss, len(pids)

    def peak_kib(self):
        return None

    def stop(self):
        self.pf.stop()
        return 0 if self.pf.master_pid() is None else "still running"

    def log_lines(self, key):
        try:
            with open(self.pf.log, "rb") as f:
                return sum(1 for l in f if key.encode() in l)
        except OSError:
            return 0


def run_one(target, a, mix):
    """Baseline, then the attack; returns the report's data."""
    res = {"name": target.name, "timeline": [], "problems": []}
    goods = [GoodClient("%s-587" % target.name, target.ports["cmd"], False, target.auth,
                        run.USER, target.rcpt, target.addr),
             GoodClient("%s-465" % target.name, target.ports["tls"], True, target.auth,
                        run.USER, target.rcpt, target.addr)]
    attack = Attack({k: (target.addr, p) for k, p in target.ports.items()}, target.rcpt,
                    a.addresses, mix)
    try:
        target.start()
        for g in goods:
            g.thread.start()
        time.sleep(BASELINE_S)
        target.mark()
        res["idle"] = target.sample()
        for g in goods:
            g.phase = "attack"
        t0 = time.monotonic()
        attack.start()
        next_row = 0.0
        while time.monotonic() - t0 < a.duration:
            el = time.monotonic() - t0
            if el >= next_row:
                held, rss, pss, nproc = target.sample()
                c = attack.counts()
                res["timeline"].append((el, held, rss, pss, nproc, c, os.getloadavg()[0]))
                next_row += 5.0
            if not target.alive():
                res["problems"].append("%s died during the attack" % target.name)
                break
            time.sleep(0.2)
        res["end"] = target.sample()
        res["counts_end"] = attack.counts()
    finally:
        for g in goods:
            g.stop_ev.set()
        attack.stop()
        for g in goods:
            if g.thread.ident is not None:
                g.thread.join(GOOD_TIMEOUT * 4)
            if g.thread.is_alive():
                res["problems"].append("%s did not end" % g.name)
        res["peak_kib"] = target.peak_kib()
        res["stress"] = target.log_lines(target.stress_key)
        res["stop"] = target.stop()
    res["good"] = {g.name: {"baseline": summary(g.results, "baseline"),
                            "attack": summary(g.results, "attack"),
                            "raw": g.results} for g in goods}
    res["stats"] = attack.stats
    return res


def fs(v, spec="%.2f"):
    return "-" if v is None else spec % v


def report(results, a, cmdline, started, load_before, load_after, mix):
    print("## Slow clients (%s)\n" % started.strftime("%Y-%m-%d %H:%M %Z"))
    print("Machine: %d cores (%s), %s %s; load average %s before, %s after. Command:\n"
          % (os.cpu_count(), run.cpu_model() or "?", platform.system(), platform.release(),
             load_before, load_after))
    print("```sh\n%s\n```\n" % cmdline)
    print("Slow clients: %d addresses x %d (%s), one byte every %.0f s, reconnecting %.0f s "
          "after a close, for %.0f s.\n" % (a.addresses, sum(n for _, n in mix),
                                           ", ".join("%d %s" % (n, k) for k, n in mix),
                                           INTERVAL, RECONNECT, a.duration))
    print("| server | port | phase | submissions | failed | p50 s | p99 s | max s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for name, g in r["good"].items():
            for phase in ("baseline", "attack"):
                s = g[phase]
                print("| %s | %s | %s | %d | %d | %s | %s | %s |"
                      % (r["name"], name.rsplit("-", 1)[1], phase, s["n"], s["fail"],
                         fs(s["p50"]), fs(s["p99"]), fs(s["max"])))
    for r in results:
        print("\n%s, over time (held: %s):\n" % (r["name"], "descriptors above the idle "
              "daemon's" if r["name"] == "cursusd" else "smtpd processes"))
        print("| t s | held by server | slow open cmd / tls / data | of which served | "
              "connect pending | RSS MiB | Pss MiB | processes | load |")
        print("|---|---|---|---|---|---|---|---|---|")
        for el, held, rss, pss, nproc, c, load in r["timeline"]:
            k = ("cmd", "tls", "data")
            print("| %.0f | %s | %s | %s | %s | %s | %s | %d | %.1f |"
                  % (el, held, " / ".join(str(c.get(x, {}).get("open", 0)) for x in k),
                     " / ".join(str(c.get(x, {}).get("served", 0)) for x in k),
                     sum(c.get(x, {}).get("pending", 0) for x in k),
                     fs(rss / 1024 if rss else None, "%.1f"),
                     fs(pss / 1024 if pss else None, "%.1f"), nproc, load))
        print("\n| slow kind | connects | cut by server | refused | failed | held p50 / max s |")
        print("|---|---|---|---|---|---|")
        for k, st in r["stats"].items():
            h = st["held_s"]
            print("| %s | %d | %d | %d | %d | %s / %s |"
                  % (k, st["connects"], st["cut"], st["refused"], st["failed"],
                     fs(statistics.median(h) if h else None, "%.1f"),
                     fs(max(h) if h else None, "%.1f")))
        if r["name"] == "cursusd" and a.max_sessions:
            print("\ncursusd with max_sessions %d (not the default)." % a.max_sessions)
        print("\npeak RSS (VmHWM): %s MiB; stress starts logged: %d; stop: %s"
              % (fs(r["peak_kib"] / 1024 if r["peak_kib"] else None, "%.1f"), r["stress"],
                 r["stop"]))
        for name, g in r["good"].items():
            errs = g["attack"]["errors"] + g["baseline"]["errors"]
            if errs:
                print("%s failures (first ones): %s" % (name, "; ".join(errs)))
        for p in r["problems"]:
            print("PROBLEM: %s" % p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--addresses", type=int, default=200)
    ap.add_argument("--no-postfix", action="store_true")
    ap.add_argument("--max-sessions", type=int, help="cursusd's max_sessions (default: its own, 1000)")
    ap.add_argument("--quick", action="store_true", help="20 addresses, 15 s: a smoke test")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.addresses, a.duration = 20, 15.0
    if not 1 <= a.addresses <= 250:
        sys.exit("slowloris.py: --addresses 1..250 (127.0.0.2 .. 127.0.0.251)")
    mix = [("cmd", 5), ("tls", 4), ("data", 1)]
    build = os.path.abspath(a.build)
    # Two descriptors per slow connection on this machine (ours and the daemon's, which
    # inherits this limit and raises its soft limit to it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.addresses * 10 + 500
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 4 * need)), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        sys.exit("slowloris.py: open file limit %d, %d needed (ulimit -Hn)" % (hard, need))
    cmdline = " ".join(["/usr/bin/python3", "bench/slowloris.py"] + sys.argv[1:])
    started = datetime.datetime.now().astimezone()
    load_before = run.loadavg()
    results, problems = [], []
    root = tempfile.mkdtemp(prefix="cursus-slowloris-")
    os.chmod(root, 0o755)
    try:
        targets = [lambda: CursusTarget(build, root, a.max_sessions)]
        if not a.no_postfix:
            if os.geteuid() != 0:
                sys.exit("slowloris.py: Postfix needs root (or --no-postfix)")
            targets.append(lambda: PostfixTarget(root))
        for make in targets:
            t = make()
            print("%s: baseline %.0f s, then %d slow clients for %.0f s ..."
                  % (t.name, BASELINE_S, a.addresses * 10, a.duration), file=sys.stderr,
                  flush=True)
            r = run_one(t, a, mix)
            results.append(r)
            problems += r["problems"]
            time.sleep(3)
    finally:
        load_after = run.loadavg()
        if a.keep or problems:
            print("kept %s" % root, file=sys.stderr)
        else:
            rmtree(root)
    report(results, a, cmdline, started, load_before, load_after, mix)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
