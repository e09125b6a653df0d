"""The systemd unit (systemd/cursusd.service): `systemd-analyze verify` finds nothing to
say about it, and cursusd run as the unit runs it (Type=notify: `cursusd -d -c FILE` with
NOTIFY_SOCKET, here a datagram socket the test reads) says READY=1 once it serves,
RELOADING=1 then READY=1 around a SIGHUP reload (ExecReload), STOPPING=1 on SIGTERM. As
root, the start also works inside the unit's capability bounding set and no_new_privs,
dropping to a mail user."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import cursus_testlib as lib

TREE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT = os.path.join(TREE, "systemd", "cursusd.service")
MAN = os.path.join(TREE, "man")


def unit_settings():
    """The [Service] settings of the unit, name -> value (the last one given)."""
    out = {}
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                k, _, v = line.partition("=")
                out[k] = v
    return out


def test_unit_verifies(tmp_path):
    """With ExecStart pointing at the built binary (the installed path is not there in
    the tree) and the man pages of Documentation= findable: no warning at all."""
    man = tmp_path / "man"
    for page in os.listdir(MAN):
        m = re.fullmatch(r"[a-z.]+\.([1-8])", page)
        if m:
            (man / ("man" + m.group(1))).mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(MAN, page), man / ("man" + m.group(1)) / page)
    with open(UNIT) as f:
        text = f.read().replace("/usr/sbin/cursusd", lib.CURSUSD)
    unit = tmp_path / "cursusd.service"
    unit.write_text(text)
    env = dict(os.environ, MANPATH=str(man), SYSTEMD_LOG_LEVEL="notice")
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.returncode, r.stdout, r.stderr)


def test_unit_runs_cursusd_as_documented():
    s = unit_settings()
    assert s["Type"] == "notify"
    assert s["ExecStart"] == "/usr/sbin/cursusd -d -c /etc/cursus/cursus.conf"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["NoNewPrivileges"] == "yes" and s["ProtectSystem"] == "strict"
    assert s["ReadWritePaths"] == "/var/lib/cursus"


class NotifySocket:
    """systemd's end of the notify protocol: a datagram socket whose path goes in
    NOTIFY_SOCKET; each datagram is one state message."""

    def __init__(self, directory):
        self.path = os.path.join(str(directory), "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)   # cursusd may have dropped to a mail user

    def next(self, timeout=15.0):
        """The next message as a dict, waiting at most timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            pytest.fail("no notification from cursusd in %ss" % timeout)
        return dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path, monkeypatch, open_root):
    n = NotifySocket(open_root)
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)
    yield n
    n.close()


def assert_lifecycle(srv, notify):
    first = notify.next()
    assert first.get("READY") == "1", first
    # Ready only once the listeners answer: the start above already saw them greet,
    # and nothing else came before READY=1.
    with srv.smtp() as c:
        c.expect("QUIT", 221)
    srv.proc.send_signal(signal.SIGHUP)
    m = notify.next()
    assert m.get("RELOADING") == "1", m
    assert int(m["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    m = notify.next()
    assert m.get("READY") == "1", m
    assert lib.wait_until(lambda: "reload event=done" in srv.log, 10), srv.log[-3000:]
    srv.proc.send_signal(signal.SIGTERM)
    m = notify.next()
    assert m.get("STOPPING") == "1", m
    assert srv.proc.wait(30) == 0, srv.log[-3000:]
    lib.check_log_clean(srv.log)
    srv.proc = None   # stopped here on purpose: the fixture's teardown has nothing to stop


def test_notify_ready_reloading_stopping(start_server, notify):
    srv = start_server()
    assert_lifecycle(srv, notify)


def test_no_notify_socket_is_harmless(start_server, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    srv = start_server()
    srv.proc.send_signal(signal.SIGHUP)
    assert lib.wait_until(lambda: "reload event=done" in srv.log, 10), srv.log[-3000:]
    assert "svcnotify" not in srv.log


@lib.needs_root
def test_unit_sandbox_start_as_root(open_root, notify, monkeypatch):
    """The start as root (ports, chown of the queue and Maildirs, the switch to the
    mail user, the re-exec of cursus-auth) inside the unit's CapabilityBoundingSet and
    NoNewPrivileges, through setpriv; then the same notifications."""
    s = unit_settings()
    caps = [c.lower().replace("cap_", "") for c in s["CapabilityBoundingSet"].split()]
    assert s["NoNewPrivileges"] == "yes"
    wrapper = os.path.join(open_root, "cursusd-as-unit")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --bounding-set -all,%s --inh-caps -all --no-new-privs "
                "%s \"$@\"\n" % (",".join("+" + c for c in caps), lib.CURSUSD))
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(lib, "CURSUSD", wrapper)
    nobody = pwd.getpwnam("nobody")
    root = os.path.join(open_root, "srv")
    srv = lib.Server(root, user="nobody", group="nogroup",
                     user_db=os.path.join(root, "db", "users.db"))
    try:
        srv.start()
        with open("/proc/%d/status" % srv.proc.pid) as f:
            status = f.read()
        assert re.search(r"^Uid:\t%d\t" % nobody.pw_uid, status, re.M), status
        assert re.search(r"^CapBnd:\t(\w+)", status, re.M).group(1) != "000001ffffffffff", status
        assert re.search(r"^NoNewPrivs:\t1", status, re.M), status
        assert_lifecycle(srv, notify)
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, problems
    assert "privileges event=dropped user=nobody" in srv.log
