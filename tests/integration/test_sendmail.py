"""The sendmail(8) command (issue 9 item 3): `cursus sendmail` hands the message read on
stdin to the running cursusd over its local socket (local_socket), which queues and
delivers it at once. Asserted here: delivery into the local Maildir for explicit
recipients and for -t (Bcc: removed), -f, -F, -i/-oi and the lone dot, bare-LF input
stored as CRLF, the fields added (Date, Message-ID, From), the Received: field with the
caller's uid from SO_PEERCRED (also for an unprivileged caller), sysexits codes (64 bad
flag or no recipient, 67 unknown user, 75 daemon down), -bs, the names sendmail, mailq
and newaliases through a symlink to the binary."""
import os
import pwd
import re
import subprocess

import pytest

import cursus_testlib as lib

EX_USAGE, EX_NOUSER, EX_TEMPFAIL = 64, 67, 75


def sendmail(srv, *args, stdin=b"", user=None, argv0=None, env=None, timeout=30):
    prog = lib.cursus_for_any_user() if user else lib.CURSUS
    cmd = [argv0 or prog] + ([] if argv0 else ["-c", srv.conf, "sendmail"]) + list(args)
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, user=user,
                          cwd="/", env=env)


def header_of(msg):
    return msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


def field(msg, name):
    """The values of the header field name (unfolded), in order."""
    head = lib.unfold(header_of(msg))
    return [m.group(1) for m in re.finditer(r"^%s:[ \t]*([^\r\n]*)" % re.escape(name), head, re.M | re.I)]


def queued_line(srv, msg):
    """The daemon's event=queued line of the message (its id from Message-ID)."""
    qid = re.search(r"<([0-9a-f]+)@", field(msg, "Message-ID")[0])
    lines = [l for l in srv.log.splitlines() if "event=queued" in l and qid and qid.group(1) in l]
    assert lines, "no queued line for %r" % field(msg, "Message-ID")
    return lines[0]


def test_bare_lf_message_to_explicit_recipient(server, token):
    r = sendmail(server, "alice@example.test",
                 stdin=("Subject: %s\nTo: alice@example.test\n\nline one\nline two\n" % token).encode())
    assert r.returncode == 0, r.stderr
    msg = server.wait_message("alice@example.test", token)
    # Stored with CRLF only: every LF has its CR.
    assert msg.count(b"\n") == msg.count(b"\r\n")
    assert b"\r\n\r\nline one\r\nline two\r\n" in msg
    uid = os.getuid()
    login = pwd.getpwuid(uid).pw_name
    received = lib.received_header(msg)
    assert re.match(r"Received: by localhost \(cursus, from userid %d\) id [0-9a-f]+ for "
                    r"<alice@example.test>;" % uid, received), received
    # Added as Postfix does for local submission.
    assert len(field(msg, "Date")) == 1 and len(field(msg, "Message-ID")) == 1
    assert field(msg, "From")[0].endswith("<%s@localhost>" % login)
    assert 'from="%s@localhost"' % login in queued_line(server, msg)
    assert "uid=%d" % uid in queued_line(server, msg)


def test_t_takes_to_cc_bcc_and_removes_bcc(server, token):
    body = ("From: Someone <someone@example.test>\nTo: Alice <alice@example.test>\n"
            "Cc: \"Bob, B.\" <bob@example.test>\nBcc: sales@example.test,\n unknown-but-folded\n"
            "Subject: %s\n\nhello\n" % token)
    # The unqualified Bcc address gets the origin domain and is refused: the others
    # still get the message, and the exit code says a recipient was unknown.
    r = sendmail(server, "-t", stdin=body.encode())
    assert r.returncode == EX_NOUSER, r.stderr
    assert b"<unknown-but-folded@localhost>: 550 5.1.1" in r.stderr
    for user in ("alice@example.test", "bob@example.test"):
        msg = server.wait_message(user, token)
        assert field(msg, "Bcc") == []
        assert b"unknown-but-folded" not in msg
        assert field(msg, "From") == ["Someone <someone@example.test>"]
    # sales@ is an alias of alice: one message to alice for To and Bcc.
    assert len(server.messages_with("alice@example.test", token)) == 1


def test_t_adds_to_command_line_recipients(server, token):
    r = sendmail(server, "-t", "bob@example.test",
                 stdin=("To: alice@example.test\nSubject: %s\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    server.wait_message("alice@example.test", token)
    server.wait_message("bob@example.test", token)


def test_f_and_F(server, token):
    r = sendmail(server, "-f", "bob@example.test", "-F", "Jo \"The\" Doe", "alice@example.test",
                 stdin=("Subject: %s\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    msg = server.wait_message("alice@example.test", token)
    assert field(msg, "From") == ['"Jo \\"The\\" Doe" <bob@example.test>']
    assert 'from="bob@example.test"' in queued_line(server, msg)
    # -fSENDER in one word; -F only where the message has no From:.
    r = sendmail(server, "-fcarol@example.org", "-F", "Ignored", "alice@example.test",
                 stdin=("From: Real <real@example.test>\nSubject: %s-2\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    msg = server.wait_message("alice@example.test", token + "-2")
    assert field(msg, "From") == ["Real <real@example.test>"]
    assert 'from="carol@example.org"' in queued_line(server, msg)


def test_F_cannot_inject_a_field(server, token):
    r = sendmail(server, "-F", "Eve\r\nBcc: bob@example.test", "alice@example.test",
                 stdin=("Subject: %s\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    msg = server.wait_message("alice@example.test", token)
    assert field(msg, "Bcc") == []
    assert field(msg, "From")[0].startswith('"EveBcc: bob@example.test" <')


def test_lone_dot_ends_input_unless_i(server, token):
    text = "Subject: %s%s\n\nbefore\n.\nafter\n"
    r = sendmail(server, "alice@example.test", stdin=(text % (token, "-dot")).encode())
    assert r.returncode == 0, r.stderr
    msg = server.wait_message("alice@example.test", token + "-dot")
    assert msg.endswith(b"\r\n\r\nbefore\r\n") and b"after" not in msg
    for flag in ("-i", "-oi"):
        r = sendmail(server, flag, "alice@example.test", stdin=(text % (token, flag)).encode())
        assert r.returncode == 0, r.stderr
        msg = server.wait_message("alice@example.test", token + flag)
        # The dot is data, stuffed on the wire and unstuffed by the server.
        assert msg.endswith(b"\r\n\r\nbefore\r\n.\r\nafter\r\n"), msg


def test_usage_errors_exit_64(server, token):
    for args in (["-Z", "alice@example.test"], ["-bd"], ["-N", "sometimes", "alice@example.test"],
                 ["-f"]):
        r = sendmail(server, *args, stdin=b"Subject: x\n\nx\n")
        assert r.returncode == EX_USAGE, (args, r.stderr)
    r = sendmail(server, stdin=b"Subject: x\n\nx\n")
    assert r.returncode == EX_USAGE and b"no recipients" in r.stderr
    r = sendmail(server, "-t", stdin=b"Subject: x\n\nx\n")
    assert r.returncode == EX_USAGE and b"no recipient addresses found" in r.stderr


def test_ignored_options_and_double_dash(server, token):
    r = sendmail(server, "-oem", "-odi", "-odb", "-oQ/var/spool", "-v", "-N", "never", "-R", "hdrs",
                 "-V", "env-" + token, "-ti", "--", "bob@example.test",
                 stdin=("To: alice@example.test\nSubject: %s\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    assert b"accepted: 250 2.0.0" in r.stderr   # -v says the queue id
    server.wait_message("alice@example.test", token)
    server.wait_message("bob@example.test", token)


def test_unknown_local_user_exits_67(server, token):
    r = sendmail(server, "nobody-here@example.test", stdin=("Subject: %s\n\nx\n" % token).encode())
    assert r.returncode == EX_NOUSER, r.stderr
    assert b"no such user" in r.stderr
    # Nothing of it queued (the queue is shared with the other tests' deliveries, whose
    # files come and go meanwhile: look at what the files hold).
    def holds_token(name):
        try:
            with open(os.path.join(server.queue_dir, "msg", name), "rb") as f:
                return token.encode() in f.read()
        except FileNotFoundError:   # delivered meanwhile
            return False
    assert not [f for f in server.queue_files() if holds_token(f)]
    assert "event=queued" not in "".join(l for l in server.log.splitlines() if token in l)


def test_long_line_refused_with_65(server, token):
    r = sendmail(server, "alice@example.test",
                 stdin=("Subject: %s\n\n" % token + "x" * 2000 + "\n").encode())
    assert r.returncode == 65 and b"max_text_line" in r.stderr
    assert server.messages_with("alice@example.test", token) == []


def test_daemon_down_exits_75(start_server, token):
    srv = start_server()
    srv.stop()
    r = sendmail(srv, "alice@example.test", stdin=("Subject: %s\n\nx\n" % token).encode())
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert b"is it running?" in r.stderr and b"not sent" in r.stderr
    # -bs too.
    r = sendmail(srv, "-bs", stdin=b"QUIT\r\n")
    assert r.returncode == EX_TEMPFAIL
    # Killed, it leaves its socket behind: refused, the same exit code.
    srv.start()
    srv.kill9()
    assert os.path.exists(os.path.join(srv.root, "var", "run", "local.sock"))
    r = sendmail(srv, "alice@example.test", stdin=("Subject: %s\n\nx\n" % token).encode())
    assert r.returncode == EX_TEMPFAIL, r.stderr
    # Started again, it replaces the stale socket and serves it.
    srv.start()
    r = sendmail(srv, "alice@example.test", stdin=("Subject: %s\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    srv.wait_message("alice@example.test", token)
    assert "local path=%s event=stale-socket-removed" % os.path.join(srv.root, "var", "run",
                                                                     "local.sock") in srv.log


def test_remote_recipient_queued_and_listed_by_mailq(start_server, tmp_path, token):
    # The test configuration relays to a closed port: the message waits in the queue.
    srv = start_server()
    r = sendmail(srv, "someone@remote.example", stdin=("Subject: %s\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    assert lib.wait_until(lambda: srv.queue_files(), 10)
    mailq = tmp_path / "mailq"
    os.symlink(lib.CURSUS, mailq)
    env = dict(os.environ, CURSUS_CONFIG=srv.conf)
    r = subprocess.run([str(mailq)], capture_output=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert srv.queue_files()[0].encode() in r.stdout and b"someone@remote.example" in r.stdout
    # -bp is mailq too.
    r = sendmail(srv, "-bp")
    assert r.returncode == 0 and b"someone@remote.example" in r.stdout


def test_names_sendmail_and_newaliases_through_symlinks(server, tmp_path, token):
    env = dict(os.environ, CURSUS_CONFIG=server.conf)
    link = tmp_path / "sendmail"
    os.symlink(lib.CURSUS, link)
    r = sendmail(server, "-t", argv0=str(link), env=env,
                 stdin=("To: alice@example.test\nSubject: %s\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    server.wait_message("alice@example.test", token)
    # sendmail's own -C names the configuration.
    r = sendmail(server, "-C", server.conf, "alice@example.test", argv0=str(link),
                 env=dict(os.environ, CURSUS_CONFIG="/nonexistent"),
                 stdin=("Subject: %s-C\n\nx\n" % token).encode())
    assert r.returncode == 0, r.stderr
    server.wait_message("alice@example.test", token + "-C")
    newaliases = tmp_path / "newaliases"
    os.symlink(lib.CURSUS, newaliases)
    r = subprocess.run([str(newaliases)], capture_output=True, timeout=30, env=env)
    assert r.returncode == 0 and b"nothing to rebuild" in r.stderr


def test_bs_speaks_smtp_on_stdin(server, token):
    dialog = ("EHLO client.example\r\nMAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\n"
              "DATA\r\nSubject: %s\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n" % token)
    r = sendmail(server, "-bs", stdin=dialog.encode())
    assert r.returncode == 0, r.stderr
    codes = [l[:4] for l in r.stdout.decode().split("\r\n") if l[3:4] == " "]
    assert codes == ["220 ", "250 ", "250 ", "250 ", "354 ", "250 ", "221 "], r.stdout
    msg = server.wait_message("alice@example.test", token)
    assert "from userid %d" % os.getuid() in lib.received_header(msg)


def test_local_socket_mode_and_relay_policy(server, token):
    """The socket is open to every local user; that it relays to other domains does not
    open port 25, whose sessions still may not relay."""
    import stat
    path = os.path.join(server.root, "var", "run", "local.sock")
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) & 0o011 == 0o011
    with server.smtp() as c:
        c.expect("EHLO x", 250)
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<someone@remote.example>", 554)


@lib.needs_root
def test_unprivileged_caller_uid_recorded(open_root, token):
    nobody = pwd.getpwnam("nobody")
    srv = lib.Server(os.path.join(open_root, "srv"))
    try:
        srv.start()
        r = sendmail(srv, "alice@example.test", user="nobody",
                     stdin=("Subject: %s\n\nfrom nobody\n" % token).encode())
        assert r.returncode == 0, r.stderr
        msg = srv.wait_message("alice@example.test", token)
        assert "from userid %d" % nobody.pw_uid in lib.received_header(msg)
        assert field(msg, "From")[0].endswith("<nobody@localhost>")
        line = queued_line(srv, msg)
        assert 'from="nobody@localhost"' in line and "uid=%d" % nobody.pw_uid in line
        # Any sender may be named (as with Postfix), but never a different uid.
        r = sendmail(srv, "-f", "alice@example.test", "alice@example.test", user="nobody",
                     stdin=("Subject: %s-f\n\nforged?\n" % token).encode())
        assert r.returncode == 0, r.stderr
        msg = srv.wait_message("alice@example.test", token + "-f")
        assert "from userid %d" % nobody.pw_uid in lib.received_header(msg)
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@lib.needs_root
def test_socket_works_after_privilege_drop(open_root, token):
    """cursusd as nobody: the socket is made after the drop, in the mail user's run/
    (search-only for others), and local users of every uid submit through it."""
    import stat
    root = os.path.join(open_root, "srv")
    srv = lib.Server(root, user="nobody", group="nogroup", user_db=os.path.join(root, "db", "users.db"))
    try:
        srv.start()
        path = os.path.join(root, "var", "run", "local.sock")
        assert os.stat(path).st_uid == pwd.getpwnam("nobody").pw_uid
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o711
        for user in (None, "daemon"):
            uid = pwd.getpwnam(user).pw_uid if user else 0
            r = sendmail(srv, "bob@example.test", user=user,
                         stdin=("Subject: %s-%d\n\nx\n" % (token, uid)).encode())
            assert r.returncode == 0, r.stderr
            msg = srv.wait_message("bob@example.test", "%s-%d" % (token, uid))
            assert "from userid %d" % uid in lib.received_header(msg)
    finally:
        problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


def test_more_recipients_than_a_transaction_takes(start_server, token):
    """452 4.5.3 to a RCPT: the message goes to those accepted, then again to the rest
    (RFC 5321 4.5.3.1.10), not refused as a temporary failure for ever."""
    srv = start_server(max_recipients=1)
    r = sendmail(srv, "-t", "-v", stdin=("To: alice@example.test, bob@example.test\nSubject: %s\n\nx\n"
                                         % token).encode())
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(b"accepted: 250 2.0.0") == 2
    srv.wait_message("alice@example.test", token)
    srv.wait_message("bob@example.test", token)


def test_mbox_from_line_and_cr_line_ends(server, token):
    r = sendmail(server, "alice@example.test",
                 stdin=("From root Tue Dec  1 10:00:00 2026\nSubject: %s\rX-A: 1\r\n\rbody\r" % token).encode())
    assert r.returncode == 0, r.stderr
    msg = server.wait_message("alice@example.test", token)
    assert b"From root" not in msg
    assert field(msg, "X-A") == ["1"] and msg.endswith(b"\r\n\r\nbody\r\n")
    # A line that is no header field starts the body, after the blank line it lacked.
    r = sendmail(server, "alice@example.test",
                 stdin=("Subject: %s-nf\nthis is no field\nmore\n" % token).encode())
    assert r.returncode == 0, r.stderr
    msg = server.wait_message("alice@example.test", token + "-nf")
    assert msg.endswith(b"\r\n\r\nthis is no field\r\nmore\r\n")
