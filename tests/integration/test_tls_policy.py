"""relay_tls auto (the default): DANE and MTA-STS on the same destinations, end to end.
One NSD (dnssecfixture) serves a DNSSEC-signed zone, tp.example, and an unsigned one,
insecure.example, with the MX, A, TLSA, _mta-sts TXT and mta-sts A records; the HTTPS
policy server on 127.0.0.201:443 (mtastspeers) serves one enforce policy to every
domain that asks; the next hops are aiosmtpd sinks on 127.0.0.22x, all on one port.
docs/tls-policy.md has the decision table these cases walk through.

  both.tp.example     secure MX, TLSA 3 1 1 of the hop's key, MTA-STS enforce; the hop's
                      certificate names other.example  -> DANE decides: delivered
  excluded.tp.example as both, but the MX host is not in the policy's mx patterns
                                                       -> deferred 4.7.5 (mx-mismatch)
  insecure.example    unsigned: its TLSA proves nothing; MTA-STS enforce, the same
                      wrong-name certificate           -> deferred 4.7.5 (certificate)
  neither.tp.example  secure MX, no TLSA, no _mta-sts -> may: delivered"""
import pytest

import cursus_testlib as lib
from dnssecfixture import SignedDns
from mtastspeers import PolicyServer, need_root, policy_text
from relaypeers import delivered, sinks  # noqa: F401 (fixture)
from testca import TestCA, spki_sha256

ALICE = "alice@example.test"
POLICY_HOST = "127.0.0.201"
HOPS = {"mx-both.tp.example": "127.0.0.221", "mx.insecure.example": "127.0.0.222",
        "mx-excluded.tp.example": "127.0.0.223", "mx-neither.tp.example": "127.0.0.224"}
# The one policy every domain gets: it names the MX hosts of both and insecure only.
POLICY_MX = ["mx-both.tp.example", "mx.insecure.example"]
STS_DOMAINS = ["both.tp.example", "excluded.tp.example", "insecure.example"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("tlspolicypki"), "cursus TLS policy test CA")
    # Every hop shows a certificate for another name: PKIX-invalid for its MX name,
    # while a TLSA 3 1 1 record of its key matches (DANE-EE checks no name).
    cert, key = ca.leaf("other", ["other.example"])
    return {"ca": ca.ca, "cert": cert, "key": key, "spki": spki_sha256(cert),
            "policy": ca.leaf("policy", ["mta-sts." + d for d in STS_DOMAINS])}


@pytest.fixture(scope="module")
def port():
    return lib.free_port()


@pytest.fixture(scope="module")
def dns(tmp_path_factory, pki, port):
    d = SignedDns(tmp_path_factory.mktemp("tlspolicydns"))
    tlsa = "_%d._tcp.%s TLSA 3 1 1 %s"
    sts = ['_mta-sts%s TXT "v=STSv1; id=1;"', "mta-sts%s A " + POLICY_HOST]
    recs = []
    for sub in ("both", "excluded", "neither"):
        recs += ["%s MX 10 mx-%s" % (sub, sub),
                 "mx-%s A %s" % (sub, HOPS["mx-%s.tp.example" % sub])]
    for sub in ("both", "excluded"):
        recs.append(tlsa % (port, "mx-" + sub, pki["spki"]))
        recs += [r % ("." + sub) for r in sts]
    d.zone("tp.example", recs)
    d.zone("insecure.example", ["@ MX 10 mx", "mx A %s" % HOPS["mx.insecure.example"],
                                tlsa % (port, "mx", pki["spki"])] + [r % "" for r in sts],
           signed=False)
    with d:
        yield d


@pytest.fixture
def policy_server(pki):
    need_root()
    ps = PolicyServer(POLICY_HOST, pki["policy"][0], pki["policy"][1],
                      policy_text("enforce", POLICY_MX))
    with ps:
        yield ps


@pytest.fixture
def hops(sinks, pki, port):  # noqa: F811
    return {h: sinks.aio(a, "--cert", pki["cert"], "--key", pki["key"], port=port)[1]
            for h, a in HOPS.items()}


def server(start_server, dns, pki, port, **opts):
    """The default relay_tls (auto), the signed zone's trust anchor, the test CA as the
    trust store of the policy fetch and of MTA-STS's certificate check."""
    conf = dict(dns_resolver=dns.resolver, dns_trust_anchor=dns.trust_anchor,
                relay_port=port, relay_ca=pki["ca"], retry_min=3600, retry_max=3600)
    conf.update(opts)
    return start_server(**conf)


def submit(srv, rcpt, token):
    lib.submit_as(srv, ALICE, [rcpt], lib.make_body(token))


def test_secure_tlsa_and_enforce_policy_dane_decides(start_server, dns, pki, port,
                                                     policy_server, hops, token):
    """(a) RFC 8461 2: DANE wins. The certificate matches the TLSA record but is not
    valid for the MX name: MTA-STS alone would refuse it, DANE delivers."""
    srv = server(start_server, dns, pki, port)
    submit(srv, "bob@both.tp.example", token)
    line = lib.wait_delivery(srv, "bob@both.tp.example", "relayed")
    assert "relay=mx-both.tp.example[127.0.0.221] tls=TLSv1.3 verified=yes " \
           "tls_policy=dane-verified result=relayed status=2.0.0" in line, line
    assert delivered(hops["mx-both.tp.example"], token)
    assert "DANE verified, TLSA 3 1 1 %s" % pki["spki"] in srv.log
    # The policy was found (auto looks it up beside the MX) but made no TLS check.
    assert "mta-sts event=policy-fetched domain=both.tp.example id=1 mode=enforce" in srv.log
    assert "event=refused" not in srv.log


def test_the_same_host_under_mta_sts_alone_is_refused(start_server, dns, pki, port,
                                                      policy_server, hops, token):
    """The contrast to (a): relay_tls mta-sts for that domain ignores its TLSA records,
    and the policy refuses the certificate."""
    srv = server(start_server, dns, pki, port,
                 extra_conf="route both.tp.example {\n\trelay_tls mta-sts\n}\n")
    submit(srv, "bob@both.tp.example", token)
    line = lib.wait_delivery(srv, "bob@both.tp.example", "deferred")
    assert "status=4.7.5 " in line and "tls_policy=mta-sts-enforce " in line, line
    assert ('reply="mx-both.tp.example[127.0.0.221]: MTA-STS policy of both.tp.example '
            '(enforce): certificate not valid for mx-both.tp.example: hostname mismatch"'
            in line), line
    assert not delivered(hops["mx-both.tp.example"], token)


def test_insecure_zone_with_enforce_policy_mta_sts_decides(start_server, dns, pki, port,
                                                           policy_server, hops, token):
    """(b) No DNSSEC: the TLSA record (matching, but unsigned) proves nothing, so the
    domain's MTA-STS policy decides, and the wrong-name certificate is refused."""
    srv = server(start_server, dns, pki, port)
    submit(srv, "bob@insecure.example", token)
    line = lib.wait_delivery(srv, "bob@insecure.example", "deferred")
    detail = "certificate not valid for mx.insecure.example: hostname mismatch"
    reply = ("mx.insecure.example[127.0.0.222]: MTA-STS policy of insecure.example "
             "(enforce): %s" % detail)
    assert "status=4.7.5 " in line and "tls_policy=mta-sts-enforce " in line, line
    assert 'reply="%s"' % reply in line, line
    assert ('mta-sts event=refused domain=insecure.example mode=enforce '
            'mx=mx.insecure.example[127.0.0.222] reason=certificate-invalid detail="%s"'
            % detail) in srv.log
    assert "DANE verified" not in srv.log
    evs = hops["mx.insecure.example"]()
    assert not [e for e in evs if e["ev"] in ("mail", "data")]


def test_enforce_patterns_exclude_a_dane_host(start_server, dns, pki, port, policy_server,
                                              hops, token):
    """An enforce policy that does not name the MX host leaves it out even though DANE
    would verify it: leaving a host out never overrides a DANE failure (RFC 8461 2)."""
    srv = server(start_server, dns, pki, port)
    submit(srv, "bob@excluded.tp.example", token)
    line = lib.wait_delivery(srv, "bob@excluded.tp.example", "deferred")
    assert "status=4.7.5 " in line and "tls_policy=mta-sts-enforce " in line, line
    assert ('reply="mx-excluded.tp.example: MTA-STS policy of excluded.tp.example (enforce): '
            'MX host not in the policy\'s mx patterns"' in line), line
    assert ("mta-sts event=refused domain=excluded.tp.example mode=enforce "
            "mx=mx-excluded.tp.example[-] reason=mx-mismatch" in srv.log)
    assert not hops["mx-excluded.tp.example"]()


def test_neither_dane_nor_mta_sts_is_may(start_server, dns, pki, port, policy_server, hops,
                                         token):
    """(c) A secure zone without TLSA and without _mta-sts: opportunistic TLS, the
    unverifiable certificate taken."""
    srv = server(start_server, dns, pki, port)
    submit(srv, "bob@neither.tp.example", token)
    line = lib.wait_delivery(srv, "bob@neither.tp.example", "relayed")
    assert "relay=mx-neither.tp.example[127.0.0.224] tls=TLSv1.3 verified=no " \
           "tls_policy=dane-no-tlsa result=relayed" in line, line
    assert delivered(hops["mx-neither.tp.example"], token)
    # No _mta-sts record: no policy fetched.
    assert not policy_server.policy_requests()
    assert "mta-sts event=policy-fetched" not in srv.log
