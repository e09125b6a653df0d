"""A real Postfix as cursusd's authenticated smart host (the relay issue): Debian's
Postfix 3.7 runs under the test's temporary directory as a submission service that
requires STARTTLS (a certificate from the test CA) and Cyrus SASL AUTH against a sasldb
made by saslpasswd2, and relays what authenticated clients send to an aiosmtpd sink,
where the test sees the message arrive. Postfix needs root (mail_owner postfix)."""
import os
import pwd
import re
import signal
import smtplib
import ssl
import subprocess

import pytest

import cursus_testlib as lib
from relaypeers import certs, sinks, wait_listening  # noqa: F401 (fixtures)
from test_relay import ALICE, delivered, queue_json, submit

SMART = "127.0.0.65"  # in the test certificate's names
FINAL = "127.0.0.69"
REALM = "relay.example"
# user@realm: Cyrus splits it, and Postfix logs the whole of it as sasl_username.
RELAY_USER = "relayuser@" + REALM
RELAY_PW = "pf-Relay-pw-5tq9"

if os.geteuid() != 0 or not os.access("/usr/sbin/postfix", os.X_OK):
    pytest.skip("a real Postfix needs root and the postfix package", allow_module_level=True)

MAIN_CF = """\
compatibility_level = 3.6
mail_owner = postfix
setgid_group = postdrop
meta_directory = /etc/postfix
queue_directory = {queue}
# Relative to the queue directory, where every daemon has its working directory: the
# daemons run as postfix, which cannot walk pytest's private (0700) directories.
data_directory = data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = {realm}
mydomain = {realm}
myorigin = {realm}
mydestination =
# Postfix wants addresses of real interfaces here; 127.0.0.x (x > 1) is reachable on
# lo without being one, and master.cf binds the service to {smart} itself.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks =
alias_maps =
alias_database =
local_recipient_maps =
relayhost = [{final}]:{final_port}
smtp_tls_security_level = none
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_local_domain = {realm}
smtpd_sasl_security_options = noanonymous
smtpd_sasl_authenticated_header = yes
smtpd_relay_restrictions = reject
"""

# Debian's submission entry, on a free port; no daemon chroots.
MASTER_CF = """\
{smart}:{port} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix:
    def __init__(self, root, cert, key, final_port, mechs=None):
        self.root = str(root)
        self.conf = os.path.join(self.root, "conf")
        self.queue = os.path.join(self.root, "queue")
        self.port = lib.free_port()
        self.master_pid = None
        os.makedirs(os.path.join(self.conf, "sasl"))
        os.makedirs(self.queue)
        owned = {"data": 0o700, "sasl": 0o700}
        for d, mode in owned.items():
            os.mkdir(os.path.join(self.queue, d), mode)
            os.chown(os.path.join(self.queue, d), *postfix_ids())
        fmt = dict(root=self.root, queue=self.queue, realm=REALM, smart=SMART, port=self.port,
                   final=FINAL, final_port=final_port, cert=cert, key=key)
        write(os.path.join(self.conf, "main.cf"), MAIN_CF.format(**fmt))
        write(os.path.join(self.conf, "master.cf"), MASTER_CF.format(**fmt))
        # Debian's Postfix reads $config_directory/sasl/smtpd.conf (it ignores
        # cyrus_sasl_config_path); sasldb_path is relative to the queue directory.
        sasl = "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: sasl/sasldb2\n"
        if mechs:
            sasl += "mech_list: %s\n" % mechs
        write(os.path.join(self.conf, "sasl", "smtpd.conf"), sasl)
        db = os.path.join(self.queue, "sasl", "sasldb2")
        user, realm = RELAY_USER.split("@")
        subprocess.run(["saslpasswd2", "-f", db, "-p", "-c", "-u", realm, user],
                       input=RELAY_PW + "\n", text=True, check=True, timeout=30)
        os.chown(db, *postfix_ids())
        os.chmod(db, 0o600)

    def start(self):
        r = subprocess.run(["/usr/sbin/postfix", "-c", self.conf, "start"],
                           capture_output=True, text=True, timeout=60)
        pid_file = os.path.join(self.queue, "pid", "master.pid")
        if os.path.exists(pid_file):
            with open(pid_file) as f:
                self.master_pid = int(f.read().strip())
        assert r.returncode == 0, "postfix start: %s%s\n%s" % (r.stdout, r.stderr, self.log)
        wait_listening(SMART, self.port)

    def stop(self):
        subprocess.run(["/usr/sbin/postfix", "-c", self.conf, "stop"],
                       capture_output=True, timeout=60)
        pid = self.master_pid
        if pid and not lib.wait_until(lambda: gone(pid), 15):
            os.kill(pid, signal.SIGKILL)
            assert lib.wait_until(lambda: gone(pid), 10), "Postfix master %d survives" % pid

    @property
    def log(self):
        try:
            with open(os.path.join(self.root, "maillog")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=15):
        m = lib.wait_until(lambda: re.search(pattern, self.log, re.M), timeout)
        assert m, "no %r in Postfix's log:\n%s" % (pattern, self.log[-3000:])
        return m


def postfix_ids():
    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def gone(pid):
    """The master exited: no process, or a zombie that init has still to reap."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def postfix(tmp_path, certs):
    started = []

    def factory(final_port, mechs=None):
        p = Postfix(tmp_path / ("postfix%d" % len(started)), certs["good"][0],
                    certs["good"][1], final_port, mechs)
        started.append(p)
        p.start()
        return p

    yield factory
    for p in started:
        p.stop()


def smart_host(start_server, certs, pf, password=RELAY_PW):
    srv = start_server(relay_host="[%s]:%d" % (SMART, pf.port), relay_tls="verify",
                       relay_ca=certs["ca"], retry_min=3600, retry_max=3600)
    srv.admin("relay-auth", "add", "[%s]:%d" % (SMART, pf.port), RELAY_USER,
              stdin=password + "\n")
    return srv


def relayed_through_postfix(start_server, sinks, postfix, certs, token, mechs):
    """alice's message, through cursusd and Postfix, to the sink; returns what Postfix
    logged for the submission and the message as the sink got it."""
    final_port, events = sinks.aio(FINAL)
    pf = postfix(final_port, mechs)
    srv = smart_host(start_server, certs, pf)
    submit(srv, ["bob@far.example"], token)
    assert lib.wait_until(lambda: delivered(events, token), 20), srv.log[-3000:] + pf.log
    assert srv.wait_queue_empty(10)
    client = pf.wait_log(r"postfix/submission/smtpd\[\d+\]: (\w+): client=.*$")
    data = delivered(events, token)
    assert len(data) == 1
    assert data[0]["mail_from"] == ALICE
    assert data[0]["rcpts"] == ["bob@far.example"]
    # Postfix relayed it on: the sink got it from Postfix, queue id and all.
    pf.wait_log(r"%s: to=<bob@far\.example>, relay=%s\[%s\]:%d, .*status=sent"
                % (client.group(1), re.escape(FINAL), re.escape(FINAL), final_port))
    line = [x for x in srv.log.splitlines() if 'rcpt="bob@far.example"' in x][-1]
    # Postfix offers DSN and took the parameters: "delivered", not "relayed" (RFC 3461).
    assert "verified=yes" in line and "result=delivered status=2.0.0" in line, line
    assert RELAY_PW not in srv.log
    return client.group(0), data[0]["content"]


def test_postfix_smart_host_takes_plain_auth_and_relays(start_server, sinks, postfix, certs,
                                                        token):
    client, content = relayed_through_postfix(start_server, sinks, postfix, certs, token,
                                              mechs="PLAIN LOGIN")
    # Postfix authenticated cursusd as the relay user with the strongest mechanism
    # offered, and took alice, the submitter, as the AUTH= identity (RFC 4954 5).
    assert client.endswith("client=localhost[127.0.0.1], sasl_method=PLAIN, "
                           "sasl_username=%s, sasl_sender=%s" % (RELAY_USER, ALICE)), client
    received = content.split("\n\n", 1)[0]
    assert "(Authenticated sender: %s)" % RELAY_USER in received, received
    assert re.search(r"by %s \(Postfix\) with ESMTPSA id " % re.escape(REALM), received)


def test_postfix_wrong_relay_password_defers_with_its_535(start_server, sinks, postfix, certs,
                                                          token):
    final_port, events = sinks.aio(FINAL)
    pf = postfix(final_port, "PLAIN LOGIN")
    wrong = "not-" + RELAY_PW
    srv = smart_host(start_server, certs, pf, password=wrong)
    submit(srv, ["bob@far.example"], token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 20), srv.log[-3000:]
    pf.wait_log(r"warning: localhost\[127\.0\.0\.1\]: SASL PLAIN authentication failed: "
                r"authentication failure, sasl_username=%s$" % re.escape(RELAY_USER))
    q = queue_json(srv)
    assert len(q) == 1
    r = q[0]["recipients"][0]
    assert r["state"] == "deferred"
    assert r["reply"] == ("%s[%s]: authentication failed: 535 5.7.8 Error: authentication "
                          "failed: authentication failure" % (SMART, SMART)), r
    line = [x for x in srv.log.splitlines() if 'rcpt="bob@far.example"' in x][-1]
    assert "result=deferred status=4.7.8" in line and "retry_in=3600s" in line, line
    listing = srv.admin("queue", "list", "--json").stdout
    for secret in (wrong, RELAY_PW, lib.plain_response(RELAY_USER, wrong)):
        assert secret not in srv.log and secret not in listing and secret not in pf.log
    # Postfix took nothing, and cursusd did not try again at once.
    assert [e for e in events() if e["ev"] in ("mail", "data")] == []
    assert len(re.findall(r"SASL \w+ authentication failed", pf.log)) == 1, pf.log


def test_postfix_default_mechanisms_get_scram(start_server, sinks, postfix, certs, token):
    # Cyrus's own list (no mech_list): SCRAM-SHA-512/384/256/224/1, DIGEST-MD5,
    # CRAM-MD5, NTLM, PLAIN, LOGIN. GNU SASL knows no SCRAM above SHA-256, and Postfix
    # offers no -PLUS (no channel binding): SCRAM-SHA-256 is the strongest both share.
    client, content = relayed_through_postfix(start_server, sinks, postfix, certs, token,
                                              mechs=None)
    assert "sasl_method=SCRAM-SHA-256, sasl_username=%s, sasl_sender=%s" % (
        RELAY_USER, ALICE) in client, client


def test_postfix_offers_what_the_scram_test_assumes(postfix, certs):
    pf = postfix(lib.free_port())
    ctx = ssl.create_default_context(cafile=certs["ca"])
    with smtplib.SMTP(SMART, pf.port, timeout=10) as c:
        # A submission service: no AUTH and no mail before TLS.
        c.ehlo("client.test")
        assert "auth" not in c.esmtp_features
        assert c.mail(ALICE) == (530, b"5.7.0 Must issue a STARTTLS command first")
        c.starttls(context=ctx)
        c.ehlo("client.test")
        assert c.esmtp_features["auth"].split() == [
            "SCRAM-SHA-512", "SCRAM-SHA-384", "SCRAM-SHA-256", "SCRAM-SHA-224", "SCRAM-SHA-1",
            "DIGEST-MD5", "CRAM-MD5", "NTLM", "PLAIN", "LOGIN"]
