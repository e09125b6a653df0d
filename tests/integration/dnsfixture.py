"""A real DNS server for a test (peers/dns_server.py) with a zone the test controls.

    from dnsfixture import DnsServer, dns_server   # dns_server: a pytest fixture

    with DnsServer(tmp_path, {"records": {...}}) as dns:
        run("cursus", "mx", "dest.example", "--resolver", dns.resolver)
        dns.set_zone({...})                 # takes effect at the next query

Zone format: see peers/dns_server.py. Test names must be under ".example": libunbound
answers NXDOMAIN itself for .test, .invalid and localhost (RFC 6761 local zones).
Every wait is bounded; the server is stopped at the end, whatever happens."""
import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest
from dnslib import DNSRecord

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers", "dns_server.py")
START_TIMEOUT = 10.0
PROBE_NAME = "dnsfixture-ready.example"


class DnsServer:
    def __init__(self, directory, zone=None, log=False):
        self.directory = str(directory)
        self.zone_path = os.path.join(self.directory, "zone.json")
        self.log_path = os.path.join(self.directory, "dns-queries.log") if log else None
        self.proc = None
        self.port = None
        self.set_zone(zone or {})

    @property
    def resolver(self):
        """The dns_create / --resolver / relay_dns_resolver form: ADDRESS@PORT."""
        return "127.0.0.1@%d" % self.port

    def set_zone(self, zone):
        """Atomically replaces the zone; the server re-reads it at its next query."""
        tmp = self.zone_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(zone, f)
        os.rename(tmp, self.zone_path)

    def queries(self):
        """The questions seen so far, as "NAME TYPE PROTO" lines (needs log=True)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return f.read().splitlines()

    def start(self):
        cmd = [sys.executable, SERVER, self.zone_path]
        if self.log_path:
            cmd += ["--log", self.log_path]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        try:
            self.port = self._read_port()
            if not self._wait_answers():
                raise RuntimeError("dns_server on port %d does not answer" % self.port)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise RuntimeError("dns_server did not report its port in time")
            chunk = os.read(self.proc.stdout.fileno(), 64)
            if not chunk:
                raise RuntimeError("dns_server exited: %s" % self.proc.stderr.read().decode())
            line += chunk
        return int(line)

    def _wait_answers(self):
        """Polls with real queries (UDP and TCP) until both answer, boundedly."""
        q = DNSRecord.question(PROBE_NAME, "A").pack()
        deadline = time.monotonic() + START_TIMEOUT
        for tcp in (False, True):
            while True:
                try:
                    DNSRecord.parse(self._ask(q, tcp))
                    break
                except Exception:  # not up yet, or a partial answer
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.05)
        return True

    def _ask(self, packet, tcp):
        if tcp:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(len(packet).to_bytes(2, "big") + packet)
                n = int.from_bytes(s.recv(2), "big")
                data = b""
                while len(data) < n:
                    chunk = s.recv(n - len(data))
                    if not chunk:
                        raise OSError("short TCP answer")
                    data += chunk
                return data
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.sendto(packet, ("127.0.0.1", self.port))
            return s.recv(65535)

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def dns_server(tmp_path):
    """A running DnsServer with an empty zone: call set_zone() first."""
    d = tmp_path / "dns"
    d.mkdir()
    with DnsServer(d, log=True) as server:
        yield server
