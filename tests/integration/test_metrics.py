"""Metrics (issue 9 item 5): metrics_listen serves /metrics in the Prometheus text
exposition format 0.0.4. Real traffic is driven at a running cursusd (a message taken,
RCPTs refused, AUTH failed and passed with smtplib over STARTTLS, a local delivery and a
deferred relay), the exposition is fetched with curl, parsed strictly here, checked by
`promtool check metrics`, and every counter's change is asserted exactly."""
import math
import os
import re
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

import cursus_testlib as lib
from cursus_testlib import make_body
from relaypeers import certs, sinks  # noqa: F401 (fixtures)

ALICE = "alice@example.test"
PW = lib.PASSWORD
CURL = shutil.which("curl")
PROMTOOL = shutil.which("promtool")

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_exposition(text):
    """A strict reader of the text format 0.0.4 as cursusd writes it: every family has
    HELP then TYPE, before its samples, once; samples of a family are contiguous, each
    series once; names and labels have the format's syntax; values are numbers.
    Returns ({(name, ((label, value), ...)): value}, {name: type})."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    samples, types, helps = {}, {}, set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (n, line)
        assert line, "empty line at " + where
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"), where
            name = parts[2]
            assert NAME_RE.match(name), where
            if parts[1] == "HELP":
                assert name not in helps and name not in types, "HELP twice or after TYPE: " + where
                assert len(parts) == 4 and parts[3].strip(), "empty HELP: " + where
                helps.add(name)
                current = name
            else:
                assert name == current and name not in types, "TYPE not right after HELP: " + where
                assert len(parts) == 4 and parts[3] in TYPES, where
                types[name] = parts[3]
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)\Z", line)
        assert m, "not a sample: " + where
        name, labels, value = m.group(1), m.group(2), m.group(3)
        assert name == current and name in types, "sample outside its family: " + where
        pairs = []
        if labels:
            body = labels[1:-1]
            pos = 0
            while pos < len(body):
                lm = LABEL_RE.match(body, pos)
                assert lm, "bad label syntax at %d: %s" % (pos, where)
                pairs.append((lm.group(1), lm.group(2)))
                pos = lm.end()
                if pos < len(body):
                    assert body[pos] == ",", where
                    pos += 1
            assert len({k for k, _ in pairs}) == len(pairs), "label twice: " + where
        v = float(value)
        assert not math.isnan(v), where
        if types[name] == "counter":
            assert name.endswith("_total") and v >= 0, where
        key = (name, tuple(pairs))
        assert key not in samples, "series twice: " + where
        samples[key] = v
    return samples, types


def curl(port, path="/metrics", *extra):
    """(status, headers text, body) of a request made with curl."""
    r = subprocess.run([CURL, "-sS", "--max-time", "10", "-D", "-", "-o", "-",
                        "http://127.0.0.1:%d%s" % (port, path)] + list(extra),
                       capture_output=True, timeout=20)
    assert r.returncode == 0, "curl: %r" % r.stderr
    # Bytes: text mode would turn the CRLF that ends the header into LF.
    head, _, body = r.stdout.decode().partition("\r\n\r\n")
    status = int(head.split(" ", 2)[1])
    return status, head, body


def scrape(port):
    status, head, body = curl(port)
    assert status == 200, (status, body)
    assert re.search(r"(?im)^content-type: text/plain; version=0\.0\.4", head), head
    return parse_exposition(body)[0], body


def promtool_check(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and not r.stdout and not r.stderr, \
        "promtool check metrics:\n%s%s" % (r.stdout, r.stderr)


def get(samples, name, **labels):
    return samples.get((name, tuple(labels.items())))


def counter_deltas(before, after):
    """Every counter series that changed, with its change (new series from 0)."""
    out = {}
    for key, v in after.items():
        if key[0].endswith("_total"):
            d = v - before.get(key, 0)
            if d:
                out[key] = d
    return out


def listening_ports(pid):
    """The TCP ports process pid listens on, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                col = row.split()
                if col[3] == "0A" and col[9] in inodes:
                    ports.add(int(col[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def metrics_server(start_server):
    def factory(**kw):
        port = lib.free_port()
        srv = start_server(extra_conf="metrics_listen 127.0.0.1:%d\nmetrics_timeout 1" % port, **kw)
        srv.metrics_port = port
        return srv
    return factory


needs_tools = pytest.mark.skipif(not CURL or not PROMTOOL, reason="curl and promtool needed")


def test_metrics_off_by_default(start_server):
    srv = start_server()
    assert listening_ports(srv.proc.pid) == set(srv.ports.values())
    assert "name=metrics" not in srv.log


@needs_tools
def test_counters_follow_real_traffic(metrics_server):
    srv = metrics_server()
    port = srv.metrics_port
    assert listening_ports(srv.proc.pid) == set(srv.ports.values()) | {port}
    assert "listen name=metrics role=metrics address=127.0.0.1:%d" % port in srv.log
    before, text = scrape(port)
    promtool_check(text)
    t0 = time.time()

    # Port 25: two RCPTs refused, one message accepted and delivered to a Maildir.
    token = "metrics-local-%d" % os.getpid()
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<sender@remote.test>", 250)
        c.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")
        c.expect("RCPT TO:<someone@elsewhere.test>", 554, "5.7.1")
        c.expect("RCPT TO:<%s>" % ALICE, 250)
        c.expect("DATA", 354)
        c.send(make_body(token).encode() + b".\r\n")
        assert c.reply().code == 250
        c.expect("QUIT", 221)
    srv.wait_message(ALICE, token)

    # Submission without AUTH: MAIL refused.
    with srv.smtp("submission") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
        c.expect("QUIT", 221)

    # smtplib over STARTTLS: a wrong password, then the right one and a message to
    # another domain (its next hop is a closed port: deferred, it stays queued).
    with smtplib.SMTP("127.0.0.1", srv.ports["submission"], "client.test", timeout=10) as s:
        s.starttls(context=lib.tls_client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "wrong password")
        assert e.value.smtp_code == 535
    with smtplib.SMTP("127.0.0.1", srv.ports["submission"], "client.test", timeout=10) as s:
        s.starttls(context=lib.tls_client_context())
        assert s.login(ALICE, PW)[0] == 235
        s.sendmail(ALICE, ["friend@remote.test"], make_body("metrics-relay"))

    # One session left open while the gauges are read.
    held = srv.smtp()
    try:
        def settled():
            now, _ = scrape(port)
            ok = (get(now, "cursus_deliveries_total", transport="smtp", result="deferred") == 1
                  and get(now, "cursus_deliveries_total", transport="maildir", result="delivered") == 1
                  and get(now, "cursus_sessions", listener="submission") == 0)
            return now if ok else None
        after = lib.wait_until(settled, 15)
        assert after, "deliveries not counted; log:\n" + srv.log[-3000:]
        assert get(after, "cursus_sessions", listener="smtp") == 1
        assert get(after, "cursus_sessions", listener="submissions") == 0
    finally:
        held.close()

    assert counter_deltas(before, after) == {
        # smtplib's login() tries each mechanism it knows in turn: PLAIN, then LOGIN.
        ("cursus_auth_attempts_total",
         (("listener", "submission"), ("mechanism", "PLAIN"), ("result", "fail"))): 1,
        ("cursus_auth_attempts_total",
         (("listener", "submission"), ("mechanism", "LOGIN"), ("result", "fail"))): 1,
        ("cursus_auth_attempts_total",
         (("listener", "submission"), ("mechanism", "PLAIN"), ("result", "ok"))): 1,
        ("cursus_sessions_total", (("listener", "smtp"),)): 2,
        ("cursus_sessions_total", (("listener", "submission"),)): 3,
        ("cursus_messages_accepted_total", (("listener", "smtp"),)): 1,
        ("cursus_messages_accepted_total", (("listener", "submission"),)): 1,
        ("cursus_messages_rejected_total", (("listener", "smtp"), ("reason", "unknown-user"))): 1,
        ("cursus_messages_rejected_total", (("listener", "smtp"), ("reason", "relay-denied"))): 1,
        ("cursus_messages_rejected_total",
         (("listener", "submission"), ("reason", "auth-required"))): 1,
        ("cursus_deliveries_total", (("transport", "maildir"), ("result", "delivered"))): 1,
        ("cursus_deliveries_total", (("transport", "smtp"), ("result", "deferred"))): 1,
        ("cursus_tls_handshakes_total", (("listener", "submission"), ("version", "TLSv1.3"))): 2,
    }
    # The deferred message is the whole queue.
    assert get(after, "cursus_queue_messages") == 1
    assert get(after, "cursus_queue_recipients") == 1
    assert 0 <= get(after, "cursus_queue_oldest_message_age_seconds") <= time.time() - t0 + 1
    # Series known in advance are there from the start, at 0.
    for r in ("delivered", "deferred", "bounced"):
        for t in ("maildir", "smtp"):
            assert get(before, "cursus_deliveries_total", transport=t, result=r) is not None
    start = get(after, "cursus_start_time_seconds")
    assert t0 - 120 < start <= time.time()
    assert [k for k in after if k[0] == "cursus_build_info"] and \
        all(v == 1 for k, v in after.items() if k[0] == "cursus_build_info")
    # No user name or address in any label.
    for key in after:
        for _, v in key[1]:
            assert "@" not in v and "127.0.0.1" not in v, key
    _, text = scrape(port)
    promtool_check(text)


@needs_tools
def test_bounce_counted_and_queue_drains(metrics_server):
    """A recipient whose Maildir is unusable is deferred, then expires: bounced; the
    DSN to the sender is a delivery; then the queue's gauges fall back to 0."""
    srv = metrics_server(retry_min=1, retry_max=1, queue_lifetime=1)
    port = srv.metrics_port
    os.makedirs(os.path.dirname(srv.maildir("bob@example.test")), exist_ok=True)
    with open(srv.maildir("bob@example.test"), "w") as f:
        f.write("not a maildir\n")
    before, _ = scrape(port)
    with srv.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<bob@example.test>", 250)
        c.expect("DATA", 354)
        c.send(make_body("metrics-bounce").encode() + b".\r\n")
        assert c.reply().code == 250

    def drained():
        now, _ = scrape(port)
        ok = (get(now, "cursus_deliveries_total", transport="maildir", result="bounced") == 1
              and get(now, "cursus_queue_messages") == 0)
        return now if ok else None
    after = lib.wait_until(drained, 20)
    assert after, "no bounce counted; log:\n" + srv.log[-3000:]
    deltas = counter_deltas(before, after)
    # Deferred once, unless the first attempt came a second late and found it expired.
    deferred = deltas.pop(("cursus_deliveries_total",
                           (("transport", "maildir"), ("result", "deferred"))), 0)
    assert deferred <= 1
    assert deltas == {
        ("cursus_sessions_total", (("listener", "smtp"),)): 1,
        ("cursus_messages_accepted_total", (("listener", "smtp"),)): 1,
        ("cursus_deliveries_total", (("transport", "maildir"), ("result", "bounced"))): 1,
        # The DSN, to alice.
        ("cursus_deliveries_total", (("transport", "maildir"), ("result", "delivered"))): 1,
    }
    assert get(after, "cursus_queue_recipients") == 0
    assert get(after, "cursus_queue_oldest_message_age_seconds") == 0


@needs_tools
def test_relay_tls_counted(metrics_server, sinks, certs):
    """A message relayed to a smart host over verified STARTTLS (an aiosmtpd sink with
    the test CA's certificate): one outbound handshake, one smtp delivery."""
    host = "127.0.0.62"  # in the test certificate's names
    sink_port, events = sinks.aio(host, "--cert", certs["good"][0], "--key", certs["good"][1])
    srv = metrics_server(relay_host="[%s]:%d" % (host, sink_port), relay_tls="verify",
                         relay_ca=certs["ca"])
    before, _ = scrape(srv.metrics_port)
    with srv.smtp("submissions") as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + lib.plain_response(ALICE, PW), 235)
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<friend@far.example>", 250)
        c.expect("DATA", 354)
        c.send(make_body("metrics-relay-tls").encode() + b".\r\n")
        assert c.reply().code == 250

    def relayed():
        now, _ = scrape(srv.metrics_port)
        ok = get(now, "cursus_deliveries_total", transport="smtp", result="delivered") == 1
        return now if ok else None
    after = lib.wait_until(relayed, 15)
    assert after, "not relayed; log:\n" + srv.log[-3000:]
    assert [e for e in events() if e["ev"] == "data"]
    assert counter_deltas(before, after) == {
        ("cursus_auth_attempts_total",
         (("listener", "submissions"), ("mechanism", "PLAIN"), ("result", "ok"))): 1,
        ("cursus_sessions_total", (("listener", "submissions"),)): 1,
        ("cursus_tls_handshakes_total", (("listener", "submissions"), ("version", "TLSv1.3"))): 1,
        ("cursus_messages_accepted_total", (("listener", "submissions"),)): 1,
        ("cursus_relay_tls_handshakes_total", (("version", "TLSv1.3"), ("verified", "yes"))): 1,
        ("cursus_deliveries_total", (("transport", "smtp"), ("result", "delivered"))): 1,
    }


@needs_tools
def test_http_paths_methods_and_limits(metrics_server):
    srv = metrics_server()
    port = srv.metrics_port
    for path in ("/", "/metric", "/metrics/", "/metricsx", "/../metrics"):
        status, _, body = curl(port, path, "--path-as-is")
        assert status == 404, (path, status, body)
    # The query is not part of the path.
    assert curl(port, "/metrics?x=1")[0] == 200
    status, head, _ = curl(port, "/metrics", "-X", "POST", "--data", "")
    assert status == 405 and re.search(r"(?im)^allow: GET\s*$", head), head
    assert curl(port, "/metrics", "-X", "DELETE")[0] == 405
    # A request header over the bound is refused, and the server goes on.
    status, _, _ = curl(port, "/metrics", "-H", "X-Big: " + "a" * 10000)
    assert 400 <= status < 500
    # A client that sends nothing is dropped after metrics_timeout (1 s here).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        t = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - t < 8
    status, _, body = curl(port)
    assert status == 200 and "cursus_sessions_total" in body


def test_metrics_listen_config_errors(tmp_path):
    for value, message in (
            ("localhost:9100", 'metrics_listen: host "localhost" is not a numeric IPv4 address'),
            ("127.0.0.1", 'metrics_listen: "127.0.0.1" is not host:port'),
            ("[::1]:0", 'metrics_listen: bad port "0" (1-65535)')):
        conf = tmp_path / "c.conf"
        conf.write_text("hostname mx.example.test\nlocal_domains example.test\n"
                        "state_dir %s\nmetrics_listen %s\n" % (tmp_path, value))
        r = subprocess.run([lib.CURSUSD, "-n", "-c", str(conf)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1 and ("%s:4: %s" % (conf, message)) in r.stderr, r.stderr
    conf.write_text("hostname mx.example.test\nlocal_domains example.test\n"
                    "state_dir %s\nmetrics_listen [::1]:9100\n"
                    "listener smtp {\n\taddress 127.0.0.1:2525\n}\n" % tmp_path)
    r = subprocess.run([lib.CURSUSD, "-n", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
