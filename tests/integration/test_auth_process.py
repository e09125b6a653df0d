"""The credential process (issue 8, item 1): users.db and password verification live in
cursus-auth, an unprivileged process of their own reached over socketpairs; the network
process (the one with the listening sockets) never opens users.db and never holds a
hash, a SCRAM key or the database's secret. If cursus-auth dies, AUTH answers 454 4.7.0
and the daemon restarts it, pausing longer each time it dies young."""
import base64
import os
import pwd
import re
import signal
import sqlite3
import subprocess


import cursus_testlib as lib

ALICE, BOB = "alice@example.test", "bob@example.test"
THREADS = dict(worker_threads=2, delivery_threads=1)
needs_root = lib.needs_root


def ppid_of(pid):
    with open("/proc/%s/stat" % pid) as f:
        # The name may hold spaces: the fields after its closing parenthesis.
        return int(f.read().rsplit(")", 1)[1].split()[1])


def auth_pids(srv):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
            if argv[0] == b"cursus-auth" and ppid_of(d) == srv.proc.pid:
                out.append(int(d))
        except (OSError, IndexError):
            continue
    return out


def auth_pid(srv, other_than=None):
    """The one running cursus-auth of srv (waits for a restart to replace other_than)."""
    found = []

    def one():
        found[:] = [p for p in auth_pids(srv) if p != other_than]
        return len(found) == 1
    assert lib.wait_until(one, 15), (found, srv.log[-3000:])
    return found[0]


def fd_links(pid):
    d = "/proc/%d/fd" % pid
    out = []
    for fd in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, fd)))
        except OSError:
            pass
    return out


def socket_inodes(links):
    return {int(m.group(1)) for l in links for m in [re.match(r"socket:\[(\d+)\]$", l)] if m}


def unnamed_seqpacket_inodes():
    """Inodes of the unnamed SOCK_SEQPACKET unix sockets (socketpairs) of this host."""
    out = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[4] == "0005" and len(cols) == 7:
                out.add(int(cols[6]))
    return out


def memory_holds(pid, needles):
    """Which of needles (bytes) appear anywhere in the readable memory of pid."""
    found = set()
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            cols = line.split()
            if "r" not in cols[1] or (len(cols) > 5 and cols[5] in ("[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in cols[0].split("-"))
            if hi - lo > 4 << 30:
                continue  # an ASan build's shadow memory: terabytes of it, no data of ours
            # Read in slices, each overlapping the last by the longest needle, so
            # nothing is missed.
            step, overlap = 16 << 20, max(len(n) for n in needles)
            for at in range(lo, hi, step):
                try:
                    mem.seek(max(lo, at - overlap))
                    data = mem.read(min(hi, at + step) - max(lo, at - overlap))
                except (OSError, ValueError, OverflowError):
                    break
                for n in needles:
                    if n in data:
                        found.add(n)
    return found


def auth_ok(srv, user=ALICE, password=lib.PASSWORD):
    c = lib.AuthSmtp(srv.ports["submission"])
    try:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth_plain(user, password)
        c.expect("QUIT", 221)
    finally:
        c.close()


@needs_root
def test_network_process_never_opens_the_user_database(open_root, token):
    nobody = pwd.getpwnam("nobody")
    root = os.path.join(open_root, "srv")
    db = os.path.join(root, "db", "users.db")
    srv = lib.Server(root, user="nobody", group="nogroup", user_db=db, **THREADS)
    with sqlite3.connect(db) as con:
        hash_, stored, server, salt = con.execute(
            "SELECT hash, scram256_stored, scram256_server, scram256_salt FROM users "
            "WHERE name = ?", (ALICE,)).fetchone()
        (secret,) = con.execute("SELECT value FROM meta WHERE key = 'scram_fake_secret'").fetchone()
    needles = [hash_.encode(), stored.encode(), server.encode(), salt.encode(), bytes(secret)]
    try:
        srv.start()
        pid = auth_pid(srv)
        # The store is used: AUTH, a local recipient, delivery.
        auth_ok(srv)
        with srv.smtp("smtp") as c:
            c.ehlo()
            c.send_message("sender@remote.test", [BOB], lib.make_body(token))
            c.expect("QUIT", 221)
        srv.wait_message(BOB, token)

        net = fd_links(srv.proc.pid)
        assert not [l for l in net if "users.db" in l], net
        assert socket_inodes(net), net  # it is the one with the listeners
        # Nothing of the database in the network process's memory, all of it there.
        assert memory_holds(srv.proc.pid, needles) == set()
        assert memory_holds(pid, needles), "the test's needles are not what the store holds"

        links = fd_links(pid)
        assert db in links, links
        socks = socket_inodes(links)
        # Its sockets: the socketpairs, one per thread that may ask, nothing else.
        assert len(socks) == THREADS["worker_threads"] + THREADS["delivery_threads"], links
        assert socks <= unnamed_seqpacket_inodes(), links
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        assert "Uid:\t%d\t%d\t%d\t%d\n" % ((nobody.pw_uid,) * 4) in status, status
        assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status, status
        # Not dumpable: the network process, the same user, can neither ptrace it nor
        # read its memory (/proc/PID/mem and friends become root's).
        assert os.stat("/proc/%d/mem" % pid).st_uid == 0
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "head", "-c1", "/proc/%d/mem" % pid], capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stderr)
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)
    assert not auth_pids(srv) or not srv.running()


def scram_client_first(user):
    nonce = base64.b64encode(os.urandom(18)).decode()
    return "n,,n=%s,r=%s" % (user, nonce)


def test_auth_process_killed_then_restarted(start_server):
    srv = start_server(**THREADS, **lib.AUTH_GENEROUS)
    pid = auth_pid(srv)
    c = lib.AuthSmtp(srv.ports["submission"])
    try:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        r = c.expect("AUTH SCRAM-SHA-256 " + lib.b64(scram_client_first(ALICE)), 334)
        server_first = base64.b64decode(r.lines[0]).decode()
        nonce = dict(kv.split("=", 1) for kv in server_first.split(","))["r"]
        # The exchange lives in cursus-auth: killed under it, it cannot be finished.
        os.kill(pid, signal.SIGKILL)
        proof = lib.b64(b"\0" * 32)
        c.expect(lib.b64("c=biws,r=%s,p=%s" % (nonce, proof)), 454, "4.7.0")
        assert c.reply is not None
    finally:
        c.close()
    assert lib.wait_until(lambda: "auth event=died pid=%d signal=9" % pid in srv.log, 10), \
        srv.log[-3000:]
    new = auth_pid(srv, other_than=pid)
    assert lib.wait_until(lambda: "auth event=restarted pid=%d" % new in srv.log, 10)
    auth_ok(srv)
    # Lookups too: a local recipient is found again.
    with srv.smtp("smtp") as s:
        s.ehlo()
        s.expect("MAIL FROM:<sender@remote.test>", 250, "2.1.0")
        s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
        s.expect("QUIT", 221)


def test_auth_process_dying_young_is_restarted_ever_slower(start_server):
    srv = start_server(**THREADS)
    pid = auth_pid(srv)
    pauses = []
    for _ in range(3):
        os.kill(pid, signal.SIGKILL)
        new = auth_pid(srv, other_than=pid)
        m = re.search(r"auth event=died pid=%d signal=9 restart=(\d+)ms" % pid, srv.log)
        assert m, srv.log[-3000:]
        pauses.append(int(m.group(1)))
        pid = new
    assert pauses == [100, 200, 400], pauses
    auth_ok(srv)


def test_auth_process_that_cannot_open_the_database_stops_the_start(tmp_path):
    db = str(tmp_path / "users.db")
    srv = lib.Server(tmp_path / "srv", user_db=db, users=())
    with open(db, "wb") as f:
        f.write(b"not a database, but long enough to be read as one's header" * 100)
    r = subprocess.run([lib.CURSUSD, "-d", "-c", srv.conf], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, cwd=srv.root)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "userdb: %s: " % db in r.stderr, r.stderr
    assert "auth event=ready" not in r.stderr and "start event=ready" not in r.stderr
