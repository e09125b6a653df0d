"""MTA-STS (RFC 8461) for MX delivery (issue 10 item 2), end to end: a real DNS server
on loopback (dnsfixture) publishes dest.example's MX, A and _mta-sts TXT records; an
HTTPS server on 127.0.0.201:443 (mtastspeers) serves the policy with a certificate for
mta-sts.dest.example from the test CA, which cursus trusts through relay_ca; the next
hops are aiosmtpd sinks on 127.0.0.x with a good certificate for mx1.dest.example, one
for another name, an expired one, or no STARTTLS at all (the downgrade). Each outcome
is asserted exactly: what the sink got, the reply kept in the queue, the log line that
says why, the counters."""
import json
import subprocess
import os
import re
import time
import urllib.request

import pytest

import cursus_testlib as lib
import testca
from dnsfixture import dns_server as dns  # noqa: F401 (the fixture, as "dns")
from mtastspeers import PolicyServer, need_root, policy_text
from relaypeers import sinks  # noqa: F401 (fixture)
from testca import TestCA

ALICE = "alice@example.test"
POLICY_HOST = "127.0.0.201"
MX_HOST = "127.0.0.202"
MX_NAME = "mx1.dest.example"
URL = "https://mta-sts.dest.example/.well-known/mta-sts.txt"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("mtastscerts"), "cursus MTA-STS test CA")
    t = testca.now()
    return {"ca": ca.ca,
            "policy": ca.leaf("policy", ["mta-sts.dest.example"]),
            "good": ca.leaf("good", [MX_NAME]),
            "wrongname": ca.leaf("wrongname", ["other.example"]),
            "expired": ca.leaf("expired", [MX_NAME], (), t - 30 * testca.DAY,
                               t - 2 * testca.DAY)}


@pytest.fixture
def policy_server(certs):
    need_root()
    ps = PolicyServer(POLICY_HOST, certs["policy"][0], certs["policy"][1],
                      policy_text("enforce", [MX_NAME]))
    with ps:
        yield ps


def zone(sts_id="1", mx=MX_NAME):
    recs = {"dest.example": {"MX": [[10, mx]]},
            mx: {"A": [MX_HOST]},
            "mta-sts.dest.example": {"A": [POLICY_HOST]}}
    if sts_id:
        recs["_mta-sts.dest.example"] = {"TXT": ["v=STSv1; id=%s;" % sts_id]}
    return {"records": recs}


def sink(sinks, certs, kind):
    """The next hop: kind good | wrongname | expired | plain (no STARTTLS)."""
    if kind == "plain":
        return sinks.aio(MX_HOST)
    return sinks.aio(MX_HOST, "--cert", certs[kind][0], "--key", certs[kind][1])


def server(start_server, dns, certs, port, extra_conf="", **opts):
    conf = dict(dns_resolver=dns.resolver, relay_port=port, relay_ca=certs["ca"],
                retry_min=3600, retry_max=3600)
    conf.update(opts)
    return start_server(extra_conf=extra_conf, **conf)


def submit(srv, token, rcpt="bob@dest.example"):
    lib.submit_as(srv, ALICE, [rcpt], lib.make_body(token))


def delivered(events, token):
    return [e for e in events() if e["ev"] == "data" and token in e["content"]]


def delivery_lines(srv, rcpt="bob@dest.example"):
    return [l for l in srv.log.splitlines() if "delivery id=" in l and 'rcpt="%s"' % rcpt in l]


def queue_rcpt(srv):
    return json.loads(srv.admin("queue", "list", "--json").stdout)[0]["recipients"][0]


def log_lines(srv, word):
    return [l for l in srv.log.splitlines() if word in l]


def test_enforce_with_a_good_certificate_delivers(start_server, dns, sinks, certs,
                                                   policy_server, token):
    port, events = sink(sinks, certs, "good")
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port)
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    line = delivery_lines(srv)[-1]
    assert ("relay=%s[%s] tls=TLSv1.3 verified=yes tls_policy=mta-sts-enforce "
            "result=relayed status=2.0.0" % (MX_NAME, MX_HOST)) in line, line
    assert ('mta-sts event=policy-fetched domain=dest.example id=1 mode=enforce '
            'max_age=86400 mx="%s"' % MX_NAME) in srv.log
    assert policy_server.policy_requests() == ["/.well-known/mta-sts.txt"]
    assert not log_lines(srv, "event=refused")
    # Kept on disk for the next start, as served.
    with open(os.path.join(srv.root, "var", "mta-sts", "dest.example"), newline="") as f:
        assert f.read().endswith(policy_text("enforce", [MX_NAME]))


ENFORCE_FAILURES = [
    ("wrongname", "certificate-invalid", "certificate not valid for %s: hostname mismatch" % MX_NAME),
    ("expired", "certificate-invalid", "certificate not valid for %s: certificate has expired" % MX_NAME),
    ("plain", "starttls-not-offered", "STARTTLS not offered"),
]


@pytest.mark.parametrize("kind,reason,detail", ENFORCE_FAILURES)
def test_enforce_defers_what_fails_the_policy(start_server, dns, sinks, certs, policy_server,
                                              token, kind, reason, detail):
    port, events = sink(sinks, certs, kind)
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port)
    submit(srv, token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    r = queue_rcpt(srv)
    assert r["state"] == "deferred"
    assert r["reply"] == "%s[%s]: MTA-STS policy of dest.example (enforce): %s" % (
        MX_NAME, MX_HOST, detail), r
    assert "tls_policy=mta-sts-enforce result=deferred status=4.7.5" in delivery_lines(srv)[-1]
    assert ('mta-sts event=refused domain=dest.example mode=enforce mx=%s[%s] reason=%s '
            'detail="%s"' % (MX_NAME, MX_HOST, reason, detail)) in srv.log
    # Nothing was handed over: no MAIL, no message.
    assert [e for e in events() if e["ev"] in ("mail", "data")] == []


def test_enforce_skips_an_mx_not_in_the_policy(start_server, dns, sinks, certs, policy_server,
                                               token):
    port, events = sink(sinks, certs, "good")
    policy_server.policy = policy_text("enforce", ["mx9.dest.example", "*.other.example"])
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port)
    submit(srv, token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    r = queue_rcpt(srv)
    assert r["reply"] == ("%s: MTA-STS policy of dest.example (enforce): MX host not in the "
                          "policy's mx patterns" % MX_NAME), r
    assert "tls_policy=mta-sts-enforce result=deferred status=4.7.5" in delivery_lines(srv)[-1]
    assert ('mta-sts event=refused domain=dest.example mode=enforce mx=%s[-] '
            'reason=mx-mismatch detail="MX host not in the policy\'s mx patterns"' % MX_NAME) \
        in srv.log
    # Not even connected to.
    assert events() == []


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def test_testing_mode_delivers_and_reports(start_server, dns, sinks, certs, policy_server,
                                           token):
    port, events = sink(sinks, certs, "wrongname")
    policy_server.policy = policy_text("testing", ["*.dest.example"])
    dns.set_zone(zone())
    mport = lib.free_port()
    srv = server(start_server, dns, certs, port,
                 extra_conf="metrics_listen 127.0.0.1:%d" % mport)
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    assert "tls=TLSv1.3 verified=no tls_policy=mta-sts-testing result=relayed" in delivery_lines(srv)[-1]
    detail = "certificate not valid for %s: hostname mismatch" % MX_NAME
    assert ('mta-sts event=would-fail domain=dest.example mode=testing mx=%s[%s] '
            'reason=certificate-invalid detail="%s"' % (MX_NAME, MX_HOST, detail)) in srv.log
    text = metrics(mport)
    assert 'cursus_mta_sts_failures_total{mode="testing",reason="certificate-invalid"} 1' \
        in text, text
    assert 'cursus_mta_sts_policy_fetches_total{result="ok"} 1' in text, text


def test_testing_mode_delivers_in_clear_without_starttls(start_server, dns, sinks, certs,
                                                         policy_server, token):
    port, events = sink(sinks, certs, "plain")
    policy_server.policy = policy_text("testing", [MX_NAME])
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port)
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert "tls=none verified=- tls_policy=mta-sts-testing result=relayed" in delivery_lines(srv)[-1]
    assert ('mta-sts event=would-fail domain=dest.example mode=testing mx=%s[%s] '
            'reason=starttls-not-offered detail="STARTTLS not offered"' % (MX_NAME, MX_HOST)) \
        in srv.log


def test_the_cached_policy_survives_a_restart_and_a_dead_policy_server(
        start_server, dns, sinks, certs, policy_server, token):
    port, events = sink(sinks, certs, "good")
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port, mta_sts_fetch_retry="0.01")
    submit(srv, token + "a")
    assert lib.wait_until(lambda: delivered(events, token + "a"), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    # The policy host goes away and the TXT id changes: the new policy cannot be had.
    policy_server.stop()
    dns.set_zone(zone(sts_id="2"))
    srv.stop()
    # The next hop now shows a certificate for another name.
    sinks.stop()
    port2, events2 = sinks.aio(MX_HOST, "--cert", certs["wrongname"][0], "--key",
                               certs["wrongname"][1])
    srv.global_opts["relay_port"] = port2
    srv._write_conf()
    srv.start()
    assert "mta-sts event=cache-loaded dir=%s policies=1" % os.path.join(
        srv.root, "var", "mta-sts") in srv.log
    submit(srv, token + "b")
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    assert queue_rcpt(srv)["reply"] == (
        "%s[%s]: MTA-STS policy of dest.example (enforce): certificate not valid for %s: "
        "hostname mismatch" % (MX_NAME, MX_HOST, MX_NAME))
    failed = log_lines(srv, "mta-sts event=fetch-failed domain=dest.example id=2")
    assert failed and "result=error cached=1 " in failed[-1], failed
    assert delivered(events2, token + "b") == []


def test_a_new_id_fetches_the_policy_again(start_server, dns, sinks, certs, policy_server,
                                           token):
    port, events = sink(sinks, certs, "good")
    dns.set_zone(zone())
    # No connection kept for reuse: a reused one carries the policy it was opened under.
    srv = server(start_server, dns, certs, port, relay_idle_time=0)
    for n in ("a", "b"):
        submit(srv, token + n)
        assert lib.wait_until(lambda: delivered(events, token + n), 15), srv.log[-3000:]
    # The same id: the cached policy, no second fetch.
    assert len(policy_server.policy_requests()) == 1
    policy_server.policy = policy_text("enforce", ["*.dest.example"], max_age=600)
    dns.set_zone(zone(sts_id="20261202"))
    submit(srv, token + "c")
    assert lib.wait_until(lambda: delivered(events, token + "c"), 15), srv.log[-3000:]
    assert len(policy_server.policy_requests()) == 2
    assert ('mta-sts event=policy-fetched domain=dest.example id=20261202 mode=enforce '
            'max_age=600 mx="*.dest.example"') in srv.log


def test_a_changed_id_is_fetched_before_any_mail_needs_it(start_server, dns, sinks, certs,
                                                          policy_server, token):
    port, events = sink(sinks, certs, "good")
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port, mta_sts_refresh_interval="0.3")
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    dns.set_zone(zone(sts_id="2"))
    assert lib.wait_until(lambda: len(policy_server.policy_requests()) == 2, 10), srv.log[-2000:]
    assert lib.wait_until(
        lambda: "mta-sts event=policy-fetched domain=dest.example id=2 mode=enforce" in srv.log, 5)


REFUSED_ANSWERS = [
    ({"redirect": "https://mta-sts.dest.example/elsewhere.txt", "status": 301},
     "%s: a redirect (RFC 8461 3.3: not followed) (HTTP 301, no Content-Type)" % URL),
    ({"content_type": "text/html"},
     "%s: Content-Type is not text/plain (HTTP 200, text/html)" % URL),
    ({"status": 404}, "%s: HTTP status not 200 (HTTP 404, text/plain)" % URL),
    ({"policy": "version: STSv1\r\nmode: enforce\r\nmx: mx*.dest.example\r\nmax_age: 60\r\n"},
     "%s: policy: an mx value is not a host name or *.domain pattern" % URL),
]


@pytest.mark.parametrize("change,why", REFUSED_ANSWERS)
def test_an_answer_that_is_not_a_policy_is_refused(start_server, dns, sinks, certs,
                                                   policy_server, token, change, why):
    # A certificate for another name: delivered only because no policy applies.
    port, events = sink(sinks, certs, "wrongname")
    for k, v in change.items():
        setattr(policy_server, k, v)
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port)
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert ('mta-sts event=fetch-failed domain=dest.example id=1 result=invalid cached=none '
            'reason="%s"' % why) in srv.log
    # One request: a redirect's target is never asked for.
    assert policy_server.requests == ["/.well-known/mta-sts.txt"]


@pytest.mark.parametrize("limit,size", [(None, 70000), ("1K", 2000)])
def test_an_oversize_policy_is_refused(start_server, dns, sinks, certs, policy_server, token,
                                       limit, size):
    port, events = sink(sinks, certs, "wrongname")
    text = policy_text("enforce", [MX_NAME])
    policy_server.policy = text + "x-pad: %s\r\n" % ("p" * (size - len(text)))
    dns.set_zone(zone())
    opts = {"mta_sts_max_size": limit} if limit else {}
    srv = server(start_server, dns, certs, port, **opts)
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert ('mta-sts event=fetch-failed domain=dest.example id=1 result=too-large cached=none '
            'reason="%s: answer larger than %d octets"' % (URL, 1024 if limit else 65536)) \
        in srv.log


def test_a_slow_policy_server_times_out_without_a_hang(start_server, dns, sinks, certs,
                                                       policy_server, token):
    port, events = sink(sinks, certs, "good")
    policy_server.delay = 8
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port, mta_sts_fetch_timeout="0.5")
    t0 = time.monotonic()
    submit(srv, token)
    # While the fetch waits on its thread, the daemon answers at once.
    assert lib.wait_until(lambda: policy_server.requests, 5)
    t1 = time.monotonic()
    with srv.smtp() as c:
        c.expect("EHLO client.test", 250)
    assert time.monotonic() - t1 < 0.4
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert time.monotonic() - t0 < 6
    assert ('mta-sts event=fetch-failed domain=dest.example id=1 result=timeout cached=none '
            'reason="%s: no answer within 500 ms"' % URL) in srv.log


def test_no_txt_record_is_no_policy(start_server, dns, sinks, certs, policy_server, token):
    port, events = sink(sinks, certs, "plain")
    dns.set_zone(zone(sts_id=None))
    srv = server(start_server, dns, certs, port)
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert policy_server.requests == []
    assert not log_lines(srv, "mta-sts event=")


def test_relay_tls_may_asks_for_no_policy(start_server, dns, sinks, certs, policy_server,
                                          token):
    port, events = sink(sinks, certs, "plain")
    dns.set_zone(zone())
    srv = server(start_server, dns, certs, port, relay_tls="may")
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert policy_server.requests == []
    assert not [q for q in dns.queries() if q.startswith("_mta-sts.")], dns.queries()


def probe(certs, dns, *args):
    return subprocess.run(
        [lib.CURSUS, "probe", "--mta-sts", "dest.example", "--resolver", dns.resolver, "--ca",
         certs["ca"]] + list(args), capture_output=True, text=True, timeout=60)


def test_probe_reports_the_domains_mta_sts(dns, certs, policy_server):
    policy_server.policy = policy_text("enforce", ["mx1.dest.example", "*.backup.example"],
                                       max_age=604800)
    z = zone(sts_id="abc123")
    z["records"]["dest.example"]["MX"].append([20, "mx2.dest.example"])
    z["records"]["mx2.dest.example"] = {"A": ["127.0.0.203"]}
    dns.set_zone(z)
    r = probe(certs, dns)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout == (
        "domain: dest.example\n"
        "txt: v=STSv1; id=abc123;\n"
        "id: abc123\n"
        "policy: %s\n"
        "mode: enforce\n"
        "max_age: 604800\n"
        "mx: mx1.dest.example\n"
        "mx: *.backup.example\n"
        "MX 10 mx1.dest.example: matches\n"
        "MX 20 mx2.dest.example: does not match (not used in enforce mode)\n"
        % URL), r.stdout
    j = json.loads(probe(certs, dns, "--json").stdout)
    assert j["id"] == "abc123" and j["mode"] == "enforce" and j["max_age"] == 604800
    assert j["mx_patterns"] == ["mx1.dest.example", "*.backup.example"]
    assert j["mx_hosts"] == [{"pref": 10, "host": "mx1.dest.example", "matches": True},
                             {"pref": 20, "host": "mx2.dest.example", "matches": False}]
    dns.set_zone(zone(sts_id=None))
    r = probe(certs, dns)
    assert r.returncode == 0
    assert r.stdout == ("domain: dest.example\ntxt: none (NXDOMAIN looking up TXT of "
                        "_mta-sts.dest.example)\nno MTA-STS policy\n"), r.stdout
