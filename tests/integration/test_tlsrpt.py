"""SMTP TLS reporting (RFC 8460), end to end: cursusd relays to next hops under DANE,
MTA-STS and no policy, counts each connection per recipient domain and policy, and
after each (short) reporting period mails the gzipped JSON report to the rua of the
domains that publish a _smtp._tls TXT record. The DNS (dnssecfixture: one NSD, a signed
zone rp.example and an unsigned rpi.example), the MTA-STS policy server (mtastspeers)
and the aiosmtpd next hops are those of test_tls_policy.py.

  ok.rp.example    secure MX, TLSA 3 1 1 of the hop's key        -> tlsa, success
  bad.rp.example   secure MX, TLSA 3 1 1 of another key          -> tlsa, tlsa-invalid
  sts.rpi.example  unsigned; MTA-STS enforce; wrong-name cert    -> sts, certificate-host-mismatch
  clear.rp.example secure MX, no TLSA; the hop has no STARTTLS   -> no-policy-found,
                                                                    starttls-not-supported
  norpt.rp.example as ok.rp.example, but no _smtp._tls record    -> counted, never reported
An MTA-STS policy announced (_mta-sts TXT) but not fetched, none cached; the mail goes
to mx.sts.rpi.example as may, and the session counts as the failure, under sts:
  webpki.rpi.example  the policy server's certificate names others -> sts-webpki-invalid
  invalid.rpi.example 200, but text/html                           -> sts-policy-invalid
  missing.rpi.example 404                                          -> sts-policy-fetch-error
The reports go to tlsrpt@rua.rp.example, a sink without a _smtp._tls record."""
import email
import email.policy
import gzip
import json
import os
import re
import subprocess
import time

import pytest

import cursus_testlib as lib
from dnssecfixture import SignedDns
from mtastspeers import PolicyServer, need_root, policy_text
from relaypeers import delivered, sinks  # noqa: F401 (fixture)
from testca import TestCA, spki_sha256

ALICE = "alice@example.test"
POLICY_HOST = "127.0.0.209"  # its own: test_mtasts and test_tls_policy use .201
HOPS = {"mx-ok.rp.example": "127.0.0.231", "mx-bad.rp.example": "127.0.0.232",
        "mx.sts.rpi.example": "127.0.0.233", "mx-clear.rp.example": "127.0.0.234",
        "mx-norpt.rp.example": "127.0.0.236", "mx-rua.rp.example": "127.0.0.235"}
RUA = "tlsrpt@rua.rp.example"
RPT = '_smtp._tls%s TXT "v=TLSRPTv1; rua=mailto:%s"'
SUBMITTER = "reports.cursus.test"
FROM = "tls-reports@example.test"
BAD_DIGEST = "00" * 32
# Policy domain -> (RFC 8460 result type, the fetch-failed line's result=).
FETCH_FAILS = {"webpki.rpi.example": ("sts-webpki-invalid", "error"),
               "invalid.rpi.example": ("sts-policy-invalid", "invalid"),
               "missing.rpi.example": ("sts-policy-fetch-error", "invalid")}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("tlsrptpki"), "cursus TLS-RPT test CA")
    cert, key = ca.leaf("other", ["other.example"])
    return {"ca": ca.ca, "cert": cert, "key": key, "spki": spki_sha256(cert),
            # Not mta-sts.webpki.rpi.example: that one's fetch sees a wrong name.
            "policy": ca.leaf("policy", ["mta-sts.sts.rpi.example", "mta-sts.invalid.rpi.example",
                                         "mta-sts.missing.rpi.example"])}


@pytest.fixture(scope="module")
def port():
    return lib.free_port()


@pytest.fixture(scope="module")
def dns(tmp_path_factory, pki, port):
    d = SignedDns(tmp_path_factory.mktemp("tlsrptdns"))
    tlsa = "_%d._tcp.%s TLSA 3 1 1 %s"
    recs = []
    for sub in ("ok", "bad", "clear", "norpt", "rua"):
        recs += ["%s MX 10 mx-%s" % (sub, sub), "mx-%s A %s" % (sub, HOPS["mx-%s.rp.example" % sub])]
    recs += [tlsa % (port, "mx-ok", pki["spki"]), tlsa % (port, "mx-norpt", pki["spki"]),
             tlsa % (port, "mx-bad", BAD_DIGEST)]
    recs += [RPT % ("." + sub, RUA) for sub in ("ok", "bad", "clear")]
    d.zone("rp.example", recs)
    sts = []
    for sub in ["sts"] + [d.split(".")[0] for d in FETCH_FAILS]:
        sts += ["%s MX 10 mx.sts" % sub, '_mta-sts.%s TXT "v=STSv1; id=1;"' % sub,
                "mta-sts.%s A %s" % (sub, POLICY_HOST), RPT % ("." + sub, RUA)]
    d.zone("rpi.example", ["mx.sts A %s" % HOPS["mx.sts.rpi.example"]] + sts, signed=False)
    with d:
        yield d


@pytest.fixture
def policy_server(pki):
    need_root()
    ps = PolicyServer(POLICY_HOST, pki["policy"][0], pki["policy"][1],
                      policy_text("enforce", ["mx.sts.rpi.example"]))
    ps.answers = {"mta-sts.invalid.rpi.example": {"content_type": "text/html",
                                                  "policy": "<html>STSv1</html>"},
                  "mta-sts.missing.rpi.example": {"status": 404}}
    with ps:
        yield ps


@pytest.fixture
def hops(sinks, pki, port):  # noqa: F811
    out = {}
    for h, a in HOPS.items():
        tls = [] if h == "mx-clear.rp.example" else ["--cert", pki["cert"], "--key", pki["key"]]
        out[h] = sinks.aio(a, *tls, port=port)[1]
    return out


def server(start_server, dns, pki, port, interval, **opts):
    conf = dict(dns_resolver=dns.resolver, dns_trust_anchor=dns.trust_anchor,
                relay_port=port, relay_ca=pki["ca"], retry_min=3600, retry_max=3600,
                tls_rpt="yes", tls_rpt_interval=interval, tls_rpt_submitter=SUBMITTER,
                tls_rpt_from=FROM, tls_rpt_org='"cursus test"')
    conf.update(opts)
    return start_server(**conf)


def reports(sink):
    """The report mails the rua sink got: (message, parsed JSON)."""
    out = []
    for e in sink():
        if e["ev"] != "data" or "TLS-Report-Domain" not in e["content"]:
            continue
        msg = email.message_from_string(e["content"], policy=email.policy.default)
        part = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
        assert len(part) == 1, e["content"]
        out.append((e, msg, part[0], json.loads(gzip.decompress(part[0].get_content()))))
    return out


def domain_reports(sink, domain):
    return [r for r in reports(sink) if r[1]["TLS-Report-Domain"] == domain]


def totals(reps):
    """Summed over the reports (a run may straddle periods): per policy type, the
    policy object, successes, failures, and failure details by result type."""
    out = {}
    for _e, _m, _p, j in reps:
        for pol in j["policies"]:
            t = pol["policy"]["policy-type"]
            o = out.setdefault(t, {"policy": pol["policy"], "ok": 0, "failed": 0, "details": {}})
            assert o["policy"] == pol["policy"]
            o["ok"] += pol["summary"]["total-successful-session-count"]
            o["failed"] += pol["summary"]["total-failure-session-count"]
            for fd in pol.get("failure-details", []):
                d = o["details"].setdefault(fd["result-type"], dict(fd, **{"failed-session-count": 0}))
                d["failed-session-count"] += fd["failed-session-count"]
    return out


def check_envelope(rep, domain, interval):
    e, msg, part, j = rep
    assert e["mail_from"] == FROM and e["rcpts"] == [RUA]
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Domain"] == domain
    assert msg["TLS-Report-Submitter"] == SUBMITTER
    m = re.fullmatch(r"Report Domain: (\S+) Submitter: (\S+) Report-ID: <([^>]+)>",
                     str(msg["Subject"]))
    assert m and m.group(1) == domain and m.group(2) == SUBMITTER, msg["Subject"]
    assert j["report-id"] == m.group(3)
    assert j["organization-name"] == "cursus test" and j["contact-info"] == FROM
    texts = [p for p in msg.walk() if p.get_content_type() == "text/plain"]
    assert texts, "no text part"
    # RFC 8460 5.3.1: submitter!policy-domain!begin!end!unique-id.json.gz
    start = j["date-range"]["start-datetime"]
    fm = re.fullmatch(r"([^!]+)!([^!]+)!(\d+)!(\d+)!([0-9A-Za-z]+)\.json\.gz", part.get_filename())
    assert fm, part.get_filename()
    assert fm.group(1) == SUBMITTER and fm.group(2) == domain
    assert m.group(3) == "%s@%s" % (fm.group(5), SUBMITTER)
    begin = int(fm.group(3))
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(begin)) == start.split(".")[0].rstrip("Z")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", start)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z",
                        j["date-range"]["end-datetime"])
    for pol in j["policies"]:
        assert pol["policy"]["policy-domain"] == domain


def wait_quiet_period(interval, margin):
    """Waits until a period has just begun, so what follows falls into one period."""
    deadline = time.monotonic() + interval + 5
    while (time.time() % interval) > 0.2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return interval - margin


def test_reports_counts_and_failures(start_server, dns, pki, port, policy_server, hops, token,
                                     tmp_path):
    # RFC 8460 5.3: report mail DKIM-signed, here with a key of tls_rpt_from's domain.
    key = str(tmp_path / "rpt.key")
    subprocess.run([lib.CURSUS, "dkim", "keygen", "example.test", "rpt", "--out", key],
                   check=True, stdout=subprocess.DEVNULL)
    # Each message its own connection (a session is a connection, RFC 8460 4.3).
    srv = server(start_server, dns, pki, port, 3, relay_idle_time=0,
                 extra_conf="dkim_key example.test rpt %s\n" % key)
    for d in ("ok", "bad", "clear", "norpt"):
        lib.submit_as(srv, ALICE, ["bob@%s.rp.example" % d], lib.make_body(token))
    lib.submit_as(srv, ALICE, ["bob@sts.rpi.example"], lib.make_body(token))
    lib.submit_as(srv, ALICE, ["carol@ok.rp.example"], lib.make_body(token + "b"))
    lib.wait_delivery(srv, "bob@ok.rp.example", "relayed")
    lib.wait_delivery(srv, "bob@norpt.rp.example", "relayed")
    lib.wait_delivery(srv, "bob@clear.rp.example", "relayed")
    lib.wait_delivery(srv, "bob@bad.rp.example", "deferred")
    lib.wait_delivery(srv, "bob@sts.rpi.example", "deferred")
    lib.wait_delivery(srv, "carol@ok.rp.example", "relayed")
    rua = hops["mx-rua.rp.example"]

    def all_in():
        t = {d: totals(domain_reports(rua, d)) for d in
             ("ok.rp.example", "bad.rp.example", "clear.rp.example", "sts.rpi.example")}
        return t if (t["ok.rp.example"].get("tlsa", {}).get("ok") == 2 and
                     t["bad.rp.example"].get("tlsa", {}).get("failed") == 1 and
                     t["clear.rp.example"].get("no-policy-found", {}).get("failed") == 1 and
                     t["sts.rpi.example"].get("sts", {}).get("failed") == 1) else None
    assert lib.wait_until(all_in, 30), "\n".join(
        [r[2].get_filename() for r in reports(rua)] +
        [x for x in srv.log.splitlines() if "tls-rpt" in x])
    t = all_in()

    ok = t["ok.rp.example"]
    assert list(ok) == ["tlsa"]
    assert ok["tlsa"]["policy"] == {"policy-type": "tlsa", "policy-string": ["3 1 1 " + pki["spki"]],
                                    "policy-domain": "ok.rp.example",
                                    "mx-host": "mx-ok.rp.example"}
    assert ok["tlsa"]["ok"] == 2 and ok["tlsa"]["failed"] == 0 and not ok["tlsa"]["details"]

    bad = t["bad.rp.example"]["tlsa"]
    assert bad["policy"]["policy-string"] == ["3 1 1 " + BAD_DIGEST]
    assert bad["ok"] == 0 and list(bad["details"]) == ["tlsa-invalid"]
    d = bad["details"]["tlsa-invalid"]
    assert d["failed-session-count"] == 1
    assert d["receiving-mx-hostname"] == "mx-bad.rp.example"
    assert d["receiving-ip"] == HOPS["mx-bad.rp.example"]
    assert d["sending-mta-ip"].startswith("127.")

    sts = t["sts.rpi.example"]["sts"]
    assert sts["policy"] == {"policy-type": "sts",
                             "policy-string": ["version: STSv1", "mode: enforce",
                                               "mx: mx.sts.rpi.example", "max_age: 86400"],
                             "policy-domain": "sts.rpi.example", "mx-host": "mx.sts.rpi.example"}
    assert sts["ok"] == 0 and list(sts["details"]) == ["certificate-host-mismatch"]
    d = sts["details"]["certificate-host-mismatch"]
    assert d["failed-session-count"] == 1 and d["receiving-ip"] == HOPS["mx.sts.rpi.example"]
    assert "hostname mismatch" in d["additional-information"]

    clear = t["clear.rp.example"]
    assert list(clear) == ["no-policy-found"]
    assert clear["no-policy-found"]["policy"] == {"policy-type": "no-policy-found",
                                                  "policy-domain": "clear.rp.example"}
    assert clear["no-policy-found"]["ok"] == 0
    assert list(clear["no-policy-found"]["details"]) == ["starttls-not-supported"]

    for dom in ("ok.rp.example", "bad.rp.example", "clear.rp.example", "sts.rpi.example"):
        reps = domain_reports(rua, dom)
        for rep in reps:
            check_envelope(rep, dom, 3)
            assert re.search(r"(?m)^DKIM-Signature: .*\bd=example\.test;",
                             rep[0]["content"].replace("\r\n\t", " ")), rep[0]["content"][:600]
    # A deferred message is retried only in an hour: exactly the counts above, and
    # the period boundaries are multiples of the interval.
    for rep in reports(rua):
        fm = re.search(r"!(\d+)!(\d+)!", rep[2].get_filename())
        assert int(fm.group(1)) % 3 == 0 and int(fm.group(2)) - int(fm.group(1)) == 3

    # No record, no report: counted, then dropped.
    assert lib.wait_until(lambda: "tls-rpt event=no-report domain=norpt.rp.example" in srv.log, 10)
    assert not domain_reports(rua, "norpt.rp.example")
    # The reports themselves are never counted (no loops).
    assert "event=session domain=rua.rp.example" not in srv.log
    assert lib.wait_delivery(srv, RUA, "relayed")


def test_counts_survive_a_restart(start_server, dns, pki, port, policy_server, hops, token):
    interval = 8
    srv = server(start_server, dns, pki, port, interval)
    wait_quiet_period(interval, 0)
    lib.submit_as(srv, ALICE, ["bob@ok.rp.example"], lib.make_body(token))
    lib.wait_delivery(srv, "bob@ok.rp.example", "relayed")
    tdir = os.path.join(srv.root, "var", "tls-rpt")

    def counts_files(text):
        return [f for f in os.listdir(tdir)
                if f.endswith(".counts") and text in open(os.path.join(tdir, f)).read()]
    # On disk before the restart (written by a worker as the session ended).
    assert lib.wait_until(lambda: counts_files("ok\t1\n"), 5)
    srv.restart()
    assert "tls-rpt event=counts-loaded" in srv.log
    lib.submit_as(srv, ALICE, ["carol@ok.rp.example"], lib.make_body(token + "c"))
    lib.wait_delivery(srv, "carol@ok.rp.example", "relayed")
    rua = hops["mx-rua.rp.example"]
    assert lib.wait_until(lambda: domain_reports(rua, "ok.rp.example"), interval + 20), srv.log[-3000:]
    reps = domain_reports(rua, "ok.rp.example")
    assert len(reps) == 1
    check_envelope(reps[0], "ok.rp.example", interval)
    t = totals(reps)
    assert t["tlsa"]["ok"] == 2 and t["tlsa"]["failed"] == 0
    # The period's file goes once its reports are queued.
    assert lib.wait_until(lambda: not counts_files("ok\t2\n"), 10)


def test_policy_fetch_failures(start_server, dns, pki, port, policy_server, hops, token):
    """A policy announced that cannot be had (RFC 8460 4.3.2.2): the session to the MX
    counts once, as the failure, under policy-type sts without policy-string or
    mx-host; the failure detail's additional-information is the reason logged; the
    mail itself is delivered (may)."""
    srv = server(start_server, dns, pki, port, 3, relay_idle_time=0)
    for dom in FETCH_FAILS:
        lib.submit_as(srv, ALICE, ["bob@" + dom], lib.make_body(token))
    for dom in FETCH_FAILS:
        lib.wait_delivery(srv, "bob@" + dom, "relayed")
    rua = hops["mx-rua.rp.example"]

    def all_in():
        t = {d: totals(domain_reports(rua, d)) for d in FETCH_FAILS}
        return t if all(t[d].get("sts", {}).get("failed") == 1 for d in t) else None
    assert lib.wait_until(all_in, 30), "\n".join(
        [r[2].get_filename() for r in reports(rua)] +
        [x for x in srv.log.splitlines() if "tls-rpt" in x or "mta-sts" in x])
    t = all_in()
    for dom, (result, logged) in FETCH_FAILS.items():
        assert list(t[dom]) == ["sts"], t[dom]
        sts = t[dom]["sts"]
        assert sts["policy"] == {"policy-type": "sts", "policy-domain": dom}
        assert sts["ok"] == 0 and list(sts["details"]) == [result], sts
        d = sts["details"][result]
        assert d["failed-session-count"] == 1
        assert d["receiving-mx-hostname"] == "mx.sts.rpi.example"
        assert d["receiving-ip"] == HOPS["mx.sts.rpi.example"]
        assert d["sending-mta-ip"].startswith("127.")
        m = re.search(r'mta-sts event=fetch-failed domain=%s id=1 result=%s cached=none '
                      r'reason="([^"]*)"' % (re.escape(dom), logged), srv.log)
        assert m and d["additional-information"] == m.group(1), (m and m.group(0), d)
        assert ("tls-rpt event=session domain=%s policy=sts result=%s " % (dom, result)
                in srv.log)
        for rep in domain_reports(rua, dom):
            check_envelope(rep, dom, 3)
    info = {dom: t[dom]["sts"]["details"][r]["additional-information"]
            for dom, (r, _l) in FETCH_FAILS.items()}
    url = "https://mta-sts.%s/.well-known/mta-sts.txt: "
    assert info["webpki.rpi.example"].startswith(url % "webpki.rpi.example")
    assert "no alternative certificate subject name matches" in info["webpki.rpi.example"]
    assert info["invalid.rpi.example"] == (url % "invalid.rpi.example" +
                                           "Content-Type is not text/plain (HTTP 200, text/html)")
    assert info["missing.rpi.example"] == (url % "missing.rpi.example" +
                                           "HTTP status not 200 (HTTP 404, text/plain)")
