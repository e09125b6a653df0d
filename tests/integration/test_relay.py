"""Mail that leaves the server, end to end (the relay issue): alice submits on 465 with
AUTH; cursusd routes, looks the domain up in a real DNS server on loopback
(dnsfixture) and delivers to real next hops on 127.0.0.x (aiosmtpd sinks recording what
they saw); failures come back to alice as RFC 3464 DSNs, parsed with Python's email
package; `cursus queue` shows and changes what waits."""
import email
import email.policy
import json
import re

import pytest

import cursus_testlib as lib
from dnsfixture import dns_server as dns  # noqa: F401 (the fixture, as "dns")
from relaypeers import SINK_PW, certs, sinks  # noqa: F401 (fixtures)

ALICE = "alice@example.test"


def zone(records):
    return {"records": records}


def submit(srv, rcpts, token, rcpt_params="", mail_params=""):
    """alice submits one message on 465 (implicit TLS, AUTH PLAIN)."""
    lib.submit_as(srv, ALICE, rcpts, lib.make_body(token), mail_params, rcpt_params)


def relay_server(start_server, dns, port, **opts):
    conf = dict(dns_resolver=dns.resolver, relay_port=port, retry_min=1, retry_max=2)
    conf.update(opts)
    return start_server(**conf)


def dsns(srv):
    return [m for m in srv._read_all(ALICE) if b"multipart/report" in m]


def wait_dsn(srv, timeout=15):
    assert lib.wait_until(lambda: dsns(srv), timeout), srv.log[-3000:]
    assert len(dsns(srv)) == 1, "%d DSNs" % len(dsns(srv))
    msg = email.message_from_bytes(dsns(srv)[0], policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    status = msg.get_payload()[1].get_payload()
    return msg, [{k.lower(): str(v) for k, v in b.items()} for b in status]


def delivered(events, token):
    return [e for e in events() if e["ev"] == "data" and token in e["content"]]


def queue_json(srv):
    r = srv.admin("queue", "list", "--json")
    return json.loads(r.stdout)


def test_mx_delivery_end_to_end(start_server, dns, sinks, token):
    port, events = sinks.aio("127.0.0.71")
    dns.set_zone(zone({"dest.example": {"MX": [[10, "mx1.dest.example"]]},
                       "mx1.dest.example": {"A": ["127.0.0.71"]}}))
    srv = relay_server(start_server, dns, port)
    submit(srv, ["bob@dest.example", "carol@dest.example"], token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    data = delivered(events, token)
    assert len(data) == 1  # both recipients in one transaction
    assert data[0]["mail_from"] == ALICE
    assert data[0]["rcpts"] == ["bob@dest.example", "carol@dest.example"]
    # No AUTH= to a next hop that offers no AUTH (RFC 4954 5).
    mail_raw = [e["arg"] for e in events() if e["ev"] == "mail_raw"]
    assert mail_raw and "AUTH=" not in mail_raw[-1], mail_raw
    assert srv.wait_queue_empty(10)
    line = [l for l in srv.log.splitlines() if 'rcpt="bob@dest.example"' in l][-1]
    assert "relay=mx1.dest.example[127.0.0.71]" in line
    assert "result=relayed status=2.0.0" in line
    assert 'route="mx dest.example %d -"' % port in line


def test_second_mx_when_the_first_refuses(start_server, dns, sinks, token):
    port, events = sinks.aio("127.0.0.73")
    dns.set_zone(zone({"dest.example": {"MX": [[10, "mx1.dest.example"],
                                               [20, "mx2.dest.example"]]},
                       "mx1.dest.example": {"A": ["127.0.0.72"]},  # nothing listens
                       "mx2.dest.example": {"A": ["127.0.0.73"]}}))
    srv = relay_server(start_server, dns, port)
    submit(srv, ["bob@dest.example"], token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    line = [l for l in srv.log.splitlines() if 'rcpt="bob@dest.example"' in l][-1]
    assert "relay=mx2.dest.example[127.0.0.73]" in line
    assert srv.wait_queue_empty(10)


def test_rejected_recipient_bounces_with_the_remote_reply(start_server, dns, sinks, token):
    port, events = sinks.aio("127.0.0.74", "--reject-rcpt", "nobody@dest.example")
    dns.set_zone(zone({"dest.example": {"MX": [[10, "mx1.dest.example"]]},
                       "mx1.dest.example": {"A": ["127.0.0.74"]}}))
    srv = relay_server(start_server, dns, port)
    submit(srv, ["nobody@dest.example", "bob@dest.example"], token)
    msg, groups = wait_dsn(srv)
    assert len(groups) == 2  # only the failed recipient is reported
    r = groups[1]
    assert r["final-recipient"] == "rfc822; nobody@dest.example"
    assert r["action"] == "failed"
    assert r["status"] == "5.1.1"
    assert r["remote-mta"] == "dns; mx1.dest.example"
    assert r["diagnostic-code"] == "smtp; 550 5.1.1 <nobody@dest.example>: no such user"
    assert delivered(events, token)[0]["rcpts"] == ["bob@dest.example"]
    assert srv.wait_queue_empty(10)


def test_null_mx_bounces_at_once(start_server, dns, token):
    dns.set_zone(zone({"nomail.example": {"MX": [[0, "."]]}}))
    srv = relay_server(start_server, dns, 2)
    submit(srv, ["bob@nomail.example"], token)
    msg, groups = wait_dsn(srv)
    assert groups[1]["status"] == "5.1.10"
    assert groups[1]["action"] == "failed"
    assert srv.wait_queue_empty(10)


def test_nxdomain_bounces_servfail_defers(start_server, dns, token):
    dns.set_zone(zone({"exists.example": {"A": ["127.0.0.75"]}}) | {"servfail": ["broken.example"]})
    srv = relay_server(start_server, dns, 2)
    submit(srv, ["bob@gone.example"], token + "-nx")
    msg, groups = wait_dsn(srv)
    assert groups[1]["final-recipient"] == "rfc822; bob@gone.example"
    assert groups[1]["status"] == "5.1.2"
    submit(srv, ["bob@broken.example"], token + "-sf")
    assert lib.wait_until(lambda: re.search(
        r'rcpt="bob@broken.example" .*result=deferred status=4\.4\.3', srv.log), 15), srv.log[-3000:]
    q = queue_json(srv)
    assert len(q) == 1
    assert q[0]["recipients"][0]["state"] == "deferred"


def test_notify_success_to_a_next_hop_without_dsn_is_relayed(start_server, dns, sinks, token):
    port, events = sinks.aio("127.0.0.76")
    dns.set_zone(zone({"dest.example": {"MX": [[10, "mx1.dest.example"]]},
                       "mx1.dest.example": {"A": ["127.0.0.76"]}}))
    srv = relay_server(start_server, dns, port)
    submit(srv, ["bob@dest.example"], token, rcpt_params=" NOTIFY=SUCCESS,FAILURE")
    msg, groups = wait_dsn(srv)
    assert groups[1]["action"] == "relayed"
    assert groups[1]["status"] == "2.0.0"


SMART = "127.0.0.62"  # in the test certificate's names


def smart_host(start_server, dns, certs, port, **opts):
    conf = dict(dns_resolver=dns.resolver, relay_host="[%s]:%d" % (SMART, port),
                relay_tls="verify", relay_ca=certs["ca"], retry_min=1, retry_max=2)
    conf.update(opts)
    return start_server(**conf)


def test_smart_host_with_auth_over_verified_tls(start_server, dns, sinks, certs, token):
    port, events = sinks.aio(SMART, "--auth", "--cert", certs["good"][0],
                             "--key", certs["good"][1])
    srv = smart_host(start_server, dns, certs, port)
    srv.admin("relay-auth", "add", "[%s]:%d" % (SMART, port), "relayuser", stdin=SINK_PW + "\n")
    submit(srv, ["bob@far.example"], token)
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    auths = [e for e in events() if e["ev"] == "auth"]
    assert len(auths) == 1 and auths[0]["ok"] and auths[0]["tls"]
    assert auths[0]["mech"] == "PLAIN"
    # The submitter's identity is passed on to the smart host we authenticated to.
    mail_raw = [e["arg"] for e in events() if e["ev"] == "mail_raw"]
    assert "AUTH=alice@example.test" in mail_raw[-1].split(), mail_raw
    assert delivered(events, token)[0]["tls"]
    line = [l for l in srv.log.splitlines() if 'rcpt="bob@far.example"' in l][-1]
    assert "verified=yes" in line and "tls=TLSv1.3" in line
    assert SINK_PW not in srv.log
    assert dns.queries() == [] or all("far.example" not in q for q in dns.queries())


def test_smart_host_535_defers_and_is_shown(start_server, dns, sinks, certs, token):
    port, events = sinks.aio(SMART, "--auth", "--auth-fail", "--cert",
                             certs["good"][0], "--key", certs["good"][1])
    srv = smart_host(start_server, dns, certs, port, retry_min=3600, retry_max=3600)
    srv.admin("relay-auth", "add", "[%s]:%d" % (SMART, port), "relayuser", stdin=SINK_PW + "\n")
    submit(srv, ["bob@far.example"], token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    q = queue_json(srv)
    r = q[0]["recipients"][0]
    assert r["state"] == "deferred"
    assert "535" in r["reply"], r
    assert [e for e in events() if e["ev"] == "data"] == []
    assert SINK_PW not in srv.log


def test_unverified_certificate_never_gets_the_password(start_server, dns, sinks, certs, token):
    # The sink's certificate is for another name: verify fails, nothing is sent.
    port, events = sinks.aio(SMART, "--auth", "--cert", certs["othername"][0],
                             "--key", certs["othername"][1])
    srv = smart_host(start_server, dns, certs, port, retry_min=3600, retry_max=3600)
    srv.admin("relay-auth", "add", "[%s]:%d" % (SMART, port), "relayuser", stdin=SINK_PW + "\n")
    submit(srv, ["bob@far.example"], token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    assert [e for e in events() if e["ev"] in ("auth", "mail", "data")] == []
    r = queue_json(srv)[0]["recipients"][0]
    assert "hostname mismatch" in r["reply"], r


def test_flush_delivers_at_once(start_server, dns, sinks, token):
    dns.set_zone(zone({"dest.example": {"MX": [[10, "mx1.dest.example"]]},
                       "mx1.dest.example": {"A": ["127.0.0.78"]}}))
    port = lib.free_port()
    srv = relay_server(start_server, dns, port, retry_min=3600, retry_max=3600)
    submit(srv, ["bob@dest.example"], token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    # The next hop comes up; nothing would happen for an hour without a flush.
    events = None
    for _ in range(5):
        try:
            p2, events = sinks.aio_on("127.0.0.78", port)
            break
        except OSError:
            pass
    r = srv.admin("queue", "flush")
    assert r.stdout.strip() == "flushed 1 message", r.stdout
    assert lib.wait_until(lambda: delivered(events, token), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)


def test_dead_destination_is_not_hammered(start_server, dns, token):
    dns.set_zone(zone({"dead.example": {"MX": [[10, "mx.dead.example"]]},
                       "mx.dead.example": {"A": ["127.0.0.79"]}}))
    srv = relay_server(start_server, dns, lib.free_port(), relay_concurrency_init=2,
                       retry_min=3600, retry_max=3600)
    for i in range(6):
        submit(srv, ["bob@dead.example"], "%s-%d" % (token, i))
    assert lib.wait_until(lambda: srv.log.count('rcpt="bob@dead.example"') >= 6, 20), srv.log[-3000:]
    assert "destination mx:dead.example:" in srv.log and "event=dead" in srv.log
    lines = [l for l in srv.log.splitlines() if 'rcpt="bob@dead.example"' in l]
    suspended = [l for l in lines if "delivery temporarily suspended" in l]
    tried = [l for l in lines if l not in suspended]
    assert len(lines) == 6
    # The first cohort (the initial concurrency of 2) found it dead; the rest waited.
    assert len(tried) == 2, "\n".join(lines)
    assert all("result=deferred" in l and "Connection refused" in l for l in lines), lines


def test_notify_success_to_a_next_hop_with_dsn_is_left_to_it(start_server, dns, sinks, token):
    # RFC 3461 5.2.2.1: relayed to a server that offers DSN, NOTIFY is passed on and
    # the success report is that server's to send; ours would be a second one, and
    # would claim a delivery that did not happen here.
    port = sinks.smtp_sink("127.0.0.77")
    dns.set_zone(zone({"dest.example": {"MX": [[10, "mx1.dest.example"]]},
                       "mx1.dest.example": {"A": ["127.0.0.77"]}}))
    srv = relay_server(start_server, dns, port)
    submit(srv, ["bob@dest.example"], token, rcpt_params=" NOTIFY=SUCCESS,FAILURE")
    assert srv.wait_queue_empty(15), srv.log[-3000:]
    line = [l for l in srv.log.splitlines() if 'rcpt="bob@dest.example"' in l][-1]
    assert "result=delivered status=2.0.0" in line
    assert dsns(srv) == []


def test_a_domain_that_does_not_exist_is_an_answer_not_an_outage(start_server, dns, token):
    # With a cohort of one, an outage would mark the destination dead after the first
    # message and defer the second; NXDOMAIN must bounce every one of them at once.
    srv = relay_server(start_server, dns, 2, relay_concurrency_init=1)
    for i in range(3):
        submit(srv, ["bob@typo.example"], "%s-%d" % (token, i))
    assert lib.wait_until(lambda: len(dsns(srv)) == 3, 15), srv.log[-3000:]
    assert "event=dead" not in srv.log
    assert srv.log.count("result=failed status=5.1.2") == 3
    assert srv.wait_queue_empty(10)
