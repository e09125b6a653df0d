"""Real next hops for the relay tests, on 127.0.0.x: Postfix's smtp-sink and aiosmtpd
sinks (peers/relay_sink.py), and a test CA with server certificates."""
import json
import os
import socket
import subprocess
import time

import pytest

import cursus_testlib as lib
import testca
from testca import TestCA

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")
PY = "/usr/bin/python3"
SINK_PW = "s3cret-relay-pw"


def wait_listening(host, port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("nothing listening on %s:%d" % (host, port))


class Sinks:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def smtp_sink(self, host, *opts, port=None):
        port = port or lib.free_port()
        p = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody"] + list(opts)
                             + ["%s:%d" % (host, port), "10"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_listening(host, port)
        return port

    def aio_on(self, host, port, *opts):
        return self.aio(host, *opts, port=port)

    def aio(self, host, *opts, port=None, env=None):
        """Returns (port, read_events); env adds to the sink's environment (SINK_USERS)."""
        port = port or lib.free_port()
        log = os.path.join(self.tmp, "sink-%s-%d.log" % (host, port))
        env = dict(os.environ, SINK_PASSWORD=SINK_PW, **(env or {}))
        p = subprocess.Popen([PY, os.path.join(PEERS, "relay_sink.py"), "--host", host,
                              "--port", str(port), "--log", log] + list(opts),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.procs.append(p)
        line = p.stdout.readline()
        assert line.strip() == b"READY"

        def events():
            with open(log) as f:
                # A line without its newline is still being written: read next time.
                evs = [json.loads(x) for x in f if x.endswith("\n")]
            # The controller's own readiness check is the first connection.
            return evs[1:]
        return port, events

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)


def delivered(events, token):
    """The messages a sink (Sinks.aio's read_events) got that carry token."""
    return [e for e in events() if e["ev"] == "data" and token in e["content"]]


@pytest.fixture
def sinks(tmp_path):
    s = Sinks(str(tmp_path))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The relay tests' CA and next-hop certificates: good (127.0.0.61-66), expired
    (127.0.0.67), and one for another name."""
    ca = TestCA(tmp_path_factory.mktemp("relaycerts"), "cursus relay test CA")
    t = testca.now()
    return {"ca": ca.ca,
            "good": ca.leaf("good", ["relay.example"], ["127.0.0.%d" % i for i in range(61, 67)]),
            "expired": ca.leaf("expired", ["relay.example"], ["127.0.0.67"],
                               t - 30 * testca.DAY, t - 2 * testca.DAY),
            "othername": ca.leaf("othername", ["mail.example.test"])}
