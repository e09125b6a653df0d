"""DANE for MX delivery (RFC 7672), end to end: a DNSSEC-signed zone (ldns-signzone)
served by NSD on loopback, validated by cursusd's libunbound with the zone's trust
anchor (dns_trust_anchor), MX/A/TLSA records pointing at aiosmtpd next hops on
127.0.0.8x with certificates from the test CA. Each outcome is asserted exactly:
delivered or deferred, the 4.7.5 reply kept in the queue, and the log line saying why.

The zone (dane.example, signed; PORT is the relay port every next hop listens on):
  ee        MX mx-ee        TLSA 3 1 1 (the SPKI of the leaf)      -> DANE-verified
  ta        MX mx-ta        TLSA 2 0 1 (the test CA certificate)   -> DANE-verified
  bad       MX mx-bad       TLSA 3 1 1 (another key)               -> deferred 4.7.5
  plain     MX mx-plain     TLSA 3 1 1, the host offers no STARTTLS -> deferred 4.7.5
  unusable  MX mx-unusable  TLSA 0 0 1 only (PKIX-TA)              -> TLS, no auth
  notlsa    MX mx-notlsa    no TLSA                                -> may
  bogus     MX 10 mx-bogus (A tampered: bogus), MX 20 mx-backup    -> the backup
  bogusonly MX mx-bogus                                            -> deferred
  badtlsa   MX mx-badtlsa   TLSA tampered (bogus)                  -> deferred 4.7.5
  eename    MX mx-eename    TLSA 3 1 1, a certificate for other.example  -> verified
  taname    MX mx-taname    TLSA 2 0 1, a certificate for other.example  -> deferred 4.7.5
  tadomain  MX mx-tadomain  TLSA 2 0 1, a certificate for the domain     -> verified
and insecure.example, unsigned (no trust anchor covers it): MX to the mismatching host,
delivered opportunistically."""
import json
import os
import subprocess

import pytest

import cursus_testlib as lib
from dnssecfixture import SignedDns
from relaypeers import delivered, sinks  # noqa: F401 (fixture)
from testca import TestCA, cert_sha256, spki_sha256

ALICE = "alice@example.test"
MX_NAMES = ["mx-ee", "mx-ta", "mx-bad", "mx-plain", "mx-unusable", "mx-notlsa",
            "mx-backup", "mx-badtlsa"]
HOSTS = {"mx-ee": 81, "mx-ta": 82, "mx-bad": 83, "mx-plain": 84, "mx-unusable": 85,
         "mx-notlsa": 86, "mx-bogus": 87, "mx-backup": 88, "mx-badtlsa": 89,
         "mx-eename": 90, "mx-taname": 91, "mx-tadomain": 92}
# Hosts whose certificate names neither them nor the domain, or only the domain.
OTHER_CERT = ("mx-eename", "mx-taname")
DOMAIN_CERT = ("mx-tadomain",)


def ip(host):
    return "127.0.0.%d" % HOSTS[host]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("danepki")
    ca = TestCA(d, "cursus DANE test CA")
    names = ["%s.dane.example" % n for n in MX_NAMES] + ["mx.insecure.example"]
    cert, key = ca.leaf("mx", names)
    other_cert, other_key = ca.leaf("other", ["other.example"])
    dom_cert, dom_key = ca.leaf("domain", ["tadomain.dane.example"])
    # DANE-TA(2) needs the trust anchor in the chain the server sends (RFC 7671 5.2.2).
    def chained(leaf, name):
        path = os.path.join(str(d), name)
        with open(path, "w") as out:
            out.write(open(leaf).read() + open(ca.ca).read())
        return path
    return {"ca": ca.ca, "cert": cert, "key": key, "chain": chained(cert, "mx-chain.crt"),
            "other_chain": chained(other_cert, "other-chain.crt"), "other_key": other_key,
            "domain_chain": chained(dom_cert, "domain-chain.crt"), "domain_key": dom_key,
            "ee": spki_sha256(cert), "ta": cert_sha256(ca.ca), "wrong": spki_sha256(other_cert)}


@pytest.fixture(scope="module")
def port():
    return lib.free_port()


@pytest.fixture(scope="module")
def dns(tmp_path_factory, pki, port):
    d = SignedDns(tmp_path_factory.mktemp("dnssec"))
    tlsa = "_%d._tcp.%%s TLSA %%s" % port
    recs = []
    for dom, hosts in [("ee", ["mx-ee"]), ("ta", ["mx-ta"]), ("bad", ["mx-bad"]),
                       ("plain", ["mx-plain"]), ("unusable", ["mx-unusable"]),
                       ("notlsa", ["mx-notlsa"]), ("bogus", ["mx-bogus", "mx-backup"]),
                       ("bogusonly", ["mx-bogus"]), ("badtlsa", ["mx-badtlsa"]),
                       ("eename", ["mx-eename"]), ("taname", ["mx-taname"]),
                       ("tadomain", ["mx-tadomain"])]:
        recs += ["%s MX %d %s" % (dom, 10 * (i + 1), h) for i, h in enumerate(hosts)]
    recs += ["%s A %s" % (h, ip(h)) for h in HOSTS]
    recs += [tlsa % ("mx-ee", "3 1 1 " + pki["ee"]),
             tlsa % ("mx-ta", "2 0 1 " + pki["ta"]),
             tlsa % ("mx-bad", "3 1 1 " + pki["wrong"]),
             tlsa % ("mx-plain", "3 1 1 " + pki["ee"]),
             tlsa % ("mx-unusable", "0 0 1 " + pki["ta"]),
             tlsa % ("mx-backup", "3 1 1 " + pki["ee"]),
             tlsa % ("mx-badtlsa", "3 1 1 " + pki["ee"]),
             tlsa % ("mx-eename", "3 1 1 " + pki["wrong"]),
             tlsa % ("mx-taname", "2 0 1 " + pki["ta"]),
             tlsa % ("mx-tadomain", "2 0 1 " + pki["ta"])]
    d.zone("dane.example", recs)
    d.tamper("dane.example", "mx-bogus A 127.0.0.87", "mx-bogus A 127.0.0.99")
    d.tamper("dane.example", tlsa % ("mx-badtlsa", "3 1 1 " + pki["ee"]),
             tlsa % ("mx-badtlsa", "3 1 1 " + pki["wrong"]))
    d.zone("insecure.example", ["@ MX 10 mx", "mx A %s" % ip("mx-bad"),
                                tlsa % ("mx", "3 1 1 " + pki["wrong"])], signed=False)
    with d:
        yield d


@pytest.fixture
def hops(sinks, pki, port):  # noqa: F811
    """Every next hop, listening on PORT: STARTTLS with the leaf (the TA host with
    the chain), except mx-plain."""
    ev = {}
    for h in HOSTS:
        if h == "mx-bogus":
            continue
        if h == "mx-plain":
            opts = []
        elif h in OTHER_CERT:
            opts = ["--cert", pki["other_chain"], "--key", pki["other_key"]]
        elif h in DOMAIN_CERT:
            opts = ["--cert", pki["domain_chain"], "--key", pki["domain_key"]]
        else:
            opts = ["--cert", pki["chain"] if h == "mx-ta" else pki["cert"], "--key", pki["key"]]
        ev[h] = sinks.aio(ip(h), *opts, port=port)[1]
    return ev


def server(start_server, dns, port, trust=True, **opts):
    conf = dict(dns_resolver=dns.resolver, relay_port=port, retry_min=1, retry_max=2)
    if trust:
        conf["dns_trust_anchor"] = dns.trust_anchor
    conf.update(opts)
    return start_server(**conf)


def submit(srv, rcpt, token):
    lib.submit_as(srv, ALICE, [rcpt], lib.make_body(token))


def queued(srv, rcpt):
    """rcpt's entry in `cursus queue list --json` (status, reply, ...)."""
    for m in json.loads(srv.admin("queue", "list", "--json").stdout):
        for r in m["recipients"]:
            if r["address"] == rcpt:
                return r
    return None


def assert_deferred(srv, rcpt, status, label, reply):
    """rcpt deferred: the log line's status, tls_policy and reply, and the same reply
    kept in the queue (what `cursus queue list` shows the administrator)."""
    line = lib.wait_delivery(srv, rcpt, "deferred")
    assert "status=%s " % status in line, line
    assert "tls_policy=%s " % label in line, line
    assert 'reply="%s"' % reply in line, line
    r = queued(srv, rcpt)
    assert r and r["status"] == status and r["reply"] == reply, r
    return line


def test_dane_ee_verified(start_server, dns, port, hops, token, pki):
    srv = server(start_server, dns, port)
    submit(srv, "bob@ee.dane.example", token)
    line = lib.wait_delivery(srv, "bob@ee.dane.example", "relayed")
    assert "relay=mx-ee.dane.example[127.0.0.81]" in line
    assert "verified=yes tls_policy=dane-verified" in line
    assert delivered(hops["mx-ee"], token)[0]["tls"] is True
    assert ("relay mx-ee.dane.example[127.0.0.81]: DANE verified, TLSA 3 1 1 %s" % pki["ee"]
            in srv.log)


def test_dane_ta_verified(start_server, dns, port, hops, token, pki):
    srv = server(start_server, dns, port)
    submit(srv, "bob@ta.dane.example", token)
    line = lib.wait_delivery(srv, "bob@ta.dane.example", "relayed")
    assert "relay=mx-ta.dane.example[127.0.0.82]" in line
    assert "tls_policy=dane-verified" in line
    assert "DANE verified, TLSA 2 0 1 %s" % pki["ta"] in srv.log


def test_dane_ee_checks_no_name(start_server, dns, port, hops, token):
    """RFC 7672 3.2.2: a DANE-EE(3) match stands whatever names the certificate holds."""
    srv = server(start_server, dns, port)
    submit(srv, "bob@eename.dane.example", token)
    line = lib.wait_delivery(srv, "bob@eename.dane.example", "relayed")
    assert "relay=mx-eename.dane.example[127.0.0.90]" in line
    assert "verified=yes tls_policy=dane-verified" in line


def test_dane_ta_checks_the_names(start_server, dns, port, hops, token):
    """RFC 7672 3.2.3: under DANE-TA(2) the certificate must name the MX host or the
    domain: one naming only other.example is refused, one naming the domain taken."""
    srv = server(start_server, dns, port)
    submit(srv, "bob@taname.dane.example", token)
    submit(srv, "bob@tadomain.dane.example", token)
    assert_deferred(srv, "bob@taname.dane.example", "4.7.5", "dane-mismatch",
                    "mx-taname.dane.example[127.0.0.91]: DANE: certificate does not match "
                    "the TLSA records of _%d._tcp.mx-taname.dane.example: hostname mismatch"
                    % port)
    line = lib.wait_delivery(srv, "bob@tadomain.dane.example", "relayed")
    assert "verified=yes tls_policy=dane-verified" in line


def test_tlsa_mismatch_defers(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@bad.dane.example", token)
    assert_deferred(srv, "bob@bad.dane.example", "4.7.5", "dane-mismatch",
                    "mx-bad.dane.example[127.0.0.83]: DANE: certificate does not match the "
                    "TLSA records of _%d._tcp.mx-bad.dane.example: no matching DANE TLSA "
                    "records" % port)
    assert not delivered(hops["mx-bad"], token)
    assert not [e for e in hops["mx-bad"]() if e["ev"] == "mail"]


def test_no_starttls_is_a_downgrade_and_defers(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@plain.dane.example", token)
    line = assert_deferred(srv, "bob@plain.dane.example", "4.7.5", "dane-no-starttls",
                           "mx-plain.dane.example[127.0.0.84]: DANE: usable TLSA records "
                           "published but STARTTLS not offered: not sent in clear")
    assert "tls=none" in line
    # Never in clear: the next hop saw EHLO and QUIT, no MAIL.
    evs = hops["mx-plain"]()
    assert [e for e in evs if e["ev"] == "ehlo"]
    assert not [e for e in evs if e["ev"] in ("mail", "data")]


def test_unusable_tlsa_means_encrypted_without_authentication(start_server, dns, port, hops,
                                                              token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@unusable.dane.example", token)
    line = lib.wait_delivery(srv, "bob@unusable.dane.example", "relayed")
    # The test CA is not in the default trust store: encrypted, not verified.
    assert "verified=no tls_policy=dane-unusable" in line
    assert delivered(hops["mx-unusable"], token)[0]["tls"] is True


def test_secure_denial_of_tlsa_is_opportunistic(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@notlsa.dane.example", token)
    line = lib.wait_delivery(srv, "bob@notlsa.dane.example", "relayed")
    assert "tls_policy=dane-no-tlsa" in line
    assert "relay=mx-notlsa.dane.example[127.0.0.86]" in line


def test_bogus_address_skips_the_host(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@bogus.dane.example", token)
    line = lib.wait_delivery(srv, "bob@bogus.dane.example", "relayed")
    assert "relay=mx-backup.dane.example[127.0.0.88]" in line
    assert "tls_policy=dane-verified" in line
    assert ("dns bogus name=mx-bogus.dane.example type=1 why=\"validation failure "
            "<mx-bogus.dane.example. A IN>: ECDSA signature verification failed") in srv.log


def test_only_a_bogus_host_defers(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@bogusonly.dane.example", token)
    line = lib.wait_delivery(srv, "bob@bogusonly.dane.example", "deferred")
    # The host is dropped by the DNS step, before any DANE decision: no tls_policy.
    reply = "a bogus DNSSEC answer looking up the address of mx-bogus.dane.example"
    assert "status=4.4.3 " in line and "tls_policy" not in line
    assert 'reply="%s"' % reply in line
    assert queued(srv, "bob@bogusonly.dane.example")["reply"] == reply


def test_bogus_tlsa_skips_the_host(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@badtlsa.dane.example", token)
    assert_deferred(srv, "bob@badtlsa.dane.example", "4.7.5", "dane-bogus",
                    "mx-badtlsa.dane.example: host skipped: a bogus DNSSEC answer for its "
                    "TLSA records (_%d._tcp.mx-badtlsa.dane.example)" % port)
    assert not hops["mx-badtlsa"]()


def test_insecure_domain_is_opportunistic(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port)
    submit(srv, "bob@insecure.example", token)
    line = lib.wait_delivery(srv, "bob@insecure.example", "relayed")
    # The mismatching host, reached by an unsigned MX: its TLSA proves nothing.
    assert "relay=mx.insecure.example[127.0.0.83]" in line
    assert "tls=TLSv1.3 verified=no tls_policy=dane-insecure" in line


def test_without_trust_anchor_nothing_is_secure(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port, trust=False)
    submit(srv, "bob@bad.dane.example", token)
    line = lib.wait_delivery(srv, "bob@bad.dane.example", "relayed")
    # dane is then may word for word: no TLSA lookup, no tls_policy field.
    assert "tls=TLSv1.3 verified=no result=relayed" in line
    assert delivered(hops["mx-bad"], token)


def test_dane_only_defers_without_secure_tlsa(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port,
                 extra_conf="route insecure.example {\n\trelay_tls dane-only\n}\n")
    submit(srv, "bob@insecure.example", token)
    assert_deferred(srv, "bob@insecure.example", "4.7.5", "dane-required",
                    "mx.insecure.example: DANE required (relay_tls dane-only) but the MX "
                    "records of its domain are not DNSSEC-secure")
    assert not delivered(hops["mx-bad"], token)


def test_policy_may_ignores_tlsa(start_server, dns, port, hops, token):
    srv = server(start_server, dns, port, relay_tls="may")
    submit(srv, "bob@bad.dane.example", token)
    line = lib.wait_delivery(srv, "bob@bad.dane.example", "relayed")
    assert "tls_policy" not in line


def probe(dns, port, domain, *extra):
    p = subprocess.run([lib.CURSUS, "probe", "--dane", "%s:%d" % (domain, port), "--resolver",
                        dns.resolver, "--trust-anchor", dns.trust_anchor, "--timeout", "10"]
                       + list(extra), capture_output=True, text=True, timeout=60)
    return p


def test_probe_reports_a_matching_host(dns, port, hops, pki):
    p = probe(dns, port, "ee.dane.example", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["mx_secure"] is True
    h = r["hosts"][0]
    assert h["host"] == "mx-ee.dane.example" and h["address_secure"] is True
    assert h["tlsa"] == [{"record": "3 1 1 " + pki["ee"], "usable": True}]
    assert h["starttls"] is True and h["match"] is True
    assert h["result"] == "dane-verified"


def test_probe_reports_a_mismatch(dns, port, hops, pki):
    p = probe(dns, port, "bad.dane.example")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "domain bad.dane.example: ok, MX records DNSSEC-secure" in p.stdout
    assert "TLSA _%d._tcp.mx-bad.dane.example 3 1 1 %s: usable" % (port, pki["wrong"]) in p.stdout
    assert "certificate does NOT match: no matching DANE TLSA records" in p.stdout
    assert "result: dane-mismatch" in p.stdout


def test_probe_reports_unusable_and_insecure(dns, port, hops):
    r = json.loads(probe(dns, port, "unusable.dane.example", "--json").stdout)
    assert r["hosts"][0]["tlsa"][0]["usable"] is False
    assert r["hosts"][0]["result"] == "dane-unusable"
    r = json.loads(probe(dns, port, "insecure.example", "--json").stdout)
    assert r["mx_secure"] is False and r["hosts"][0]["result"] == "dane-insecure"


def test_metrics_count_dane_outcomes(start_server, dns, port, hops, token):
    mport = lib.free_port()
    srv = server(start_server, dns, port,
                 extra_conf="metrics_listen 127.0.0.1:%d\nmetrics_timeout 1" % mport)
    submit(srv, "bob@ee.dane.example", token)
    submit(srv, "bob@bad.dane.example", token)
    lib.wait_delivery(srv, "bob@ee.dane.example", "relayed")
    lib.wait_delivery(srv, "bob@bad.dane.example", "deferred")
    body = subprocess.run(["curl", "-sS", "--max-time", "10",
                           "http://127.0.0.1:%d/metrics" % mport],
                          capture_output=True, text=True, timeout=20).stdout
    assert 'cursus_relay_dane_total{result="verified"} 1' in body, body
    assert 'cursus_relay_dane_total{result="mismatch"} ' in body, body
