"""REQUIRETLS and TLS-Required: No (RFC 8689) end to end, against real next hops.

One NSD (dnssecfixture) serves the DNSSEC-signed zone rt.example and two unsigned ones;
the HTTPS policy server of mtastspeers on 127.0.0.241:443 serves one enforce policy
naming mx.rtsts.example; the next hops are aiosmtpd sinks (peers/relay_sink.py, with
--requiretls offering the extension after STARTTLS) on 127.0.0.24x, all on one port.
docs/requiretls.md has the rules these cases walk through.

  dane.rt.example      secure MX, TLSA 3 1 1 of the hop's key, REQUIRETLS offered
                                        -> sent, MAIL FROM ... REQUIRETLS
  noreq.rt.example     as dane, REQUIRETLS not offered -> failed 5.7.30, a DSN of
                       headers only, itself sent with REQUIRETLS (to dsn.rt.example)
  rtinsecure.example   unsigned MX, no MTA-STS -> failed 5.7.30, the hop never contacted
  rtsts.example        unsigned MX, MTA-STS enforce naming it, PKIX-valid certificate,
                       REQUIRETLS offered -> sent with REQUIRETLS; the policy server
                       down -> deferred 4.7.30, not bounced
  mismatch.rt.example  secure TLSA of another key -> deferred 4.7.5 (dane-mismatch);
                       with "TLS-Required: No" delivered as may (tls_policy=tls-required-no)
  a smart host         relay_tls verify, REQUIRETLS offered -> sent with REQUIRETLS;
                       relay_tls may with a certificate for another name -> deferred 4.7.5"""
import json
import re

import pytest

import cursus_testlib as lib
from dnssecfixture import SignedDns
from mtastspeers import PolicyServer, need_root, policy_text
from relaypeers import delivered, sinks  # noqa: F401 (fixture)
from testca import TestCA, spki_sha256

ALICE = "alice@example.test"
CAROL = "carol@dsn.rt.example"   # a user whose mail, DSNs included, goes out by MX
POLICY_HOST = "127.0.0.241"
HOPS = {"mx-dane.rt.example": "127.0.0.242", "mx-noreq.rt.example": "127.0.0.243",
        "mx.rtinsecure.example": "127.0.0.244", "mx.rtsts.example": "127.0.0.245",
        "mx-mismatch.rt.example": "127.0.0.247"}
OFFERS = ("mx-dane.rt.example", "mx.rtinsecure.example", "mx.rtsts.example")
SMART = "127.0.0.246"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("rtlspki"), "cursus REQUIRETLS test CA")
    other = ca.leaf("other", ["other.example"])          # DANE-EE hops: the key counts
    spare = ca.leaf("spare", ["other.example"])          # the key mismatch.rt.example names
    named = ca.leaf("named", ["mx.rtinsecure.example", "mx.rtsts.example"], [SMART])
    return {"ca": ca.ca, "other": other, "spki": spki_sha256(other[0]),
            "spare_spki": spki_sha256(spare[0]), "named": named,
            "policy": ca.leaf("policy", ["mta-sts.rtsts.example"])}


@pytest.fixture(scope="module")
def port():
    return lib.free_port()


@pytest.fixture(scope="module")
def dns(tmp_path_factory, pki, port):
    d = SignedDns(tmp_path_factory.mktemp("rtlsdns"))
    tlsa = "_%d._tcp.%s TLSA 3 1 1 %s"
    recs = ["dsn MX 10 mx-dane"]
    for sub in ("dane", "noreq", "mismatch"):
        recs += ["%s MX 10 mx-%s" % (sub, sub), "mx-%s A %s" % (sub, HOPS["mx-%s.rt.example" % sub])]
    recs += [tlsa % (port, "mx-dane", pki["spki"]), tlsa % (port, "mx-noreq", pki["spki"]),
             tlsa % (port, "mx-mismatch", pki["spare_spki"])]
    d.zone("rt.example", recs)
    d.zone("rtinsecure.example", ["@ MX 10 mx", "mx A %s" % HOPS["mx.rtinsecure.example"]],
           signed=False)
    d.zone("rtsts.example", ["@ MX 10 mx", "mx A %s" % HOPS["mx.rtsts.example"],
                             '_mta-sts TXT "v=STSv1; id=1;"', "mta-sts A " + POLICY_HOST],
           signed=False)
    with d:
        yield d


@pytest.fixture
def policy_server(pki):
    need_root()
    with PolicyServer(POLICY_HOST, pki["policy"][0], pki["policy"][1],
                      policy_text("enforce", ["mx.rtsts.example"])) as ps:
        yield ps


@pytest.fixture
def hops(sinks, pki, port):  # noqa: F811
    out = {}
    for h, a in HOPS.items():
        cert, key = pki["named"] if h.startswith("mx.") else pki["other"]
        opts = ["--cert", cert, "--key", key] + (["--requiretls"] if h in OFFERS else [])
        out[h] = sinks.aio(a, *opts, port=port)[1]
    return out


def server(start_server, dns, pki, port, **opts):
    conf = dict(dns_resolver=dns.resolver, dns_trust_anchor=dns.trust_anchor,
                relay_port=port, relay_ca=pki["ca"], retry_min=3600, retry_max=3600,
                users=(ALICE, CAROL))
    conf.update(opts)
    return start_server(**conf)


def body(token, extra_headers=""):
    # The text is unique, so that a DSN can be shown not to return it.
    return lib.make_body(token, extra_headers=extra_headers, text="body-of-%s\r\n" % token)


def mail_args(events):
    return [e["arg"] for e in events() if e["ev"] == "mail_raw"]


def test_sent_with_requiretls_to_a_dane_hop_that_offers_it(start_server, dns, pki, port, hops,
                                                            token):
    srv = server(start_server, dns, pki, port)
    lib.submit_as(srv, ALICE, ["bob@dane.rt.example"], body(token), mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "bob@dane.rt.example", "relayed")
    assert "relay=mx-dane.rt.example[127.0.0.242] tls=TLSv1.3 verified=yes " \
           "tls_policy=dane-verified requiretls=yes result=relayed status=2.0.0" in line, line
    assert re.search(r"event=queued id=\w+ from=\"%s\" .*requiretls=yes" % ALICE, srv.log)
    assert delivered(hops["mx-dane.rt.example"], token)
    args = mail_args(hops["mx-dane.rt.example"])
    assert len(args) == 1 and args[0].split()[-1] == "REQUIRETLS", args


def test_hop_without_requiretls_bounces_5_7_30_and_the_dsn_keeps_it(
        start_server, dns, pki, port, hops, token):
    """RFC 8689 4.2.1: no REQUIRETLS at the only MX host: permanent failure 5.7.30. The
    DSN (RFC 8689 5) returns the header only and goes out with REQUIRETLS itself: to
    carol@dsn.rt.example, whose MX offers it."""
    srv = server(start_server, dns, pki, port)
    lib.submit_as(srv, CAROL, ["bob@noreq.rt.example"], body(token), mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "bob@noreq.rt.example", "failed")
    assert "status=5.7.30 " in line and "requiretls=yes" in line, line
    assert ('reply="mx-noreq.rt.example[127.0.0.243]: REQUIRETLS support required: the next '
            'hop does not offer REQUIRETLS"' in line), line
    # TLS and DANE were fine; no MAIL went to the hop.
    assert "tls_policy=dane-verified" in line, line
    assert not mail_args(hops["mx-noreq.rt.example"])
    dsn_line = lib.wait_delivery(srv, CAROL, "relayed")
    assert "requiretls=yes" in dsn_line, dsn_line
    assert re.search(r"dsn id=\w+ dsn_id=\w+ to=<%s> items=1 requiretls=yes" % CAROL, srv.log)
    sink = hops["mx-dane.rt.example"]
    assert lib.wait_until(lambda: delivered(sink, token), 15)
    dsn = delivered(sink, token)[0]
    assert dsn["mail_from"] == "<>" and dsn["rcpts"] == [CAROL], dsn
    args = mail_args(sink)
    assert len(args) == 1 and args[0].startswith("FROM:<>") and \
        args[0].endswith(" REQUIRETLS"), args
    content = dsn["content"]
    assert "Status: 5.7.30" in content
    assert "Content-Type: text/rfc822-headers" in content
    assert "Message-ID: <%s@test.example>" % token in content
    assert "body-of-%s" % token not in content


def test_insecure_mx_without_mta_sts_bounces_without_contacting_it(
        start_server, dns, pki, port, hops, token):
    """An MX answer without DNSSEC and no MTA-STS policy: the MX host's name cannot be
    trusted (RFC 8689 4.2.1 step 2), whatever its certificate says: 5.7.30 at once."""
    srv = server(start_server, dns, pki, port)
    lib.submit_as(srv, ALICE, ["bob@rtinsecure.example"], body(token),
                  mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "bob@rtinsecure.example", "failed")
    assert "status=5.7.30 " in line, line
    assert ("the MX hosts of rtinsecure.example cannot be authenticated (the MX answer is "
            "not DNSSEC-secure and rtinsecure.example has no MTA-STS policy in enforce "
            "mode)" in line), line
    assert not hops["mx.rtinsecure.example"]()
    dsn = srv.wait_message(ALICE, token)
    assert b"Status: 5.7.30" in dsn and b"text/rfc822-headers" in dsn
    assert ("body-of-%s" % token).encode() not in dsn
    # Without REQUIRETLS the same domain takes the message (opportunistic TLS).
    lib.submit_as(srv, ALICE, ["bob@rtinsecure.example"], body(token + "-plain"))
    line = lib.wait_delivery(srv, "bob@rtinsecure.example", "relayed")
    assert "requiretls" not in line, line
    assert "REQUIRETLS" not in mail_args(hops["mx.rtinsecure.example"])[0]


def test_mta_sts_enforce_authenticates_an_insecure_mx(start_server, dns, pki, port, hops,
                                                      policy_server, token):
    srv = server(start_server, dns, pki, port)
    lib.submit_as(srv, ALICE, ["bob@rtsts.example"], body(token), mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "bob@rtsts.example", "relayed")
    assert "relay=mx.rtsts.example[127.0.0.245] tls=TLSv1.3 verified=yes " \
           "tls_policy=mta-sts-enforce requiretls=yes result=relayed" in line, line
    assert mail_args(hops["mx.rtsts.example"])[0].endswith(" REQUIRETLS")


def test_mta_sts_policy_announced_but_not_fetched_defers(start_server, dns, pki, port, hops,
                                                          token):
    """The domain announces a policy (its _mta-sts record) but the policy server does not
    answer: nothing vouches for the insecure MX yet, but the policy may next time, so the
    message waits (4.7.30) instead of bouncing, and nothing reaches the MX host."""
    srv = server(start_server, dns, pki, port)
    lib.submit_as(srv, ALICE, ["bob@rtsts.example"], body(token), mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "bob@rtsts.example", "deferred")
    assert "status=4.7.30 " in line, line
    assert "mta-sts event=fetch-failed domain=rtsts.example" in srv.log
    assert not lib.delivery_line(srv, "bob@rtsts.example", "failed")
    assert not hops["mx.rtsts.example"]()


def test_tls_required_no_relaxes_dane(start_server, dns, pki, port, hops, token):
    """The TLSA record names another key: held to DANE the mail waits (4.7.5); with
    "TLS-Required: No" (RFC 8689 4.2.2) it goes with opportunistic TLS."""
    srv = server(start_server, dns, pki, port)
    rcpt = "bob@mismatch.rt.example"
    lib.submit_as(srv, ALICE, [rcpt], body(token + "-strict"))
    line = lib.wait_delivery(srv, rcpt, "deferred")
    assert "status=4.7.5 " in line and "tls_policy=dane-mismatch " in line, line
    lib.submit_as(srv, ALICE, [rcpt], body(token + "-relaxed", "TLS-Required: No\r\n"))
    line = lib.wait_delivery(srv, rcpt, "relayed")
    assert "relay=mx-mismatch.rt.example[127.0.0.247] tls=TLSv1.3 verified=no " \
           "tls_policy=tls-required-no result=relayed" in line, line
    assert re.search(r"event=queued id=\w+ .* tls_required=no", srv.log)
    sink = hops["mx-mismatch.rt.example"]
    assert delivered(sink, token + "-relaxed") and not delivered(sink, token + "-strict")
    # REQUIRETLS wins over the header (RFC 8689 4.1): DANE holds, the mail waits.
    lib.submit_as(srv, ALICE, ["carl@mismatch.rt.example"],
                  body(token + "-both", "TLS-Required: No\r\n"), mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "carl@mismatch.rt.example", "deferred")
    assert "status=4.7.5 " in line and "requiretls=yes" in line, line
    assert not delivered(sink, token + "-both")


def smart_server(start_server, pki, sink_port, tls):
    return start_server(relay_host="[%s]:%d" % (SMART, sink_port), relay_tls=tls,
                        relay_ca=pki["ca"], retry_min=3600, retry_max=3600)


def test_smart_host_verified_offering_requiretls(start_server, sinks, pki, token):  # noqa: F811
    port, events = sinks.aio(SMART, "--cert", pki["named"][0], "--key", pki["named"][1],
                             "--requiretls")
    srv = smart_server(start_server, pki, port, "verify")
    lib.submit_as(srv, ALICE, ["bob@far.example"], body(token), mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "bob@far.example", "relayed")
    assert "verified=yes requiretls=yes result=relayed" in line, line
    assert delivered(events, token)
    assert mail_args(events)[0].endswith(" REQUIRETLS")


def test_smart_host_unverified_is_not_good_enough(start_server, sinks, pki, token):  # noqa: F811
    """relay_tls may takes any certificate, but not for a REQUIRETLS message: it needs
    one verified for the smart host's name, and waits (4.7.5)."""
    port, events = sinks.aio(SMART, "--cert", pki["other"][0], "--key", pki["other"][1],
                             "--requiretls")
    srv = smart_server(start_server, pki, port, "may")
    lib.submit_as(srv, ALICE, ["bob@far.example"], body(token), mail_params=" REQUIRETLS")
    line = lib.wait_delivery(srv, "bob@far.example", "deferred")
    assert "status=4.7.5 " in line and "certificate verification failed" in line, line
    assert not mail_args(events)
    # An ordinary message takes the same hop as before.
    lib.submit_as(srv, ALICE, ["carl@far.example"], body(token + "-plain"))
    line = lib.wait_delivery(srv, "carl@far.example", "relayed")
    assert "verified=no result=relayed" in line, line


def queue_id(srv, token_from):
    ids = re.findall(r"event=queued id=(\w+) from=\"%s\"" % re.escape(token_from), srv.log)
    return ids


def test_the_tag_is_queued_and_shown(start_server, token):
    """The tag is in the queue file (it survives a restart) and `cursus queue show` and
    `queue list --json` say it. The relay is a closed port: the mail waits."""
    srv = start_server(retry_min=3600, retry_max=3600)
    lib.submit_as(srv, ALICE, ["a@far.example"], body(token + "-r"), mail_params=" REQUIRETLS")
    lib.submit_as(srv, ALICE, ["b@far.example"], body(token + "-n", "TLS-Required: no\r\n"))
    lib.submit_as(srv, ALICE, ["c@far.example"], body(token + "-b", "TLS-Required: No\r\n"),
                  mail_params=" REQUIRETLS")
    lib.submit_as(srv, ALICE, ["d@far.example"], body(token + "-d"))
    ids = queue_id(srv, ALICE)
    assert len(ids) == 4, srv.log[-2000:]
    srv.restart()
    shown = [srv.admin("queue", "show", i).stdout for i in ids]
    tls_lines = [[l for l in s.splitlines() if l.startswith("tls ")] for s in shown]
    assert tls_lines[0] == ["tls           REQUIRETLS (verified TLS to next hops that offer "
                            "REQUIRETLS)"], shown[0]
    assert tls_lines[1] == ["tls           TLS-Required: No (DANE and MTA-STS policies "
                            "waived)"], shown[1]
    assert tls_lines[2] == tls_lines[0]
    assert tls_lines[3] == []
    listed = {m["id"]: m["tls_required"]
              for m in json.loads(srv.admin("queue", "list", "--json").stdout)}
    assert [listed[i] for i in ids] == ["requiretls", "no", "requiretls", "default"], listed
