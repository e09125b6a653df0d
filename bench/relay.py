#!/usr/bin/python3
"""The relay benchmark: mail submitted to cursusd and relayed to a smart host, set against
the same load through Postfix 3.7 relaying to the same smart host.

    bench/relay.py --build BUILD_DIR [--quick] [--rounds N] [--no-postfix] [--keep]

The smart host is Postfix's smtp-sink on 127.0.0.61 (no TLS offered; cursusd has
relay_tls none, Postfix smtp_tls_security_level = none). cursusd's submission listener
(127.0.0.1, STARTTLS + AUTH PLAIN: the only way it relays) and a throw-away Postfix on
127.0.0.62 (STARTTLS, relay allowed to mynetworks, no AUTH) each take, per round, 20
sessions x 50 messages of 4 KiB (smtp-bench; a load that saturates the 2 cores), then
1 session x 200 (one message at a time); rounds alternate between the two. Per message,
smtp-bench records the wall-clock time of the 250 after DATA and the sink the time the
message reached it (relaypeers.Sink): their difference is the relay latency.

Must run as root (Postfix's master, smtp-sink -u postfix). Every process started here is
stopped at the end; every wait has a deadline."""
import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from relaypeers import Postfix, Sink, rmtree  # noqa: E402

SINK_ADDR, POSTFIX_ADDR = "127.0.0.61", "127.0.0.62"
RCPT = "bob@relay.example"


def pct(v, p):
    """Nearest-rank percentile of a sorted list (as smtp-bench computes its own)."""
    if not v:
        return None
    k = (p * len(v) + 99) // 100
    return v[max(k, 1) - 1]


def read_accept_log(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, t = line.split()
                out[key] = float(t)
    except OSError:
        pass
    return out


class System:
    """One relay under test: where to submit, and its CPU counter."""

    def __init__(self, name, host, port, bench_args, cpu, queue_check):
        self.name, self.host, self.port = name, host, port
        self.bench_args, self.cpu, self.queue_check = bench_args, cpu, queue_check


def run_round(bench, system, sink, root, label, conc, per, size, timeout=600):
    acc_path = os.path.join(root, "accepted-%s.txt" % label.replace(" ", "-"))
    cmd = [bench, "-H", system.host, "-p", str(system.port), "--rcpt", RCPT,
           "-c", str(conc), "-n", str(per), "-s", str(size), "--accept-log", acc_path] \
        + system.bench_args
    cpu0, sink0 = system.cpu(), sink.cpu_s()
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired:
        out, err, rc = "", "smtp-bench timed out after %ss" % timeout, "timeout"
    res = {"label": label, "system": system.name, "cmd": " ".join(map(shlex.quote, cmd)),
           "rc": rc, "stderr": err}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                res[k] = float(v)
    acc = read_accept_log(acc_path)
    deadline = time.monotonic() + max(60.0, len(acc) / 10.0)
    while time.monotonic() < deadline and any(k not in sink.arrivals for k in acc):
        time.sleep(0.02)
    arrived = {k: sink.arrivals[k] for k in acc if k in sink.arrivals}
    with open(acc_path.replace("accepted-", "arrived-"), "w") as f:
        f.writelines("%s %.6f\n" % kv for kv in arrived.items())
    cpu1, sink1 = system.cpu(), sink.cpu_s()
    lat = sorted((arrived[k] - acc[k]) * 1e3 for k in arrived)
    n = len(acc)
    res.update(accepted=n, arrived=len(arrived), lat=lat,
               p50=pct(lat, 50), p99=pct(lat, 99), lmax=lat[-1] if lat else None,
               lmin=lat[0] if lat else None)
    if arrived:
        last = max(arrived.values())
        res["e2e_s"] = last - t0
        res["e2e_rate"] = len(arrived) / (last - t0)
        res["lag_s"] = last - max(acc.values())
    res["cpu_ms"] = (cpu1 - cpu0) * 1e3 / n if n and None not in (cpu0, cpu1) else None
    res["sink_cpu_ms"] = (sink1 - sink0) * 1e3 / n if n and None not in (sink0, sink1) else None
    # Queue files are removed a little after the sink's 250 (cursusd records the outcome
    # on a worker thread; Postfix's qmgr after the smtp client's report): wait, bounded.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not system.queue_check():
        time.sleep(0.05)
    res["queue_empty"] = system.queue_check()
    return res


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def cursus_queue_empty(daemon):
    """No message file left in cursusd's queue (msg/ holds every queued message)."""
    try:
        return not os.listdir(os.path.join(daemon.root, "queue", "msg"))
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true", help="5 x 10 messages, one round")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per system (3)")
    ap.add_argument("--no-postfix", action="store_true", help="cursusd only")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("relay.py: run as root (Postfix's master and smtp-sink -u postfix)")
    build = os.path.abspath(a.build)
    bench = os.path.join(build, "smtp-bench")
    if "--accept-log" not in subprocess.run([bench, "--help"], capture_output=True,
                                            text=True, timeout=10).stderr:
        sys.exit("relay.py: %s has no --accept-log (make -j2)" % bench)
    # Saturating (many sessions at once: the latency is mostly the backlog the relay
    # builds while it accepts faster than it delivers) and light (one session, one message
    # at a time: the latency of the relay itself).
    loads = [(5, 10), (1, 20)] if a.quick else [(20, 50), (1, 200)]
    rounds = a.rounds or (1 if a.quick else 3)
    size = 4096

    root = tempfile.mkdtemp(prefix="cursus-relay-bench-")
    os.chmod(root, 0o755)   # smtp-sink, as postfix, opens its FIFO below it
    sink = Sink(root, SINK_ADDR)
    daemon = run.Daemon(build, root, extra=[
        "relay_host [%s]:%d" % (SINK_ADDR, sink.port),
        "relay_tls none",
    ])
    postfix = None
    results, problems = [], []
    started = datetime.datetime.now().astimezone()
    load_before, load_after = run.loadavg(), "?"
    try:
        sink.start()
        daemon.start()
        systems = [System("cursusd", "127.0.0.1", daemon.sub_port,
                          ["--starttls", "--auth", "PLAIN", "--user", run.USER,
                           "--password-file", daemon.password_file, "--from", run.USER],
                          lambda: run.proc_cpu_s(daemon.pid),
                          lambda: cursus_queue_empty(daemon))]
        if not a.no_postfix:
            cert, key = os.path.join(root, "pf-cert.pem"), os.path.join(root, "pf-key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                            "/CN=postfix-bench.localhost", "-keyout", key, "-out", cert],
                           check=True, capture_output=True, timeout=30)
            postfix = Postfix(root, POSTFIX_ADDR, "[%s]:%d" % (SINK_ADDR, sink.port), cert, key)
            postfix.start()
            systems.append(System("postfix", POSTFIX_ADDR, postfix.port,
                                  # Postfix's CPU is not measured: its smtpd, cleanup
                                  # and smtp processes come and go, and /proc loses the
                                  # CPU of one that exits between the two readings.
                                  ["--starttls", "--from", run.USER], lambda: None,
                                  postfix.queue_empty))
        # Warm-up, not counted: first AUTH (one yescrypt, then cached), first TLS, the first
        # delivery of each relay. Then both relays' cached connections to the sink expire
        # (cursusd relay_idle_time 2 s, Postfix smtp_connection_cache_time_limit 2 s), so
        # every round starts with connections to open.
        for s in systems:
            w = run_round(bench, s, sink, root, "warm-up %s" % s.name, 1, 1, size)
            if w["arrived"] != 1:
                problems.append("warm-up through %s: nothing reached the sink\n%s"
                                % (s.name, w["stderr"]))
        time.sleep(3)
        for i, (conc, per) in ((i, l) for l in loads for i in range(rounds)):
            for s in systems:
                label = "%s %dx%d #%d" % (s.name, conc, per, i + 1)
                print("%s ..." % label, file=sys.stderr, flush=True)
                r = run_round(bench, s, sink, root, label, conc, per, size)
                results.append(r)
                if r["rc"] != 0 or r["accepted"] != conc * per or r["arrived"] != r["accepted"] \
                        or not r["queue_empty"]:
                    problems.append("%s: rc=%s accepted=%d arrived=%d of %d, queue empty: %s\n%s"
                                    % (r["label"], r["rc"], r["accepted"], r["arrived"],
                                       conc * per, r["queue_empty"], r["stderr"].strip()))
                time.sleep(3)
        if not daemon.running():
            problems.append(run.death_note(daemon))
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
        sink.stop()

    print("## cursus relay benchmark, %s" % started.strftime("%Y-%m-%d %H:%M %Z"))
    print()
    print("Machine: %d cores (%s), %s %s, Python %s"
          % (os.cpu_count(), run.cpu_model() or "?", platform.system(), platform.release(),
             platform.python_version()))
    print("Load average (1, 5, 15 min) before: %s; after: %s" % (load_before, load_after))
    print("Command: `%s`" % " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv))
    print("Each round: sessions x messages (round NxM #k) of %d octets to %s" % (size, RCPT))
    print()
    print("| round | accepted | at sink | submit msgs/s | 250 p50 / p99 ms | "
          "end-to-end msgs/s | all at sink (s) | lag after last 250 (s) | "
          "relay latency p50 / p99 / max ms | CPU ms/msg relay / sink |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print("| %s | %d | %d | %s | %s / %s | %s | %s | %s | %s / %s / %s | %s / %s |" % (
            r["label"], r["accepted"], r["arrived"], fmt(r.get("msgs_per_s")),
            fmt(r.get("p50_ms"), "%.2f"), fmt(r.get("p99_ms"), "%.2f"),
            fmt(r.get("e2e_rate")), fmt(r.get("e2e_s"), "%.2f"), fmt(r.get("lag_s"), "%.2f"),
            fmt(r["p50"], "%.2f"), fmt(r["p99"], "%.2f"), fmt(r["lmax"], "%.2f"),
            fmt(r["cpu_ms"], "%.2f"), fmt(r["sink_cpu_ms"], "%.2f")))
    print()
    print("Commands:")
    print("    %s" % " ".join(sink.cmd))
    if postfix:
        print("    postfix -c %s start   # main.cf:" % postfix.conf)
        for line in postfix.settings:
            print("        %s" % line)
        print("        master.cf smtpd: %s (every service chroot n)" % postfix.listener)
    seen = set()
    for r in results:
        shape = r["label"].rsplit(" #", 1)[0]
        if shape not in seen:
            seen.add(shape)
            print("    %s" % r["cmd"])
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("- " + p)
        print("\ncursusd log tail:\n" + daemon.log_tail(20))
        if postfix:
            print("\npostfix log tail:\n" + postfix.log_tail(20))
    if a.keep or problems:
        print("\n(temporary directory kept: %s)" % root)
    else:
        rmtree(root)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
