"""A DNSSEC-signed test DNS: zones signed with Debian's ldnsutils (ldns-keygen,
ldns-signzone) and served by NSD (a real authoritative server) on 127.0.0.1, for the
DANE tests. libunbound validates them with the trust anchor file this writes (the
zones' DS records), given to cursusd as dns_trust_anchor.

    dns = SignedDns(tmp_path)
    dns.zone("dane.example", ["ee MX 10 mx-ee", "mx-ee A 127.0.0.81", ...])  # signed
    dns.zone("plain.example", [...], signed=False)     # not under any trust anchor
    dns.tamper("dane.example", "mx-bogus A 127.0.0.87", "mx-bogus A 127.0.0.99")
    with dns:                       # signs, starts nsd, waits until it answers
        dns.resolver, dns.trust_anchor

Names must be under ".example" (libunbound answers .test itself, see dnsfixture.py).
tamper() edits a signed record after signing, so its RRSIG no longer matches: a bogus
answer. Every wait is bounded; nsd is stopped at the end."""
import os
import re
import socket
import subprocess
import time

from dnslib import DNSRecord

import cursus_testlib as lib

START_TIMEOUT = 10.0
NSD = "/usr/sbin/nsd"


class SignedDns:
    def __init__(self, directory):
        self.dir = str(directory)
        self.zones = {}      # name -> (records, signed)
        self.tampered = {}   # name -> [(old, new)]
        self.port = lib.free_port()
        self.proc = None
        self.trust_anchor = os.path.join(self.dir, "trust-anchor.ds")

    @property
    def resolver(self):
        return "127.0.0.1@%d" % self.port

    def zone(self, name, records, signed=True):
        """records: zone-file lines relative to the origin ("mx A 127.0.0.1")."""
        self.zones[name] = (list(records), signed)

    def tamper(self, zone, old, new):
        """After signing, the record written as old (relative, single spaces) is
        replaced by new: its signature no longer covers it."""
        self.tampered.setdefault(zone, []).append((old, new))

    def _run(self, *cmd):
        return subprocess.run(cmd, cwd=self.dir, check=True, capture_output=True, text=True,
                              timeout=60).stdout.strip()

    def _write_zone(self, name, records):
        path = os.path.join(self.dir, name + ".zone")
        with open(path, "w") as f:
            f.write("$ORIGIN %s.\n$TTL 300\n" % name)
            f.write("@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n" % (name, name))
            f.write("@ IN NS ns.%s.\nns IN A 127.0.0.1\n" % name)
            for r in records:
                f.write(r + "\n")
        return path

    def _sign(self, name, path):
        # A KSK alone signs everything: simpler than a KSK/ZSK pair, as valid.
        key = self._run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "-r", "/dev/urandom", name)
        out = os.path.join(self.dir, name + ".signed")
        self._run("ldns-signzone", "-o", name, "-f", out, path, key)
        with open(os.path.join(self.dir, key + ".ds")) as f:
            ds = f.read()
        for old, new in self.tampered.get(name, []):
            self._tamper_file(out, name, old, new)
        return out, ds

    @staticmethod
    def _tamper_file(path, origin, old, new):
        def absolute(rec):
            owner, rest = rec.split(" ", 1)
            rtype, rdata = rest.split(" ", 1)
            return "%s.%s." % (owner, origin), rtype, rdata
        o_owner, o_type, o_rdata = absolute(old)
        n_owner, n_type, n_rdata = absolute(new)
        with open(path) as f:
            lines = f.read().splitlines()
        hits = 0
        for i, line in enumerate(lines):
            f = re.split(r"\s+", line.strip(), maxsplit=4)
            if len(f) == 5 and f[0] == o_owner and f[3] == o_type and \
                    f[4].replace(" ", "").lower() == o_rdata.replace(" ", "").lower():
                lines[i] = "%s\t300\tIN\t%s\t%s" % (n_owner, n_type, n_rdata)
                hits += 1
        assert hits == 1, "tamper: %r not found once in %s" % (old, path)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        conf = ["server:", "  ip-address: 127.0.0.1@%d" % self.port, '  username: ""',
                '  chroot: ""', '  zonesdir: "%s"' % self.dir, '  database: ""',
                '  zonelistfile: "%s/zone.list"' % self.dir,
                '  xfrdfile: "%s/xfrd.state"' % self.dir, '  xfrdir: "%s"' % self.dir,
                '  pidfile: "%s/nsd.pid"' % self.dir, '  logfile: "%s/nsd.log"' % self.dir,
                "  verbosity: 1", "remote-control:", "  control-enable: no"]
        anchors = []
        for name, (records, signed) in self.zones.items():
            path = self._write_zone(name, records)
            if signed:
                path, ds = self._sign(name, path)
                anchors.append(ds)
            conf += ["zone:", "  name: %s" % name, "  zonefile: %s" % os.path.basename(path)]
        with open(self.trust_anchor, "w") as f:
            f.write("".join(anchors))
        conf_path = os.path.join(self.dir, "nsd.conf")
        with open(conf_path, "w") as f:
            f.write("\n".join(conf) + "\n")
        self._run(NSD + "-checkconf", conf_path)
        self.proc = subprocess.Popen([NSD, "-d", "-c", conf_path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self._wait_answers(next(iter(self.zones)))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_answers(self, name):
        q = DNSRecord.question(name, "SOA").pack()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nsd exited: %s" % self.proc.stderr.read().decode())
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(0.5)
                    s.sendto(q, ("127.0.0.1", self.port))
                    if DNSRecord.parse(s.recv(65535)).header.rcode == 0:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nsd on port %d does not answer" % self.port)

    def stop(self):
        if self.proc:
            lib.stop_process(self.proc)
            self.proc.stderr.close()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

