"""DKIM signing (issue 10 item 4): keys made by `cursus dkim keygen`, their TXT records
published in the test DNS server (dnsfixture), mail submitted with smtplib after AUTH and
with `cursus sendmail`, delivered to a Maildir and relayed to a sink, DSNs cursus writes
itself (from MAILER-DAEMON@ its hostname), and every signature checked by a verifier we
did not write: python3-dkim (dkimpy), asking the test DNS server over loopback for the
keys. Ed25519 (RFC 8463) and RSA-SHA256 both; a message changed after signing must fail,
unauthenticated port-25 mail and a From domain without a key are not signed."""
import json
import os
import re
import signal
import smtplib
import stat
import subprocess

import dkim
import pytest
from dnslib import QTYPE, DNSRecord

import cursus_testlib as lib
from dnsfixture import DnsServer
from relaypeers import sinks  # noqa: F401 (fixture)

ALICE = "alice@example.test"
DOMAIN = "example.test"
SINK = "127.0.0.91"
HOST = "mx.example.test"  # cursusd's hostname in the DSN tests: MAILER-DAEMON@HOST


def keygen(tmp, selector, *extra, domain=DOMAIN):
    path = os.path.join(str(tmp), "%s.pem" % selector)
    r = subprocess.run([lib.CURSUS, "dkim", "keygen", domain, selector, "--out", path] + list(extra),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return path, r.stdout


def txt_strings(record):
    """The character-strings of a printed `NAME. IN TXT "..." "..."` line."""
    return re.findall(r'"([^"]*)"', record)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dkimkeys")
    ed, ed_rec = keygen(tmp, "ed")
    rsa, rsa_rec = keygen(tmp, "rsa", "--rsa", "2048")
    return {"ed": (ed, ed_rec), "rsa": (rsa, rsa_rec), "dir": str(tmp)}


@pytest.fixture(scope="module")
def dns(tmp_path_factory, keys):
    d = tmp_path_factory.mktemp("dkimdns")
    zone = {"records": {
        "ed._domainkey.%s" % DOMAIN: {"TXT": [txt_strings(keys["ed"][1])]},
        "rsa._domainkey.%s" % DOMAIN: {"TXT": [txt_strings(keys["rsa"][1])]},
        # The same keys published for the hostname too, where DSNs come from.
        "ed._domainkey.%s" % HOST: {"TXT": [txt_strings(keys["ed"][1])]},
        "rsa._domainkey.%s" % HOST: {"TXT": [txt_strings(keys["rsa"][1])]},
    }}
    with DnsServer(d, zone) as server:
        yield server


def dnsfunc(dns):
    """dkimpy's DNS lookup, answered by the test DNS server over loopback."""
    def get_txt(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        answer = DNSRecord.parse(DNSRecord.question(name, "TXT").send("127.0.0.1", dns.port,
                                                                       timeout=timeout))
        for rr in answer.rr:
            if rr.rtype == QTYPE.TXT:
                return b"".join(rr.rdata.data)
        return None
    return get_txt


def signatures(msg):
    """The DKIM-Signature fields of msg (bytes), unfolded, in order."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return [f for f in lib.unfold(head).split("\r\n") if f.lower().startswith("dkim-signature:")]


def tag(field, name):
    m = re.search(r"[;:\s]%s=([^;]*)" % name, field)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def verify(msg, dns):
    """Each signature's verdict by dkimpy, with its a= and s=; a body hash mismatch is
    raised by dkimpy rather than returned, and is a "no" all the same."""
    def one(i):
        try:
            return bool(dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc(dns)))
        except dkim.DKIMException:
            return False
    return [(one(i), tag(f, "a"), tag(f, "s")) for i, f in enumerate(signatures(msg))]


def both_verify(msg, dns):
    assert verify(msg, dns) == [(True, "ed25519-sha256", "ed"), (True, "rsa-sha256", "rsa")], \
        signatures(msg)


def dkim_conf(keys, which=("ed", "rsa"), domain=DOMAIN):
    return "\n".join("dkim_key %s %s %s" % (domain, w, keys[w][0]) for w in which)


@pytest.fixture(scope="module")
def signer(tmp_path_factory, keys):
    srv = lib.Server(tmp_path_factory.mktemp("dkimsrv"), extra_conf=dkim_conf(keys))
    srv.start()
    yield srv
    problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


def submit(srv, msg, sender=ALICE, rcpts=(ALICE,), eight_bit=False, notify=None):
    """smtplib on 465 (implicit TLS), AUTH PLAIN, then the message as bytes."""
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=lib.tls_client_context(),
                          timeout=30) as c:
        c.login(sender, lib.PASSWORD)
        c.sendmail(sender, list(rcpts), msg, mail_options=["BODY=8BITMIME"] if eight_bit else [],
                   rcpt_options=["NOTIFY=" + notify] if notify else [])


def message(token, body=b"Hello.\r\n", extra=b"", sender=ALICE):
    return (b"From: Alice <%s>\r\nTo: Bob <bob@example.test>,\r\n  Carol <carol@example.test>\r\n"
            b"Subject: %s   \r\nMessage-ID: <%s@client.example>\r\n%s\r\n%s"
            % (sender.encode(), token.encode(), token.encode(), extra, body))


# -- keygen ---------------------------------------------------------------------------------

def test_keygen_writes_an_owner_only_key_and_prints_the_record(tmp_path):
    path, rec = keygen(tmp_path, "sel1")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    with open(path) as f:
        assert f.read().startswith("-----BEGIN PRIVATE KEY-----")
    assert re.fullmatch(r'sel1\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=ed25519; '
                        r'p=[A-Za-z0-9+/]{43}="\n', rec), rec
    # Never over an existing file (the old key may still be published).
    r = subprocess.run([lib.CURSUS, "dkim", "keygen", DOMAIN, "sel1", "--out", path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "already exists" in r.stderr
    # RSA: 2048 bits and more; the record in strings of at most 255 octets.
    rpath, rrec = keygen(tmp_path, "big", "--rsa", "3072")
    parts = txt_strings(rrec)
    assert len(parts) >= 2 and all(len(p) <= 255 for p in parts)
    assert "".join(parts).startswith("v=DKIM1; k=rsa; p=MII")
    r = subprocess.run([lib.CURSUS, "dkim", "keygen", DOMAIN, "weak", "--out",
                        str(tmp_path / "weak.pem"), "--rsa", "1024"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "shorter than 2048 bits are refused" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "weak.pem")
    for bad in (["nodomain!", "s"], [DOMAIN, "bad selector"]):
        r = subprocess.run([lib.CURSUS, "dkim", "keygen"] + bad + ["--out", str(tmp_path / "x")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr


# -- signed submissions -----------------------------------------------------------------------

BIG_LINE = b"x" * 200 + b"  \t trailing white space   \t"


@pytest.mark.parametrize("kind", ["plain", "folded-and-trailing", "long-lines", "8bitmime",
                                  "empty-body", "big-body"])
def test_submitted_mail_is_signed_with_both_keys(signer, dns, token, kind):
    body, extra, eight = b"Hello.\r\n", b"", False
    if kind == "folded-and-trailing":
        extra = b"Reply-To:\t carol@example.test  \r\nReferences: <a@b>\r\n   <c@d>\t\r\n"
        body = b"  indented\t and  spaced  \r\n\r\n\r\ntrailing empty lines\r\n\r\n\r\n\r\n"
    elif kind == "long-lines":
        body = (b"y" * 990 + b"\r\n") * 5
    elif kind == "8bitmime":
        extra = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" \
                b"Content-Transfer-Encoding: 8bit\r\n"
        body = "Grüße aus Köln, ça va ? Ünïcödé  \r\n".encode() * 20
        eight = True
    elif kind == "empty-body":
        body = b""
    elif kind == "big-body":
        # Past the 64 KiB chunks the session streams to the queue, with runs of white
        # space and line ends falling on every possible chunk boundary.
        lines = [BIG_LINE[: 60 + (i * 37) % 170] + b"\r\n" + b"\r\n" * (i % 3) for i in range(3000)]
        body = b"".join(lines) + b"\r\n" * 5
        assert len(body) > 4 * 64 * 1024
    submit(signer, message(token, body, extra), eight_bit=eight)
    msg = signer.wait_message(ALICE, token)
    sigs = signatures(msg)
    assert len(sigs) == 2 and msg.startswith(b"DKIM-Signature: "), msg[:600]
    for f in sigs:
        assert tag(f, "c") == "relaxed/relaxed" and tag(f, "d") == DOMAIN
        assert re.fullmatch(r"\d{10}", tag(f, "t"))
        h = tag(f, "h").split(":")
        # Over-signed: one more than present, so none can be added.
        assert h.count("from") == 2 and h.count("to") == 2 and h.count("subject") == 2, h
        assert "received" not in h and "message-id" in h
    both_verify(msg, dns)
    # The independent verifier can say no: the same message changed after signing.
    head, _, rest = msg.partition(b"\r\n\r\n")
    for changed in (head.replace(token.encode(), b"X" + token.encode()[1:], 1) + b"\r\n\r\n" + rest,
                    head + b"\r\n\r\n" + rest + b"one more line\r\n"):
        assert [v for v, _, _ in verify(changed, dns)] == [False, False]
    assert re.search(r"dkim id=[0-9a-f]{16} result=signed domain=example.test selectors=ed,rsa",
                     signer.log)


def test_local_submission_by_sendmail_is_signed_with_the_fields_cursus_adds(signer, dns, token):
    text = ("From: alice@example.test\nTo: alice@example.test\nSubject: %s\n\nfrom cron  \n" % token)
    r = subprocess.run([lib.CURSUS, "-c", signer.conf, "sendmail", ALICE], input=text.encode(),
                       capture_output=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    msg = signer.wait_message(ALICE, token)
    # Date and Message-ID came from cursus (the program gave none): signed too.
    assert re.search(rb"\r\nMessage-ID: <[0-9a-f]{16}@localhost>\r\n", msg), msg[:800]
    for f in signatures(msg):
        h = tag(f, "h").split(":")
        assert "date" in h and "message-id" in h and "received" not in h
    both_verify(msg, dns)


def test_relayed_mail_verifies_at_the_next_hop(start_server, keys, dns, sinks, token):  # noqa: F811
    port, events = sinks.aio(SINK)
    srv = start_server(relay_host="[%s]:%d" % (SINK, port), relay_tls="none",
                       extra_conf=dkim_conf(keys))
    submit(srv, message(token, b"to the world  \r\n\r\n"), rcpts=["bob@dest.example"])
    got = lambda: [e for e in events() if e["ev"] == "data" and token in e["content"]]  # noqa: E731
    assert lib.wait_until(got, 15), srv.log[-3000:]
    msg = got()[0]["content"].encode()
    assert msg.startswith("DKIM-Signature: ".encode())
    both_verify(msg, dns)


# -- mail cursus writes itself: DSNs ----------------------------------------------------------

def bouncer(start_server, peers, extra_conf):
    """A cursusd named HOST whose relay goes to a sink refusing nobody@dest.example (550)."""
    port, _ = peers.aio(SINK, "--reject-rcpt", "nobody@dest.example")
    return start_server(hostname=HOST, relay_host="[%s]:%d" % (SINK, port), relay_tls="none",
                        extra_conf=extra_conf)


def wait_dsn(srv, token, action, timeout=20):
    """The one DSN in alice's mailbox about the message of token reporting action."""
    line = b"\r\nAction: %s\r\n" % action.encode()
    found = lib.wait_until(lambda: [m for m in srv.messages_with(ALICE, token) if line in m],
                           timeout)
    assert found and len(found) == 1, srv.log[-3000:]
    assert b'\r\nFrom: "Mail Delivery System" <MAILER-DAEMON@%s>\r\n' % HOST.encode() \
        in b"\r\n" + found[0]
    return found[0]


def dsn_ids(srv):
    return re.findall(r"dsn id=[0-9a-f]{16} dsn_id=([0-9a-f]{16}) ", srv.log)


def test_bounce_is_signed_with_the_keys_of_the_hostname(start_server, keys, dns, sinks, token):  # noqa: F811
    srv = bouncer(start_server, sinks, dkim_conf(keys) + "\n" + dkim_conf(keys, domain=HOST))
    submit(srv, message(token), rcpts=["nobody@dest.example"])
    dsn = wait_dsn(srv, token, "failed")
    assert dsn.startswith(b"DKIM-Signature: ")
    assert [tag(f, "d") for f in signatures(dsn)] == [HOST, HOST]
    both_verify(dsn, dns)
    assert len(dsn_ids(srv)) == 1
    assert "dkim id=%s result=signed domain=%s selectors=ed,rsa" % (dsn_ids(srv)[0], HOST) in srv.log


def test_bounce_unsigned_without_a_key_then_signed_once_a_reload_adds_one(  # noqa: F811
        start_server, keys, dns, sinks, token):
    srv = bouncer(start_server, sinks, dkim_conf(keys))
    submit(srv, message(token + "-1"), rcpts=["nobody@dest.example"])
    assert signatures(wait_dsn(srv, token + "-1", "failed")) == []
    assert re.search(r'dkim id=%s result=unsigned reason="no key for the From domain" domain=%s'
                     % (dsn_ids(srv)[0], re.escape(HOST)), srv.log), srv.log[-2000:]
    srv.extra_conf = dkim_conf(keys) + "\n" + dkim_conf(keys, ("ed",), domain=HOST)
    srv._write_conf()
    srv.proc.send_signal(signal.SIGHUP)
    assert lib.wait_until(lambda: "reload event=done" in srv.log, 10), srv.log[-3000:]
    submit(srv, message(token + "-2"), rcpts=["nobody@dest.example"])
    assert verify(wait_dsn(srv, token + "-2", "failed"), dns) == [(True, "ed25519-sha256", "ed")]


def test_delay_warning_and_success_report_are_signed(start_server, keys, dns, token):
    srv = start_server(hostname=HOST, retry_min=1, retry_max=1, delay_warning_time=1,
                       extra_conf=dkim_conf(keys, ("ed",), domain=HOST))
    # A file where bob's Maildir would be: deferred (ENOTDIR) until it goes.
    blocked = srv.maildir("bob@example.test")
    os.makedirs(os.path.dirname(blocked), exist_ok=True)
    with open(blocked, "w") as f:
        f.write("not a maildir\n")
    submit(srv, message(token), rcpts=["bob@example.test"], notify="SUCCESS,DELAY")
    assert verify(wait_dsn(srv, token, "delayed"), dns) == [(True, "ed25519-sha256", "ed")]
    os.unlink(blocked)
    assert verify(wait_dsn(srv, token, "delivered"), dns) == [(True, "ed25519-sha256", "ed")]


# -- not signed -----------------------------------------------------------------------------

def test_unauthenticated_port_25_mail_is_not_signed(signer, token):
    with smtplib.SMTP("127.0.0.1", signer.ports["smtp"], timeout=30) as c:
        c.sendmail("someone@remote.example", [ALICE], message(token))
    msg = signer.wait_message(ALICE, token)
    assert signatures(msg) == []


def test_from_domain_without_a_key_is_not_signed_and_the_log_says_why(signer, token):
    submit(signer, message(token).replace(b"From: Alice <alice@example.test>",
                                          b"From: Alice <alice@elsewhere.example>"))
    msg = signer.wait_message(ALICE, token)
    assert signatures(msg) == []
    assert re.search(r'dkim id=[0-9a-f]{16} result=unsigned reason="no key for the From domain" '
                     r'domain=elsewhere.example', signer.log), signer.log[-2000:]


def test_one_selector_signs_alone(start_server, keys, dns, token):
    srv = start_server(extra_conf=dkim_conf(keys, ("rsa",)))
    submit(srv, message(token))
    msg = srv.wait_message(ALICE, token)
    assert verify(msg, dns) == [(True, "rsa-sha256", "rsa")]
    assert "dkim event=keys-loaded keys=1" in srv.log


# -- keys: privileges, reload, check ------------------------------------------------------

@lib.needs_root
def test_root_only_key_signs_after_the_privilege_drop_and_reloads(open_root, keys, dns, token):
    import shutil
    import signal
    root = os.path.join(open_root, "srv")
    os.makedirs(root)
    keydir = os.path.join(open_root, "keys")
    os.makedirs(keydir, mode=0o700)
    key = os.path.join(keydir, "ed.pem")
    shutil.copy(keys["ed"][0], key)
    os.chmod(key, 0o600)  # root's alone, in a directory only root may enter
    srv = lib.Server(root, user="nobody", group="nogroup",
                     user_db=os.path.join(root, "db", "users.db"),
                     extra_conf="dkim_key %s ed %s" % (DOMAIN, key))
    try:
        srv.start()
        assert "privileges event=dropped user=nobody" in srv.log
        submit(srv, message(token + "-1"))
        assert verify(srv.wait_message(ALICE, token + "-1"), dns) == [(True, "ed25519-sha256", "ed")]
        # SIGHUP: the mail user cannot read the key again; the one loaded at start stays.
        srv.proc.send_signal(signal.SIGHUP)
        assert lib.wait_until(lambda: "reload event=done" in srv.log, 10), srv.log[-3000:]
        assert "dkim event=key-kept domain=example.test selector=ed" in srv.log
        submit(srv, message(token + "-2"))
        assert verify(srv.wait_message(ALICE, token + "-2"), dns) == [(True, "ed25519-sha256", "ed")]
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)
    with open(key) as f:
        secret = f.read().split("\n")[1]
    assert secret not in srv.log


def test_reload_with_a_weak_key_changes_nothing(start_server, keys, dns, tmp_path, token):
    import signal
    weak = str(tmp_path / "weak.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", weak], check=True, capture_output=True, timeout=60)
    srv = start_server(extra_conf=dkim_conf(keys, ("ed",)))
    srv.extra_conf = dkim_conf(keys, ("ed",)) + "\ndkim_key %s weak %s" % (DOMAIN, weak)
    srv._write_conf()
    srv.proc.send_signal(signal.SIGHUP)
    assert lib.wait_until(lambda: "reload event=failed" in srv.log, 10), srv.log[-3000:]
    assert re.search(r"reload event=failed path=\S+ reason=\"\S+:\d+: dkim_key example.test weak: \S+/weak.pem: "
                     r"an RSA key of 1024 bits, weaker than the 2048 required\"", srv.log), srv.log[-2000:]
    submit(srv, message(token))
    assert verify(srv.wait_message(ALICE, token), dns) == [(True, "ed25519-sha256", "ed")]
    # At start the same key stops cursusd with the same words.
    srv.stop()
    r = subprocess.run([lib.CURSUSD, "-d", "-c", srv.conf], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "weaker than the 2048 required" in r.stderr, r.stderr
    srv.proc = None


def test_check_reports_missing_weak_unusable_and_exposed_keys(tmp_path, keys):
    weak, ec, open_key = (str(tmp_path / n) for n in ("weak.pem", "ec.pem", "open.pem"))
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", weak], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", ec], check=True, capture_output=True, timeout=60)
    with open(keys["ed"][0]) as src, open(open_key, "w") as dst:
        dst.write(src.read())
    os.chmod(open_key, 0o644)
    with open(str(tmp_path / "notakey.pem"), "w") as f:
        f.write("not a key\n")
    srv = lib.Server(tmp_path / "srv", extra_conf="\n".join([
        "dkim_key example.test weak %s" % weak, "dkim_key example.test ec %s" % ec,
        "dkim_key example.test gone %s" % (tmp_path / "missing.pem"),
        "dkim_key example.test open %s" % open_key,
        "dkim_key example.test junk %s" % (tmp_path / "notakey.pem"),
        "dkim_key example.test good %s" % keys["ed"][0]]))
    r = srv.admin("check", "--json", check=False)
    found = {(f["id"], f["message"].split()[3]) for f in json.loads(r.stdout)["findings"]
             if f["id"].startswith("dkim-")}
    assert found == {("dkim-key-weak", weak), ("dkim-key-unusable", ec),
                     ("dkim-key-missing", str(tmp_path / "missing.pem")),
                     ("dkim-key-permissions", open_key),
                     ("dkim-key-unreadable", str(tmp_path / "notakey.pem"))}, r.stdout
    assert r.returncode == 1
    with open(keys["ed"][0]) as f:
        assert f.read().split("\n")[1] not in r.stdout + r.stderr


def test_configuration_errors_name_the_line(tmp_path):
    srv = lib.Server(tmp_path / "srv", users=(), extra_conf="dkim_key example.test only-two\n"
                     "dkim_key example.test s1 /k\ndkim_key EXAMPLE.test s1 /k2\n"
                     "dkim_key example.test bad_selector! /k")
    r = srv.admin("check", check=False)
    assert r.returncode == 2
    assert "dkim_key: expected DOMAIN SELECTOR FILE, got 2 values" in r.stderr
    assert re.search(r":\d+: dkim_key: EXAMPLE.test s1 is already given on line \d+", r.stderr)
    assert "is not a selector" in r.stderr
