"""A test certificate authority (python3-cryptography): a CA and leaf certificates it
signs, written as PEM files, for the tests that need real certificate checks."""
import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def _load(cert_path):
    with open(cert_path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def spki_sha256(cert_path):
    """The data of a TLSA "3 1 1" record for the certificate: SHA2-256 of its key."""
    der = _load(cert_path).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def cert_sha256(cert_path):
    """The data of a TLSA "2 0 1" (or "3 0 1") record: SHA2-256 of the certificate."""
    return hashlib.sha256(_load(cert_path).public_bytes(serialization.Encoding.DER)).hexdigest()


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, directory, name):
        self.dir = str(directory)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        t = now()
        cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(t - DAY).not_valid_after(t + 30 * DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.ca = self._write("ca", cert, self.key)[0]

    def _write(self, name, cert, key):
        cp, kp = os.path.join(self.dir, name + ".crt"), os.path.join(self.dir, name + ".key")
        with open(cp, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(kp, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cp, kp

    def leaf(self, name, names, ips=(), not_before=None, not_after=None):
        """A server certificate for names (the first is its CN) and IP addresses;
        returns (cert path, key path)."""
        t = now()
        key = ec.generate_private_key(ec.SECP256R1())
        san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                                  for i in ips]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before or t - DAY).not_valid_after(not_after or t + 30 * DAY)
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        return self._write(name, cert, key)
