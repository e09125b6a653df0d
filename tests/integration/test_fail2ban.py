"""The fail2ban filter (fail2ban/filter.d/cursus.conf) run by the real fail2ban-regex
against the lines cursusd wrote during the test: failed AUTHs from 127.0.0.2 (one with a
user name that tries to forge a client= field), the AUTH refused once that address spent
its budget, and the connection refused after it, must match, all with host 127.0.0.2; a
successful AUTH from 127.0.0.1 must not. The same lines with a syslog prefix, as cursusd
writes them without -d, must match alike. The jail example must load in fail2ban's own
configuration reader."""
import base64
import os
import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

import cursus_testlib as lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILTER = os.path.join(ROOT, "fail2ban", "filter.d", "cursus.conf")
JAIL = os.path.join(ROOT, "fail2ban", "jail.d", "cursus.local.example")
ATTACKER, OWNER = "127.0.0.2", "127.0.0.1"
BUDGET = 3
FORGED = 'x" client=10.9.9.9 result=fail authzid="'

pytestmark = pytest.mark.skipif(not shutil.which("fail2ban-regex"),
                                reason="fail2ban is not installed (scripts/deps.sh)")


def connect(srv, source):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=15,
                     source_address=(source, 0))
    c.ehlo("client.example")
    c.starttls(context=ctx)
    c.ehlo("client.example")
    return c


def auth_plain(c, user, password):
    resp = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
    return c.docmd("AUTH", "PLAIN " + resp)


def filter_dir(tmp_path):
    """fail2ban reads a filter's includes beside it: ours with Debian's common.conf."""
    d = tmp_path / "fail2ban" / "filter.d"
    d.mkdir(parents=True)
    shutil.copy(FILTER, d / "cursus.conf")
    shutil.copy("/etc/fail2ban/filter.d/common.conf", d / "common.conf")
    return str(d / "cursus.conf")


def fail2ban_regex(log_path, filt):
    r = subprocess.run(["fail2ban-regex", "-o", "ip", log_path, filt], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_filter_matches_what_cursusd_wrote(start_server, tmp_path):
    srv = start_server(auth_fail_addr_budget=BUDGET, auth_fail_delay_after=100)
    with connect(srv, OWNER) as c:
        assert auth_plain(c, "alice@example.test", lib.PASSWORD)[0] == 235
    with connect(srv, ATTACKER) as c:
        for user in ("alice@example.test", "nobody@example.test", FORGED):
            assert auth_plain(c, user, "wrong password")[0] == 535
        assert auth_plain(c, "alice@example.test", "wrong password")[0] == 454
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=15,
                     source_address=(ATTACKER, 0))
    assert e.value.smtp_code == 421

    lib.wait_until(lambda: "reason=auth-budget" in srv.log, 10, what="the refusal logged")
    auth_lines = [l for l in srv.log.splitlines() if " auth session=" in l]
    assert [re.search(r"result=(\S+)", l).group(1) for l in auth_lines] == \
        ["ok", "fail", "fail", "fail", "refused"], auth_lines
    assert 'authid="x\\" client=10.9.9.9 result=fail authzid=\\""' in srv.log

    filt = filter_dir(tmp_path)
    expected = [ATTACKER] * (BUDGET + 2)   # the failures, the refused AUTH, the 421
    assert fail2ban_regex(srv.log_path, filt) == expected

    # Without -d cursusd logs to syslog: no time of its own, the syslog prefix instead.
    syslog = tmp_path / "mail.log"
    with open(srv.log_path) as f, open(syslog, "w") as g:
        for line in f:
            g.write(re.sub(r"^\S+Z ", "Dec  1 12:00:00 mail cursusd[4242]: ", line))
    assert fail2ban_regex(str(syslog), filt) == expected


def test_jail_example_loads(tmp_path):
    """fail2ban's configuration test over a copy of /etc/fail2ban with the filter and
    the jail (its log backend switched to a file: the test has no journal)."""
    conf = tmp_path / "etc"
    shutil.copytree("/etc/fail2ban", conf)
    shutil.copy(FILTER, conf / "filter.d" / "cursus.conf")
    log = tmp_path / "mail.log"
    log.write_text("")
    with open(JAIL) as f:
        jail = f.read()
    jail = jail.replace("backend  = systemd", "backend  = polling\nlogpath  = %s" % log)
    (conf / "jail.d" / "cursus.local").write_text(jail)
    for other in os.listdir(conf / "jail.d"):
        if other != "cursus.local":
            os.remove(conf / "jail.d" / other)
    r = subprocess.run(["fail2ban-client", "-c", str(conf), "--test"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["fail2ban-client", "-c", str(conf), "-d"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "['add', 'cursus', 'polling']" in r.stdout
    assert "'maxretry', 5]" in r.stdout
