"""Reload by SIGHUP (issue 9, item 4): cursusd re-reads its whole configuration and
applies what can change without a restart to what starts from then on (a session keeps
the configuration it started with); options that need a restart are named in one warning
and keep their running values; a configuration that does not load changes nothing.
Every wait is on the reload's own log line."""
import hashlib
import os
import signal
import socket
import ssl

import cursus_testlib as lib
from relaypeers import sinks  # noqa: F401 (fixture)
from testca import TestCA

ALICE = "alice@example.test"


def reload(srv, event="done"):
    """SIGHUP, then wait for the reload's outcome line and check it is "reload
    event=EVENT" (done or failed)."""
    def outcomes():
        log = srv.log
        return log.count("reload event=done "), log.count("reload event=failed ")
    before = outcomes()
    srv.proc.send_signal(signal.SIGHUP)
    lib.wait_until(lambda: outcomes() != before, 10, what="the reload's outcome")
    done, failed = outcomes()
    want = (before[0] + 1, before[1]) if event == "done" else (before[0], before[1] + 1)
    assert (done, failed) == want, srv.log[-3000:]


def rewrite(srv, replace=()):
    """Writes srv's configuration again (after changes to global_opts, listener_opts,
    extra_conf or ports), then applies textual replacements [(old, new), ...]."""
    srv._write_conf()
    with open(srv.conf) as f:
        text = f.read()
    for old, new in replace:
        assert old in text, (old, text)
        text = text.replace(old, new)
    with open(srv.conf, "w") as f:
        f.write(text)


def size_of(ehlo_reply):
    [size] = [l for l in ehlo_reply.lines if l.startswith("SIZE ")]
    return int(size.split()[1])


def fingerprint(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def submit_local(c, token, size=0, rcpt=ALICE):
    """A message to a local user over an open, greeted session."""
    body = lib.make_body(token, text=("x" * 78 + "\r\n") * (max(0, size - 200) // 80) + "\r\n")
    return c.send_message(ALICE, [rcpt], body)


# -- TLS certificate -------------------------------------------------------------------

def test_new_certificate_served_to_new_connections_old_ones_keep_theirs(start_server, tmp_path,
                                                                       token):
    srv = start_server()
    old_tls = lib.AuthSmtp(srv.ports["submissions"], tls=True)
    old_plain = lib.Smtp(srv.ports["smtp"])
    try:
        old_tls.greeting()
        old_tls.ehlo()
        old_tls.auth_plain(ALICE, lib.PASSWORD)
        old_fp = fingerprint(old_tls.sock)
        old_plain.greeting()
        # Renewed in place, as certbot and friends do.
        ca = TestCA(tmp_path, "reload test CA")
        cert, key = ca.leaf("renewed", ["localhost"])
        for src, dst in ((cert, "cert.pem"), (key, "key.pem")):
            with open(src, "rb") as f, open(os.path.join(srv.root, "tls", dst), "wb") as g:
                g.write(f.read())
        with open(cert, "rb") as f:
            new_fp = hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read().decode())).hexdigest()
        assert new_fp != old_fp
        reload(srv)

        with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
            c.greeting()
            assert fingerprint(c.sock) == new_fp
        with lib.Smtp(srv.ports["smtp"]) as c:
            c.greeting()
            c.ehlo()
            c.starttls()
            assert fingerprint(c.sock) == new_fp

        # Opened before the reload: the TLS session goes on, and a STARTTLS now still
        # gets the certificate the session started with.
        submit_local(old_tls, token + "a")
        old_tls.expect("QUIT", 221, "2.0.0")
        old_plain.ehlo()
        old_plain.starttls()
        assert fingerprint(old_plain.sock) == old_fp
        old_plain.ehlo()
        submit_local(old_plain, token + "b")
        old_plain.expect("QUIT", 221, "2.0.0")
    finally:
        old_tls.close()
        old_plain.close()
    srv.wait_message(ALICE, token + "a")
    srv.wait_message(ALICE, token + "b")
    assert "tls=loaded" in srv.log


def test_unreadable_key_keeps_the_running_certificate(start_server, token):
    srv = start_server()
    with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
        c.greeting()
        fp = fingerprint(c.sock)
    with open(os.path.join(srv.root, "tls", "key.pem"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    srv.global_opts["max_message_size"] = 4096  # must not be applied either
    rewrite(srv)
    reload(srv, "failed")
    assert "cannot load certificate" in srv.log
    with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
        c.greeting()
        assert fingerprint(c.sock) == fp
        assert size_of(c.ehlo()) == 35 * 1024 * 1024
        c.auth_plain(ALICE, lib.PASSWORD)
        submit_local(c, token)
        c.expect("QUIT", 221, "2.0.0")
    srv.wait_message(ALICE, token)


# -- limits ------------------------------------------------------------------------------

def test_message_size_limit_follows_the_reload(start_server, token):
    srv = start_server(max_message_size=20000)
    with lib.Smtp(srv.ports["smtp"]) as before:
        before.greeting()
        assert size_of(before.ehlo()) == 20000
        srv.global_opts["max_message_size"] = 40000
        rewrite(srv)
        reload(srv)
        with lib.Smtp(srv.ports["smtp"]) as c:
            c.greeting()
            assert size_of(c.ehlo()) == 40000
            c.expect("MAIL FROM:<%s> SIZE=30000" % ALICE, 250, "2.1.0")
            c.expect("RSET", 250)
            submit_local(c, token + "big", size=30000)
            c.expect("QUIT", 221)
        # The session opened before keeps its limit to the end.
        assert size_of(before.ehlo()) == 20000
        before.expect("MAIL FROM:<%s> SIZE=30000" % ALICE, 552, "5.3.4")
        before.expect("QUIT", 221)
    srv.wait_message(ALICE, token + "big")

    srv.global_opts["max_message_size"] = 10000
    rewrite(srv)
    reload(srv)
    with lib.Smtp(srv.ports["smtp"]) as c:
        c.greeting()
        assert size_of(c.ehlo()) == 10000
        c.expect("MAIL FROM:<%s> SIZE=15000" % ALICE, 552, "5.3.4")
        c.expect("QUIT", 221)


def test_removed_mechanism_leaves_ehlo(start_server):
    srv = start_server(auth_mechanisms="PLAIN LOGIN")
    with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
        c.greeting()
        assert lib.auth_mechanisms(c.ehlo()) == ["PLAIN", "LOGIN"]
    srv.global_opts["auth_mechanisms"] = "PLAIN"
    rewrite(srv)
    reload(srv)
    with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
        c.greeting()
        assert lib.auth_mechanisms(c.ehlo()) == ["PLAIN"]
        c.expect("AUTH LOGIN", 504, "5.5.4")
        c.auth_plain(ALICE, lib.PASSWORD)


# -- local domains and routes --------------------------------------------------------------

def test_added_local_domain_accepts_its_recipients(start_server, token):
    srv = start_server()
    carol = "carol@new.test"
    rewrite(srv, [("local_domains example.test localhost",
                   "local_domains example.test localhost new.test")])
    srv.admin("user", "add", carol, stdin=lib.PASSWORD + "\n")
    with lib.Smtp(srv.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<%s>" % carol, 554, "5.7.1")  # not reloaded yet
        c.expect("QUIT", 221)
    reload(srv)
    with lib.Smtp(srv.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        submit_local(c, token, rcpt=carol)
        c.expect("QUIT", 221)
    srv.wait_message(carol, token)


def test_changed_route_sends_new_mail_to_the_new_next_hop(start_server, sinks, token):  # noqa: F811
    port1, ev1 = sinks.aio("127.0.0.91")
    port2, ev2 = sinks.aio("127.0.0.92")
    srv = start_server(retry_min=1, retry_max=2,
                       extra_conf="route far.example {\n relay_host [127.0.0.91]:%d\n}" % port1)

    def send(t):
        with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
            c.greeting()
            c.ehlo()
            c.auth_plain(ALICE, lib.PASSWORD)
            c.send_message(ALICE, ["bob@far.example"], lib.make_body(t))
            c.expect("QUIT", 221)

    def got(events, t):
        return [e for e in events() if e["ev"] == "data" and "<%s@test.example>" % t in e["content"]]

    send(token + "a")
    assert lib.wait_until(lambda: got(ev1, token + "a"), 15), srv.log[-3000:]
    srv.extra_conf = "route far.example {\n relay_host [127.0.0.92]:%d\n}" % port2
    rewrite(srv)
    reload(srv)
    send(token + "b")
    assert lib.wait_until(lambda: got(ev2, token + "b"), 15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)
    assert got(ev1, token + "b") == [] and got(ev2, token + "a") == []


def test_relay_ca_renewed_in_place_is_read_again(start_server, sinks, tmp_path, token):  # noqa: F811
    """A route's TLS policy is looked up at each delivery, and the CA file is read
    again after a reload: mail deferred for an unverifiable certificate goes out."""
    for d in ("right", "wrong"):
        os.mkdir(str(tmp_path / d))
    right = TestCA(tmp_path / "right", "the next hop's CA")
    wrong = TestCA(tmp_path / "wrong", "another CA")
    cert, key = right.leaf("hop", ["relay.example"], ["127.0.0.95"])
    port, events = sinks.aio("127.0.0.95", "--cert", cert, "--key", key)
    ca_file = str(tmp_path / "relay-ca.pem")
    with open(wrong.ca, "rb") as f, open(ca_file, "wb") as g:
        g.write(f.read())
    srv = start_server(retry_min=1, retry_max=1, extra_conf=(
        "route far.example {\n relay_host [127.0.0.95]:%d\n relay_tls verify\n relay_ca %s\n}"
        % (port, ca_file)))
    with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
        c.greeting()
        c.ehlo()
        c.auth_plain(ALICE, lib.PASSWORD)
        c.send_message(ALICE, ["bob@far.example"], lib.make_body(token))
        c.expect("QUIT", 221)
    assert lib.wait_until(lambda: 'rcpt="bob@far.example"' in srv.log and
                          "result=deferred" in srv.log, 15), srv.log[-3000:]
    with open(right.ca, "rb") as f, open(ca_file, "wb") as g:
        g.write(f.read())
    reload(srv)
    mark = "<%s@test.example>" % token
    assert lib.wait_until(lambda: [e for e in events() if e["ev"] == "data" and mark in e["content"]],
                          15), srv.log[-3000:]
    assert srv.wait_queue_empty(10)


def test_cached_relay_connections_are_not_reused_after_a_reload(start_server, sinks, token):  # noqa: F811
    """A connection kept for reuse was opened under the old TLS policy: the first
    delivery after a reload opens a new one."""
    port, events = sinks.aio("127.0.0.96")
    srv = start_server(relay_idle_time=30, extra_conf=(
        "route far.example {\n relay_host [127.0.0.96]:%d\n}" % port))

    def send_and_wait(t):
        with lib.AuthSmtp(srv.ports["submissions"], tls=True) as c:
            c.greeting()
            c.ehlo()
            c.auth_plain(ALICE, lib.PASSWORD)
            c.send_message(ALICE, ["bob@far.example"], lib.make_body(t))
            c.expect("QUIT", 221)
        mark = "<%s@test.example>" % t
        assert lib.wait_until(lambda: [e for e in events() if e["ev"] == "data" and
                                       mark in e["content"]], 15), srv.log[-3000:]

    def connects():
        return [e["ev"] for e in events()].count("connect")

    send_and_wait(token + "a")
    send_and_wait(token + "b")
    assert connects() == 1  # reused
    reload(srv)
    send_and_wait(token + "c")
    assert connects() == 2


# -- what needs a restart, and what does not load -------------------------------------------

def test_listener_address_change_is_named_and_the_old_listener_serves(start_server, token):
    srv = start_server(worker_threads=4)
    old_port = srv.ports["smtp"]
    new_port = lib.free_port()
    srv.ports["smtp"] = new_port
    srv.global_opts["worker_threads"] = 2
    srv.global_opts["max_message_size"] = 30000  # applied all the same
    rewrite(srv)
    srv.ports["smtp"] = old_port
    reload(srv)
    warn = [l for l in srv.log.splitlines() if "reload event=restart-needed" in l]
    assert len(warn) == 1, warn
    assert 'options="worker_threads, listener smtp address"' in warn[0], warn
    assert "restart_needed=2" in srv.log
    with lib.Smtp(old_port) as c:
        c.greeting()
        assert size_of(c.ehlo()) == 30000
        submit_local(c, token)
        c.expect("QUIT", 221)
    srv.wait_message(ALICE, token)
    try:
        socket.create_connection(("127.0.0.1", new_port), timeout=2).close()
        bound = True
    except OSError:
        bound = False
    assert not bound, "the new address is bound only at a restart"


def test_broken_configuration_changes_nothing(start_server, token):
    srv = start_server(max_message_size=20000)
    srv.global_opts["max_message_size"] = 40000
    rewrite(srv, [("local_domains example.test localhost",
                   "local_domains example.test localhost new.test\nmax_recipients banana")])
    reload(srv, "failed")
    errors = [l for l in srv.log.splitlines() if "reload event=error " in l]
    assert errors and all(srv.conf in l for l in errors), errors
    assert any("max_recipients" in l for l in errors), errors
    assert "keeping the running configuration" in srv.log
    with lib.Smtp(srv.ports["smtp"]) as c:
        c.greeting()
        assert size_of(c.ehlo()) == 20000
        c.expect("MAIL FROM:<%s>" % ALICE, 250)
        c.expect("RCPT TO:<carol@new.test>", 554, "5.7.1")
        c.expect("RSET", 250)
        submit_local(c, token)
        c.expect("QUIT", 221)
    srv.wait_message(ALICE, token)
    # Fixed, it loads.
    rewrite(srv)
    reload(srv)
    with lib.Smtp(srv.ports["smtp"]) as c:
        c.greeting()
        assert size_of(c.ehlo()) == 40000


def test_reloads_in_the_middle_of_transactions_and_deliveries(start_server, sinks, token):  # noqa: F811
    """Sessions mid-transaction and deliveries in flight across many reloads: each
    keeps the configuration it started with (under ASan: nothing read after free)."""
    ports = [sinks.aio("127.0.0.93")[0], sinks.aio("127.0.0.94")[0]]
    routes = ["route far.example {\n relay_host [127.0.0.%d]:%d\n}" % (93 + i, p)
              for i, p in enumerate(ports)]
    srv = start_server(retry_min=1, retry_max=2, extra_conf=routes[0])
    rounds = 12
    for i in range(rounds):
        local = lib.Smtp(srv.ports["smtp"])
        relay = lib.AuthSmtp(srv.ports["submissions"], tls=True)
        try:
            local.greeting()
            local.ehlo()
            local.expect("MAIL FROM:<%s>" % ALICE, 250)
            local.expect("RCPT TO:<%s>" % ALICE, 250)
            relay.greeting()
            relay.ehlo()
            relay.auth_plain(ALICE, lib.PASSWORD)
            relay.expect("MAIL FROM:<%s>" % ALICE, 250)
            relay.expect("RCPT TO:<bob@far.example>", 250)
            srv.extra_conf = routes[(i + 1) % 2]
            srv.global_opts["max_message_size"] = 20000 + 1000 * i
            rewrite(srv)
            reload(srv)
            for c, t in ((local, "%s-l%02d" % (token, i)), (relay, "%s-r%02d" % (token, i))):
                c.expect("DATA", 354)
                c.send(lib.make_body(t).encode() + b".\r\n")
                c.expect(None, 250, "2.0.0")
                c.expect("QUIT", 221)
        finally:
            local.close()
            relay.close()
    for i in range(rounds):
        srv.wait_message(ALICE, "%s-l%02d" % (token, i))
    assert srv.wait_queue_empty(20), srv.log[-3000:]
    assert srv.log.count("reload event=done ") == rounds


@lib.needs_root
def test_after_the_privilege_drop_the_key_must_be_readable_by_the_mail_user(open_root):
    import grp
    root = os.path.join(open_root, "srv")
    srv = lib.Server(root, user="nobody", group="nogroup",
                     user_db=os.path.join(root, "db", "users.db"))
    try:
        srv.start()
        tls_dir = os.path.join(root, "tls")
        key = os.path.join(tls_dir, "key.pem")
        gid = grp.getgrnam("nogroup").gr_gid
        # The self-signed pair made at start: the key readable by the mail group (and
        # its directory passable), so that a reload can read it again.
        for p, mode in ((tls_dir, 0o750), (key, 0o640)):
            st = os.stat(p)
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, gid, mode), p
        # A key only root can read: the reload fails and changes nothing.
        os.chmod(key, 0o600)
        srv.global_opts["max_message_size"] = 30000
        rewrite(srv)
        reload(srv, "failed")
        assert "cannot load certificate" in srv.log
        with lib.Smtp(srv.ports["smtp"]) as c:
            c.greeting()
            assert size_of(c.ehlo()) == 35 * 1024 * 1024
        # Readable by the mail group, as docs/reload.md asks: the reload goes through.
        os.chmod(key, 0o640)
        reload(srv)
        with lib.Smtp(srv.ports["smtp"]) as c:
            c.greeting()
            assert size_of(c.ehlo()) == 30000
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)
