"""More of the relay issue end to end through cursusd (test_relay.py has the basics):
a kill -9 in the middle of deliveries, route blocks, per-sender relay credentials, DSN
parameters passed on, one daemon per queue, hold/release/bounce/delete of relayed mail,
and IPv6 next hops. The DNS server is real (dnsfixture) and every next hop is an
aiosmtpd sink (peers/relay_sink.py) on 127.0.0.x (or ::1) recording what it saw."""
import email
import email.policy
import json
import socket
import subprocess

import pytest

import cursus_testlib as lib
from dnsfixture import dns_server as dns  # noqa: F401 (the fixture, as "dns")
from relaypeers import certs, sinks  # noqa: F401 (fixtures)

ALICE = "alice@example.test"
BOB = "bob@example.test"


def mx_zone(domain, host, addr, rtype="A"):
    return {"records": {domain: {"MX": [[10, host]]}, host: {rtype: [addr]}}}


class Submitter:
    """One authenticated session on 465; send() returns the 250 reply's text."""

    def __init__(self, srv, user=ALICE):
        self.user = user
        self.c = lib.AuthSmtp(srv.ports["submissions"], tls=True)
        self.c.greeting()
        self.c.ehlo()
        self.c.auth_plain(user, lib.PASSWORD)

    def send(self, rcpts, token, mail_params=""):
        """rcpts: addresses, or (address, parameters) pairs."""
        self.c.expect("MAIL FROM:<%s>%s" % (self.user, mail_params), 250, "2.1.0")
        for r in rcpts:
            addr, params = (r, "") if isinstance(r, str) else r
            self.c.expect("RCPT TO:<%s>%s" % (addr, params), 250, "2.1.5")
        self.c.expect("DATA", 354)
        self.c.send(lib.make_body(token).encode() + b".\r\n")
        return self.c.expect(None, 250, "2.0.0").text

    def close(self):
        self.c.expect("QUIT", 221)
        self.c.close()


def submit(srv, rcpts, token, user=ALICE, mail_params=""):
    s = Submitter(srv, user)
    try:
        return s.send(rcpts, token, mail_params)
    finally:
        s.close()


def queue_id(srv, reply):
    ids = [i for i in srv.queue_files() if "." not in i and i in reply]
    assert len(ids) == 1, (reply, srv.queue_files())
    return ids[0]


def relay_server(start_server, dns, port, **opts):
    conf = dict(dns_resolver=dns.resolver, relay_port=port, retry_min=1, retry_max=2)
    conf.update(opts)
    return start_server(**conf)


def data_with(events, token):
    """The messages the sink received whose Message-ID is exactly <token@...>."""
    mark = "<%s@test.example>" % token
    return [e for e in events() if e["ev"] == "data" and mark in e["content"]]


def dsns(srv):
    return [m for m in srv._read_all(ALICE) if b"multipart/report" in m]


def rcpt_lines(srv, rcpt):
    return [l for l in srv.log.splitlines() if 'rcpt="%s"' % rcpt in l]


def wait_deferred(srv, rcpt, count=1, timeout=15):
    ok = lib.wait_until(lambda: len([l for l in rcpt_lines(srv, rcpt)
                                     if "result=deferred" in l]) >= count, timeout)
    assert ok, srv.log[-3000:]


# -- 1. kill -9 in the middle of deliveries --------------------------------------------

def test_kill9_during_delivery_loses_nothing(start_server, dns, sinks, token):
    n, conc = 40, 4
    port, events = sinks.aio("127.0.0.81", "--dot-delay", "0.3")
    dns.set_zone(mx_zone("dest.example", "mx1.dest.example", "127.0.0.81"))
    srv = relay_server(start_server, dns, port, relay_concurrency_init=conc,
                       relay_concurrency_max=conc)
    tokens = ["%s-%03d" % (token, i) for i in range(n)]
    s = Submitter(srv)
    try:
        for t in tokens:
            s.send(["bob@dest.example"], t)  # each 250: on disk, the daemon's to deliver
    finally:
        s.close()
    assert lib.wait_until(lambda: len([e for e in events() if e["ev"] == "data"]) >= 12, 30), \
        srv.log[-3000:]
    srv.kill9()
    before = events()
    srv.start()
    assert lib.wait_until(lambda: all(data_with(events, t) for t in tokens), 60), \
        "missing after restart: %s\n%s" % ([t for t in tokens if not data_with(events, t)],
                                           srv.log[-3000:])
    assert srv.wait_queue_empty(15), srv.queue_files()
    # What was in flight at the kill: the last message of each connection open then.
    last = {}
    for e in before:
        if e["ev"] == "data":
            last[e["peer"]] = e["content"]
    in_flight = {t for t in tokens for c in last.values() if "<%s@test.example>" % t in c}
    dups = sorted(t for t in tokens if len(data_with(events, t)) > 1)
    assert len(dups) <= conc and set(dups) <= in_flight, \
        "%d duplicates %s; in flight at the kill %s" % (len(dups), dups, sorted(in_flight))
    assert all(len(data_with(events, t)) <= 2 for t in tokens)
    print("kill -9 with %d in flight: %d duplicate(s)" % (len(in_flight), len(dups)))


# -- 2. a route block ------------------------------------------------------------------

def test_route_block_sends_its_domain_to_its_own_next_hop(start_server, dns, sinks, token):
    port_mx, ev_mx = sinks.aio("127.0.0.82")
    port_rt, ev_rt = sinks.aio("127.0.0.83")
    dns.set_zone(mx_zone("dest.example", "mx1.dest.example", "127.0.0.82"))
    srv = relay_server(start_server, dns, port_mx, extra_conf=(
        "route other.example {\n relay_host [127.0.0.83]:%d\n}" % port_rt))
    submit(srv, ["bob@dest.example", "carol@other.example"], token)
    assert lib.wait_until(lambda: data_with(ev_mx, token) and data_with(ev_rt, token), 15), \
        srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    assert [e["rcpts"] for e in data_with(ev_mx, token)] == [["bob@dest.example"]]
    assert [e["rcpts"] for e in data_with(ev_rt, token)] == [["carol@other.example"]]
    assert not [q for q in dns.queries() if "other.example" in q], dns.queries()
    carol = rcpt_lines(srv, "carol@other.example")[-1]
    assert "relay=127.0.0.83[127.0.0.83]" in carol and "result=relayed status=2.0.0" in carol
    assert 'route="relay 127.0.0.83 %d 1 route+20other.example"' % port_rt in carol, carol
    bob = rcpt_lines(srv, "bob@dest.example")[-1]
    assert "relay=mx1.dest.example[127.0.0.82]" in bob
    assert 'route="mx dest.example %d -"' % port_mx in bob


def two_policy_blocks(start_server, dns, sinks, certs, **opts):
    """One smart host whose certificate names another host, reached by two route
    blocks: may.example (may) and verify.example (verify, which it cannot pass)."""
    port, events = sinks.aio("127.0.0.64", "--cert", certs["othername"][0],
                             "--key", certs["othername"][1])
    hop = "[127.0.0.64]:%d" % port
    srv = relay_server(start_server, dns, port, extra_conf=(
        "route may.example {\n relay_host %s\n relay_tls may\n}\n"
        "route verify.example {\n relay_host %s\n relay_tls verify\n relay_ca %s\n}"
        % (hop, hop, certs["ca"])), **opts)
    return srv, events, port


def test_route_blocks_with_other_tls_policies_do_not_share_a_connection(
        start_server, dns, sinks, certs, token):
    # Mail for may.example goes (TLS, unverified) and leaves its connection idle; mail
    # for verify.example must open its own connection, fail the check and wait, not
    # ride the unverified one.
    srv, events, _ = two_policy_blocks(start_server, dns, sinks, certs, relay_idle_time=30)
    submit(srv, ["bob@may.example"], token + "-may")
    assert lib.wait_until(lambda: data_with(events, token + "-may"), 15), srv.log[-3000:]
    submit(srv, ["bob@verify.example"], token + "-verify")
    wait_deferred(srv, "bob@verify.example")
    line = [l for l in rcpt_lines(srv, "bob@verify.example") if "result=deferred" in l][0]
    assert "verified=no" in line and "status=4.7.5" in line, line
    assert not data_with(events, token + "-verify"), events()
    connects = [e for e in events() if e["ev"] == "connect"]
    assert len(connects) >= 2, connects


def test_a_route_blocks_failures_do_not_suspend_another_blocks_mail(
        start_server, dns, sinks, certs, token):
    # One failure marks a destination dead here (a cohort of one) for a minute. The
    # verify block's failure is its own: the may block's mail to the same host goes.
    srv, events, port = two_policy_blocks(start_server, dns, sinks, certs,
                                          relay_concurrency_init=1, retry_min=60,
                                          retry_max=120)
    submit(srv, ["bob@verify.example"], token + "-verify")
    wait_deferred(srv, "bob@verify.example")
    dest = "destination relay:[127.0.0.64]:%d" % port
    assert lib.wait_until(lambda: [l for l in srv.log.splitlines()
                                   if dest in l and "event=dead" in l], 5), srv.log[-3000:]
    submit(srv, ["bob@may.example"], token + "-may")
    assert lib.wait_until(lambda: data_with(events, token + "-may"), 15), srv.log[-3000:]
    may = rcpt_lines(srv, "bob@may.example")[-1]
    assert "result=relayed status=2.0.0" in may, may
    assert dest + " (route verify.example) event=dead" in srv.log, srv.log[-3000:]


# -- 3. relay credentials per sender ---------------------------------------------------

SMART = "127.0.0.63"  # in the test certificate's names
PW1, PW2 = "pw-one-for-user1", "pw-two-for-user2"


def test_per_sender_credentials_never_mixed(start_server, dns, sinks, certs, token):
    port, events = sinks.aio(SMART, "--auth", "--cert", certs["good"][0], "--key",
                             certs["good"][1], env={"SINK_USERS": "user1:%s\nuser2:%s\n"
                                                    % (PW1, PW2)})
    nexthop = "[%s]:%d" % (SMART, port)
    srv = start_server(dns_resolver=dns.resolver, relay_host=nexthop, relay_tls="verify",
                       relay_ca=certs["ca"], retry_min=1, retry_max=2)
    srv.admin("relay-auth", "add", nexthop, "user1", stdin=PW1 + "\n")
    srv.admin("relay-auth", "add", nexthop, "user2", "--sender", ALICE, stdin=PW2 + "\n")
    senders = {}
    # One at a time, each delivered before the next is submitted: the connection of
    # the one before is idle and cached (relay_idle_time), tempting to reuse.
    for i, who in enumerate((ALICE, BOB, BOB, ALICE, ALICE, BOB)):
        t = "%s-%d" % (token, i)
        submit(srv, ["rcpt%d@far.example" % i], t, user=who)
        senders[t] = who
        assert lib.wait_until(lambda: data_with(events, t), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    evs = events()
    auth_of = {}
    for e in evs:
        if e["ev"] == "auth":
            assert e["ok"] and e["tls"], e
            assert e["peer"] not in auth_of, "two AUTHs on one connection: %s" % evs
            auth_of[e["peer"]] = e["user"]
    want = {ALICE: "user2", BOB: "user1"}
    for t, who in senders.items():
        [d] = data_with(events, t)
        assert d["mail_from"] == who
        assert auth_of.get(d["peer"]) == want[who], \
            "%s's mail on a connection authenticated as %s" % (who, auth_of.get(d["peer"]))
    assert sorted(set(auth_of.values())) == ["user1", "user2"]
    per_conn = [[d["mail_from"] for d in evs if d["ev"] == "data" and d["peer"] == p]
                for p in auth_of]
    assert max(len(c) for c in per_conn) >= 2, "no connection was reused: %s" % per_conn
    assert PW1 not in srv.log and PW2 not in srv.log


# -- 4. DSN parameters passed on -------------------------------------------------------

def test_dsn_parameters_passed_on_exactly(start_server, dns, sinks, token):
    port, events = sinks.aio("127.0.0.84", "--dsn")
    dns.set_zone(mx_zone("dest.example", "mx1.dest.example", "127.0.0.84"))
    srv = relay_server(start_server, dns, port)
    submit(srv, [("bob@dest.example", " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@dest.example"),
                 ("carol@dest.example", " NOTIFY=NEVER")],
           token, mail_params=" RET=HDRS ENVID=QQ+2B314")
    assert lib.wait_until(lambda: data_with(events, token), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    [mail] = [e["arg"] for e in events() if e["ev"] == "mail_raw"]
    assert [w for w in mail.split() if w.startswith(("RET=", "ENVID="))] == \
        ["RET=HDRS", "ENVID=QQ+2B314"], mail
    rcpts = [e["arg"] for e in events() if e["ev"] == "rcpt_raw"]
    assert rcpts == ["TO:<bob@dest.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@dest.example",
                     "TO:<carol@dest.example> NOTIFY=NEVER"], rcpts
    # The next hop speaks DSN: the success report is its to send, not ours.
    assert dsns(srv) == []


# -- 5. one daemon per queue -----------------------------------------------------------

def test_second_daemon_on_the_same_queue_refuses(start_server, dns, tmp_path):
    srv = relay_server(start_server, dns, 2)
    conf2 = str(tmp_path / "second.conf")
    with open(srv.conf) as f:
        text = f.read()
    ports = [lib.free_port() for _ in srv.ports]
    for old, new in zip(srv.ports.values(), ports):
        text = text.replace("127.0.0.1:%d\n" % old, "127.0.0.1:%d\n" % new)
    with open(conf2, "w") as f:
        f.write(text)
    r = subprocess.run([lib.CURSUSD, "-d", "-c", conf2], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert ("queue: %s is in use by another cursusd (lock: Resource temporarily unavailable)"
            % srv.queue_dir) in r.stderr, r.stderr
    for p in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), timeout=2).close()
    assert srv.running()
    submit(srv, [BOB], "still-serving")
    srv.wait_message(BOB, "still-serving")


# -- 6. hold, release, bounce, delete --------------------------------------------------

def test_hold_release_bounce_delete(start_server, dns, sinks, token):
    port = lib.free_port()
    dns.set_zone({"records": {
        "hold.example": {"MX": [[10, "mx.hold.example"]]}, "mx.hold.example": {"A": ["127.0.0.85"]},
        "dead.example": {"MX": [[10, "mx.dead.example"]]}, "mx.dead.example": {"A": ["127.0.0.86"]}}})
    srv = relay_server(start_server, dns, port, retry_min=3600, retry_max=3600)
    ta, tb, tc, td = (token + x for x in ("-a", "-b", "-c", "-d"))
    a = queue_id(srv, submit(srv, ["bob@hold.example"], ta))
    b = queue_id(srv, submit(srv, ["carol@hold.example"], tb))
    wait_deferred(srv, "bob@hold.example")
    wait_deferred(srv, "carol@hold.example")
    _, events = sinks.aio_on("127.0.0.85", port)
    r = srv.admin("queue", "hold", a)
    assert r.stdout == "%s: held\n" % a
    r = srv.admin("queue", "flush")
    assert r.stdout == "flushed 1 message\n", r.stdout
    # b went with that flush; a, held, did not.
    assert lib.wait_until(lambda: data_with(events, tb), 15), srv.log[-3000:]
    assert lib.wait_until(lambda: b not in srv.queue_files(), 10)
    assert data_with(events, ta) == []
    [held] = json.loads(srv.admin("queue", "list", "--json").stdout)
    assert held["id"] == a and held["held"] is True, held
    r = srv.admin("queue", "release", a)
    assert r.stdout == "%s: released\n" % a
    # Released, it keeps its retry time (an hour away); a flush now counts it again.
    r = srv.admin("queue", "flush")
    assert r.stdout == "flushed 1 message\n", r.stdout
    assert lib.wait_until(lambda: data_with(events, ta), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)

    c = queue_id(srv, submit(srv, ["bob@dead.example"], tc))
    d = queue_id(srv, submit(srv, ["carol@dead.example"], td))
    wait_deferred(srv, "bob@dead.example")
    wait_deferred(srv, "carol@dead.example")
    r = srv.admin("queue", "delete", d)
    assert r.stdout == "%s: deleted\n" % d
    assert lib.wait_until(lambda: d not in srv.queue_files(), 10)
    r = srv.admin("queue", "bounce", c)
    assert r.stdout == "%s: bounced\n" % c
    assert lib.wait_until(lambda: dsns(srv), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    [raw] = dsns(srv)  # the bounce's; none for the deleted message
    assert tc.encode() in raw and td.encode() not in raw
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    status = msg.get_payload()[1].get_payload()
    groups = [{k.lower(): str(v) for k, v in g.items()} for g in status]
    assert len(groups) == 2
    assert groups[1]["final-recipient"] == "rfc822; bob@dead.example"
    assert groups[1]["action"] == "failed"
    assert groups[1]["status"] == "5.0.0"


# -- 7. IPv6 ---------------------------------------------------------------------------

def ipv6_port():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            return s.getsockname()[1]
    except OSError as e:
        pytest.skip("cannot bind ::1 on this machine: %s" % e)


def test_ipv6_next_hop_and_ipv4_only(start_server, dns, sinks, token):
    port = ipv6_port()
    _, events = sinks.aio_on("::1", port)
    dns.set_zone(mx_zone("six.example", "mx.six.example", "::1", "AAAA"))
    srv = relay_server(start_server, dns, port)
    submit(srv, ["bob@six.example"], token)
    assert lib.wait_until(lambda: data_with(events, token), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    assert data_with(events, token)[0]["peer"].startswith("::1:")
    line = rcpt_lines(srv, "bob@six.example")[-1]
    assert "relay=mx.six.example[::1]" in line and "result=relayed status=2.0.0" in line

    # With IPv4 only, the domain has no usable address: a permanent failure, said so.
    srv4 = relay_server(start_server, dns, port, relay_ip_family="ipv4")
    submit(srv4, ["bob@six.example"], token + "-v4")
    assert lib.wait_until(lambda: dsns(srv4), 15), srv4.log[-3000:]
    assert srv4.wait_queue_empty(10)
    line = rcpt_lines(srv4, "bob@six.example")[-1]
    assert "relay=-[-]" in line and "result=failed status=5.1.2" in line, line
    assert line.endswith('reply="no MX host of six.example has an IPv4 address"'), line
    [raw] = dsns(srv4)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    group = {k.lower(): str(v) for k, v in msg.get_payload()[1].get_payload()[1].items()}
    assert (group["action"], group["status"]) == ("failed", "5.1.2"), group
    assert group["diagnostic-code"] == "X-Cursus; no MX host of six.example has an IPv4 address"
    assert data_with(events, token + "-v4") == []
