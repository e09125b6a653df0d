"""Privileges and safe files (issue 8, item 1): cursusd started as root runs as `user`
once its ports, TLS key and queue lock are held; Maildir delivery, the pid file and the
queue lock are safe against links planted by whoever owns those directories."""
import grp
import os
import pwd
import socket
import subprocess

import pytest

import cursus_testlib as lib

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
LOCAL_LOG = 'rcpt="%s" route="local"'


def send_local(srv, rcpt, token):
    """Port 25, no AUTH: mail for a local user. Returns the 250 reply text."""
    with srv.smtp("smtp") as c:
        c.ehlo()
        r = c.send_message("sender@remote.test", [rcpt], lib.make_body(token))
        c.expect("QUIT", 221)
    return r.text


def delivery_lines(srv, rcpt):
    return [l for l in srv.log.splitlines() if "delivery id=" in l and 'rcpt="%s"' % rcpt in l]


def auth_ok(srv, user, password=lib.PASSWORD):
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


def proc_ids(pid):
    """{"Uid": [...], "Gid": [...], "Groups": [...], "CapEff": "..."} of a live process."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
            elif k in ("CapEff", "CapPrm"):
                out[k] = v.strip()
    return out


# -- Maildir: no link below mail_dir is followed -----------------------------------------

@pytest.mark.parametrize("level", ["new", "mailbox", "domain"])
def test_maildir_link_is_not_followed(start_server, tmp_path, token, level):
    srv = start_server(retry_min=3600, retry_max=3600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    box = srv.maildir(ALICE)
    if level == "new":
        for sub in ("cur", "tmp"):
            os.makedirs(os.path.join(box, sub))
        os.symlink(str(elsewhere), os.path.join(box, "new"))
    elif level == "mailbox":
        os.makedirs(os.path.dirname(box))
        for sub in ("cur", "new", "tmp"):
            (elsewhere / sub).mkdir()
        os.symlink(str(elsewhere), box)
    else:
        os.makedirs(srv.mail_dir, exist_ok=True)
        os.symlink(str(elsewhere), os.path.join(srv.mail_dir, "example.test"))
    reply = send_local(srv, ALICE, token)
    assert lib.wait_until(lambda: delivery_lines(srv, ALICE), 15), srv.log[-3000:]
    [line] = delivery_lines(srv, ALICE)
    assert "result=deferred" in line and "status=4." in line, line
    assert 'reply="maildir: Too many levels of symbolic links"' in line, line
    # Nothing written through the link, nothing left half-written, still queued.
    found = [os.path.join(d, f) for d, _, fs in os.walk(str(elsewhere)) for f in fs]
    assert found == [], found
    if level == "new":
        assert os.listdir(os.path.join(box, "tmp")) == []
    ids = [i for i in srv.queue_files() if "." not in i]
    assert len(ids) == 1 and ids[0] in reply, (ids, reply)


def test_maildir_delivery_still_makes_new_mailboxes(start_server, token):
    srv = start_server()
    send_local(srv, BOB, token)
    srv.wait_message(BOB, token)
    for sub in ("cur", "new", "tmp"):
        assert oct(os.stat(os.path.join(srv.maildir(BOB), sub)).st_mode & 0o777) == "0o700"


# -- the pid file ------------------------------------------------------------------------

def test_pid_file_link_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    root = tmp_path / "srv"
    pid_file = os.path.join(str(root), "var", "cursusd.pid")
    srv = lib.Server(root, pid_file=pid_file)
    os.makedirs(os.path.dirname(pid_file))
    os.symlink(str(victim), pid_file)
    try:
        srv.start()
        assert lib.wait_until(lambda: not os.path.islink(pid_file), 10), "pid file still a link"
        assert victim.read_text() == "precious\n"
        with open(pid_file) as f:
            assert f.read() == "%d\n" % srv.proc.pid
        assert oct(os.stat(pid_file).st_mode & 0o777) == "0o644"
        # No temporary file left beside it.
        assert [n for n in os.listdir(os.path.dirname(pid_file)) if n.startswith(".")] == []
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)
    assert not os.path.exists(pid_file)
    assert victim.read_text() == "precious\n"


# -- the queue lock ----------------------------------------------------------------------

def test_second_daemon_touches_nothing_in_the_queue(start_server, tmp_path, token):
    srv = start_server()
    # As if the first daemon were writing it: a second one's recovery would remove it.
    pending = os.path.join(srv.queue_dir, "tmp", "in-progress")
    with open(pending, "w") as f:
        f.write("being written\n")
    with open(srv.conf) as f:
        text = f.read()
    ports = [lib.free_port() for _ in srv.ports]
    for old, new in zip(srv.ports.values(), ports):
        text = text.replace("127.0.0.1:%d\n" % old, "127.0.0.1:%d\n" % new)
    conf2 = str(tmp_path / "second.conf")
    with open(conf2, "w") as f:
        f.write(text)
    pid_file = os.path.join(srv.root, "var", "run", "cursusd.pid")
    with open(pid_file) as f:
        first_pid = f.read()
    r = subprocess.run([lib.CURSUSD, "-d", "-c", conf2], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert ("queue: %s is in use by another cursusd (lock: Resource temporarily unavailable)"
            % srv.queue_dir) in r.stderr, r.stderr
    assert "queue recover" not in r.stderr
    with open(pending) as f:
        assert f.read() == "being written\n"
    with open(pid_file) as f:
        assert f.read() == first_pid
    for p in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), timeout=2).close()
    os.unlink(pending)
    send_local(srv, BOB, token)
    srv.wait_message(BOB, token)


# -- dropping root -----------------------------------------------------------------------

needs_root = lib.needs_root


@needs_root
def test_runs_as_user_after_start(open_root, token):
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    root = os.path.join(open_root, "srv")
    db = os.path.join(root, "db", "users.db")
    srv = lib.Server(root, user="nobody", group="nogroup", user_db=db)
    # `cursus user add` ran as root: the database is root's until cursusd starts.
    assert os.stat(db).st_uid == 0
    try:
        srv.start()
        assert "privileges event=dropped user=nobody uid=%d gid=%d" % (
            nobody.pw_uid, nogroup.gr_gid) in srv.log, srv.log[-3000:]
        ids = proc_ids(srv.proc.pid)
        assert ids["Uid"] == [nobody.pw_uid] * 4, ids
        assert ids["Gid"] == [nogroup.gr_gid] * 4, ids
        assert ids["Groups"] == [nogroup.gr_gid], ids
        assert int(ids["CapEff"], 16) == 0 and int(ids["CapPrm"], 16) == 0, ids
        # Threads too (every one of them: setuid before any was made).
        for tid in os.listdir("/proc/%d/task" % srv.proc.pid):
            with open("/proc/%d/task/%s/status" % (srv.proc.pid, tid)) as f:
                assert "Uid:\t%d\t%d\t%d\t%d\n" % ((nobody.pw_uid,) * 4) in f.read()

        # The user database stays usable: AUTH, and a user added by root meanwhile.
        auth_ok(srv, ALICE)
        srv.admin("user", "add", CAROL, stdin=lib.PASSWORD + "\n")
        auth_ok(srv, CAROL)
        for p in (db, os.path.dirname(db)):
            assert (os.stat(p).st_uid, os.stat(p).st_gid) == (nobody.pw_uid, nogroup.gr_gid), p

        # Accepted, queued and delivered into a Maildir of the mail user's.
        send_local(srv, BOB, token)
        srv.wait_message(BOB, token)
        [f] = srv.maildir_files(BOB)
        for p in (f, os.path.dirname(f), srv.maildir(BOB), srv.mail_dir, srv.queue_dir,
                  os.path.join(srv.queue_dir, "msg"), os.path.join(srv.queue_dir, "lock")):
            st = os.stat(p)
            assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nogroup.gr_gid), p

        # The control socket (root's admin tool) and the pid file.
        assert srv.admin("queue", "list").returncode == 0
        pid_file = os.path.join(root, "var", "run", "cursusd.pid")
        with open(pid_file) as f:
            assert f.read() == "%d\n" % srv.proc.pid
        assert os.stat(pid_file).st_uid == nobody.pw_uid
        # Root's key stays root's.
        assert os.stat(os.path.join(root, "tls", "key.pem")).st_uid == 0
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@needs_root
def test_root_owned_queue_of_an_earlier_run_is_given_to_the_user(open_root, token):
    root = os.path.join(open_root, "srv")
    db = os.path.join(root, "db", "users.db")
    srv = lib.Server(root, user_db=db, retry_min=3600, retry_max=3600)
    # A link in place of new/ keeps the message deferred in the queue.
    os.makedirs(os.path.join(srv.maildir(BOB), "tmp"))
    os.symlink("/nonexistent", os.path.join(srv.maildir(BOB), "new"))
    try:
        srv.start()
        send_local(srv, BOB, token)
        assert lib.wait_until(lambda: delivery_lines(srv, BOB), 15), srv.log[-3000:]
        srv.stop()
        assert os.stat(os.path.join(srv.queue_dir, "msg")).st_uid == 0
        srv.global_opts.update(user="nobody")
        srv._write_conf()
        srv.start()
        nobody = pwd.getpwnam("nobody")
        for d, subdirs, files in os.walk(srv.queue_dir):
            for p in [d] + [os.path.join(d, x) for x in files]:
                assert os.stat(p).st_uid == nobody.pw_uid, p
        assert len([i for i in srv.queue_files() if "." not in i]) == 1
        assert "queue recover: 1 messages queued" in srv.log
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@needs_root
def test_refuses_to_give_root_files_to_the_user(open_root):
    # user_db beside the TLS key: the mail user could swap the key's directory.
    root = os.path.join(open_root, "srv")
    srv = lib.Server(root, user="nobody")
    r = subprocess.run([lib.CURSUSD, "-d", "-c", srv.conf], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, cwd=root)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert ("privileges: user_db: %s would be given to user nobody but holds %s, which root "
            "reads at start" % (root, srv.conf)) in r.stderr, r.stderr
    assert os.stat(root).st_uid == 0


def test_unknown_user_is_refused_at_start(tmp_path):
    srv = lib.Server(tmp_path / "srv", user="no-such-user-cursus")
    r = subprocess.run([lib.CURSUSD, "-d", "-c", srv.conf], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, cwd=srv.root)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "user no-such-user-cursus: no such user" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(srv.queue_dir, "lock"))
