"""LMTP to a Dovecot on another address (dovecot_lmtp.py), as a company's separate mail
store: the server named by host name, looked up through the tests' DNS server
(dnsfixture.py, cursusd's dns_resolver), and STARTTLS as lmtp_tls says, checked with a
certificate from the tests' CA (testca.py). Each test asserts the one outcome its
configuration allows: delivered (and how: TLS, verified), or deferred with the reason
in the log and in `cursus queue show`."""
import re

import pytest

import cursus_testlib as lib
from dnsfixture import dns_server  # noqa: F401 (the fixture)
from dovecot_lmtp import dovecot_factory  # noqa: F401 (the fixture)
from testca import TestCA

ALICE, BOB = "alice@example.test", "bob@example.test"
# Under .example: libunbound answers NXDOMAIN itself for .test names.
HOST = "imap.lmtp.example"
ADDR = "127.0.0.24"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("lmtp-ca")
    ca = TestCA(d, "cursus LMTP test CA")
    other = TestCA(tmp_path_factory.mktemp("other-ca"), "some other CA")
    crt, key = ca.leaf("imap", [HOST], ips=[ADDR])
    return {"ca": ca.ca, "other_ca": other.ca, "cert": crt, "key": key}


def tls_dovecot(dovecot_factory, certs, users=(ALICE, BOB)):
    return dovecot_factory({u: "" for u in users}, address=ADDR,
                           tls=(certs["cert"], certs["key"]))


def start(start_server, dns, target, **opts):
    dns.set_zone({"records": {HOST: {"A": [ADDR]}}})
    conf = dict(users=(ALICE, BOB), dns_resolver=dns.resolver, lmtp=target, retry_min=3600,
                retry_max=3600, relay_idle_time=30)
    conf.update(opts)
    return start_server(**conf)


def attempt(srv, rcpt, pattern, timeout=15):
    pat = re.compile(r'delivery id=(\S+) rcpt="%s" .*' % re.escape(rcpt))
    found = lib.wait_until(lambda: [m for m in pat.finditer(srv.log)
                                    if re.search(pattern, m.group(0))], timeout)
    assert found, "no %r for %s in the log:\n%s" % (pattern, rcpt, srv.log[-3000:])
    return found[0].group(1), found[0].group(0)


def assert_deferred(srv, rcpt, status, reason):
    """The one deferral: in the log, in `cursus queue show`, and nothing delivered."""
    qid, line = attempt(srv, rcpt, r"result=deferred")
    assert "status=%s" % status in line and reason in line, line
    show = srv.admin("queue", "show", qid).stdout
    assert reason in show, show
    assert "delivered" not in line
    return line


def test_host_name_verify_with_the_right_ca(start_server, dovecot_factory, dns_server, certs,
                                            token):
    dc = tls_dovecot(dovecot_factory, certs)
    srv = start(start_server, dns_server, "%s:%d" % (HOST, dc.port), lmtp_tls="verify",
                lmtp_ca=certs["ca"])
    lib.submit_as(srv, ALICE, [BOB], lib.make_body(token))
    assert token in dc.wait_fetch(BOB, token)
    _, line = attempt(srv, BOB, r"result=delivered")
    assert "relay=%s[%s]" % (HOST, ADDR) in line, line
    assert re.search(r"tls=TLSv1\.[23] verified=yes", line), line
    # The name went to the DNS server the configuration names.
    assert any(q.startswith(HOST + " A ") for q in dns_server.queries()), dns_server.queries()


def test_verify_with_a_wrong_ca_defers(start_server, dovecot_factory, dns_server, certs, token):
    dc = tls_dovecot(dovecot_factory, certs)
    srv = start(start_server, dns_server, "%s:%d" % (HOST, dc.port), lmtp_tls="verify",
                lmtp_ca=certs["other_ca"])
    lib.submit_as(srv, ALICE, [BOB], lib.make_body(token))
    assert_deferred(srv, BOB, "4.7.5", "TLS certificate verification failed: "
                    "unable to get local issuer certificate")
    assert dc.fetch(BOB) == []


def test_encrypt_without_starttls_defers(start_server, dovecot_factory, dns_server, token):
    dc = dovecot_factory({ALICE: "", BOB: ""}, address=ADDR)
    srv = start(start_server, dns_server, dc.tcp_target, lmtp_tls="encrypt")
    lib.submit_as(srv, ALICE, [BOB], lib.make_body(token))
    assert_deferred(srv, BOB, "4.7.10", "TLS required but not offered")
    assert dc.fetch(BOB) == []


def test_may_without_starttls_delivers_in_clear(start_server, dovecot_factory, dns_server,
                                                token):
    """may is the default for TCP: a server without STARTTLS gets the mail in clear."""
    dc = dovecot_factory({ALICE: "", BOB: ""}, address=ADDR)
    srv = start(start_server, dns_server, "%s:%d" % (HOST, dc.port))
    lib.submit_as(srv, ALICE, [BOB], lib.make_body(token))
    assert token in dc.wait_fetch(BOB, token)
    _, line = attempt(srv, BOB, r"result=delivered")
    assert "tls=none verified=-" in line, line


@pytest.mark.parametrize("zone,detail", [({}, "NXDOMAIN"), ({"servfail": [HOST]}, "SERVFAIL")],
                         ids=["nxdomain", "servfail"])
def test_lookup_failure_defers(start_server, dns_server, token, zone, detail):
    """The server's name is ours: whatever DNS says, the mail waits (4.4.3), and the log
    says which name to fix."""
    srv = start(start_server, dns_server, HOST + ":24")
    dns_server.set_zone(zone)
    lib.submit_as(srv, ALICE, [BOB], lib.make_body(token))
    line = assert_deferred(srv, BOB, "4.4.3", "LMTP server %s:24: " % HOST)
    assert detail in line, line
    assert lib.wait_until(lambda: "cannot find the address of the LMTP server %s:24" % HOST
                          in srv.log, 5), srv.log[-2000:]


def test_two_policies_two_connections(start_server, dovecot_factory, dns_server, certs, token):
    """Two route blocks name one server with different lmtp_tls: each keeps its own
    connection (one encrypted, one not), and each is reused for its own next message."""
    carol = "carol@localhost"
    dc = dovecot_factory({ALICE: "", BOB: "", carol: ""}, address=ADDR,
                         tls=(certs["cert"], certs["key"]))
    target = "%s:%d" % (HOST, dc.port)
    srv = start(start_server, dns_server, target, users=(ALICE, BOB, carol),
                extra_conf="route example.test {\n\tlmtp_tls verify\n\tlmtp_ca %s\n}\n"
                "route localhost {\n\tlmtp_tls none\n}" % certs["ca"])
    for n, rcpt in enumerate([BOB, carol, ALICE]):
        lib.submit_as(srv, ALICE, [rcpt], lib.make_body("%s-%d" % (token, n)))
        dc.wait_fetch(rcpt, "%s-%d" % (token, n))
    assert re.search(r"tls=TLSv1\.[23] verified=yes",
                     attempt(srv, BOB, r"result=delivered")[1])
    assert "tls=none" in attempt(srv, carol, r"result=delivered")[1]
    assert re.search(r"tls=TLSv1\.[23] verified=yes",
                     attempt(srv, ALICE, r"result=delivered")[1])
    assert dc.connects() == 2, dc.log
