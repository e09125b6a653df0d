#!/usr/bin/python3
"""A real DNS server for the tests, UDP and TCP on 127.0.0.1 (python3-dnslib).

usage: dns_server.py ZONE.json [--port N] [--port-file FILE] [--log FILE]

Port 0 (the default) binds a free port; the port is printed on stdout as one line
(and written to --port-file) once both UDP and TCP listen. Runs until SIGTERM/SIGINT.

The zone is re-read whenever ZONE.json changes (mtime, inode or size), so a test may
rewrite it while the server runs (best by writing a temporary file and renaming it).

ZONE.json:
  {"ttl": 0,
   "records": {"dest.example": {"MX": [[10, "mx1.dest.example"]], "TXT": ["v=spf1 -all"]},
               "mx1.dest.example": {"A": ["127.0.0.10"], "AAAA": ["::1"]},
               "www.dest.example": {"CNAME": "mx1.dest.example"},
               "null.example": {"MX": [[0, "."]]}},
   "servfail": ["broken.example", "half.example/AAAA"],
   "timeout": ["slow.example"],
   "nxdomain": ["gone.example"]}
A name not in "records" is NXDOMAIN; a name in "records" without the type asked is
NODATA (NOERROR, empty answer). "servfail" and "timeout" entries are NAME (every type)
or NAME/TYPE; a timeout name gets no reply at all. CNAMEs are followed inside the zone.
With --log, each question is appended to FILE as "NAME TYPE PROTO".
"""
import argparse
import ipaddress
import json
import os
import signal
import sys
import threading

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSError
from dnslib.server import DNSServer, TCPServer, UDPServer

MAX_CNAME_CHAIN = 8
BIND_ATTEMPTS = 20


class NoAnswer(DNSError):
    """Raised to send no reply: dnslib's handler drops the request."""


class QuietLogger:
    """dnslib logs every packet to stdout by default; stdout carries the port."""

    def __getattr__(self, name):
        return lambda *args: None


def normal(name):
    return str(name).lower().rstrip(".") or "."


class Zone:
    def __init__(self, data):
        self.ttl = int(data.get("ttl", 0))
        self.records = {normal(k): v for k, v in data.get("records", {}).items()}
        self.servfail = {normal(x) for x in data.get("servfail", [])}
        self.timeout = {normal(x) for x in data.get("timeout", [])}
        self.nxdomain = {normal(x) for x in data.get("nxdomain", [])}

    @staticmethod
    def listed(entries, name, qtype):
        return name in entries or ("%s/%s" % (name, qtype.lower())) in entries

    def rrs(self, name, qtype, recs):
        out = []
        for value in recs.get(qtype, []):
            if qtype == "MX":
                rdata = MX(value[1], int(value[0]))
            elif qtype == "A":
                rdata = A(value)
            elif qtype == "AAAA":
                # dnslib parses no dotted-quad tail (::ffff:127.0.0.1): give it bytes.
                rdata = AAAA(tuple(ipaddress.IPv6Address(value).packed))
            elif qtype == "TXT":
                rdata = TXT(value)
            else:
                continue
            out.append(RR(name, getattr(QTYPE, qtype), rdata=rdata, ttl=self.ttl))
        return out


class ZoneResolver:
    def __init__(self, path, log_path):
        self.path = path
        self.log_path = log_path
        self.lock = threading.Lock()
        self.stamp = None
        self.zone = Zone({})

    def current(self):
        with self.lock:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
            if stamp != self.stamp:
                with open(self.path) as f:
                    self.zone = Zone(json.load(f))
                self.stamp = stamp
            return self.zone

    def resolve(self, request, handler):
        try:
            return self.answer(request, handler)
        except NoAnswer:
            raise
        except Exception as e:  # a bad zone: say so, and answer SERVFAIL
            print("dns_server: %r" % e, file=sys.stderr, flush=True)
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL
            return reply

    def answer(self, request, handler):
        zone = self.current()
        qname = normal(request.q.qname)
        qtype = QTYPE.get(request.q.qtype)
        if self.log_path:
            with self.lock, open(self.log_path, "a") as f:
                f.write("%s %s %s\n" % (qname, qtype, handler.protocol))
        reply = request.reply()
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            if Zone.listed(zone.timeout, name, qtype):
                raise NoAnswer("no answer for %s by design" % name)
            if Zone.listed(zone.servfail, name, qtype):
                reply.rr = []
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            recs = zone.records.get(name)
            if recs is None or name in zone.nxdomain:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            if "CNAME" in recs and qtype != "CNAME":
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(recs["CNAME"]), ttl=zone.ttl))
                name = normal(recs["CNAME"])
                continue
            if qtype == "CNAME" and "CNAME" in recs:
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(recs["CNAME"]), ttl=zone.ttl))
                return reply
            for rr in zone.rrs(name, qtype, recs):
                reply.add_answer(rr)
            return reply
        reply.header.rcode = RCODE.SERVFAIL
        return reply


def bind_both(resolver, port):
    """UDP and TCP on one port: with port 0, the UDP one chooses and TCP follows."""
    last = None
    for _ in range(BIND_ATTEMPTS if port == 0 else 1):
        udp = DNSServer(resolver, address="127.0.0.1", port=port, logger=QuietLogger(),
                        server=UDPServer)
        chosen = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=chosen, tcp=True,
                            logger=QuietLogger(), server=TCPServer)
            return udp, tcp, chosen
        except OSError as e:
            last = e
            udp.server.server_close()
    raise last


def main():
    ap = argparse.ArgumentParser(description="DNS server for the cursus tests")
    ap.add_argument("zone")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    args = ap.parse_args()

    resolver = ZoneResolver(args.zone, args.log)
    resolver.current()
    udp, tcp, port = bind_both(resolver, args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    udp.start_thread()
    tcp.start_thread()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    while not stop.wait(3600):
        pass
    # The serving threads are daemons: exiting closes the sockets, without waiting
    # for socketserver's shutdown polls.


if __name__ == "__main__":
    main()
