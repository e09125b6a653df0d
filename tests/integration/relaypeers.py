"""Real next hops for the relay tests, on 127.0.0.x: Postfix's smtp-sink and aiosmtpd
sinks (peers/relay_sink.py), and a test CA with server certificates."""
import datetime
import json
import os
import socket
import subprocess
import time

import pytest

import cursus_testlib as lib

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

    def smtp_sink(self, host, *opts):
        port = lib.free_port()
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
                evs = [json.loads(x) for x in f]
            # The controller's own readiness check is the first connection.
            return evs[1:]
        return port, events

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)


@pytest.fixture
def sinks(tmp_path):
    s = Sinks(str(tmp_path))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = str(tmp_path_factory.mktemp("relaycerts"))
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def write(name, cert, key):
        cp, kp = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
        with open(cp, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(kp, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cp, kp

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cursus relay test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": write("ca", ca, ca_key)[0]}

    def leaf(name, dns, ips, nb, na):
        key = ec.generate_private_key(ec.SECP256R1())
        san = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                                for i in ips]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(nb).not_valid_after(na)
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        out[name] = write(name, cert, key)

    leaf("good", ["relay.example"], ["127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.64",
                                     "127.0.0.65", "127.0.0.66"], now - day, now + 30 * day)
    leaf("expired", ["relay.example"], ["127.0.0.67"], now - 30 * day, now - 2 * day)
    leaf("othername", ["mail.example.test"], [], now - day, now + 30 * day)
    return out
