#!/usr/bin/python3
"""The big-message benchmark: peak memory and throughput while messages of 1, 9 and
30 MiB arrive in parallel sessions, cursusd beside Postfix 3.7.

    bench/bigmsg.py --build BUILD_DIR [--quick] [--no-postfix] [--keep]

Both take the messages into their queue and keep them there: cursusd relays to a smart
host on a closed port, made dead by a first small message (its later messages wait
without a delivery attempt reading them); Postfix has defer_transports = smtp. So the
figures are those of receiving: smtp-bench (STARTTLS; AUTH PLAIN for cursusd, whose
submission listener is the way it relays; mynetworks for Postfix) sends, per size, 10
sessions at once. Memory: the Pss of cursusd, and the summed Pss of Postfix's processes
(master and its children: smtpd, cleanup, ...), sampled every 20 ms; the peak above the
figure before the round. Must run as root (Postfix's master). Every process started here
is stopped; every wait has a deadline."""
import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from relaypeers import Postfix, children_of, free_port, rmtree  # noqa: E402

POSTFIX_ADDR = "127.0.0.62"
RCPT = "far@relay.example"
MIB = 1024 * 1024


def pss_kib(pids):
    return sum(run.rollup_kib(p).get("Pss", 0) for p in pids)


class Sampler(threading.Thread):
    """The peak of pids_fn()'s summed Pss, every 20 ms, until stopped."""

    def __init__(self, pids_fn):
        super().__init__(daemon=True)
        self.pids_fn, self.peak, self.halt = pids_fn, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, pss_kib(self.pids_fn()))
            self.halt.wait(0.02)

    def stop(self):
        self.halt.set()
        self.join(5)
        return self.peak


def bench_round(bench, name, host, port, args, pids_fn, conc, per, size):
    cmd = [bench, "-H", host, "-p", str(port), "--rcpt", RCPT, "-c", str(conc),
           "-n", str(per), "-s", str(size), "-t", "120"] + args
    before = pss_kib(pids_fn())
    sampler = Sampler(pids_fn)
    sampler.start()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired:
        out, err, rc = "", "smtp-bench timed out", "timeout"
    peak = sampler.stop()
    res = {"system": name, "size": size, "conc": conc, "per": per, "rc": rc, "stderr": err,
           "before": before, "peak": peak, "cmd": " ".join(map(shlex.quote, cmd))}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                res[k] = float(v)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true", help="1 and 9 MiB, 4 sessions")
    ap.add_argument("--no-postfix", action="store_true", help="cursusd only")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    if os.geteuid() != 0 and not a.no_postfix:
        sys.exit("bigmsg.py: run as root (Postfix's master), or with --no-postfix")
    build = os.path.abspath(a.build)
    bench = os.path.join(build, "smtp-bench")
    conc = 4 if a.quick else 10
    loads = [(1 * MIB, 5), (9 * MIB, 1)] if a.quick else [(1 * MIB, 5), (9 * MIB, 2), (30 * MIB, 1)]

    # On disk, not tmpfs: the queues hold every message of the run.
    root = tempfile.mkdtemp(prefix="cursus-bigmsg-bench-", dir="/var/tmp")
    os.chmod(root, 0o755)
    closed = free_port("127.0.0.1")   # nothing listens there: the relay is down
    daemon = run.Daemon(build, root, extra=[
        "max_message_size 40M",
        "relay_host [127.0.0.1]:%d" % closed,
        "relay_tls none",
        "relay_concurrency_init 1",
        "relay_concurrency_max 1",
    ])
    postfix = None
    results, problems = [], []
    started = datetime.datetime.now().astimezone()
    load_before, load_after = run.loadavg(), "?"
    try:
        daemon.start()
        systems = [("cursusd", "127.0.0.1", daemon.sub_port,
                    ["--starttls", "--auth", "PLAIN", "--user", run.USER,
                     "--password-file", daemon.password_file, "--from", run.USER],
                    lambda: [daemon.pid])]
        if not a.no_postfix:
            cert, key = os.path.join(root, "pf-cert.pem"), os.path.join(root, "pf-key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                            "/CN=postfix-bench.localhost", "-keyout", key, "-out", cert],
                           check=True, capture_output=True, timeout=30)
            postfix = Postfix(root, POSTFIX_ADDR, "[127.0.0.1]:%d" % closed, cert, key)
            extra = ["message_size_limit = %d" % (40 * MIB), "defer_transports = smtp"]
            postfix.settings += extra
            with open(os.path.join(postfix.conf, "main.cf"), "a") as f:
                f.write("\n".join(extra) + "\n")
            postfix.start()

            def pf_pids():
                m = postfix.master_pid()
                return [m] + children_of(m) if m else []
            systems.append(("postfix", POSTFIX_ADDR, postfix.port, ["--starttls", "--from", run.USER],
                            pf_pids))
        # Warm-up, not counted: first TLS and AUTH, and cursusd's relay found down.
        for name, host, port, args, pids_fn in systems:
            w = bench_round(bench, name, host, port, args, pids_fn, 1, 1, 4096)
            if w["rc"] != 0:
                problems.append("warm-up through %s failed\n%s" % (name, w["stderr"]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "result=deferred" not in daemon.log_tail(200):
            time.sleep(0.1)
        time.sleep(1)
        for size, per in loads:
            for name, host, port, args, pids_fn in systems:
                print("%s %d MiB %dx%d ..." % (name, size // MIB, conc, per), file=sys.stderr,
                      flush=True)
                r = bench_round(bench, name, host, port, args, pids_fn, conc, per, size)
                results.append(r)
                if r["rc"] != 0 or r.get("messages") != conc * per:
                    problems.append("%s %d MiB: rc=%s accepted=%s of %d\n%s" % (
                        name, size // MIB, r["rc"], r.get("messages"), conc * per,
                        r["stderr"].strip()))
                time.sleep(2)
        if not daemon.running():
            problems.append(run.death_note(daemon))
        hwm = run.proc_status_kib(daemon.pid, "VmHWM") if daemon.running() else None
        load_after = run.loadavg()
    finally:
        alive = daemon.running()
        rc = daemon.stop()
        if alive and rc not in (0, None):
            problems.append("cursusd exit status on SIGTERM: %s" % rc)
        if postfix:
            postfix.stop()
            if postfix.master_pid():
                problems.append("postfix master still running after stop")

    print("## cursus big-message benchmark, %s" % started.strftime("%Y-%m-%d %H:%M %Z"))
    print()
    print("Machine: %d cores (%s), %s %s" % (os.cpu_count(), run.cpu_model() or "?",
                                             platform.system(), platform.release()))
    print("Load average (1, 5, 15 min) before: %s; after: %s" % (load_before, load_after))
    print("Command: `%s`" % " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv))
    print()
    print("| system | size | sessions x msgs | accepted | msgs/s | MiB/s | 250 p50 / p99 ms | "
          "Pss before MiB | peak Pss MiB | peak - before MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rate = r.get("msgs_per_s")
        print("| %s | %d MiB | %dx%d | %s | %s | %s | %s / %s | %.1f | %.1f | %.1f |" % (
            r["system"], r["size"] // MIB, r["conc"], r["per"], run.fmt(r.get("messages"), "%d"),
            run.fmt(rate, "%.2f"), run.fmt(rate * r["size"] / MIB if rate else None),
            run.fmt(r.get("p50_ms"), "%.1f"), run.fmt(r.get("p99_ms"), "%.1f"),
            r["before"] / 1024, r["peak"] / 1024, (r["peak"] - r["before"]) / 1024))
    print()
    print("cursusd VmHWM at the end (its peak resident set over the whole run): %s MiB"
          % run.fmt(hwm / 1024 if hwm else None))
    print()
    print("Commands:")
    seen = set()
    for r in results:
        if r["system"] not in seen:
            seen.add(r["system"])
            print("    %s" % r["cmd"])
    if postfix:
        print("    postfix main.cf: %s" % "; ".join(postfix.settings[-2:]))
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("- " + p)
        print("\ncursusd log tail:\n" + daemon.log_tail(20))
    if a.keep or problems:
        print("\n(temporary directory kept: %s)" % root)
    else:
        rmtree(root)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
