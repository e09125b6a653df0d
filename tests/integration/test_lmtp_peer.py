"""The LMTP client's dialogue and its per-recipient outcomes when the server breaks
after the final dot, against a scripted peer (peers/broken_lmtp.py) on a UNIX socket:
what Dovecot does not do on demand."""
import os
import re
import shutil
import sys
import tempfile

import pytest

import cursus_testlib as lib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "peers"))
import broken_lmtp  # noqa: E402

ALICE, BOB = "alice@example.test", "bob@example.test"


@pytest.fixture
def lmtp_peer():
    made = []
    d = tempfile.mkdtemp(prefix="cursus-lmtp-", dir="/tmp")

    def factory(behaviour):
        p = broken_lmtp.Peer(behaviour, os.path.join(d, "lmtp%d" % len(made)))
        made.append(p)
        return p

    try:
        yield factory
    finally:
        for p in made:
            p.close()
        shutil.rmtree(d, ignore_errors=True)


def server_for(start_server, peer, **opts):
    conf = dict(lmtp="unix:" + peer.path, retry_min=3600, retry_max=3600, relay_idle_time=30)
    conf.update(opts)
    return start_server(**conf)


def outcome(srv, rcpt, timeout=15):
    pat = re.compile(r'delivery id=\S+ rcpt="%s" .*' % re.escape(rcpt))
    found = lib.wait_until(lambda: pat.findall(srv.log), timeout)
    assert found, "no delivery of %s:\n%s" % (rcpt, srv.log[-3000:])
    return found[0]


def test_dialog_lhlo_pipelined_final_mailboxes(start_server, lmtp_peer, token):
    peer = lmtp_peer("ok")
    srv = server_for(start_server, peer, aliases=[("sales@example.test", ALICE)])
    lib.submit_as(srv, ALICE, ["sales@example.test", BOB], lib.make_body(token))
    assert srv.wait_queue_empty(15), srv.log[-3000:]
    assert lib.wait_until(lambda: "RSET" in peer.commands(), 10), peer.commands()
    # The alias went as its mailbox, the full address; RSET readies the connection
    # for the next message.
    assert peer.commands() == ["LHLO localhost", "MAIL FROM:<alice@example.test>",
                               "RCPT TO:<alice@example.test>", "RCPT TO:<bob@example.test>",
                               "DATA", "RSET"]
    for rcpt in ("sales@example.test", BOB):
        assert "result=delivered status=2.0.0" in outcome(srv, rcpt)


def test_hangup_after_the_first_reply(start_server, lmtp_peer, token):
    """alice's reply came: she is delivered. bob's did not: deferred (the message may
    reach him twice rather than never, RFC 5321 6.1)."""
    peer = lmtp_peer("hangup")
    srv = server_for(start_server, peer)
    lib.submit_as(srv, ALICE, [ALICE, BOB], lib.make_body(token))
    a = outcome(srv, ALICE)
    assert 'result=delivered status=2.0.0' in a and 'reply="250 2.0.0 <alice@example.test> saved"' in a, a
    b = outcome(srv, BOB)
    assert "result=deferred status=4.4.2" in b and "connection lost during the message" in b, b


def test_421_for_one_recipient(start_server, lmtp_peer, token):
    peer = lmtp_peer("421")
    srv = server_for(start_server, peer)
    lib.submit_as(srv, ALICE, [ALICE, BOB], lib.make_body(token))
    assert "result=delivered" in outcome(srv, ALICE)
    b = outcome(srv, BOB)
    assert "result=deferred status=4.3.2" in b and \
        'reply="421 4.3.2 <bob@example.test> shutting down"' in b, b
    assert len([f for f in srv.queue_files() if "." not in f]) == 1
